//! The `exec` adapter: runs the channel's program (an argument vector, never a shell string)
//! with the post as JSON on stdin ([`document`], the webhook's shape, idempotency key
//! included) and reads the outcome from its exit status: 0 published (stdout may carry
//! `{ "id", "url" }`), 75 (`EX_TEMPFAIL`) transient, any other code permanent, a time-out or
//! a death by signal unknown (the program may have posted before it stopped).
//!
//! The program runs in its own process group, so a time-out kills it and anything it started
//! (a `curl` it runs, say). It inherits the daemon's environment minus the variables that
//! hold other channels' credentials: a program sees only the secrets it was meant to see.
//! What this module must not do: use a shell, retry, or wait for a program without a limit.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use jiff::Timestamp;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::adapter::{Adapter, AttemptInfo, Outgoing, PublishError, Receipt, Reconciled};
use super::request::document;
use super::webhook::receipt_fields;

/// `EX_TEMPFAIL` from `sysexits.h`: "try again later".
pub const EX_TEMPFAIL: i32 = 75;

/// How many lines of the program's stderr a failure message quotes.
const STDERR_LINES: usize = 5;

#[derive(Debug, Clone)]
pub struct ExecAdapter {
    command: Vec<String>,
    timeout: Duration,
    /// Environment variables the program must not inherit (credentials of channels).
    hidden_env: Vec<String>,
}

impl ExecAdapter {
    pub fn new(command: Vec<String>, timeout: Duration) -> Self {
        ExecAdapter {
            command,
            timeout,
            hidden_env: Vec::new(),
        }
    }

    /// Variables removed from the program's environment.
    pub fn hiding_env(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.hidden_env.extend(names);
        self
    }

    fn program(&self) -> &str {
        self.command.first().map(String::as_str).unwrap_or("")
    }
}

impl Adapter for ExecAdapter {
    async fn publish(&self, post: &Outgoing, _now: Timestamp) -> Result<Receipt, PublishError> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(PublishError::Permanent {
                reason: "the channel's exec command is empty".to_string(),
                fix: "set `command = [\"/path/to/program\", \"arg\"]` in the channel".to_string(),
                http_status: None,
            });
        };
        let mut input = serde_json::to_vec(&document(post)).expect("JSON values encode");
        input.push(b'\n');

        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for name in &self.hidden_env {
            cmd.env_remove(name);
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Err(spawn_error(program, e)),
        };
        let pid = child.id();
        let stdin = child.stdin.take();
        let run = async move {
            let feed = async move {
                if let Some(mut stdin) = stdin {
                    // A program that does not read its input closes the pipe: not our error.
                    let _ = stdin.write_all(&input).await;
                    let _ = stdin.shutdown().await;
                }
            };
            let (_, output) = tokio::join!(feed, child.wait_with_output());
            output
        };
        let mut run = std::pin::pin!(run);
        let output = tokio::select! {
            output = &mut run => output,
            () = tokio::time::sleep(self.timeout) => {
                // Kill the whole group while the child is still ours (not yet reaped, so its
                // pid cannot have been reused); dropping `run` then reaps it (kill_on_drop).
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                return Err(PublishError::Unknown {
                    reason: format!(
                        "`{program}` did not finish within {} s and was stopped; it may have published the post",
                        self.timeout.as_secs_f64()
                    ),
                    http_status: None,
                });
            }
        };
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                return Err(PublishError::Unknown {
                    reason: format!("lost track of `{program}` while it ran: {e}"),
                    http_status: None,
                });
            }
        };
        classify(
            self.program(),
            output.status,
            &output.stdout,
            &output.stderr,
        )
    }

    async fn reconcile(
        &self,
        _post: &Outgoing,
        _attempt: &AttemptInfo,
        _now: Timestamp,
    ) -> Reconciled {
        // A program has no read-back contract; only the user can say what happened.
        Reconciled::Unknown
    }
}

fn classify(
    program: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Receipt, PublishError> {
    let said = stderr_lines(stderr);
    match status.code() {
        Some(0) => {
            let (remote_id, remote_url) = receipt_fields(stdout);
            Ok(Receipt {
                remote_id,
                remote_url,
                http_status: None,
            })
        }
        Some(EX_TEMPFAIL) => Err(PublishError::Transient {
            reason: format!("`{program}` exited with 75 (try again later){said}"),
            retry_after: None,
            http_status: None,
        }),
        Some(code) => Err(PublishError::Permanent {
            reason: format!("`{program}` exited with {code}{said}"),
            fix: format!(
                "read the program's message above, fix the post or `{program}`, then run `cadenced retry FILE`; exit 75 asks cadenced to try again later"
            ),
            http_status: None,
        }),
        None => {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal().unwrap_or(0);
            Err(PublishError::Unknown {
                reason: format!(
                    "`{program}` was killed by signal {signal}; it may have published the post{said}"
                ),
                http_status: None,
            })
        }
    }
}

/// `: line1 / line2 …`: the first lines of the program's stderr, for the failure message.
fn stderr_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(STDERR_LINES)
        .map(|l| {
            if l.chars().count() > 200 {
                format!("{}…", l.chars().take(200).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join(" / "))
    }
}

fn spawn_error(program: &str, e: io::Error) -> PublishError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => PublishError::Permanent {
            reason: format!("cannot run `{program}`: {e}"),
            fix: "check the channel's `command`: the program must exist and be executable by the cadenced user (an absolute path is safest)".to_string(),
            http_status: None,
        },
        // Out of processes or memory: nothing ran, later may work.
        _ => PublishError::Transient {
            reason: format!("cannot start `{program}`: {e}"),
            retry_after: None,
            http_status: None,
        },
    }
}

/// SIGKILL to the program's process group (its pid, as `process_group(0)` made it).
fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The group is the
    // one we created for this child; an ESRCH (already gone) is fine.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}
