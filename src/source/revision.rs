//! Which revision of a remote to fetch: ref precedence, semver ranges and revision strings. Pure, no I/O.

use std::fmt;

pub use crate::semver_range::{RangeError, SemverRange, parse_tag_version};

/// The branch used when a reference names nothing.
pub const DEFAULT_BRANCH: &str = "main";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevisionError {
    #[error(transparent)]
    ParseRange(#[from] RangeError),
    #[error("no tag matches semver range {range:?}")]
    NoTagMatches { range: String },
    #[error("{kind} {name:?} not found on the remote")]
    RefNotFound { kind: &'static str, name: String },
    #[error("commit {commit:?} is not a full 40-character hexadecimal SHA-1")]
    ParseCommit { commit: String },
    #[error("revision {revision:?} is not of the form <name>@sha1:<hex> or sha1:<hex>")]
    ParseRevision { revision: String },
}

/// A Git reference as written by a user (Flux's `spec.ref`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefSpec {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub semver: Option<String>,
    pub name: Option<String>,
    pub commit: Option<String>,
}

/// The one reference that wins after precedence: commit > name > semver > tag > branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Branch(String),
    Tag(String),
    Semver(String),
    Name(String),
    /// A commit, optionally constrained to be reachable from a branch.
    Commit {
        sha: String,
        branch: Option<String>,
    },
}

impl Selection {
    /// Applies Flux's precedence to a reference; an empty reference means the default branch.
    pub fn from_spec(spec: &RefSpec) -> Result<Self, RevisionError> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        if let Some(sha) = set(&spec.commit) {
            if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RevisionError::ParseCommit { commit: sha });
            }
            return Ok(Selection::Commit {
                sha: sha.to_ascii_lowercase(),
                branch: set(&spec.branch),
            });
        }
        if let Some(name) = set(&spec.name) {
            return Ok(Selection::Name(name));
        }
        if let Some(range) = set(&spec.semver) {
            SemverRange::parse(&range)?;
            return Ok(Selection::Semver(range));
        }
        if let Some(tag) = set(&spec.tag) {
            return Ok(Selection::Tag(tag));
        }
        Ok(Selection::Branch(
            set(&spec.branch).unwrap_or_else(|| DEFAULT_BRANCH.to_owned()),
        ))
    }

    /// Parses what a user types on the command line: `main`, `refs/...`, `v1.2.3`, a range, a SHA.
    /// Tries, in order: full SHA, full refname, semver range with an operator, tag-like, branch.
    pub fn from_cli(reference: &str) -> Result<Self, RevisionError> {
        let r = reference.trim();
        let spec = if let Some(b) = r.strip_prefix("branch:") {
            RefSpec {
                branch: Some(b.into()),
                ..Default::default()
            }
        } else if let Some(t) = r.strip_prefix("tag:") {
            RefSpec {
                tag: Some(t.into()),
                ..Default::default()
            }
        } else if let Some(s) = r.strip_prefix("semver:") {
            RefSpec {
                semver: Some(s.into()),
                ..Default::default()
            }
        } else if let Some(c) = r.strip_prefix("commit:") {
            RefSpec {
                commit: Some(c.into()),
                ..Default::default()
            }
        } else if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
            RefSpec {
                commit: Some(r.into()),
                ..Default::default()
            }
        } else if r.starts_with("refs/") {
            RefSpec {
                name: Some(r.into()),
                ..Default::default()
            }
        } else {
            RefSpec {
                branch: Some(r.into()),
                ..Default::default()
            }
        };
        Self::from_spec(&spec)
    }
}

/// A plain name typed on the command line is a branch unless only a tag of that name exists.
pub fn disambiguate(selection: Selection, refs: &[RemoteRef]) -> Selection {
    match selection {
        Selection::Branch(b) => {
            let has = |full: String| refs.iter().any(|r| r.name == full);
            if !has(format!("refs/heads/{b}")) && has(format!("refs/tags/{b}")) {
                Selection::Tag(b)
            } else {
                Selection::Branch(b)
            }
        }
        other => other,
    }
}

/// One reference advertised by a remote. `peeled` is the commit an annotated tag points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub oid: String,
    pub peeled: Option<String>,
}

/// A selection matched against the remote's advertised references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Full refname to fetch, e.g. `refs/heads/main`; `None` when only a commit is known.
    pub refname: Option<String>,
    /// The commit the revision will point at, when the remote told us.
    pub commit: Option<String>,
    /// The revision string the artifact will carry once fetched.
    pub revision: Option<Revision>,
}

