//! OpenSSH `known_hosts` files: parsing and deciding whether a presented host key is trusted. Pure,
//! no I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KnownHostsError {
    #[error("known_hosts line {line}: {reason}")]
    Parse { line: usize, reason: &'static str },
    #[error("known_hosts has no host keys")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Plain(Vec<String>),
    /// `|1|salt|hash`: HMAC-SHA1 of the host name keyed with the salt.
    Hashed {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hosts: HostPattern,
    revoked: bool,
    key: Vec<u8>,
}

/// The answer for one presented host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    Trusted,
    /// The host is listed, but with other keys: the key changed or someone is in between.
    Changed,
    /// The host is not listed at all.
    UnknownHost,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Result<Self, KnownHostsError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| KnownHostsError::Parse {
                line: line_no,
                reason,
            };
            let mut fields = line.split_whitespace();
            let mut first = fields.next().ok_or_else(|| bad("empty line"))?;
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    "@cert-authority" => continue,
                    _ => return Err(bad("unknown marker")),
                }
                first = fields
                    .next()
                    .ok_or_else(|| bad("no host pattern after the marker"))?;
            }
            let _key_type = fields.next().ok_or_else(|| bad("no key type"))?;
            let key_b64 = fields.next().ok_or_else(|| bad("no key"))?;
            let key = STANDARD
                .decode(key_b64)
                .map_err(|_| bad("the key is not base64"))?;
            let hosts = if let Some(h) = first.strip_prefix("|1|") {
                let (salt, hash) = h
                    .split_once('|')
                    .ok_or_else(|| bad("hashed host without a hash"))?;
                HostPattern::Hashed {
                    salt: STANDARD
                        .decode(salt)
                        .map_err(|_| bad("hashed host salt is not base64"))?,
                    hash: STANDARD
                        .decode(hash)
                        .map_err(|_| bad("hashed host hash is not base64"))?,
                }
            } else {
                HostPattern::Plain(first.split(',').map(str::to_ascii_lowercase).collect())
            };
            entries.push(Entry {
                hosts,
                revoked,
                key,
            });
        }
        if entries.is_empty() {
            return Err(KnownHostsError::Empty);
        }
        Ok(KnownHosts { entries })
    }

    /// Checks the raw key blob a server presented for `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyCheck {
        let names = host_names(host, port);
        let for_host: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.hosts.matches(&names))
            .collect();
        if for_host.iter().any(|e| e.revoked && e.key == key) {
            return HostKeyCheck::Revoked;
        }
        if for_host.iter().any(|e| !e.revoked && e.key == key) {
            return HostKeyCheck::Trusted;
        }
        if for_host.is_empty() {
            HostKeyCheck::UnknownHost
        } else {
            HostKeyCheck::Changed
        }
    }
}

/// The spellings a known_hosts file uses for a host: `host` on port 22, `[host]:port` otherwise.
fn host_names(host: &str, port: u16) -> Vec<String> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if port == 22 {
        vec![host]
    } else {
        vec![format!("[{host}]:{port}")]
    }
}

impl HostPattern {
    fn matches(&self, names: &[String]) -> bool {
        match self {
            HostPattern::Plain(patterns) => {
                let negated = patterns
                    .iter()
                    .filter_map(|p| p.strip_prefix('!'))
                    .any(|p| names.iter().any(|n| glob(p, n)));
                !negated
                    && patterns
                        .iter()
                        .filter(|p| !p.starts_with('!'))
                        .any(|p| names.iter().any(|n| glob(p, n)))
            }
            HostPattern::Hashed { salt, hash } => names
                .iter()
                .any(|n| hmac_sha1(salt, n.as_bytes()).is_some_and(|h| &h == hash)),
        }
    }
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let pkey = openssl::pkey::PKey::hmac(key).ok()?;
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &pkey).ok()?;
    signer.update(data).ok()?;
    signer.sign_to_vec().ok()
}

/// `*` and `?` wildcards as in ssh's host patterns. Iterative, remembering only the last `*`
/// (an earlier star can never do better than a later one): at most `pattern × name` steps and no
/// recursion, whatever a hostile known_hosts line holds.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last star was, and how much of the name it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGvWd3Y5bQtm0eJkF8a1o7Wq3sY2c0bM5rZ2kqVmLx0A";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEQZo6d5j7kkGq1n8Uu6bEoFvM3rR1f3wqzM1fA9yHcB";

    fn key(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn plain_ported_and_wildcard_hosts() {
        let kh = KnownHosts::parse(&format!(
            "# comment\n[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\ngit.example.com,10.0.0.1 ssh-ed25519 {KEY_B}\n*.corp ssh-ed25519 {KEY_A}\n"
        ))
        .unwrap();
        assert_eq!(
            kh.check("127.0.0.1", 2222, &key(KEY_A)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            kh.check("127.0.0.1", 2222, &key(KEY_B)),
            HostKeyCheck::Changed
        );
        assert_eq!(
            kh.check("127.0.0.1", 22, &key(KEY_A)),
            HostKeyCheck::UnknownHost
        );
        assert_eq!(
            kh.check("git.example.com", 22, &key(KEY_B)),
            HostKeyCheck::Trusted
        );
        assert_eq!(kh.check("a.corp", 22, &key(KEY_A)), HostKeyCheck::Trusted);
    }

    #[test]
    fn hashed_and_revoked_entries() {
        let salt = b"0123456789abcdefghij";
        let hash = hmac_sha1(salt, b"[127.0.0.1]:2200").unwrap();
        let text = format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}\n@revoked [127.0.0.1]:2200 ssh-ed25519 {KEY_B}\n",
            STANDARD.encode(salt),
            STANDARD.encode(hash)
        );
        let kh = KnownHosts::parse(&text).unwrap();
        assert_eq!(
            kh.check("127.0.0.1", 2200, &key(KEY_A)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            kh.check("127.0.0.1", 2200, &key(KEY_B)),
            HostKeyCheck::Revoked
        );
    }

    #[test]
    fn wildcards_match_like_ssh() {
        for (pattern, name, expected) in [
            ("*", "", true),
            ("*", "git.example.com", true),
            ("*.corp", "a.corp", true),
            ("*.corp", "corp", false),
            ("git?.corp", "git1.corp", true),
            ("git?.corp", "git.corp", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("[127.0.0.1]:*", "[127.0.0.1]:2222", true),
            ("**a", "ba", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob(pattern, name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn hostile_patterns_do_not_explode() {
        // With naive backtracking this takes 2^40 steps; here it is a few thousand.
        let pattern = format!("{}b", "*a".repeat(40));
        let name = "a".repeat(200);
        assert!(!glob(&pattern, &name));
        let text = format!("{pattern} ssh-ed25519 {KEY_A}\n");
        let kh = KnownHosts::parse(&text).unwrap();
        assert_eq!(kh.check(&name, 22, &key(KEY_A)), HostKeyCheck::UnknownHost);
    }

    #[test]
    fn garbage_is_reported_with_its_line() {
        assert_eq!(KnownHosts::parse(""), Err(KnownHostsError::Empty));
        assert!(matches!(
            KnownHosts::parse("host ssh-ed25519 !!!notbase64"),
            Err(KnownHostsError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            KnownHosts::parse("# c\nhost-only"),
            Err(KnownHostsError::Parse { line: 2, .. })
        ));
    }
}
