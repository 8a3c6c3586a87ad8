//! The Receiver, Provider and Alert controllers on the scaffold: each checks that its object can
//! work (a Receiver's Secret and webhook path, a Provider's Secret and address, an Alert's
//! Provider and expressions; on an agent that refuses cross-namespace references, a Receiver's
//! resources and an Alert's event sources in other namespaces) and says so in `Ready`. Talks to
//! the API server; decisions come from `status::plan`, `alert::compile`, `provider::from_config`
//! and `runtime::references`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::provider::{self, ProviderConfig};
use super::receiver::webhook_path;
use super::status::{self, NotificationReason, Outcome};
use crate::api::duration;
use crate::api::notification::{Alert, NotificationStatus, Provider, Receiver, ReceiverStatus};
use crate::runtime::conditions::Stamp;
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold};
use crate::runtime::references::CrossNamespaceRefs;

const RECEIVER_INTERVAL: Duration = Duration::from_secs(600);
const CHECK_INTERVAL: Duration = Duration::from_secs(600);
const RETRY: Duration = Duration::from_secs(10);

/// The Receiver reconciler: reads the token and publishes the webhook path.
pub struct Receivers {
    client: Client,
    refs: CrossNamespaceRefs,
}

/// The Provider reconciler: reads the Secret and checks the address.
pub struct Providers {
    client: Client,
}

/// The Alert reconciler: checks the Provider exists and the expressions compile.
pub struct Alerts {
    client: Client,
    refs: CrossNamespaceRefs,
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Reads `key` of Secret `ns/name`; the error says what is missing.
async fn secret_key(
    client: &Client,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {ns}/{name}: {e}"))?
        .ok_or_else(|| format!("Secret {ns}/{name} not found"))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).trim().to_string()))
}

/// The token of a Receiver.
pub async fn receiver_token(client: &Client, receiver: &Receiver) -> Result<String, String> {
    let ns = receiver.namespace().unwrap_or_default();
    let name = &receiver.spec.secret_ref.name;
    secret_key(client, &ns, name, "token")
        .await?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("Secret {ns}/{name} has no token"))
}

/// A Provider's configuration with its Secret read: `address` (winning over the spec's),
/// `token`, `headers` (a YAML map).
pub async fn provider_config(
    client: &Client,
    provider: &Provider,
) -> Result<ProviderConfig, String> {
    let spec = &provider.spec;
    let mut config = ProviderConfig {
        type_: spec.type_,
        address: spec.address.clone().unwrap_or_default(),
        channel: spec.channel.clone(),
        username: spec.username.clone(),
        token: None,
        headers: vec![],
    };
    if let Some(secret) = &spec.secret_ref {
        let ns = provider.namespace().unwrap_or_default();
        let read = |key: &'static str| secret_key(client, &ns, &secret.name, key);
        if let Some(address) = read("address").await? {
            config.address = address;
        }
        config.token = read("token").await?;
        if let Some(headers) = read("headers").await? {
            let map: BTreeMap<String, String> = serde_saphyr::from_str(&headers).map_err(|e| {
                format!(
                    "Secret {ns}/{}: headers is not a map of strings: {e}",
                    secret.name
                )
            })?;
            config.headers = map.into_iter().collect();
        }
    }
    Ok(config)
}

/// How long one delivery of `provider` may take.
pub fn provider_timeout(provider: &Provider) -> Duration {
    provider
        .spec
        .timeout
        .as_deref()
        .and_then(|t| duration::parse(t).ok())
        .unwrap_or(Duration::from_secs(15))
}

impl Reconciler for Receivers {
    type Object = Receiver;
    type Inputs = ();
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-notification";

    async fn inputs(&self, _obj: &Receiver) {}

    fn suspended(obj: &Receiver) -> bool {
        obj.spec.suspend
    }

    async fn reconcile(
        &self,
        obj: &Receiver,
        (): (),
        attempt: &Attempt<'_>,
    ) -> Result<Plan<ReceiverStatus>, Self::Error> {
        let current = obj.status.clone().unwrap_or_default();
        let mut status = current.clone();
        let interval = obj.spec.interval.as_deref().map(duration::parse);
        let ns = obj.namespace().unwrap_or_default();
        let resources = super::references("spec.resources", &obj.spec.resources);
        let outcome = match (&interval, obj.spec.suspend, self.refs.check(&ns, resources)) {
            (_, true, _) => Outcome::Suspended,
            (Some(Err(e)), _, _) => Outcome::Invalid(format!("spec.interval: {e}")),
            (_, _, Err(message)) => Outcome::AccessDenied(message),
            _ => match receiver_token(&self.client, obj).await {
                Err(message) => Outcome::Waiting(NotificationReason::SecretNotFound, message),
                Ok(token) => {
                    let path = webhook_path(&token, &obj.name_any(), &ns);
                    let message = format!("Receiver initialized for path: {path}");
                    status.webhook_path = Some(path);
                    Outcome::Ready(message)
                }
            },
        };
        let interval = interval.and_then(Result::ok).unwrap_or(RECEIVER_INTERVAL);
        let now = now();
        let stamp = Stamp {
            generation: obj.metadata.generation,
            now: &now,
        };
        let (event, requeue) =
            status::plan(&mut status.conditions, &stamp, outcome, interval, RETRY);
        status.observed_generation = obj.metadata.generation;
        if let Some(requested) = attempt.requested_at {
            status.last_handled_reconcile_at = Some(requested.into());
        }
        Ok(Plan {
            status: (status != current).then_some(status),
            event,
            requeue,
        })
    }
}

