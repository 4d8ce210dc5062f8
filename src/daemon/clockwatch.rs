//! Noticing wall-clock steps (NTP setting the time, `date -s`, a resume from suspend)
//! without waking up to look.
//!
//! The daemon sleeps on tokio's monotonic timers until the next slot, which it computes
//! from the wall clock; after a step those sleeps end at the wrong wall time. A `timerfd`
//! on `CLOCK_REALTIME`, armed far in the future with `TFD_TIMER_CANCEL_ON_SET`, never
//! expires but becomes readable (its read fails with `ECANCELED`) whenever the kernel's
//! wall clock is set discontinuously, resume included: then the daemon recomputes its next
//! wake. It costs no wake-up while the clock runs normally. Optional (`Options::watch_clock`):
//! tests on tokio's paused clock with a fake `Clock` leave it off or simply never see it fire.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// 2200-01-01T00:00:00Z: "never", as an absolute wall time.
const FAR_FUTURE: libc::time_t = 7_258_118_400;

pub(super) struct ClockWatch {
    fd: AsyncFd<OwnedFd>,
}

impl ClockWatch {
    /// Must be called inside a tokio runtime.
    pub fn new() -> io::Result<ClockWatch> {
        // SAFETY: plain syscall; the result is checked and owned right away.
        let raw = unsafe {
            libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        arm(&fd)?;
        // SAFETY: the descriptor is owned by the `OwnedFd` the `AsyncFd` owns, so it stays
        // open and the same for the `AsyncFd`'s whole life.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(ClockWatch { fd })
    }

    /// Waits until the wall clock is set (or the far-future timer expires, which also
    /// calls for a new look), then re-arms.
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut ticks = [0u8; 8];
            // SAFETY: reads 8 bytes into a buffer of 8.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    ticks.as_mut_ptr().cast(),
                    ticks.len(),
                )
            };
            let err = io::Error::last_os_error();
            if n < 0 && err.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            drop(guard);
            arm(self.fd.get_ref())?;
            if n < 0 && err.raw_os_error() != Some(libc::ECANCELED) {
                return Err(err);
            }
            return Ok(());
        }
    }
}

fn arm(fd: &OwnedFd) -> io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: FAR_FUTURE,
            tv_nsec: 0,
        },
    };
    // SAFETY: valid descriptor and a valid, initialised itimerspec.
    let rc = unsafe {
        libc::timerfd_settime(
            fd.as_raw_fd(),
            libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET,
            &spec,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
