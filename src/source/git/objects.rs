//! Reading signed objects and references from a local repository for verification. Disk I/O under
//! `spawn_blocking`.

use std::path::Path;

use git2::{ObjectType, Oid, Repository};

use super::GitError;
use crate::source::revision::RemoteRef;

/// Lists the references of a local repository the way a remote advertises them.
pub async fn list_local_refs(path: &Path) -> Result<Vec<RemoteRef>, GitError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let repo = Repository::open(&path).map_err(|source| GitError::Cache {
            path: path.clone(),
            source,
        })?;
        let err = |source| GitError::Cache {
            path: path.clone(),
            source,
        };
        let mut refs = Vec::new();
        for r in repo.references().map_err(err)? {
            let r = r.map_err(err)?;
            let (Ok(name), Some(oid)) = (r.name(), r.target()) else {
                continue;
            };
            let peeled = r
                .peel_to_commit()
                .ok()
                .map(|c| c.id())
                .filter(|c| *c != oid)
                .map(|c| c.to_string());
            refs.push(RemoteRef {
                name: name.to_owned(),
                oid: oid.to_string(),
                peeled,
            });
        }
        Ok(refs)
    })
    .await
    .map_err(GitError::Join)?
}

/// A signed Git object's payload as verification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    /// The armoured signature, `None` when the object is unsigned.
    pub signature: Option<Vec<u8>>,
    /// The bytes the signature covers.
    pub signed_data: Vec<u8>,
    /// Committer or tagger email.
    pub email: Option<String>,
}

/// What the fetched reference points at, for tag verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagObject {
    Annotated {
        payload: SignedPayload,
        /// The tag object's own `object` and `tag` headers: what it was signed for.
        headers: TagHeaders,
    },
    Lightweight,
    NotATag,
}

/// The `object` and `tag` headers of an annotated tag: the object it tags and its name, as
/// signed. A signed tag is only good for that object under that name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagHeaders {
    pub object: Option<String>,
    pub tag: Option<String>,
}

impl TagHeaders {
    /// Reads the headers (the lines before the first empty line) of a raw tag object.
    pub fn parse(raw: &[u8]) -> TagHeaders {
        let mut headers = TagHeaders::default();
        for line in raw.split(|&b| b == b'\n') {
            if line.is_empty() {
                break;
            }
            let text = String::from_utf8_lossy(line);
            if let Some(v) = text.strip_prefix("object ") {
                headers.object.get_or_insert_with(|| v.to_owned());
            } else if let Some(v) = text.strip_prefix("tag ") {
                headers.tag.get_or_insert_with(|| v.to_owned());
            }
        }
        headers
    }
}

/// The commit and (if any) tag objects of a fetched revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedObjects {
    pub commit: SignedPayload,
    pub tag: TagObject,
}

/// Reads the commit and the tag a revision points at from a repository (bare cache or work tree).
pub async fn read_signed_objects(
    repo: &Path,
    commit: &str,
    refname: Option<&str>,
) -> Result<SignedObjects, GitError> {
    let (repo, commit, refname) = (
        repo.to_owned(),
        commit.to_owned(),
        refname.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || read_signed_blocking(&repo, &commit, refname.as_deref()))
        .await
        .map_err(GitError::Join)?
}

