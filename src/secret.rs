//! Credentials: where a channel's secret comes from (`{ env = "NAME" }`, `{ file = "path" }`
//! or `{ credential = "name" }`, the last one from systemd's `LoadCredential=`), and reading
//! it at the edge.
//!
//! What this module must never do: put a secret's value into an error, a `Debug` or
//! `Display` output, or anything else that may end up in a log. Errors name where the secret
//! should have come from, never what was found there.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::DeValue;

/// Where a credential comes from; never the credential itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the daemon's process.
    Env(String),
    /// A file, already resolved against the config file's folder.
    File(PathBuf),
    /// A systemd credential, read from `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
}

/// Why a config value is not a usable [`SecretRef`]. The message never contains the value
/// that was written, because a mistaken value is often the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRefError {
    pub message: String,
    pub help: String,
    /// The value is a literal string: the source line must not be shown either.
    pub literal: bool,
}

impl SecretRef {
    /// The keys of the inline table.
    pub const KINDS: [&'static str; 3] = ["env", "file", "credential"];

    /// Reads a reference from its TOML value, as written under `key`; `dir` is the config
    /// file's folder, against which relative `file` paths are resolved.
    pub fn from_toml(
        key: &str,
        value: &DeValue<'_>,
        dir: &Path,
    ) -> Result<SecretRef, SecretRefError> {
        let forms = format!(
            "write `{key} = {{ env = \"NAME\" }}`, `{key} = {{ file = \"path\" }}` or `{key} = {{ credential = \"name\" }}` (systemd LoadCredential=)"
        );
        let table = match value {
            DeValue::Table(table) => table,
            DeValue::String(_) => {
                return Err(SecretRefError {
                    message: format!(
                        "`{key}` holds a literal secret; secrets do not belong in the config file"
                    ),
                    help: format!(
                        "move it into an environment variable, a file or a systemd credential, then {forms}"
                    ),
                    literal: true,
                });
            }
            other => {
                return Err(SecretRefError {
                    message: format!(
                        "`{key}` must be a table that says where the secret is, not {}",
                        article(other.type_str())
                    ),
                    help: forms,
                    literal: false,
                });
            }
        };
        let mut entries = table.iter();
        let (Some((kind, source)), None) = (entries.next(), entries.next()) else {
            return Err(SecretRefError {
                message: format!(
                    "`{key}` must name exactly one source: `env`, `file` or `credential`"
                ),
                help: forms,
                literal: false,
            });
        };
        let kind = kind.get_ref().as_ref();
        if !Self::KINDS.contains(&kind) {
            let help = match crate::diag::did_you_mean(kind, Self::KINDS) {
                Some(best) => format!("did you mean `{best}`? {forms}"),
                None => forms,
            };
            return Err(SecretRefError {
                message: format!("`{key}` has an unknown source `{kind}`"),
                help,
                literal: false,
            });
        }
        let Some(name) = source.get_ref().as_str() else {
            return Err(SecretRefError {
                message: format!("`{kind}` in `{key}` must be a string"),
                help: forms,
                literal: false,
            });
        };
        match kind {
            "env" if is_env_name(name) => Ok(SecretRef::Env(name.to_string())),
            // Not echoed: a value that is no variable name may well be the token itself.
            "env" => Err(SecretRefError {
                message: format!("`env` in `{key}` is not an environment variable name"),
                help: "write the variable's name (letters, digits and `_`, e.g. `SHOP_X_TOKEN`), not its value".into(),
                literal: true,
            }),
            "file" if !name.is_empty() => Ok(SecretRef::File(dir.join(name))),
            "file" => Err(SecretRefError {
                message: format!("`file` in `{key}` is empty"),
                help: "write the path of the file that holds the secret; relative paths start at the config file's folder".into(),
                literal: false,
            }),
            _ if is_credential_name(name) => Ok(SecretRef::Credential(name.to_string())),
            _ => Err(SecretRefError {
                message: format!("`credential` in `{key}` is not a credential name"),
                help: "write the name given to systemd's `LoadCredential=name:/path` (letters, digits, `-`, `_`, `.`), not the secret".into(),
                literal: true,
            }),
        }
    }

    /// Where the secret comes from, in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("environment variable `{name}`"),
            SecretRef::File(path) => format!("file `{}`", path.display()),
            SecretRef::Credential(name) => format!("systemd credential `{name}`"),
        }
    }

    /// Reads the secret. `env_lookup` reads the environment (passed in so tests and `check`
    /// control it); `credentials_dir` is `$CREDENTIALS_DIRECTORY` where systemd set it.
    /// A trailing newline of a file is not part of the secret (editors add one).
    pub fn read(
        &self,
        env_lookup: impl Fn(&str) -> Option<String>,
        credentials_dir: Option<&Path>,
    ) -> Result<Secret, String> {
        let value = match self {
            SecretRef::Env(name) => env_lookup(name)
                .ok_or_else(|| format!("environment variable `{name}` is not set"))?,
            SecretRef::File(path) => read_file(path)?,
            SecretRef::Credential(name) => {
                let dir = credentials_dir.ok_or_else(|| {
                    format!(
                        "systemd credential `{name}` is not available here: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a service with `LoadCredential={name}:/path`)"
                    )
                })?;
                read_file(&dir.join(name))?
            }
        };
        if value.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret(value))
    }
}

