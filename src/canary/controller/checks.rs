//! What the analysis asks of the outside: the webhooks of a type, and each metric's value from
//! its provider (the template, its credentials and the rendered query).

use super::*;

impl Canaries {
    pub(super) async fn call_hooks(
        &self,
        s: &Settings,
        type_: HookType,
        payload: &Payload,
    ) -> Vec<HookAnswer> {
        join_all(
            s.hooks(type_)
                .map(|hook| webhooks::call(&self.http, hook, payload)),
        )
        .await
    }

    /// The provider and rendered query of a metric, or why the check cannot run.
    async fn query_of(
        &self,
        obj: &Canary,
        s: &Settings,
        metric: &spec::Metric,
    ) -> Result<(super::metrics::prometheus::Prometheus, String), String> {
        let namespace = obj.namespace().unwrap_or_default();
        let default_address = obj
            .spec
            .metrics_server
            .clone()
            .or_else(|| self.metrics_server.clone());
        let (type_, address, auth, insecure, query) = match &metric.query {
            Query::Builtin(builtin) => (
                "prometheus".to_string(),
                default_address,
                None,
                false,
                template::builtin(*builtin, s.routing),
            ),
            Query::Inline(query) => (
                "prometheus".to_string(),
                default_address,
                None,
                false,
                query.clone(),
            ),
            Query::Template {
                name,
                namespace: at,
            } => {
                let at = at.clone().unwrap_or_else(|| namespace.clone());
                let api: Api<MetricTemplate> = Api::namespaced(self.client.clone(), &at);
                let found = api
                    .get_opt(name)
                    .await
                    .map_err(|e| format!("reading MetricTemplate {at}/{name}: {e}"))?
                    .ok_or_else(|| format!("MetricTemplate {at}/{name} not found"))?;
                let provider = &found.spec.provider;
                let auth = match &provider.secret_ref {
                    None => None,
                    Some(secret) => Some(self.auth(&at, &secret.name).await?),
                };
                (
                    provider.type_.clone(),
                    provider.address.clone().or(default_address),
                    auth,
                    provider.insecure_skip_verify,
                    found.spec.query.clone(),
                )
            }
        };
        let variables = Variables {
            name: obj.name_any(),
            namespace,
            target: s.target.clone(),
            service: s.apex.clone(),
            ingress: s.ingress.clone().unwrap_or_default(),
            interval: metric.interval.clone(),
            variables: metric.variables.clone(),
        };
        let query = template::render(&query, &variables)?;
        let address = address.ok_or_else(|| metrics::MetricError::NoAddress.to_string())?;
        let config = ProviderConfig {
            address,
            auth,
            insecure_skip_verify: insecure,
        };
        let provider =
            metrics::for_type(&type_, config, &self.metric_clients).map_err(|e| e.to_string())?;
        Ok((provider, query))
    }

    /// Credentials from a Secret: `username` and `password`, or `token`.
    async fn auth(&self, namespace: &str, name: &str) -> Result<Auth, String> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?
            .ok_or_else(|| format!("Secret {namespace}/{name} not found"))?;
        let data = secret.data.unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
        };
        match (text("username"), text("password"), text("token")) {
            (Some(username), Some(password), _) => Ok(Auth::Basic { username, password }),
            (_, _, Some(token)) => Ok(Auth::Bearer(token)),
            _ => Err(format!(
                "Secret {namespace}/{name} has neither username and password nor token"
            )),
        }
    }

    pub(super) async fn checks(&self, obj: &Canary, s: &Settings) -> Vec<Check> {
        join_all(s.metrics.iter().map(|metric| async move {
            let outcome = match self.query_of(obj, s, metric).await {
                Err(broken) => CheckOutcome::Broken(broken),
                Ok((provider, query)) => metrics::judge(metric, provider.query(&query).await),
            };
            Check {
                metric: metric.name.clone(),
                outcome,
            }
        }))
        .await
    }
}
