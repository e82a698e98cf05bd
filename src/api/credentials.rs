//! The access keys meshd accepts signed requests from, read from a file in the AWS
//! shared credentials format (`~/.aws/credentials`): every profile's
//! `aws_access_key_id` with its `aws_secret_access_key`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read the credentials file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is neither a `[profile]`, a `key = value`, a comment nor blank.
    #[error("{path}:{line}: expected `[profile]` or `name = value`")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// A profile has one half of a key pair.
    #[error("{path}: profile [{profile}] needs both aws_access_key_id and aws_secret_access_key")]
    HalfAPair {
        /// The file.
        path: PathBuf,
        /// The profile.
        profile: String,
    },
    /// Two profiles give one access key different secrets.
    #[error("{path}: access key {access_key} has two different secrets")]
    Contradiction {
        /// The file.
        path: PathBuf,
        /// The key.
        access_key: String,
    },
    /// No profile has a key pair: nobody could call the API.
    #[error("{path}: no profile has an aws_access_key_id and aws_secret_access_key")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Secret access keys by access key id. `Debug` shows the ids only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    secrets: BTreeMap<String, String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_keys", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// The key pairs of every profile in the file at `path`.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The key pairs of every profile in `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, CredentialsError> {
        let mut profiles: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                profiles.push((name.trim().to_string(), BTreeMap::new()));
                continue;
            }
            let syntax = || CredentialsError::Syntax {
                path: path.to_path_buf(),
                line: index + 1,
            };
            let (name, value) = line.split_once('=').ok_or_else(syntax)?;
            let (_, settings) = profiles.last_mut().ok_or_else(syntax)?;
            settings.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        let mut secrets = BTreeMap::new();
        for (profile, settings) in profiles {
            let key = settings.get("aws_access_key_id");
            let secret = settings.get("aws_secret_access_key");
            let (key, secret) = match (key, secret) {
                (Some(key), Some(secret)) => (key, secret),
                (None, None) => continue,
                _ => {
                    return Err(CredentialsError::HalfAPair {
                        path: path.to_path_buf(),
                        profile,
                    });
                }
            };
            if let Some(held) = secrets.insert(key.clone(), secret.clone())
                && held != *secret
            {
                return Err(CredentialsError::Contradiction {
                    path: path.to_path_buf(),
                    access_key: key.clone(),
                });
            }
        }
        if secrets.is_empty() {
            return Err(CredentialsError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { secrets })
    }

    /// The secret of `access_key`, if it is one of these.
    pub fn secret_of(&self, access_key: &str) -> Option<&str> {
        self.secrets.get(access_key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        Credentials::parse(text, Path::new("creds"))
    }

    #[test]
    fn every_profiles_key_pair_is_accepted() {
        let credentials = parse(
            "# team keys\n[default]\naws_access_key_id = AKIDA\naws_secret_access_key=secret/a+\n\n\
             [ci]\n; a comment\nAWS_ACCESS_KEY_ID=AKIDB\naws_secret_access_key = b\nregion = eu-west-1\n\
             [empty]\nregion = us-east-1\n",
        )
        .unwrap();
        assert_eq!(credentials.secret_of("AKIDA"), Some("secret/a+"));
        assert_eq!(credentials.secret_of("AKIDB"), Some("b"));
        assert_eq!(credentials.secret_of("AKIDC"), None);
        assert_eq!(
            format!("{credentials:?}"),
            r#"Credentials { access_keys: ["AKIDA", "AKIDB"] }"#,
            "Debug shows no secret"
        );
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            message("aws_access_key_id = A\n"),
            "creds:1: expected `[profile]` or `name = value`"
        );
        assert_eq!(
            message("[p]\njust words\n"),
            "creds:2: expected `[profile]` or `name = value`"
        );
        assert_eq!(
            message("[p]\naws_access_key_id = A\n"),
            "creds: profile [p] needs both aws_access_key_id and aws_secret_access_key"
        );
        assert_eq!(
            message(
                "[a]\naws_access_key_id=A\naws_secret_access_key=1\n[b]\naws_access_key_id=A\naws_secret_access_key=2\n"
            ),
            "creds: access key A has two different secrets"
        );
        assert_eq!(
            message("[a]\nregion = x\n"),
            "creds: no profile has an aws_access_key_id and aws_secret_access_key"
        );
        assert!(
            Credentials::load(Path::new("/nonexistent/creds"))
                .unwrap_err()
                .to_string()
                .starts_with("cannot read the credentials file /nonexistent/creds:")
        );
    }
}
