//! The config file. (Being written.)

pub mod duration;
pub mod secret;

use std::path::{Path, PathBuf};

use crate::cadence::ChannelRules;
use crate::diag::Diagnostic;
use crate::platforms::{Limits, Platform};

pub use secret::{Secret, SecretRef};

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    pub queue: PathBuf,
    pub database: PathBuf,
    pub outbox: PathBuf,
    pub log_level: String,
    /// Sorted by name.
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub platform: Platform,
    pub rules: ChannelRules,
    pub dry_run: bool,
    /// Takes part in the cross-platform variation rule.
    pub variation: bool,
    pub settings: Settings,
}

/// The platform-specific keys of a channel.
#[derive(Debug, Clone)]
pub enum Settings {
    X {
        token: SecretRef,
    },
    Mastodon {
        instance: String,
        token: SecretRef,
        max_characters: Option<usize>,
    },
    Bluesky {
        service: String,
        handle: String,
        app_password: SecretRef,
    },
    Webhook {
        url: String,
    },
    Exec {
        command: Vec<String>,
        timeout: jiff::SignedDuration,
    },
    Outbox,
}

impl Channel {
    pub fn limits(&self) -> Limits {
        match &self.settings {
            Settings::Mastodon { max_characters, .. } => Limits {
                max_characters: *max_characters,
            },
            _ => Limits::default(),
        }
    }

    /// The channel's credentials, by config key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        match &self.settings {
            Settings::X { token } | Settings::Mastodon { token, .. } => vec![("token", token)],
            Settings::Bluesky { app_password, .. } => vec![("app_password", app_password)],
            Settings::Webhook { .. } | Settings::Exec { .. } | Settings::Outbox => Vec::new(),
        }
    }
}

/// A config that parsed and made sense, with what `check` should warn about.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let _ = path;
    todo!()
}
