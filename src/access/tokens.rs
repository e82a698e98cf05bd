//! Bearer tokens for proxies (`--xds-tokens FILE`): each line a token and the node ids
//! it may stream, `*` standing for one whole name (`s3cr3t mesh/shop/virtualNode/*`), a
//! lone `*` for every node; `#` starts a comment. Tokens are kept only as SHA-256
//! digests and compared in constant time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::secret::SecretDigest;
use crate::compile::{ProxyId, ProxyKind};
use parking_lot::RwLock;

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `TOKEN NODE-ID…`.
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file grants nothing.
    #[error("{}: no token in it", .0.display())]
    Empty(PathBuf),
}

/// One segment of a node-id pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `*`: any one whole name.
    Any,
    /// This name.
    Exactly(String),
}

impl Segment {
    fn parse(text: &str) -> Self {
        if text == "*" {
            Segment::Any
        } else {
            Segment::Exactly(text.to_string())
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Exactly(expected) => expected == value,
        }
    }
}

/// The node ids a token may stream: every node, or `mesh/<m>/<kind>/<n>` where any of
/// the three may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePattern {
    /// `*`: every node (and the status of every proxy, for CSDS).
    Every,
    /// `mesh/<m>/<kind>/<n>`.
    Node {
        /// The mesh.
        mesh: Segment,
        /// `virtualNode` or `virtualGateway`.
        kind: Segment,
        /// The resource's name.
        name: Segment,
    },
}

impl NodePattern {
    /// Parses one pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(NodePattern::Every);
        }
        let parts: Vec<&str> = text.split('/').collect();
        let ["mesh", mesh, kind, name] = parts.as_slice() else {
            return Err(format!(
                "{text:?} is not mesh/<mesh>/virtualNode/<name>, mesh/<mesh>/virtualGateway/<name> or * (a * stands for one whole name)"
            ));
        };
        if !matches!(*kind, "virtualNode" | "virtualGateway" | "*")
            || mesh.is_empty()
            || name.is_empty()
        {
            return Err(format!(
                "{text:?} is not mesh/<mesh>/virtualNode/<name>, mesh/<mesh>/virtualGateway/<name> or * (a * stands for one whole name)"
            ));
        }
        Ok(NodePattern::Node {
            mesh: Segment::parse(mesh),
            kind: Segment::parse(kind),
            name: Segment::parse(name),
        })
    }

    /// Whether the pattern allows `proxy`.
    pub fn allows(&self, proxy: &ProxyId) -> bool {
        match self {
            NodePattern::Every => true,
            NodePattern::Node { mesh, kind, name } => {
                let kind_name = match proxy.kind {
                    ProxyKind::VirtualNode => "virtualNode",
                    ProxyKind::VirtualGateway => "virtualGateway",
                };
                mesh.matches(&proxy.mesh) && kind.matches(kind_name) && name.matches(&proxy.name)
            }
        }
    }
}

/// What one token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token's line in the file (for the logs: never the token itself).
    pub line: usize,
    /// The node ids it may stream.
    pub patterns: Vec<NodePattern>,
}

impl TokenGrant {
    /// Whether the token may stream `proxy`.
    pub fn allows(&self, proxy: &ProxyId) -> bool {
        self.patterns.iter().any(|pattern| pattern.allows(proxy))
    }

    /// Whether the token may stream every node (an operator's).
    pub fn allows_every_node(&self) -> bool {
        self.patterns.contains(&NodePattern::Every)
    }
}

/// The tokens of one reading of the file.
#[derive(Debug, Default)]
struct TokenTable {
    entries: Vec<(SecretDigest, Arc<TokenGrant>)>,
}