/// Matches a selection against a ref advertisement.
pub fn resolve(selection: &Selection, refs: &[RemoteRef]) -> Result<Resolved, RevisionError> {
    let find = |full: &str| refs.iter().find(|r| r.name == full);
    let commit_of = |r: &RemoteRef| r.peeled.clone().unwrap_or_else(|| r.oid.clone());
    let found = |name: &str, refname: String, r: &RemoteRef| Resolved {
        commit: Some(commit_of(r)),
        revision: Some(Revision::named(name, &commit_of(r))),
        refname: Some(refname),
    };
    match selection {
        Selection::Branch(b) => {
            let full = format!("refs/heads/{b}");
            let r = find(&full).ok_or_else(|| RevisionError::RefNotFound {
                kind: "branch",
                name: b.clone(),
            })?;
            Ok(found(b, full, r))
        }
        Selection::Tag(t) => {
            let full = format!("refs/tags/{t}");
            let r = find(&full).ok_or_else(|| RevisionError::RefNotFound {
                kind: "tag",
                name: t.clone(),
            })?;
            Ok(found(t, full, r))
        }
        Selection::Name(n) => {
            let r = find(n).ok_or_else(|| RevisionError::RefNotFound {
                kind: "reference",
                name: n.clone(),
            })?;
            Ok(found(n, n.clone(), r))
        }
        Selection::Semver(range) => {
            let tags = refs
                .iter()
                .filter_map(|r| r.name.strip_prefix("refs/tags/"));
            let tag = SemverRange::parse(range)?.highest(tags).ok_or_else(|| {
                RevisionError::NoTagMatches {
                    range: range.clone(),
                }
            })?;
            let full = format!("refs/tags/{tag}");
            let r = find(&full).expect("the tag came from the advertisement");
            Ok(found(&tag, full, r))
        }
        Selection::Commit { sha, branch } => {
            // A commit is its own answer; whether its branch exists shows when fetching.
            let refname = branch.as_ref().map(|b| format!("refs/heads/{b}"));
            let revision = match branch {
                Some(b) => Revision::named(b, sha),
                None => Revision {
                    name: None,
                    sha: sha.clone(),
                },
            };
            Ok(Resolved {
                refname,
                commit: Some(sha.clone()),
                revision: Some(revision),
            })
        }
    }
}

/// An artifact revision: `main@sha1:<hex>`, `v1.0.0@sha1:<hex>` or `sha1:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    pub name: Option<String>,
    pub sha: String,
}

impl Revision {
    pub fn named(name: &str, sha: &str) -> Self {
        Revision {
            name: Some(name.to_owned()),
            sha: sha.to_owned(),
        }
    }

