//! How meshd reaches a secured etcd: TLS (the CA that signed etcd's certificate, and
//! meshd's own client certificate) and etcd's user/password authentication.

use std::path::PathBuf;

/// How meshd proves who it is to etcd, and how it checks etcd's certificate. The default
/// is plain `http://` endpoints and no authentication.
///
/// TLS applies to `https://` endpoints: `ca_file` is the CA bundle etcd's certificate is
/// checked against (without it, the system's roots are not used: the connection is
/// refused), and `cert_file` with `key_file` is the client certificate etcd asks for
/// when it runs with `--client-cert-auth`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdAccess {
    /// PEM file of the CA certificates that etcd's server certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM file of meshd's client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// etcd user name, when etcd has authentication enabled (with `password`).
    pub username: Option<String>,
    /// The user's password.
    pub password: Option<String>,
}

impl EtcdAccess {
    /// Whether any TLS file is configured.
    pub fn uses_tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Checks that the settings belong together: a certificate with its key, a user with
    /// a password, and TLS files only with `https://` endpoints. The answer is the
    /// sentence to tell the operator.
    pub fn check(&self, endpoints: &[String]) -> Result<(), String> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err("--etcd-cert needs --etcd-key".into()),
            (None, Some(_)) => return Err("--etcd-key needs --etcd-cert".into()),
            _ => {}
        }
        match (&self.username, &self.password) {
            (Some(_), None) => return Err("--etcd-username needs --etcd-password".into()),
            (None, Some(_)) => return Err("--etcd-password needs --etcd-username".into()),
            _ => {}
        }
        let plain: Vec<&str> = endpoints
            .iter()
            .filter(|endpoint| !endpoint.starts_with("https://"))
            .map(String::as_str)
            .collect();
        if self.uses_tls() && !plain.is_empty() {
            return Err(format!(
                "TLS files are given, so every etcd endpoint must be https://, not {}",
                plain.join(", ")
            ));
        }
        if !self.uses_tls() && endpoints.iter().any(|e| e.starts_with("https://")) {
            return Err(
                "https:// etcd endpoints need --etcd-cacert (the CA that signed etcd's certificate)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn settings_that_do_not_belong_together_are_refused() {
        let tls = EtcdAccess {
            ca_file: Some("ca.pem".into()),
            ..EtcdAccess::default()
        };
        assert!(tls.check(&endpoints(&["https://a:2379"])).is_ok());
        let err = tls
            .check(&endpoints(&["https://a:2379", "http://b:2379"]))
            .unwrap_err();
        assert!(err.contains("http://b:2379"), "{err}");
        let err = EtcdAccess::default()
            .check(&endpoints(&["https://a:2379"]))
            .unwrap_err();
        assert!(err.contains("--etcd-cacert"), "{err}");
        let half_identity = EtcdAccess {
            cert_file: Some("c.pem".into()),
            ..tls.clone()
        };
        assert_eq!(
            half_identity.check(&endpoints(&["https://a:2379"])),
            Err("--etcd-cert needs --etcd-key".into())
        );
        let no_password = EtcdAccess {
            username: Some("meshd".into()),
            ..EtcdAccess::default()
        };
        assert_eq!(
            no_password.check(&endpoints(&["http://a:2379"])),
            Err("--etcd-username needs --etcd-password".into())
        );
    }

    #[test]
    fn the_password_is_never_printed() {
        let access = EtcdAccess {
            username: Some("meshd".into()),
            password: Some("s3cret".into()),
            ..EtcdAccess::default()
        };
        let printed = format!("{access:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("meshd"), "{printed}");
    }
}
