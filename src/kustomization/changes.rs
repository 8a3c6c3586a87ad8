//! What the apply and prune of one reconcile amount to for a Kustomization: the lines of what
//! changed, the warnings for what was held back, and whether the reconcile failed because objects
//! could not be pruned. Pure.

use crate::apply::changeset::ChangeSet;
use crate::apply::reconcile::Report;

/// The apply and prune of one reconcile, for the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// One line per object that changed: `ConfigMap/shop/web created`.
    pub summary: String,
    /// What was held back and needs a person (a guarded container, an unreadable inventory
    /// entry), each worth a Warning Event while the reconcile still succeeds.
    pub warnings: Vec<String>,
    /// `Kind/namespace/name: why` for each stale object that could not be deleted (a tenant
    /// that may not delete it, an API error). They stay in the inventory, so the next reconcile
    /// tries again; until one succeeds the reconcile fails.
    pub prune_failures: Vec<String>,
}

impl Changes {
    pub fn of(report: &Report) -> Changes {
        let mut summary = lines(&report.applied);
        summary.push_str(&lines(&report.pruned));
        let mut warnings: Vec<String> = report
            .guarded
            .iter()
            .map(|(id, reason)| format!("{id} {reason}"))
            .collect();
        warnings.extend(report.unreadable.iter().map(|entry| {
            format!(
                "inventory entry {:?} cannot be read: it is kept in the inventory and nothing is pruned for it",
                entry.id
            )
        }));
        Changes {
            summary: summary.trim_end().to_string(),
            warnings,
            prune_failures: report.pruned.failures(),
        }
    }

    /// The message of a reconcile that failed to prune (each object and why, then what did
    /// change and what was held back), or `None` when every prune went through.
    pub fn prune_failed(&self) -> Option<String> {
        if self.prune_failures.is_empty() {
            return None;
        }
        let count = self.prune_failures.len();
        let objects = if count == 1 { "object" } else { "objects" };
        let mut message = format!(
            "{count} {objects} could not be pruned (kept in the inventory and tried again at the next reconcile):"
        );
        for line in self
            .prune_failures
            .iter()
            .chain(std::iter::once(&self.summary))
            .chain(&self.warnings)
            .filter(|line| !line.is_empty())
        {
            message.push('\n');
            message.push_str(line);
        }
        Some(message)
    }
}

/// The lines of a ChangeSet that changed something.
fn lines(changeset: &ChangeSet) -> String {
    changeset
        .changed()
        .map(|e| format!("{} {}\n", e.id, e.action))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::changeset::Action;
    use crate::apply::inventory::ObjectId;

    fn config_map(namespace: &str, name: &str) -> ObjectId {
        ObjectId {
            namespace: namespace.into(),
            name: name.into(),
            group: String::new(),
            kind: "ConfigMap".into(),
        }
    }

    #[test]
    fn a_clean_reconcile_says_what_changed() {
        let mut report = Report::default();
        report
            .applied
            .push(config_map("shop", "web"), Action::Created, None);
        report
            .applied
            .push(config_map("shop", "same"), Action::Unchanged, None);
        report
            .pruned
            .push(config_map("shop", "old"), Action::Deleted, None);
        let changes = Changes::of(&report);
        assert_eq!(
            changes.summary,
            "ConfigMap/shop/web created\nConfigMap/shop/old deleted"
        );
        assert_eq!(changes.prune_failed(), None);
    }

    #[test]
    fn an_object_that_could_not_be_pruned_fails_the_reconcile_naming_it_and_why() {
        let mut report = Report::default();
        report
            .applied
            .push(config_map("tenant-a", "app"), Action::Configured, None);
        report.pruned.push(
            config_map("tenant-b", "x"),
            Action::Failed,
            Some("deleting it failed: configmaps \"x\" is forbidden".into()),
        );
        report
            .pruned
            .push(config_map("tenant-a", "old"), Action::Deleted, None);
        report.guarded.push((
            config_map("", "shop"),
            "not deleted: it still holds Secret shop/db".into(),
        ));
        let changes = Changes::of(&report);
        let message = changes.prune_failed().unwrap();
        assert_eq!(
            message,
            "1 object could not be pruned (kept in the inventory and tried again at the next reconcile):\n\
             ConfigMap/tenant-b/x: deleting it failed: configmaps \"x\" is forbidden\n\
             ConfigMap/tenant-a/app configured\n\
             ConfigMap/tenant-a/old deleted\n\
             ConfigMap/shop not deleted: it still holds Secret shop/db"
        );
    }
}
