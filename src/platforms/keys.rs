//! Config keys, declared: each platform lists the keys its channels take ([`Key`]: name,
//! kind, required or optional or defaulted, an example, one line about it), and the config
//! parser turns a channel's table into [`Settings`] by that list. Strict parsing, "did you
//! mean", `check`'s messages, the example in a hint, the man page's key table and the list
//! of secrets to redact all read the same declaration, so a platform never parses its own
//! keys by hand.
//!
//! What this module must not do: parse TOML (that is `config`'s job, with line numbers) or
//! read a secret (a [`SecretRef`] only says where the secret is).

use std::collections::BTreeMap;

use jiff::SignedDuration;

use crate::secret::SecretRef;

/// One config key of a platform's channels.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// As written in the config, named as the platform's own documentation names it.
    pub name: &'static str,
    pub kind: Kind,
    pub need: Need,
    /// A value as it is written in TOML, for hints: `"https://mastodon.social"`.
    pub example: &'static str,
    /// What the key is for, in one line (for `check` and the man page).
    pub about: &'static str,
}

/// What a key's value is; each kind has its own parsing and checks in `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `https://` URL (plain `http://` only for loopback), without a password in it.
    Url,
    /// A credential by reference: `{ env = "NAME" }`, `{ file = "path" }` or
    /// `{ credential = "name" }`; never the value itself.
    Secret,
    /// An account handle, written without a leading `@` (`shop.bsky.social`).
    Handle,
    /// An identifier the platform gave (a page id, a client id, a chat id): a non-empty
    /// string without spaces.
    Id,
    /// A whole number within the bounds.
    Integer { min: i64, max: i64 },
    /// A duration such as `"30s"` or `"2m"`, at least `min_secs`.
    Duration { min_secs: i64 },
    /// A program and its arguments, one string each; never a shell line.
    Argv,
}

impl Kind {
    /// The kind in words, for messages and the man page.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Url => "a URL",
            Kind::Secret => "a credential reference",
            Kind::Handle => "an account handle",
            Kind::Id => "an identifier",
            Kind::Integer { .. } => "a whole number",
            Kind::Duration { .. } => "a duration",
            Kind::Argv => "an argument vector",
        }
    }
}

/// Whether a channel must set a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
    /// Optional, with this value (written as in TOML) when left out.
    Default(&'static str),
}

impl Key {
    pub const fn required(name: &'static str, kind: Kind, example: &'static str) -> Key {
        Key {
            name,
            kind,
            need: Need::Required,
            example,
            about: "",
        }
    }

    pub const fn optional(name: &'static str, kind: Kind, example: &'static str) -> Key {
        Key {
            name,
            kind,
            need: Need::Optional,
            example,
            about: "",
        }
    }

    pub const fn defaulted(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        example: &'static str,
    ) -> Key {
        Key {
            name,
            kind,
            need: Need::Default(default),
            example,
            about: "",
        }
    }

    pub const fn about(mut self, about: &'static str) -> Key {
        self.about = about;
        self
    }

    /// `name = example`, as a user pastes it. Credentials get all three forms.
    pub fn example_line(&self, channel: &str) -> String {
        if self.kind == Kind::Secret {
            let var = format!(
                "{}_{}",
                channel.to_uppercase().replace('-', "_"),
                self.name.to_uppercase()
            );
            format!(
                "`{} = {{ env = \"{var}\" }}` (or `{{ file = \"path\" }}`, `{{ credential = \"name\" }}`)",
                self.name
            )
        } else {
            format!("`{} = {}`", self.name, self.example)
        }
    }
}

/// A parsed key value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Url(String),
    Secret(SecretRef),
    /// A handle or an id.
    Text(String),
    Integer(i64),
    Duration(SignedDuration),
    Argv(Vec<String>),
}

/// A channel's platform keys, parsed and checked by their declaration. Getters return
/// `None` for a key that is not set (or of another kind: a platform asks for its own keys
/// by the kind it declared, so that cannot happen outside a bug, and `None` is the safe
/// answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
}

impl Settings {
    pub fn new() -> Settings {
        Settings::default()
    }

    pub fn insert(&mut self, key: &'static str, value: Value) {
        self.values.insert(key, value);
    }

    /// Builder form, for tests and the demo.
    pub fn with(mut self, key: &'static str, value: Value) -> Settings {
        self.insert(key, value);
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub fn url(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Url(u) => Some(u),
            _ => None,
        }
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn secret(&self, key: &str) -> Option<&SecretRef> {
        match self.get(key)? {
            Value::Secret(s) => Some(s),
            _ => None,
        }
    }

    pub fn integer(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn duration(&self, key: &str) -> Option<SignedDuration> {
        match self.get(key)? {
            Value::Duration(d) => Some(*d),
            _ => None,
        }
    }

    pub fn argv(&self, key: &str) -> Option<&[String]> {
        match self.get(key)? {
            Value::Argv(a) => Some(a),
            _ => None,
        }
    }

    /// Every credential reference, by key: what `check` tries to read and what an `exec`
    /// program must not inherit.
    pub fn secrets(&self) -> impl Iterator<Item = (&'static str, &SecretRef)> {
        self.values.iter().filter_map(|(k, v)| match v {
            Value::Secret(s) => Some((*k, s)),
            _ => None,
        })
    }
}

/// A problem with a combination of keys that each parsed (two auth modes at once, say),
/// found by a platform's `check_keys`. Points at `key`'s line when it is set, else at the
/// channel's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: Option<&'static str>,
    pub message: String,
    pub help: String,
}

impl KeyProblem {
    pub fn new(
        key: Option<&'static str>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        KeyProblem {
            key,
            message: message.into(),
            help: help.into(),
        }
    }
}