/// The text of a line before its comment: a `#` at the start of a word starts one.
fn without_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    for (at, c) in line.char_indices() {
        if c == '#' && previous_is_space {
            return &line[..at];
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

impl TokenTable {
    fn parse(path: &Path, text: &str) -> Result<Self, TokenFileError> {
        let mut entries: Vec<(SecretDigest, Arc<TokenGrant>)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let bad = |reason: String| TokenFileError::Line {
                path: path.to_path_buf(),
                line: line_no,
                reason,
            };
            let mut words = without_comment(line).split_whitespace();
            let Some(token) = words.next() else { continue };
            let patterns = words
                .map(NodePattern::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            if patterns.is_empty() {
                return Err(bad(
                    "a token needs the node ids it may stream after it (mesh/<mesh>/virtualNode/<name>, … or *)".into(),
                ));
            }
            let hash = SecretDigest::of(token);
            if let Some((_, earlier)) = entries.iter().find(|(h, _)| h.matches(&hash)) {
                return Err(bad(format!(
                    "the same token as on line {}: give each token one line",
                    earlier.line
                )));
            }
            entries.push((
                hash,
                Arc::new(TokenGrant {
                    line: line_no,
                    patterns,
                }),
            ));
        }
        if entries.is_empty() {
            return Err(TokenFileError::Empty(path.to_path_buf()));
        }
        Ok(Self { entries })
    }

    /// The grant of `token`: every entry is compared, in constant time, whatever matches.
    fn lookup(&self, token: &str) -> Option<Arc<TokenGrant>> {
        let presented = SecretDigest::of(token);
        let mut found = None;
        for (hash, grant) in &self.entries {
            if hash.matches(&presented) {
                found = Some(grant.clone());
            }
        }
        found
    }
}

/// The token file, re-read on demand (SIGHUP).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    table: RwLock<Arc<TokenTable>>,
}

impl TokenFile {
    /// Reads `path`.
    pub fn open(path: &Path) -> Result<Self, TokenFileError> {
        Ok(Self {
            path: path.to_path_buf(),
            table: RwLock::new(Arc::new(Self::read(path)?)),
        })
    }

    fn read(path: &Path) -> Result<TokenTable, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        TokenTable::parse(path, &text)
    }

    /// Reads the file again; a file that cannot be used leaves the tokens as they were.
    /// Returns how many tokens it now holds.
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        let table = Self::read(&self.path)?;
        let count = table.entries.len();
        *self.table.write() = Arc::new(table);
        Ok(count)
    }

    /// The grant of `token`, if it is one of the file's.
    pub fn lookup(&self, token: &str) -> Option<Arc<TokenGrant>> {
        let table = self.table.read().clone();
        table.lookup(token)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<TokenTable, TokenFileError> {
        TokenTable::parse(Path::new("tokens"), text)
    }

    #[test]
    fn a_token_allows_its_patterns_with_star_as_one_whole_name() {
        let tokens = table(
            "# proxies of the shop mesh\n\
             s3cr3t mesh/shop/virtualNode/* mesh/shop/virtualGateway/ingress # the gateway too\n\
             \n\
             operator-token *\n\
             pass#word mesh/*/virtualNode/web\n",
        )
        .unwrap();
        let shop = tokens.lookup("s3cr3t").unwrap();
        assert_eq!(shop.line, 2);
        assert!(shop.allows(&ProxyId::virtual_node("shop", "cart")));
        assert!(shop.allows(&ProxyId::virtual_gateway("shop", "ingress")));
        assert!(!shop.allows(&ProxyId::virtual_gateway("shop", "egress")));
        assert!(!shop.allows(&ProxyId::virtual_node("bank", "cart")));
        assert!(!shop.allows_every_node());
        // `*` is one whole name, never part of one.
        assert!(!shop.allows(&ProxyId::virtual_node("shop2", "cart")));
        let operator = tokens.lookup("operator-token").unwrap();
        assert!(operator.allows_every_node());
        assert!(operator.allows(&ProxyId::virtual_gateway("any", "thing")));
        // A `#` inside a token is part of it.
        let web = tokens.lookup("pass#word").unwrap();
        assert!(web.allows(&ProxyId::virtual_node("bank", "web")));
        assert!(tokens.lookup("s3cr3").is_none());
        assert!(tokens.lookup("").is_none());
    }

    #[test]
    fn a_bad_line_names_its_line() {
        for (text, expected) in [
            ("t1 mesh/a/virtualNode/b\nlonely\n", "tokens:2:"),
            ("t1 mesh/a/virtualRouter/b\n", "tokens:1:"),
            ("t1 mesh/a/virtualNode\n", "tokens:1:"),
            ("t1 mesh/a/virtualNode/*\nt1 *\n", "same token as on line 1"),
        ] {
            let err = table(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        assert!(matches!(
            table("# nothing\n"),
            Err(TokenFileError::Empty(_))
        ));
    }

    #[test]
    fn reloading_replaces_the_tokens_and_a_bad_file_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "old *\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert!(file.lookup("old").is_some());
        std::fs::write(&path, "new mesh/m/virtualNode/a\n").unwrap();
        assert_eq!(file.reload().unwrap(), 1);
        assert!(file.lookup("old").is_none());
        assert!(file.lookup("new").is_some());
        std::fs::write(&path, "broken\n").unwrap();
        assert!(file.reload().is_err());
        assert!(file.lookup("new").is_some(), "a bad file keeps the tokens");
    }
}
