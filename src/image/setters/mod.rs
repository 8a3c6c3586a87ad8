//! The Setters update strategy: markers in YAML comments (`# {"$imagepolicy": "NS:NAME"}`, with
//! `:tag`, `:name` or `:digest`) say which value an ImagePolicy sets; the edit replaces only the
//! bytes of that value, so comments, key order, quoting, indentation, blank lines, anchors,
//! document separators and CRLF line endings stay as they were. Pure: bytes in, bytes out.
//!
//! Why not parse and re-serialise: every YAML serialiser normalises (quotes, indentation, flow
//! style, comments), which is what Flux users complain about. The parser here (granit-parser)
//! reports each scalar's byte span and each comment's position, so the edit is a splice.

pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::api::image_policy::ImageRef;
use yaml::{ScalarValue, ValueNode, YamlError};

/// The key a marker's JSON object carries.
pub const MARKER_KEY: &str = "$imagepolicy";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetterError {
    #[error("{file}: has an image policy marker but is not UTF-8 text")]
    NotUtf8 { file: String },
    #[error("{file}: has an image policy marker but is not YAML: {source}")]
    NotYaml {
        file: String,
        #[source]
        source: YamlError,
    },
    #[error("{file}:{line}: image policy marker is not valid: {reason}")]
    BadMarker {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}:{line}: marker names ImagePolicy {policy}, which does not exist")]
    UnknownPolicy {
        file: String,
        line: usize,
        policy: String,
    },
    #[error("{file}:{line}: marker {setter} is not on a scalar value{detail}")]
    NoValue {
        file: String,
        line: usize,
        setter: String,
        detail: &'static str,
    },
    #[error(
        "{file}:{line}: marker {setter} asks for a digest, but ImagePolicy {policy} has none (set spec.digestReflectionPolicy)"
    )]
    NoDigest {
        file: String,
        line: usize,
        setter: String,
        policy: String,
    },
}

/// What part of the image a marker sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The whole reference: `name:tag`, or `name:tag@digest` when the digest is reflected.
    Image,
    Name,
    Tag,
    Digest,
}

/// A parsed marker: `NAMESPACE:NAME[:FIELD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub namespace: String,
    pub name: String,
    pub field: Field,
}

impl Marker {
    /// Parses the marker's value, e.g. `apps:web:tag`.
    pub fn parse(value: &str) -> Result<Marker, String> {
        let parts: Vec<&str> = value.split(':').collect();
        let field = match parts.get(2).copied() {
            None => Field::Image,
            Some("name") => Field::Name,
            Some("tag") => Field::Tag,
            Some("digest") => Field::Digest,
            Some(other) => {
                return Err(format!(
                    "{value:?}: unknown field {other:?} (expected tag, name or digest)"
                ));
            }
        };
        match parts.as_slice() {
            [ns, name, ..] if parts.len() <= 3 && !ns.is_empty() && !name.is_empty() => {
                Ok(Marker {
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                    field,
                })
            }
            _ => Err(format!(
                "{value:?} is not NAMESPACE:NAME[:tag|:name|:digest]"
            )),
        }
    }

    /// The value this marker sets from a policy's latest image.
    fn value(&self, latest: &ImageRef) -> Option<String> {
        match self.field {
            Field::Image => Some(latest.reference()),
            Field::Name => Some(latest.name.clone()),
            Field::Tag => Some(latest.tag.clone()),
            Field::Digest => latest.digest.clone(),
        }
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)?;
        match self.field {
            Field::Image => Ok(()),
            Field::Name => f.write_str(":name"),
            Field::Tag => f.write_str(":tag"),
            Field::Digest => f.write_str(":digest"),
        }
    }
}

/// The policies an update may apply.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The automation's namespace: markers naming another namespace are left alone.
    pub namespace: String,
    /// Policies this update applies, by name, with their latest image (`None` while a policy has
    /// not chosen one yet: its markers are left alone).
    pub selected: BTreeMap<String, Option<ImageRef>>,
    /// Every ImagePolicy of the namespace, selected or not: a marker naming one that is not
    /// here is an error. `None`: markers naming other policies are left alone.
    pub existing: Option<BTreeSet<String>>,
}

