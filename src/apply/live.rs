//! Reading the live objects an apply compares against: one LIST per kind and namespace where
//! several objects of the set share them (read page by page, keeping only the set's objects; a few
//! kinds at once), one GET each otherwise (and where the identity may not list), so that a
//! reconcile of many objects reads in a few requests. An object settled by what was read (unchanged, skipped) keeps only
//! its verdict, as soon as its page arrives, so a large no-op never holds the live set. Reads
//! only.

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, stream};
use kube::api::ListParams;
use serde_json::Value;

use super::applier::{Applier, ApplyError};
use super::desired::{Desired, Verdict};
use super::validate::settle;

/// From this many objects of one kind in one namespace on, a LIST replaces their GETs.
const LIST_FROM: usize = 4;
/// Objects per page of a LIST.
const PAGE: u32 = 500;
/// GETs in flight at once.
const GETS_AT_ONCE: usize = 8;
/// LISTs in flight at once (each holds at most a page of its kind).
const LISTS_AT_ONCE: usize = 4;

/// What was read of each object, by index into the desired set.
pub(super) type LiveSet = HashMap<usize, Live>;

/// What one LIST read of its members.
type Listed = Result<Vec<(usize, Live)>, ApplyError>;

/// What was read of one object of the set.
#[derive(Debug)]
pub(super) enum Live {
    /// Not there.
    Absent,
    /// There, and settled by what was read: its verdict is kept, not the object.
    Settled(Verdict),
    /// There: its live state, to validate against or to show.
    Found(Value),
}

impl Live {
    /// Whether the object exists.
    pub(super) fn exists(&self) -> bool {
        !matches!(self, Live::Absent)
    }

    /// The live object, where it was kept.
    pub(super) fn into_value(self) -> Option<Value> {
        match self {
            Live::Found(value) => Some(value),
            Live::Absent | Live::Settled(_) => None,
        }
    }
}

/// What a read keeps of objects that need no dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Their verdict only (an apply).
    Verdicts,
    /// Their live state too (a preview shows it).
    Objects,
}

/// What to keep of `d` read as `found`.
fn kept(d: &Desired, found: Option<Value>, keep: Keep) -> Live {
    let Some(value) = found else {
        return Live::Absent;
    };
    match keep {
        Keep::Verdicts => match settle(d, Some(&value)) {
            Some(verdict) => Live::Settled(verdict),
            None => Live::Found(value),
        },
        Keep::Objects => Live::Found(value),
    }
}

impl Applier {
    /// Reads the live state of the objects at `indices` (resolved ones; others are left out).
    pub(super) async fn read_live_set(
        &self,
        desired: &[Desired],
        indices: &[usize],
        keep: Keep,
    ) -> Result<LiveSet, ApplyError> {
        let mut groups: BTreeMap<(String, String, String, String), Vec<usize>> = BTreeMap::new();
        for &i in indices {
            let d = &desired[i];
            if let Some(resolved) = &d.resolved {
                let r = &resolved.resource;
                let key = (
                    r.group.clone(),
                    r.version.clone(),
                    r.plural.clone(),
                    d.id.namespace.clone(),
                );
                groups.entry(key).or_default().push(i);
            }
        }
        let (lists, singles): (Vec<Vec<usize>>, Vec<Vec<usize>>) = groups
            .into_values()
            .partition(|members| members.len() >= LIST_FROM);
        let mut singles: Vec<usize> = singles.into_iter().flatten().collect();
        let listed: Vec<(Vec<usize>, Listed)> = stream::iter(lists)
            .map(|members| async move {
                let read = self.list_members(desired, &members, keep).await;
                (members, read)
            })
            .buffer_unordered(LISTS_AT_ONCE)
            .collect()
            .await;
        let mut live = LiveSet::new();
        for (members, read) in listed {
            match read {
                Ok(read) => live.extend(read),
                // An identity allowed to get its objects but not to list their kind (a Role
                // with resourceNames) reads them one by one.
                Err(e) if is_forbidden(&e) => singles.extend(members),
                Err(e) => return Err(e),
            }
        }
        let read: Vec<(usize, Result<Option<Value>, ApplyError>)> = stream::iter(singles)
            .map(|i| async move { (i, self.read_live(&desired[i]).await) })
            .buffer_unordered(GETS_AT_ONCE)
            .collect()
            .await;
        for (i, result) in read {
            live.insert(i, kept(&desired[i], result?, keep));
        }
        Ok(live)
    }

    /// Lists the kind and namespace `members` share, page by page, keeping only their objects.
    async fn list_members(&self, desired: &[Desired], members: &[usize], keep: Keep) -> Listed {
        let first = &desired[members[0]];
        let api = self.api(first);
        let resource = &first
            .resolved
            .as_ref()
            .expect("grouped objects are resolved")
            .resource;
        let mut wanted: HashMap<&str, usize> = members
            .iter()
            .map(|&i| (desired[i].id.name.as_str(), i))
            .collect();
        let mut live = Vec::with_capacity(members.len());
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = api.list(&params).await.map_err(|source| ApplyError::Read {
                id: first.id.clone(),
                source: Box::new(source),
            })?;
            for item in page.items {
                let Some(i) = item.metadata.name.as_deref().and_then(|n| wanted.remove(n)) else {
                    continue;
                };
                let mut value = serde_json::to_value(item).expect("objects serialize");
                // Items of a list carry no apiVersion and kind; a GET's object does.
                value["apiVersion"] = Value::from(resource.api_version.as_str());
                value["kind"] = Value::from(resource.kind.as_str());
                live.push((i, kept(&desired[i], Some(value), keep)));
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() && !wanted.is_empty() => {
                    params = params.continue_token(&token);
                }
                _ => break,
            }
        }
        live.extend(wanted.into_values().map(|i| (i, Live::Absent)));
        Ok(live)
    }

    /// The live state of one object, read by itself.
    pub(super) async fn read_live(&self, d: &Desired) -> Result<Option<Value>, ApplyError> {
        let found = self
            .api(d)
            .get_opt(&d.id.name)
            .await
            .map_err(|source| ApplyError::Read {
                id: d.id.clone(),
                source: Box::new(source),
            })?;
        Ok(found.map(|o| serde_json::to_value(o).expect("objects serialize")))
    }
}

/// Whether a read failed because the identity may not make it (HTTP 403).
fn is_forbidden(error: &ApplyError) -> bool {
    matches!(error, ApplyError::Read { source, .. }
        if matches!(source.as_ref(), kube::Error::Api(status) if status.code == 403))
}
