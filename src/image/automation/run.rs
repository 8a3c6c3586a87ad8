//! One run of an ImageUpdateAutomation against its Git remote: fetch, apply the setters to the
//! files under the path, commit (signed), push never forced. When the remote moved meanwhile,
//! fetch again and re-apply the edits on the new tip; no change means no commit. Network and
//! disk I/O through `git`.

use std::path::PathBuf;

use super::message::{self, TemplateData, TemplateError};
use super::plan::{self, Base, Settings, Target};
use super::signing::{self, SigningKey};
use crate::git::commit::{self, NewCommit, Signer, TreeFile};
use crate::git::{BranchUpdate, GitError, GitRemote, PushOutcome};
use crate::image::setters::{self, Change, Scope, SetterError};

/// Attempts at one branch before a moving remote counts as a failure.
pub const ATTEMPTS: u32 = 3;
/// The files the setters read.
const YAML: &[&str] = &[".yaml", ".yml"];

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Setter(#[from] SetterError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("branch {branch} does not exist on the remote")]
    NoBranch { branch: String },
    #[error("pushing to branch {branch} was refused {attempts} times: {reason}")]
    Rejected {
        branch: String,
        reason: String,
        attempts: u32,
    },
}

/// What a run needs.
pub struct Run<'a> {
    pub remote: GitRemote,
    /// The bare cache of this automation.
    pub cache: PathBuf,
    pub settings: &'a Settings,
    /// `namespace/name` of the automation.
    pub automation: String,
    pub scope: Scope,
    pub signing_key: Option<SigningKey>,
}

/// A commit that reached a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub branch: String,
    pub commit: String,
    pub changes: Vec<Change>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The checked-out branch's tip the run started from.
    pub checkout_tip: String,
    /// Empty when every file was up to date.
    pub pushed: Vec<Pushed>,
}

impl Run<'_> {
    pub async fn run(&self) -> Result<Ran, RunError> {
        let targets = plan::targets(self.settings, &self.automation, &self.scope)?;
        let mut checkout_tip = None;
        let mut pushed = Vec::new();
        for target in &targets {
            let (tip, result) = self.update(target).await?;
            checkout_tip.get_or_insert(tip);
            pushed.extend(result);
        }
        let checkout_tip = match checkout_tip {
            Some(t) => t,
            // No target (no policy has chosen yet): still report where the branch is.
            None => self.fetch_checkout().await?,
        };
        Ok(Ran {
            checkout_tip,
            pushed,
        })
    }

    async fn fetch_checkout(&self) -> Result<String, RunError> {
        let checkout = &self.settings.checkout;
        let tips = self
            .remote
            .fetch_branches(&self.cache, std::slice::from_ref(checkout))
            .await?;
        tips.get(checkout)
            .cloned()
            .flatten()
            .ok_or_else(|| RunError::NoBranch {
                branch: checkout.clone(),
            })
    }

    /// Updates one branch, retrying on a moved remote. Returns the checkout tip it saw last.
    async fn update(&self, target: &Target) -> Result<(String, Option<Pushed>), RunError> {
        let checkout = &self.settings.checkout;
        let mut branches = vec![checkout.clone(), target.branch.clone()];
        branches.extend(target.also.clone());
        branches.dedup();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tips = self.remote.fetch_branches(&self.cache, &branches).await?;
            let checkout_tip =
                tips.get(checkout)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| RunError::NoBranch {
                        branch: checkout.clone(),
                    })?;
            let target_tip = tips.get(&target.branch).cloned().flatten();
            let merged = match &target_tip {
                Some(t) => commit::is_ancestor(&self.cache, t, &checkout_tip).await?,
                None => false,
            };
            let parent = match plan::base(target_tip.as_deref(), &checkout_tip, merged) {
                Base::Checkout => checkout_tip.clone(),
                Base::Target => target_tip.clone().expect("Base::Target has a tip"),
            };
            let (files, changes) = self.edit(&parent, &target.scope).await?;
            if changes.is_empty() {
                return Ok((checkout_tip, None));
            }
            let data = TemplateData {
                automation: self.automation.clone(),
                changes: &changes,
                values: &self.settings.values,
                policy: target.policy.clone(),
            };
            let message = message::render(
                "spec.git.commit.messageTemplate",
                &self.settings.message_template,
                &data,
            )?;
            let signer: Option<Signer> = self
                .signing_key
                .clone()
                .map(|key| Box::new(move |data: &[u8]| signing::sign(&key, data)) as Signer);
            let new = NewCommit {
                parent,
                files,
                author_name: self.settings.author_name.clone(),
                author_email: self.settings.author_email.clone(),
                message,
                signer,
            };
            let commit = commit::write_commit(&self.cache, new).await?;
            let mut updates = vec![BranchUpdate {
                branch: target.branch.clone(),
                commit: commit.clone(),
                expected: target_tip,
            }];
            if let Some(also) = &target.also {
                updates.push(BranchUpdate {
                    branch: also.clone(),
                    commit: commit.clone(),
                    expected: tips.get(also).cloned().flatten(),
                });
            }
            match self
                .remote
                .push(&self.cache, &updates, &self.settings.push_options)
                .await?
            {
                PushOutcome::Pushed => {
                    return Ok((
                        checkout_tip,
                        Some(Pushed {
                            branch: target.branch.clone(),
                            commit,
                            changes,
                        }),
                    ));
                }
                PushOutcome::Rejected { branch, reason } if attempt >= ATTEMPTS => {
                    return Err(RunError::Rejected {
                        branch,
                        reason,
                        attempts: attempt,
                    });
                }
                PushOutcome::Rejected { branch, reason } => {
                    tracing::info!(%branch, %reason, attempt, "push refused; fetching and re-applying the update");
                }
            }
        }
    }

    /// The changed files of `parent` under the path, and what changed in them.
    async fn edit(
        &self,
        parent: &str,
        scope: &Scope,
    ) -> Result<(Vec<TreeFile>, Vec<Change>), RunError> {
        let files = commit::read_files(&self.cache, parent, &self.settings.path, YAML).await?;
        let mut changed = Vec::new();
        let mut changes = Vec::new();
        for file in files {
            if let Some(update) = setters::update_file(&file.path, &file.bytes, scope)? {
                changes.extend(update.changes);
                changed.push(TreeFile {
                    bytes: update.bytes,
                    ..file
                });
            }
        }
        Ok((changed, changes))
    }
}
