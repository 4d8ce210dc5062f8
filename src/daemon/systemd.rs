//! The systemd notify protocol (`sd_notify(3)`): `READY=1`, `STATUS=…`, `WATCHDOG=1`,
//! `STOPPING=1` as datagrams to `$NOTIFY_SOCKET`. A few lines over a Unix datagram socket,
//! so no crate is needed. Without `$NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a long review tells systemd it is advancing, at most.
const STILL_WORKING_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
enum SocketAddr {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (honouring `$WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|s| {
            let bytes = s.as_encoded_bytes();
            let addr = match bytes.first() {
                Some(b'@') => SocketAddr::Abstract(bytes[1..].to_vec()),
                Some(b'/') => SocketAddr::Path(PathBuf::from(&s)),
                _ => return None,
            };
            UnixDatagram::unbound().ok().map(|sock| (sock, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// How often to send `WATCHDOG=1`: half the interval systemd expects.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    pub fn status(&self, text: &str) {
        // One line: a newline would start another assignment.
        self.send(&format!("STATUS={}", text.replace('\n', " ")));
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }

    /// While a review of the queue runs on the loop's thread: it advanced, so give it
    /// more time (`EXTEND_TIMEOUT_USEC`: start-up is not cut off by `TimeoutStartSec=`
    /// however large the queue) and count it as alive (`WATCHDOG=1`: the loop sends none
    /// meanwhile). Three intervals of [`Notifier::heartbeat`] each time: a review that
    /// stops advancing still times out.
    pub fn still_working(&self) {
        let extend = 3 * self.heartbeat_every();
        let mut msg = format!("EXTEND_TIMEOUT_USEC={}", extend.as_micros());
        if self.watchdog.is_some() {
            msg.push_str("\nWATCHDOG=1");
        }
        self.send(&msg);
    }

    /// What long work calls as it advances ([`crate::progress::with_progress`]): says
    /// [`Notifier::still_working`] as often as [`Notifier::heartbeat`] allows.
    pub fn keepalive(self: &Arc<Self>) -> impl FnMut() + 'static {
        let notifier = Arc::clone(self);
        let mut heartbeat = notifier.heartbeat();
        move || {
            if heartbeat.due(Instant::now()) {
                notifier.still_working();
            }
        }
    }

    /// When to call [`Notifier::still_working`] during a long review.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            every: self.heartbeat_every(),
            next: None,
        }
    }

    fn heartbeat_every(&self) -> Duration {
        self.watchdog_interval()
            .map_or(STILL_WORKING_EVERY, |w| w.min(STILL_WORKING_EVERY))
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    fn send(&self, msg: &str) {
        let Some((sock, addr)) = &self.socket else {
            return;
        };
        let result = match addr {
            SocketAddr::Path(p) => sock.send_to(msg.as_bytes(), p),
            SocketAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not notify systemd");
        }
    }
}

/// Paces [`Notifier::still_working`]: due at the first step of the work, then once `every`
/// has passed since the last time it was due.
#[derive(Debug)]
pub struct Heartbeat {
    every: Duration,
    next: Option<Instant>,
}

impl Heartbeat {
    /// The work advanced at `now`: whether to say so.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.next.is_some_and(|next| now < next) {
            return false;
        }
        self.next = Some(now + self.every);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_due_at_the_first_step_then_once_an_interval() {
        let n = Notifier {
            socket: None,
            watchdog: Some(Duration::from_secs(8)),
        };
        let mut beat = n.heartbeat();
        let t = Instant::now();
        assert!(beat.due(t));
        assert!(!beat.due(t + Duration::from_millis(3999)));
        assert!(
            beat.due(t + Duration::from_secs(4)),
            "half the watchdog's time"
        );
        assert!(!beat.due(t + Duration::from_secs(5)));
        // Steps that stop for a while: due again at the next one, paced from there.
        assert!(beat.due(t + Duration::from_secs(60)));
        assert!(!beat.due(t + Duration::from_secs(63)));
        // Without a watchdog, every ten seconds.
        let mut beat = Notifier::default().heartbeat();
        assert!(beat.due(t));
        assert!(!beat.due(t + Duration::from_secs(9)));
        assert!(beat.due(t + Duration::from_secs(10)));
    }
}
