//! `cadenced auth CHANNEL`: the one-time step that connects a channel to its account.
//!
//! - A platform that uses OAuth 2.0 (X with `client_id`): prints the authorization address
//!   (with a PKCE challenge and a state), takes the address the browser was sent to (or just
//!   the code) from the user, exchanges the code for tokens, keeps them in the token store
//!   beside the database (owner-only), and reads the account to show whose it is.
//! - Any other platform: checks the channel's credentials as the daemon will use them (a
//!   Bluesky login with the app password, a read of the Mastodon or X account) and says
//!   whose account they open.
//!
//! Run it as the user the daemon runs as (`sudo -u cadenced cadenced auth shop-x`), with the
//! credentials where the daemon finds them; run as root, the token store still ends up owned
//! by the state folder's owner. What this module must not do: print a token, or keep one
//! anywhere but the token store.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::Channel;
use crate::platforms::adapter::{self, AnyAdapter, ConnectCtx, PlainFiles, PublishError};
use crate::platforms::plan::Bindings;
use crate::platforms::{AuthFlow, ChannelCtx, run};
use crate::tokens::TokenStore;

use super::{EXIT_CONFIG, EXIT_PROBLEMS, Output, load_config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The channel to connect, as named in the config.
    #[arg(value_name = "CHANNEL")]
    pub channel: String,
}

pub fn run(config_path: Option<&Path>, args: Args, clock: &dyn Clock, out: &Output) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let Some(channel) = Channel::find(&config.channels, &args.channel) else {
        let names: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
        let hint = crate::diag::did_you_mean(&args.channel, names.iter().copied())
            .map(|b| format!("did you mean `{b}`? "))
            .unwrap_or_default();
        eprintln!(
            "error: there is no channel `{}` in {}\n  help: {hint}the channels are {}",
            args.channel,
            out.path(&config.path),
            names.join(", ")
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(EXIT_PROBLEMS);
        }
    };
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut output = io::stdout();
    let tokens = TokenStore::beside(&config.database);
    let result = runtime.block_on(connect(
        channel,
        &tokens,
        &config.outbox,
        clock,
        &mut input,
        &mut output,
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(EXIT_PROBLEMS)
        }
    }
}