impl Reconciler for Providers {
    type Object = Provider;
    type Inputs = ();
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-notification";

    async fn inputs(&self, _obj: &Provider) {}

    fn suspended(obj: &Provider) -> bool {
        obj.spec.suspend
    }

    async fn reconcile(
        &self,
        obj: &Provider,
        (): (),
        attempt: &Attempt<'_>,
    ) -> Result<Plan<NotificationStatus>, Self::Error> {
        let outcome = if obj.spec.suspend {
            Outcome::Suspended
        } else {
            match provider_config(&self.client, obj).await {
                Err(message) => Outcome::Waiting(NotificationReason::SecretNotFound, message),
                Ok(config) => match provider::from_config(&config) {
                    Ok(_) => Outcome::Ready(format!(
                        "Provider of type {} initialized",
                        config.type_.as_str()
                    )),
                    Err(e) => Outcome::Waiting(NotificationReason::InvalidProvider, e.to_string()),
                },
            }
        };
        Ok(notification_plan(
            obj.status.as_ref(),
            obj.metadata.generation,
            outcome,
            attempt,
        ))
    }
}

impl Reconciler for Alerts {
    type Object = Alert;
    type Inputs = ();
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-notification";

    async fn inputs(&self, _obj: &Alert) {}

    fn suspended(obj: &Alert) -> bool {
        obj.spec.suspend
    }

    async fn reconcile(
        &self,
        obj: &Alert,
        (): (),
        attempt: &Attempt<'_>,
    ) -> Result<Plan<NotificationStatus>, Self::Error> {
        let ns = obj.namespace().unwrap_or_default();
        let name = &obj.spec.provider_ref.name;
        let outcome = if obj.spec.suspend {
            Outcome::Suspended
        } else if let Err(message) = super::alert::compile(&obj.spec) {
            Outcome::Invalid(message)
        } else if let Err(message) = self.refs.check(&ns, super::alert::sources(&obj.spec)) {
            Outcome::AccessDenied(message)
        } else {
            match Api::<Provider>::namespaced(self.client.clone(), &ns)
                .get_opt(name)
                .await
            {
                Ok(Some(_)) => Outcome::Ready(format!("Initialized: sending to Provider {name}")),
                Ok(None) => Outcome::Waiting(
                    NotificationReason::ProviderNotFound,
                    format!("Provider {name} not found in namespace {ns}"),
                ),
                Err(e) => Outcome::Waiting(
                    NotificationReason::ProviderNotFound,
                    format!("reading Provider {ns}/{name}: {e}"),
                ),
            }
        };
        Ok(notification_plan(
            obj.status.as_ref(),
            obj.metadata.generation,
            outcome,
            attempt,
        ))
    }
}

fn notification_plan(
    current: Option<&NotificationStatus>,
    generation: Option<i64>,
    outcome: Outcome,
    attempt: &Attempt<'_>,
) -> Plan<NotificationStatus> {
    let current = current.cloned().unwrap_or_default();
    let mut status = current.clone();
    let now = now();
    let stamp = Stamp {
        generation,
        now: &now,
    };
    let (event, requeue) = status::plan(
        &mut status.conditions,
        &stamp,
        outcome,
        CHECK_INTERVAL,
        RETRY,
    );
    status.observed_generation = generation;
    if let Some(requested) = attempt.requested_at {
        status.last_handled_reconcile_at = Some(requested.into());
    }
    Plan {
        status: (status != current).then_some(status),
        event,
        requeue,
    }
}

/// The API of a namespaced kind in `namespace`, or in all namespaces.
pub(super) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the three controllers until a shutdown signal. `namespace` limits them to one; `refs`
/// says whether Receivers and Alerts may name objects of other namespaces.
pub async fn run(client: Client, namespace: Option<String>, refs: CrossNamespaceRefs) {
    let ns = namespace.as_deref();
    let receivers = Scaffold::new(
        Receivers {
            client: client.clone(),
            refs,
        },
        client.clone(),
        api(&client, ns),
        watcher::Config::default(),
    );
    let providers = Scaffold::new(
        Providers {
            client: client.clone(),
        },
        client.clone(),
        api(&client, ns),
        watcher::Config::default(),
    );
    let alerts = Scaffold::new(
        Alerts {
            client: client.clone(),
            refs,
        },
        client.clone(),
        api(&client, ns),
        watcher::Config::default(),
    );
    // A Provider that appears or changes re-checks the Alerts naming it.
    let store = alerts.store();
    let naming = move |provider: Provider| {
        let (ns, name) = (provider.namespace(), provider.name_any());
        store
            .state()
            .iter()
            .filter(|a| a.namespace() == ns && a.spec.provider_ref.name == name)
            .map(|a| ObjectRef::from_obj(&**a))
            .collect::<Vec<_>>()
    };
    let alerts = alerts.watches(api::<Provider>(&client, ns), naming);
    tokio::join!(receivers.run(), providers.run(), alerts.run());
}