fn read_signed_blocking(
    path: &Path,
    commit: &str,
    refname: Option<&str>,
) -> Result<SignedObjects, GitError> {
    let repo = Repository::open(path).map_err(|source| GitError::Cache {
        path: path.to_owned(),
        source,
    })?;
    let read_err = |oid: &str| {
        let oid = oid.to_owned();
        move |source| GitError::ReadObject { oid, source }
    };
    let oid = Oid::from_str(commit).map_err(read_err(commit))?;
    let c = repo.find_commit(oid).map_err(read_err(commit))?;
    let email = c.committer().email().ok().map(str::to_owned);
    let commit_payload = match repo.extract_signature(&oid, None) {
        Ok((sig, data)) => SignedPayload {
            signature: Some(sig.to_vec()),
            signed_data: data.to_vec(),
            email,
        },
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            let odb = repo.odb().map_err(read_err(commit))?;
            let raw = odb.read(oid).map_err(read_err(commit))?;
            SignedPayload {
                signature: None,
                signed_data: raw.data().to_vec(),
                email,
            }
        }
        Err(e) => return Err(read_err(commit)(e)),
    };
    let tag = match refname.filter(|r| r.starts_with("refs/tags/")) {
        None => TagObject::NotATag,
        Some(r) => {
            let reference = repo.find_reference(r).map_err(read_err(r))?;
            let target = reference
                .target()
                .ok_or_else(|| read_err(r)(git2::Error::from_str("symbolic tag")))?;
            let odb = repo.odb().map_err(read_err(r))?;
            let obj = odb.read(target).map_err(read_err(r))?;
            if obj.kind() == ObjectType::Tag {
                let tagger = repo
                    .find_tag(target)
                    .ok()
                    .and_then(|t| t.tagger().and_then(|s| s.email().ok().map(str::to_owned)));
                TagObject::Annotated {
                    payload: split_tag_signature(obj.data(), tagger),
                    headers: TagHeaders::parse(obj.data()),
                }
            } else {
                TagObject::Lightweight
            }
        }
    };
    Ok(SignedObjects {
        commit: commit_payload,
        tag,
    })
}

/// Splits a raw tag object into the signed part and the trailing signature. As git does, the
/// signature starts at the last line that opens an armour block: a message that quotes an
/// armour line cannot move what the signature covers.
fn split_tag_signature(raw: &[u8], email: Option<String>) -> SignedPayload {
    const MARKERS: [&[u8]; 3] = [
        b"-----BEGIN PGP SIGNATURE-----",
        b"-----BEGIN SSH SIGNATURE-----",
        b"-----BEGIN PGP MESSAGE-----",
    ];
    let mut start = None;
    let mut line_start = 0;
    while line_start < raw.len() {
        let line = &raw[line_start..];
        if MARKERS.iter().any(|m| line.starts_with(m)) {
            start = Some(line_start);
        }
        line_start = match line.iter().position(|&b| b == b'\n') {
            Some(end) => line_start + end + 1,
            None => raw.len(),
        };
    }
    match start {
        Some(i) => SignedPayload {
            signature: Some(raw[i..].to_vec()),
            signed_data: raw[..i].to_vec(),
            email,
        },
        None => SignedPayload {
            signature: None,
            signed_data: raw.to_vec(),
            email,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_signature_is_split_at_its_armour() {
        let raw = b"object abc\ntype commit\ntag v1\ntagger A <a@x> 1 +0000\n\nmsg\n-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n";
        let p = split_tag_signature(raw, None);
        assert!(p.signed_data.ends_with(b"msg\n"));
        assert!(
            p.signature
                .unwrap()
                .starts_with(b"-----BEGIN PGP SIGNATURE-----")
        );
        let unsigned = split_tag_signature(b"object abc\n\nmsg\n", None);
        assert_eq!(unsigned.signature, None);
    }

    #[test]
    fn the_last_armour_block_is_the_signature() {
        let raw = b"object abc\ntag v1\n\nmsg quoting\n-----BEGIN PGP SIGNATURE-----\nfake\n-----END PGP SIGNATURE-----\nmore\n-----BEGIN PGP SIGNATURE-----\nreal\n-----END PGP SIGNATURE-----\n";
        let p = split_tag_signature(raw, None);
        assert!(
            p.signed_data.ends_with(b"more\n"),
            "{:?}",
            String::from_utf8_lossy(&p.signed_data)
        );
        assert_eq!(
            p.signature.unwrap(),
            b"-----BEGIN PGP SIGNATURE-----\nreal\n-----END PGP SIGNATURE-----\n"
        );
        // An armour line in the middle of a line is not one.
        let p = split_tag_signature(b"object a\n\nsay -----BEGIN PGP SIGNATURE-----\n", None);
        assert_eq!(p.signature, None);
    }

    #[test]
    fn tag_headers_are_read_from_the_header_block_only() {
        let raw = b"object 0123\ntype commit\ntag v1.0.0\ntagger A <a@x> 1 +0000\n\ntag v9\nobject 9999\n";
        assert_eq!(
            TagHeaders::parse(raw),
            TagHeaders {
                object: Some("0123".into()),
                tag: Some("v1.0.0".into())
            }
        );
    }
}
