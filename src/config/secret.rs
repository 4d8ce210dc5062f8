//! Credentials. (Being written.)

/// Where a credential comes from; never the credential itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(std::path::PathBuf),
    Credential(String),
}

/// A credential's value. `Debug` prints `***`.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