    pub fn parse(s: &str) -> Result<Self, RevisionError> {
        let bad = || RevisionError::ParseRevision {
            revision: s.to_owned(),
        };
        let (name, digest) = match s.rsplit_once('@') {
            Some((n, d)) if !n.is_empty() => (Some(n.to_owned()), d),
            Some(_) => return Err(bad()),
            None => (None, s),
        };
        let sha = digest.strip_prefix("sha1:").ok_or_else(bad)?;
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Revision {
            name,
            sha: sha.to_owned(),
        })
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}@sha1:{}", self.sha),
            None => write!(f, "sha1:{}", self.sha),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(name: &str, oid: &str, peeled: Option<&str>) -> RemoteRef {
        RemoteRef {
            name: name.into(),
            oid: oid.into(),
            peeled: peeled.map(Into::into),
        }
    }

    fn sha(c: char) -> String {
        std::iter::repeat_n(c, 40).collect()
    }

    #[test]
    fn precedence_is_commit_name_semver_tag_branch() {
        let all = RefSpec {
            branch: Some("dev".into()),
            tag: Some("v1".into()),
            semver: Some("*".into()),
            name: Some("refs/pull/7/head".into()),
            commit: Some(sha('a')),
        };
        assert_eq!(
            Selection::from_spec(&all).unwrap(),
            Selection::Commit {
                sha: sha('a'),
                branch: Some("dev".into())
            }
        );
        let no_commit = RefSpec {
            commit: None,
            ..all.clone()
        };
        assert_eq!(
            Selection::from_spec(&no_commit).unwrap(),
            Selection::Name("refs/pull/7/head".into())
        );
        let no_name = RefSpec {
            name: None,
            ..no_commit
        };
        assert_eq!(
            Selection::from_spec(&no_name).unwrap(),
            Selection::Semver("*".into())
        );
        let no_semver = RefSpec {
            semver: None,
            ..no_name
        };
        assert_eq!(
            Selection::from_spec(&no_semver).unwrap(),
            Selection::Tag("v1".into())
        );
        let no_tag = RefSpec {
            tag: None,
            ..no_semver
        };
        assert_eq!(
            Selection::from_spec(&no_tag).unwrap(),
            Selection::Branch("dev".into())
        );
        assert_eq!(
            Selection::from_spec(&RefSpec::default()).unwrap(),
            Selection::Branch("main".into())
        );
    }

    #[test]
    fn short_or_non_hex_commit_is_rejected() {
        let spec = RefSpec {
            commit: Some("abc123".into()),
            ..Default::default()
        };
        assert!(matches!(
            Selection::from_spec(&spec),
            Err(RevisionError::ParseCommit { .. })
        ));
    }

    #[test]
    fn resolve_each_kind_against_an_advertisement() {
        let refs = vec![
            rr("HEAD", &sha('1'), None),
            rr("refs/heads/main", &sha('1'), None),
            rr("refs/tags/v1.0.0", &sha('2'), Some(&sha('3'))),
            rr("refs/tags/v1.1.0", &sha('4'), None),
            rr("refs/pull/7/head", &sha('5'), None),
        ];
        let r = resolve(&Selection::Branch("main".into()), &refs).unwrap();
        assert_eq!(
            r.revision.unwrap().to_string(),
            format!("main@sha1:{}", sha('1'))
        );
        let r = resolve(&Selection::Tag("v1.0.0".into()), &refs).unwrap();
        assert_eq!(
            r.commit,
            Some(sha('3')),
            "annotated tags resolve to the commit they point at"
        );
        assert_eq!(
            r.revision.unwrap().to_string(),
            format!("v1.0.0@sha1:{}", sha('3'))
        );
        let r = resolve(&Selection::Semver("~1.0".into()), &refs).unwrap();
        assert_eq!(r.refname.as_deref(), Some("refs/tags/v1.0.0"));
        let r = resolve(&Selection::Semver(">=1.0.0".into()), &refs).unwrap();
        assert_eq!(r.refname.as_deref(), Some("refs/tags/v1.1.0"));
        let r = resolve(&Selection::Name("refs/pull/7/head".into()), &refs).unwrap();
        assert_eq!(
            r.revision.unwrap().to_string(),
            format!("refs/pull/7/head@sha1:{}", sha('5'))
        );
        let r = resolve(
            &Selection::Commit {
                sha: sha('9'),
                branch: None,
            },
            &refs,
        )
        .unwrap();
        assert_eq!(
            r.revision.unwrap().to_string(),
            format!("sha1:{}", sha('9'))
        );
        assert!(matches!(
            resolve(&Selection::Branch("gone".into()), &refs),
            Err(RevisionError::RefNotFound { .. })
        ));
        assert!(matches!(
            resolve(&Selection::Semver(">=5".into()), &refs),
            Err(RevisionError::NoTagMatches { .. })
        ));
    }

    #[test]
    fn revision_strings_round_trip() {
        for s in [
            format!("main@sha1:{}", sha('a')),
            format!("sha1:{}", sha('b')),
            format!("refs/pull/7/head@sha1:{}", sha('c')),
        ] {
            assert_eq!(Revision::parse(&s).unwrap().to_string(), s);
        }
        assert!(Revision::parse("main@sha1:xyz").is_err());
        assert!(Revision::parse("main").is_err());
    }

    #[test]
    fn plain_cli_name_falls_back_to_a_tag() {
        let refs = vec![
            rr("refs/heads/main", &sha('1'), None),
            rr("refs/tags/v1", &sha('2'), None),
        ];
        assert_eq!(
            disambiguate(Selection::Branch("v1".into()), &refs),
            Selection::Tag("v1".into())
        );
        assert_eq!(
            disambiguate(Selection::Branch("main".into()), &refs),
            Selection::Branch("main".into())
        );
    }

    #[test]
    fn cli_references() {
        assert_eq!(
            Selection::from_cli("main").unwrap(),
            Selection::Branch("main".into())
        );
        assert_eq!(
            Selection::from_cli("tag:v1").unwrap(),
            Selection::Tag("v1".into())
        );
        assert_eq!(
            Selection::from_cli("semver:>=1.0").unwrap(),
            Selection::Semver(">=1.0".into())
        );
        assert_eq!(
            Selection::from_cli("refs/pull/1/head").unwrap(),
            Selection::Name("refs/pull/1/head".into())
        );
        assert_eq!(
            Selection::from_cli(&sha('d')).unwrap(),
            Selection::Commit {
                sha: sha('d'),
                branch: None
            }
        );
    }
}