/// The dialogue, with its input and output passed in (tests answer it).
pub async fn connect(
    channel: &Channel,
    tokens: &TokenStore,
    outbox: &Path,
    clock: &dyn Clock,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<(), String> {
    let name = &channel.name;
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let env = |n: &str| std::env::var(n).ok();
    let ctx = ConnectCtx {
        env: &env,
        credentials_dir: creds.as_deref(),
        outbox,
        tokens: Some(tokens.clone()),
        media: Arc::new(PlainFiles { max_bytes: 0 }),
        hidden_env: Vec::new(),
        client: Default::default(),
    };
    // The real adapter even for a dry-run channel: connecting is what comes before going live.
    let adapter = adapter::connect(channel.platform, name, &channel.settings, false, &ctx)
        .map_err(|e| format!("error: {e}"))?;
    let AnyAdapter::Http(http) = adapter else {
        writeln!(
            output,
            "Channel `{name}` ({}) has no account to connect.",
            channel.platform
        )
        .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let now = clock.now();
    let ch = ChannelCtx {
        name,
        settings: &channel.settings,
        now,
    };
    let say = |output: &mut dyn Write, text: String| {
        writeln!(output, "{text}").map_err(|e| e.to_string())
    };
    let known = match channel.platform.auth(&ch) {
        AuthFlow::Check(steps) if steps.is_empty() => {
            say(
                output,
                format!(
                    "Channel `{name}` ({}) has no account to connect.",
                    channel.platform
                ),
            )?;
            return Ok(());
        }
        AuthFlow::Check(steps) => run::connect_account(&http, &steps, &[], now)
            .await
            .map_err(|e| failed(name, &e))?,
        AuthFlow::OAuth2 {
            authorize_url,
            exchange,
            check,
        } => {
            let verifier = pkce_verifier();
            let state = crate::platforms::http::nonce();
            let url = format!(
                "{authorize_url}&state={state}&code_challenge={}&code_challenge_method=S256",
                pkce_challenge(&verifier)
            );
            say(
                output,
                format!(
                    "To connect channel `{name}` to {title}, open this address in a browser, log in as the shop's account and allow cadenced:\n\n  {url}\n\n{title} then sends the browser to the app's callback address. Paste that whole address here (or only its `code`), then press Enter:",
                    title = channel.platform.title()
                ),
            )?;
            output.flush().map_err(|e| e.to_string())?;
            let mut answer = String::new();
            input.read_line(&mut answer).map_err(|e| e.to_string())?;
            let code = read_code(answer.trim(), &state)?;
            let mut steps = vec![*exchange];
            steps.extend(check);
            run::connect_account(
                &http,
                &steps,
                &[("code", code), ("code_verifier", verifier)],
                now,
            )
            .await
            .map_err(|e| failed(name, &e))?
        }
    };
    let who = account(&known).unwrap_or_else(|| "the account".to_string());
    say(
        output,
        format!(
            "Channel `{name}` is connected to {} as {who}. The daemon keeps its session in {} (readable by its owner only) and renews it by itself.{}",
            channel.platform.title(),
            tokens.path().display(),
            if channel.dry_run {
                format!(
                    " The channel still has `dry_run = true`: remove that line from [channels.{name}] to publish for real."
                )
            } else {
                " If the daemon paused the channel, `systemctl reload cadenced` resumes it."
                    .to_string()
            }
        ),
    )?;
    Ok(())
}

fn failed(channel: &str, e: &PublishError) -> String {
    let fix = match e {
        PublishError::Credentials { fix, .. } | PublishError::Permanent { fix, .. } => {
            format!("\n  help: {fix}")
        }
        _ => "\n  help: try again in a moment".to_string(),
    };
    format!("error: could not connect channel `{channel}`: {e}{fix}")
}

/// The account's name from the check's answer.
fn account(known: &Bindings) -> Option<String> {
    match &known.get("account")?.value {
        Value::String(s) if !s.is_empty() => Some(format!("@{}", s.trim_start_matches('@'))),
        _ => None,
    }
}

/// The code from what the user pasted: the whole callback address (whose `state` must be
/// ours) or the code alone.
fn read_code(pasted: &str, state: &str) -> Result<String, String> {
    if pasted.is_empty() {
        return Err("error: nothing was pasted; run `cadenced auth` again".into());
    }
    let Ok(url) = url::Url::parse(pasted) else {
        return Ok(pasted.to_string());
    };
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(error) = get("error") {
        return Err(format!(
            "error: the platform did not authorize cadenced ({error}{})\n  help: run `cadenced auth` again and allow the access it asks for",
            get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
    }
    if get("state").is_some_and(|s| s != state) {
        return Err("error: the pasted address belongs to another authorization (its state differs)\n  help: paste the address from this run's authorization, or run `cadenced auth` again".into());
    }
    get("code").ok_or_else(|| {
        "error: the pasted address has no `code`\n  help: paste the address the browser was sent to after you allowed access".into()
    })
}

/// A PKCE code verifier: 32 random bytes, base64url (43 characters).
fn pkce_verifier() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    let _ = getrandom::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Its S256 challenge (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636() {
        // RFC 7636, Appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = pkce_verifier();
        assert_eq!(v.len(), 43);
        assert_ne!(v, pkce_verifier());
    }

    #[test]
    fn the_code_comes_from_the_pasted_address_or_alone() {
        assert_eq!(
            read_code("https://shop.example/cb?state=s1&code=abc%2D1", "s1").unwrap(),
            "abc-1"
        );
        assert_eq!(read_code("abc-2", "s1").unwrap(), "abc-2");
        let err = read_code("https://shop.example/cb?state=other&code=x", "s1").unwrap_err();
        assert!(err.contains("state differs"), "{err}");
        let err =
            read_code("https://shop.example/cb?error=access_denied&state=s1", "s1").unwrap_err();
        assert!(err.contains("access_denied"), "{err}");
        assert!(read_code("", "s1").is_err());
    }
}
