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

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::adapter::{Outgoing, PublishError, Receipt};
use super::keys::{Key, Kind, Settings};
use super::plan::{self, Bindings, Body, Mode, Plan, RenderedBody, Role, Step, Tpl};
use super::webhook::document;
use super::{ChannelCtx, PlatformSpec, Transport};

/// `EX_TEMPFAIL` from `sysexits.h`: "try again later".
pub const EX_TEMPFAIL: i32 = 75;

/// How many lines of the program's stderr a failure message quotes.
const STDERR_LINES: usize = 5;

/// The most of the program's stdout and of its stderr kept: `{ "id", "url" }` and a few
/// lines of explanation fit many times over; a program that writes more is not blocked
/// (the rest is read and dropped).
const MAX_OUTPUT: usize = 64 * 1024;

pub struct Exec;

const KEYS: &[Key] = &[
    Key::required(
        "command",
        Kind::Argv,
        "[\"/usr/local/bin/publish\", \"--channel\", \"shop\"]",
    )
    .about("the program and its arguments, one string each (no shell)"),
    Key::defaulted(
        "timeout",
        Kind::Duration { min_secs: 1 },
        "\"30s\"",
        "\"2m\"",
    )
    .about("how long the program may run before it is stopped"),
];

impl PlatformSpec for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn title(&self) -> &'static str {
        "the program"
    }

    fn about(&self) -> &'static str {
        "Runs a program of yours with the post as JSON on stdin (see EXEC PROGRAMS)."
    }

    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn transport(&self) -> Transport {
        Transport::Exec
    }

    /// One step in the outbox's shape: method `EXEC`, `url` = the program, the further
    /// arguments as headers `Arg-1`, `Arg-2`…, the body = the stdin document. The adapter
    /// runs exactly this step.
    fn plan(&self, ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan {
        let command = ch.settings.argv("command").unwrap_or_default();
        let program = command.first().cloned().unwrap_or_default();
        let mut step = Step::new("create", Role::Create, "EXEC", program, "the program")
            .body(Body::Json(Tpl::Value(document(post))));
        for (i, arg) in command.iter().enumerate().skip(1) {
            step = step.header(&format!("Arg-{i}"), arg.as_str());
        }
        Plan {
            steps: vec![step],
            assumed: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExecAdapter {
    settings: Settings,
    timeout: Duration,
    /// Environment variables the program must not inherit (credentials of channels).
    hidden_env: Vec<String>,
}

impl ExecAdapter {
    pub fn new(command: Vec<String>, timeout: Duration) -> Self {
        ExecAdapter {
            settings: Settings::new().with("command", super::keys::Value::Argv(command)),
            timeout,
            hidden_env: Vec::new(),
        }
    }

    /// Variables removed from the program's environment.
    pub fn hiding_env(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.hidden_env.extend(names);
        self
    }

    /// Runs the plan's one step: the program, its arguments, the document on stdin.
    pub async fn publish(&self, post: &Outgoing) -> Result<Receipt, PublishError> {
        let ctx = ChannelCtx {
            name: &post.channel,
            settings: &self.settings,
            now: post.started,
        };
        let plan = Exec.plan(&ctx, post);
        let rendered = plan
            .steps
            .first()
            .and_then(|s| plan::render(s, &Bindings::new(), Mode::Show).ok());
        let Some(rendered) = rendered.filter(|r| !r.url.is_empty()) else {
            return Err(PublishError::Permanent {
                reason: "the channel's exec command is empty".to_string(),
                fix: "set `command = [\"/path/to/program\", \"arg\"]` in the channel".to_string(),
                http_status: None,
            });
        };
        let program = rendered.url.clone();
        let args: Vec<String> = rendered.headers.iter().map(|(_, v)| v.clone()).collect();
        let mut input = match &rendered.body {
            RenderedBody::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            _ => Vec::new(),
        };
        input.push(b'\n');
        self.run(&program, &args, input).await
    }

    async fn run(
        &self,
        program: &str,
        args: &[String],
        input: Vec<u8>,
    ) -> Result<Receipt, PublishError> {
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
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async move {
            let feed = async move {
                if let Some(mut stdin) = stdin {
                    // A program that does not read its input closes the pipe: not our error.
                    let _ = stdin.write_all(&input).await;
                    let _ = stdin.shutdown().await;
                }
            };
            let (_, out, err, status) =
                tokio::join!(feed, capped(stdout), capped(stderr), child.wait());
            status.map(|s| (s, out, err))
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
        let (status, stdout, stderr) = match output {
            Ok(output) => output,
            Err(e) => {
                return Err(PublishError::Unknown {
                    reason: format!("lost track of `{program}` while it ran: {e}"),
                    http_status: None,
                });
            }
        };
        classify(program, status, &stdout, &stderr)
    }
}

/// Reads a pipe to its end, keeping at most [`MAX_OUTPUT`] bytes.
async fn capped(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
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
            reason: format!("`{program}` asked to try again later{said}"),
            retry_after: None,
            http_status: None,
        }),
        Some(code) => Err(PublishError::Permanent {
            reason: format!(
                "`{program}` reported that it could not publish the post (exit status {code}){said}"
            ),
            fix: format!(
                "read the program's message above, fix the post or `{program}`, then run `cadenced retry FILE`"
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

/// `id` and `url` from a JSON answer `{ "id", "url" }` (an `id` may be a number).
pub fn receipt_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let id = match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let url = map
        .get("url")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    (id, url)
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