/// The largest credential file read. Tokens and app passwords are well under 1 KiB; JWTs
/// and PEM keys a few KiB. A larger file is a mistake (or `/dev/zero`), not a secret.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a credential file the way post files are read: opened without blocking (a FIFO
/// must not hang `check` or the daemon), only if it is a regular file, and at most
/// [`MAX_SECRET_BYTES`]. Symlinks are followed: systemd's credential directory and
/// administrators' `/etc` layouts use them legitimately.
fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    // The io::Error says why (not found, permission denied); it never carries file content.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read file `{shown}`: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read file `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "`{shown}` is not a regular file (a FIFO, a device or a folder); put the secret in a plain file"
        ));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "file `{shown}` is {} bytes, more than a credential can be ({MAX_SECRET_BYTES} bytes at most); check that it is the right file",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take` bounds the read even if the file grows after the size check.
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file `{shown}`: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "file `{shown}` grew past {MAX_SECRET_BYTES} bytes while it was read; check that it is the right file"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("file `{shown}` is not UTF-8 text"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn article(type_str: &str) -> String {
    let a = if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{a} {type_str}")
}

/// A credential's value. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the
/// value, so every place that sends it is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::de::DeTable;

    const SECRET: &str = "tok-9f8e7d6c5b4a-secret";

    fn parse_ref(toml_value: &str) -> Result<SecretRef, SecretRefError> {
        let text = format!("token = {toml_value}\n");
        let table = DeTable::parse(&text).unwrap();
        let value = table.get_ref().get("token").unwrap();
        SecretRef::from_toml("token", value.get_ref(), Path::new("/etc/cadenced"))
    }

    #[test]
    fn parses_the_three_sources() {
        assert_eq!(
            parse_ref(r#"{ env = "SHOP_X_TOKEN" }"#),
            Ok(SecretRef::Env("SHOP_X_TOKEN".into()))
        );
        assert_eq!(
            parse_ref(r#"{ file = "x-token" }"#),
            Ok(SecretRef::File("/etc/cadenced/x-token".into()))
        );
        assert_eq!(
            parse_ref(r#"{ file = "/run/x" }"#),
            Ok(SecretRef::File("/run/x".into()))
        );
        assert_eq!(
            parse_ref(r#"{ credential = "x-token" }"#),
            Ok(SecretRef::Credential("x-token".into()))
        );
    }

    #[test]
    fn a_literal_is_refused_without_echoing_it() {
        let err = parse_ref(&format!("\"{SECRET}\"")).unwrap_err();
        assert!(err.literal);
        assert!(err.message.contains("literal secret"), "{}", err.message);
        assert!(err.help.contains("{ env = \"NAME\" }"), "{}", err.help);
        assert!(err.help.contains("{ file = \"path\" }"), "{}", err.help);
        assert!(
            err.help.contains("{ credential = \"name\" }"),
            "{}",
            err.help
        );
        assert!(!format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn a_token_written_as_env_name_is_refused_without_echoing_it() {
        let err = parse_ref(&format!("{{ env = \"{SECRET}\" }}")).unwrap_err();
        assert!(err.literal);
        assert!(
            err.message.contains("not an environment variable name"),
            "{}",
            err.message
        );
        assert!(!format!("{err:?}").contains(SECRET));
        let err = parse_ref(&format!("{{ credential = \"{SECRET}/x\" }}")).unwrap_err();
        assert!(err.literal);
        assert!(!format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn malformed_tables_are_refused_with_a_hint() {
        let err = parse_ref(r#"{ envv = "X" }"#).unwrap_err();
        assert_eq!(err.message, "`token` has an unknown source `envv`");
        assert!(err.help.starts_with("did you mean `env`?"), "{}", err.help);
        let err = parse_ref(r#"{ env = "X", file = "y" }"#).unwrap_err();
        assert!(
            err.message.contains("exactly one source"),
            "{}",
            err.message
        );
        let err = parse_ref("{}").unwrap_err();
        assert!(
            err.message.contains("exactly one source"),
            "{}",
            err.message
        );
        let err = parse_ref("42").unwrap_err();
        assert_eq!(
            err.message,
            "`token` must be a table that says where the secret is, not an integer"
        );
        let err = parse_ref(r#"{ file = "" }"#).unwrap_err();
        assert!(err.message.contains("empty"), "{}", err.message);
    }

    #[test]
    fn reads_env_without_leaking() {
        let r = SecretRef::Env("T".into());
        let secret = r
            .read(|n| (n == "T").then(|| SECRET.to_string()), None)
            .unwrap();
        assert_eq!(secret.expose(), SECRET);
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        let err = SecretRef::Env("MISSING".into())
            .read(|_| None, None)
            .unwrap_err();
        assert_eq!(err, "environment variable `MISSING` is not set");
        let err = r.read(|_| Some(String::new()), None).unwrap_err();
        assert_eq!(err, "environment variable `T` is empty");
    }

    #[test]
    fn reads_files_and_trims_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        let secret = SecretRef::File(path.clone()).read(|_| None, None).unwrap();
        assert_eq!(secret.expose(), SECRET);
        std::fs::write(&path, format!("{SECRET}\r\n")).unwrap();
        assert_eq!(
            SecretRef::File(path.clone())
                .read(|_| None, None)
                .unwrap()
                .expose(),
            SECRET
        );
    }

    #[test]
    fn file_errors_name_the_file_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = SecretRef::File(missing.clone())
            .read(|_| None, None)
            .unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read file `{}`", missing.display())),
            "{err}"
        );
        let binary = dir.path().join("bin");
        let mut bytes = SECRET.as_bytes().to_vec();
        bytes.push(0xff);
        std::fs::write(&binary, &bytes).unwrap();
        let err = SecretRef::File(binary.clone())
            .read(|_| None, None)
            .unwrap_err();
        assert_eq!(
            err,
            format!("file `{}` is not UTF-8 text", binary.display())
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = SecretRef::File(empty.clone())
            .read(|_| None, None)
            .unwrap_err();
        assert_eq!(err, format!("file `{}` is empty", empty.display()));
    }

    #[test]
    fn a_fifo_credential_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = SecretRef::File(fifo).read(|_| None, None).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_dev_zero_credential_is_refused_without_reading_it() {
        let err = SecretRef::File("/dev/zero".into())
            .read(|_| None, None)
            .unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        let err = SecretRef::File(big).read(|_| None, None).unwrap_err();
        assert!(err.contains("more than a credential can be"), "{err}");
        assert!(!err.contains("aaaa"), "{err}");
    }

    #[test]
    fn reads_systemd_credentials_from_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x-token"), SECRET).unwrap();
        let r = SecretRef::Credential("x-token".into());
        assert_eq!(r.read(|_| None, Some(dir.path())).unwrap().expose(), SECRET);
        let err = r.read(|_| None, None).unwrap_err();
        assert!(err.contains("$CREDENTIALS_DIRECTORY is not set"), "{err}");
        assert!(err.contains("LoadCredential=x-token:"), "{err}");
    }
}
