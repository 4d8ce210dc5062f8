//! The registry: every platform cadenced can publish to, one line each. The config parser
//! finds a channel's platform (and its declared keys) here, the daemon builds its adapter
//! from it (`adapter::connect`), and the man page and `check` list what is here.
//!
//! Adding a platform is a folder under `src/platforms/` and one line below (see
//! ARCHITECTURE.md, "Adding a platform").

use super::PlatformSpec;

/// Every platform, in the order `check` and the man page list them.
pub static ALL: &[&'static dyn PlatformSpec] = &[
    &super::x::X,
    &super::mastodon::Mastodon,
    &super::bluesky::Bluesky,
    &super::webhook::Webhook,
    &super::exec::Exec,
    &super::outbox::Outbox,
];

/// Platforms the SPEC names that this version cannot publish to yet; a channel naming one
/// gets an error that says so, rather than "unknown platform".
pub const PLANNED: &[&str] = &[
    "facebook",
    "instagram",
    "pinterest",
    "tumblr",
    "linkedin",
    "threads",
    "telegram",
    "discord",
];
