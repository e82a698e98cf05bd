//! Why a durable store could not be opened. meshd refuses to start rather than serve a
//! store it could only partly read.

use std::path::PathBuf;

/// A store meshd will not start on. Nothing was loaded from it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created or its file could not be opened.
    #[error("cannot open the data directory {}: {source}", .dir.display())]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another process (most likely another meshd) has the data file open.
    #[error(
        "the data file {} is in use by another process (is another meshd running on this data directory?)",
        .path.display()
    )]
    InUse {
        /// The data file.
        path: PathBuf,
    },
    /// The data file was written by a newer meshd, in a format this one does not know.
    #[error(
        "the data file {} was written by a newer meshd (data format version {found}; this meshd reads version {supported} and older); run a newer meshd, or start this one on another --data-dir",
        .path.display()
    )]
    NewerFormat {
        /// The data file.
        path: PathBuf,
        /// The format version the file declares.
        found: u64,
        /// The newest format version this meshd reads.
        supported: u64,
    },
    /// The data file cannot be read back as it was written.
    #[error(
        "the data file {} is corrupt and was not loaded: {detail}; restore it from a backup, or move it aside to start with an empty store",
        .path.display()
    )]
    Corrupt {
        /// The data file.
        path: PathBuf,
        /// What is wrong, as precisely as known.
        detail: String,
    },
    /// `--store etcd` was asked of a meshd built without the `etcd` feature.
    #[error(
        "this meshd was built without etcd support; build it with `cargo build --release --features etcd` (needs protoc)"
    )]
    EtcdNotBuilt,
    /// etcd did not answer (or refused meshd's requests) while the store was loaded.
    #[error("cannot load the store from etcd at {endpoints}: {detail}")]
    EtcdUnavailable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What went wrong.
        detail: String,
    },
    /// The TLS or authentication settings for etcd are incomplete or cannot be read.
    #[error("cannot set up access to etcd: {detail}")]
    EtcdAccess {
        /// What is wrong.
        detail: String,
    },
    /// What meshd finds under its etcd prefix cannot be read back as it was written.
    #[error(
        "the data under the etcd prefix {prefix} cannot be loaded: {detail}; restore it from a backup (etcdctl snapshot), or use another --etcd-prefix"
    )]
    EtcdData {
        /// The key prefix.
        prefix: String,
        /// What is wrong.
        detail: String,
    },
}
