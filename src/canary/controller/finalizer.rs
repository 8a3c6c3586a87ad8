//! The finalizer of a Canary: kept while `revertOnDeletion` asks for it; on deletion, the
//! target gets its traffic back before the generated objects go.

use super::*;

impl Canaries {
    /// The finalizer: added while `revertOnDeletion` asks for it; on deletion, the target gets
    /// its traffic back first. `Some(plan)` when deletion is under way.
    pub(super) async fn finalizer(
        &self,
        obj: &Canary,
        namespace: &str,
    ) -> Result<Option<Plan<CanaryStatus>>, ControllerError> {
        let has = obj.finalizers().iter().any(|f| f == FINALIZER);
        let deleting = obj.metadata.deletion_timestamp.is_some();
        let wanted = obj.spec.revert_on_deletion && !deleting;
        if wanted != has && !(deleting && has) {
            self.set_finalizer(obj, namespace, wanted).await?;
        }
        if !deleting {
            return Ok(None);
        }
        if has {
            let done = match spec::settings(&obj.spec) {
                Ok(s) if obj.spec.revert_on_deletion => self.revert(obj, namespace, &s).await?,
                _ => true,
            };
            if !done {
                return Ok(Some(Plan {
                    status: None,
                    event: None,
                    requeue: Requeue::After(Duration::from_secs(2)),
                }));
            }
            self.set_finalizer(obj, namespace, false).await?;
        }
        if let Some(uid) = obj.uid() {
            self.memo.forget(&uid);
            self.written.forget(&uid);
            self.reports.forget(&uid);
        }
        Ok(Some(Plan {
            status: None,
            event: None,
            requeue: Requeue::OnChange,
        }))
    }

    async fn set_finalizer(
        &self,
        obj: &Canary,
        namespace: &str,
        present: bool,
    ) -> Result<(), ControllerError> {
        let mut finalizers: Vec<String> = obj
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if present {
            finalizers.push(FINALIZER.into());
        }
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
        Api::<Canary>::namespaced(self.client.clone(), namespace)
            .patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(drop)
            .map_err(|e| ControllerError::Finalizer(Box::new(e)))
    }

    /// Gives the target its traffic back: scaled like the primary, selected by the apex Service
    /// (which the Canary stops owning). `true` once done.
    async fn revert(
        &self,
        obj: &Canary,
        namespace: &str,
        s: &Settings,
    ) -> Result<bool, ControllerError> {
        let Some(Workload {
            view: target,
            object: target_value,
        }) = self.target(s.target_kind, namespace, &s.target)
        else {
            return Ok(true);
        };
        // Sized like the primary (a DaemonSet: running again).
        let primary = self.workload(s.target_kind, namespace, &s.primary());
        let replicas = match s.target_kind {
            TargetKind::Deployment => primary
                .as_ref()
                .and_then(|p| p.view.spec.replicas)
                .map_or(1, i64::from),
            TargetKind::DaemonSet => 1,
        };
        let revert = |e: kube::Error| {
            ControllerError::Revert(ExecuteError::Scale {
                what: format!(
                    "{} {namespace}/{} back to {replicas}",
                    s.target_kind.kind(),
                    s.target
                ),
                source: Box::new(e),
            })
        };
        // A DaemonSet is back once it is no longer scaled to zero.
        let sized = match s.target_kind {
            TargetKind::Deployment => target.spec.replicas.map(i64::from) == Some(replicas),
            TargetKind::DaemonSet => target.spec.replicas != Some(0),
        };
        if !sized {
            let fields = objects::target_fields(&target_value, replicas, None);
            crate::canary::cluster::apply(&self.client, &fields)
                .await
                .map_err(revert)?;
            return Ok(false);
        }
        if observe::pods(&target, 100) != machine::Pods::Ready {
            return Ok(false);
        }
        let owner = Owner {
            name: obj.name_any(),
            namespace: namespace.into(),
            uid: obj.uid().unwrap_or_default(),
        };
        let selector = objects::target_selector(&target_value)
            .map_err(|e| ControllerError::Revert(e.into()))?;
        let [mut apex, _, _] =
            objects::services(s, &obj.spec.service, &target_value, &owner, &selector)
                .map_err(|e| ControllerError::Revert(e.into()))?;
        if let Some(metadata) = apex["metadata"].as_object_mut() {
            metadata.remove("ownerReferences");
        }
        crate::canary::cluster::apply(&self.client, &apex)
            .await
            .map_err(revert)?;
        // Routes that carry traffic from outside keep carrying it, to the apex Service.
        if let Some(route) = router::left_to_apex(s, &obj.spec.service, &owner) {
            crate::canary::cluster::apply(&self.client, &route)
                .await
                .map_err(revert)?;
        }
        Ok(true)
    }
}
