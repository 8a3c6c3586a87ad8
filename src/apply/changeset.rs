//! What one apply or prune did, object by object. Pure data; no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::inventory::ObjectId;

/// What happened (or, for a dry run, would happen) to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Deleted,
    Skipped,
    Failed,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        };
        f.write_str(word)
    }
}

/// One object's line in a ChangeSet; `message` says why it was skipped or how it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: ObjectId,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The entries of one apply or prune, in the order they were decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub entries: Vec<Entry>,
}

impl ChangeSet {
    pub fn push(&mut self, id: ObjectId, action: Action, message: Option<String>) {
        self.entries.push(Entry {
            id,
            action,
            message,
        });
    }

    /// Entries that changed the cluster (created, configured, deleted).
    pub fn changed(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| {
            matches!(
                e.action,
                Action::Created | Action::Configured | Action::Deleted
            )
        })
    }

    /// `Kind/namespace/name: why` for each entry that failed, in order.
    pub fn failures(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.action == Action::Failed)
            .map(|e| match &e.message {
                Some(why) => format!("{}: {why}", e.id),
                None => e.id.to_string(),
            })
            .collect()
    }

    pub fn count(&self, action: Action) -> usize {
        self.entries.iter().filter(|e| e.action == action).count()
    }
}

impl fmt::Display for ChangeSet {
    /// One line per object, like `Deployment/apps/web created`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            write!(f, "{} {}", entry.id.display_name(), entry.action)?;
            if let Some(message) = &entry.message {
                write!(f, " ({message})")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