/// One value a marker changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub file: String,
    /// 1-based line of the value.
    pub line: usize,
    /// The marker, e.g. `apps:web:tag`.
    pub setter: String,
    /// The policy's name.
    pub policy: String,
    pub old: String,
    pub new: String,
}

/// A file's new bytes and what changed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUpdate {
    pub bytes: Vec<u8>,
    pub changes: Vec<Change>,
}

/// Whether `bytes` may hold a marker; files without one are never parsed.
pub fn may_have_markers(bytes: &[u8]) -> bool {
    bytes
        .windows(MARKER_KEY.len())
        .any(|w| w == MARKER_KEY.as_bytes())
}

/// Applies the markers of one file. `Ok(None)` when nothing changes.
pub fn update_file(
    file: &str,
    bytes: &[u8],
    scope: &Scope,
) -> Result<Option<FileUpdate>, SetterError> {
    if !may_have_markers(bytes) {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| SetterError::NotUtf8 {
        file: file.to_owned(),
    })?;
    let scan = yaml::scan(text).map_err(|source| SetterError::NotYaml {
        file: file.to_owned(),
        source,
    })?;
    let mut edits: Vec<(ScalarValue, String, Change)> = Vec::new();
    for (comment, node) in scan.comments {
        let line = comment.line;
        let Some(marker) =
            parse_marker(&comment.text).map_err(|reason| SetterError::BadMarker {
                file: file.to_owned(),
                line,
                reason,
            })?
        else {
            continue;
        };
        if marker.namespace != scope.namespace {
            continue;
        }
        let latest = match scope.selected.get(&marker.name) {
            Some(Some(latest)) => latest,
            Some(None) => continue,
            None if scope
                .existing
                .as_ref()
                .is_none_or(|e| e.contains(&marker.name)) =>
            {
                continue;
            }
            None => {
                return Err(SetterError::UnknownPolicy {
                    file: file.to_owned(),
                    line,
                    policy: format!("{}/{}", marker.namespace, marker.name),
                });
            }
        };
        let no_value = |detail| SetterError::NoValue {
            file: file.to_owned(),
            line,
            setter: marker.to_string(),
            detail,
        };
        let scalar = match node {
            Some(ValueNode::Scalar(s)) => s,
            Some(ValueNode::Alias) => {
                return Err(no_value(" (it is an alias: put the marker on its anchor)"));
            }
            None => return Err(no_value("")),
        };
        let new = marker.value(latest).ok_or_else(|| SetterError::NoDigest {
            file: file.to_owned(),
            line,
            setter: marker.to_string(),
            policy: format!("{}/{}", marker.namespace, marker.name),
        })?;
        if scalar.value == new {
            continue;
        }
        let spelled = yaml::spell(&new, scalar.style, scalar.in_flow)
            .ok_or_else(|| no_value(" (block scalars are not supported)"))?;
        let change = Change {
            file: file.to_owned(),
            line,
            setter: marker.to_string(),
            policy: marker.name.clone(),
            old: scalar.value.clone(),
            new,
        };
        edits.push((scalar, spelled, change));
    }
    if edits.is_empty() {
        return Ok(None);
    }
    // Splice from the end so earlier offsets stay valid.
    edits.sort_by_key(|(s, _, _)| s.bytes.start);
    edits.dedup_by_key(|(s, _, _)| s.bytes.start);
    let mut out = bytes.to_vec();
    for (scalar, spelled, _) in edits.iter().rev() {
        out.splice(scalar.bytes.clone(), spelled.bytes());
    }
    Ok(Some(FileUpdate {
        bytes: out,
        changes: edits.into_iter().map(|(_, _, c)| c).collect(),
    }))
}

/// Reads a comment as a marker: `{"$imagepolicy": "NS:NAME[:FIELD]"}`, optionally followed by
/// more text. `Ok(None)` for comments that are not markers.
fn parse_marker(comment: &str) -> Result<Option<Marker>, String> {
    let text = comment.trim_start();
    if !text.starts_with('{') || !text.contains(MARKER_KEY) {
        return Ok(None);
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let value = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(format!("not a JSON object: {e}")),
        None => return Ok(None),
    };
    match value.get(MARKER_KEY) {
        Some(serde_json::Value::String(s)) => Marker::parse(s).map(Some),
        Some(other) => Err(format!("{MARKER_KEY} must be a string, not {other}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;
