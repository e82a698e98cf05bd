//! A secret kept only as its SHA-256 digest and compared in constant time, so that
//! neither the secret nor how much of it a guess got right can be read back.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a secret (a token, a password).
#[derive(Clone, Copy)]
pub struct SecretDigest([u8; 32]);

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether both are the digest of the same secret, compared in constant time.
    pub fn matches(&self, other: &SecretDigest) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}
