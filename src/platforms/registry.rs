//! The registry: which adapter publishes for a channel, built from its config, with its
//! credentials read here (at the edge, when the daemon starts a channel), plus the process's
//! TLS set-up and its one HTTP client configuration.
//!
//! [`AnyAdapter`] lists every adapter; a new one is a variant here and an arm in each
//! `match`, which the compiler points out. What this module must not do: put a credential's
//! value into an error (errors name the channel and where the credential should come from).

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use jiff::Timestamp;

use super::Platform;
use super::adapter::{Adapter, AttemptInfo, Outgoing, PublishError, Receipt, Reconciled};
use super::exec::ExecAdapter;
use super::mastodon_api::MastodonAdapter;
use super::outbox::OutboxAdapter;
use super::request::Plan;
use super::webhook::WebhookAdapter;
use crate::config::{Channel, Config, SecretRef, Settings};

/// Every adapter cadenced can publish with.
#[derive(Debug, Clone)]
pub enum AnyAdapter {
    Outbox(OutboxAdapter),
    Webhook(WebhookAdapter),
    Exec(ExecAdapter),
    Mastodon(MastodonAdapter),
}

impl Adapter for AnyAdapter {
    async fn publish(&self, post: &Outgoing, now: Timestamp) -> Result<Receipt, PublishError> {
        match self {
            AnyAdapter::Outbox(a) => a.publish(post, now).await,
            AnyAdapter::Webhook(a) => a.publish(post, now).await,
            AnyAdapter::Exec(a) => a.publish(post, now).await,
            AnyAdapter::Mastodon(a) => a.publish(post, now).await,
        }
    }

    async fn reconcile(
        &self,
        post: &Outgoing,
        attempt: &AttemptInfo,
        now: Timestamp,
    ) -> Reconciled {
        match self {
            AnyAdapter::Outbox(a) => a.reconcile(post, attempt, now).await,
            AnyAdapter::Webhook(a) => a.reconcile(post, attempt, now).await,
            AnyAdapter::Exec(a) => a.reconcile(post, attempt, now).await,
            AnyAdapter::Mastodon(a) => a.reconcile(post, attempt, now).await,
        }
    }

    fn can_resend_same_key(&self, started: Timestamp, now: Timestamp) -> bool {
        match self {
            AnyAdapter::Outbox(a) => a.can_resend_same_key(started, now),
            AnyAdapter::Webhook(a) => a.can_resend_same_key(started, now),
            AnyAdapter::Exec(a) => a.can_resend_same_key(started, now),
            AnyAdapter::Mastodon(a) => a.can_resend_same_key(started, now),
        }
    }
}

/// The adapter for `channel`: the outbox for `dry_run` channels (with their own platform's
/// request plan) and for the `outbox` platform; the webhook or exec adapter for theirs.
/// `env_lookup` reads the environment and `credentials_dir` is `$CREDENTIALS_DIRECTORY`
/// (both passed in so tests and `check` control them). An error names the channel and what
/// to do; it never holds a credential's value.
pub fn for_channel(
    config: &Config,
    channel: &Channel,
    env_lookup: impl Fn(&str) -> Option<String>,
    credentials_dir: Option<&Path>,
) -> Result<AnyAdapter, String> {
    // reqwest is built without a default TLS provider: every client needs this first.
    install_tls_provider();
    let name = &channel.name;
    if channel.dry_run || channel.platform == Platform::Outbox {
        // Nothing is sent, so no credential is read: the outbox writes `***` in its place.
        return Ok(AnyAdapter::Outbox(OutboxAdapter::new(
            config.outbox.clone(),
            channel.platform,
            Plan::for_settings(&channel.settings),
            channel.dry_run,
        )));
    }
    match &channel.settings {
        Settings::Webhook { url } => Ok(AnyAdapter::Webhook(WebhookAdapter::new(
            url.clone(),
            http_client(),
        ))),
        Settings::Exec { command, timeout } => {
            let timeout = Duration::try_from(*timeout).map_err(|_| {
                format!("channel `{name}`: the exec `timeout` must be a positive duration")
            })?;
            Ok(AnyAdapter::Exec(
                ExecAdapter::new(command.clone(), timeout).hiding_env(credential_env_names(config)),
            ))
        }
        Settings::Mastodon {
            instance, token, ..
        } => {
            let token = read_secret(name, "token", token, &env_lookup, credentials_dir)?;
            MastodonAdapter::new(instance.clone(), token)
                .map(AnyAdapter::Mastodon)
                .map_err(|e| format!("channel `{name}`: could not set up the HTTP client: {e}"))
        }
        Settings::X { token } => {
            // Read anyway: an unreadable credential is the first thing to fix.
            read_secret(name, "token", token, &env_lookup, credentials_dir)?;
            Err(outbox_only(name, Platform::X))
        }
        Settings::Bluesky { app_password, .. } => {
            read_secret(
                name,
                "app_password",
                app_password,
                &env_lookup,
                credentials_dir,
            )?;
            Err(outbox_only(name, Platform::Bluesky))
        }
        Settings::Outbox => unreachable!("handled above"),
    }
}

fn outbox_only(channel: &str, platform: Platform) -> String {
    format!(
        "channel `{channel}`: this version of cadenced can only write {platform} posts to the outbox; set `dry_run = true` in [channels.{channel}]"
    )
}

/// Reads one credential; the error names the channel, the key and where the value should
/// have come from (`SecretRef::read` never includes the value).
pub fn read_secret(
    channel: &str,
    key: &str,
    secret: &SecretRef,
    env_lookup: impl Fn(&str) -> Option<String>,
    credentials_dir: Option<&Path>,
) -> Result<crate::config::Secret, String> {
    secret.read(env_lookup, credentials_dir).map_err(|why| {
        format!(
            "channel `{channel}`: cannot read its `{key}` from {}: {why}",
            secret.describe()
        )
    })
}

/// Environment variables that hold any channel's credential: an exec program must not
/// inherit them.
pub fn credential_env_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .channels
        .iter()
        .flat_map(|c| c.secrets())
        .filter_map(|(_, secret)| match secret {
            SecretRef::Env(name) => Some(name.clone()),
            SecretRef::File(_) | SecretRef::Credential(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Installs rustls's `ring` provider as the process default, once. reqwest is built with
/// `rustls-no-provider` (ring builds faster and smaller than aws-lc-rs), so this must run
/// before the first client is built; calling it again does nothing.
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed a provider first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take, answer included, unless the request sets its own.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client every adapter uses: a `cadenced/<version>` user agent, time-outs (a hung
/// server must not stall the daemon), and no redirects: a POST that is redirected may be
/// sent twice or turned into a GET, so a redirect is reported for the user to fix the URL.
///
/// Panics only if the TLS stack cannot be set up at all (as `reqwest::Client::new` does).
pub fn http_client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .user_agent(concat!("cadenced/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the TLS stack initialises (ring provider, OS trust store)")
}
