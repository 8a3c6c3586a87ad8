//! Notifications on the real control plane. A Receiver of type github gets HMAC-signed push
//! payloads over HTTP and makes the pushed commit applied at once (commit → applied measured
//! over 20 pushes, p50 printed); a wrong or missing signature is answered 401 and triggers
//! nothing; GitLab, Gitea, Bitbucket and generic HMAC requests are verified the same way. Alerts
//! deliver the controllers' Events to a recording server standing in for Slack,
//! Teams, Discord, Google Chat and a signed generic webhook, with severity and inclusion and
//! exclusion filters; an Alert naming a missing Provider says so. Commit statuses reach a
//! recording server in GitHub's and Gitea's API shapes.

mod support;

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use sha2::Sha256;
use sluice::api::condition::{self, ConditionStatus, READY};
use sluice::api::git_repository::GitRepository;
use sluice::api::kustomization::Kustomization;
use sluice::api::notification::{Alert, Receiver};
use support::in_process::Agent;
use support::node::eventually;
use support::recorder::{Recorded, Recorder};

const TOKEN: &str = "push-s3cret";
const WAIT: Duration = Duration::from_secs(60);

/// The dispatcher is the process's one Event sink: the tests that use it take turns.
static SINK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config_map(n: usize) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pushed\ndata:\n  n: \"{n}\"\n")
}

async fn secret(agent: &Agent, name: &str, data: &[(&str, &str)]) {
    let data: serde_json::Map<_, _> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name}, "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(agent.client.clone(), agent.ns())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    sluice::runtime::http::client()
}

/// A push event as GitHub sends it: the payload and its `X-Hub-Signature-256`.
fn github_push(revision: &str, token: &str) -> (Vec<u8>, String) {
    let sha = revision.rsplit_once("sha1:").unwrap().1;
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "created": false, "deleted": false, "forced": false,
        "repository": {"id": 1, "name": "app", "full_name": "org/app", "default_branch": "main",
            "clone_url": "https://github.com/org/app.git"},
        "pusher": {"name": "dev", "email": "dev@example.com"},
        "head_commit": {"id": sha, "message": "change", "author": {"name": "dev"}},
        "commits": [{"id": sha, "message": "change", "added": ["app/cm.yaml"], "modified": [], "removed": []}],
    }))
    .unwrap();
    let signature = format!("sha256={}", hmac_hex(token, &body));
    (body, signature)
}

async fn post_hook(url: &str, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let mut request = http()
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    let response = request.send().await.expect("the webhook server answers");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

fn requested_at(repo: &GitRepository) -> Option<String> {
    repo.metadata
        .annotations
        .as_ref()?
        .get(sluice::api::REQUESTED_AT_ANNOTATION)
        .cloned()
}

#[tokio::test]
async fn signed_github_pushes_get_applied_at_once() {
    let mut agent = Agent::start("receiver").await;
    let hooks = agent.start_notifications().await;
    let first = agent.push(&[("app/cm.yaml", &config_map(0))]);
    // Polling an hour apart: only the webhook brings a new commit in.
    agent.create_source("app", "1h").await;
    agent
        .create_kustomization("app", "app", "./app", json!({}))
        .await;
    agent.wait_applied("app", &first).await;

    secret(&agent, "webhook-token", &[("token", TOKEN)]).await;
    agent
        .create(
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Receiver",
            "metadata": {"name": "github"},
            "spec": {"type": "github", "events": ["push"], "secretRef": {"name": "webhook-token"},
                "resources": [{"kind": "GitRepository", "name": "app"}]}}),
        )
        .await;
    let receivers: Api<Receiver> = Api::namespaced(agent.client.clone(), agent.ns());
    let path = eventually(WAIT, "the Receiver publishes its webhook path", || async {
        let r = receivers.get("github").await.map_err(|e| e.to_string())?;
        let status = r.status.unwrap_or_default();
        let ready = condition::find(&status.conditions, READY)
            .is_some_and(|c| c.status == ConditionStatus::True);
        let waiting = format!("{status:?}");
        status.webhook_path.filter(|_| ready).ok_or(waiting)
    })
    .await;
    let url = format!("{hooks}{path}");

    // Wrong and missing signatures: 401 and nothing triggered.
    let pending = agent.push(&[("app/cm.yaml", &config_map(1))]);
    let (body, _) = github_push(&pending, TOKEN);
    let (_, forged) = github_push(&pending, "not-the-token");
    let (status, answer) = post_hook(&url, &body, Some(&forged)).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("X-Hub-Signature-256"), "{answer}");
    let (status, answer) = post_hook(&url, &body, None).await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = post_hook(&format!("{hooks}/hook/{}", "0".repeat(64)), &body, None).await;
    assert_eq!(status, 404);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let repos: Api<GitRepository> = Api::namespaced(agent.client.clone(), agent.ns());
    assert_eq!(
        requested_at(&repos.get("app").await.unwrap()),
        None,
        "a refused webhook triggered a reconcile"
    );
    let kustomizations: Api<Kustomization> = Api::namespaced(agent.client.clone(), agent.ns());
    let status = kustomizations.get("app").await.unwrap().status.unwrap();
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(first.as_str())
    );

    // Signed pushes: each commit applied, commit → applied timed from just before the push.
    let mut took = Vec::new();
    for n in 2..22 {
        let start = Instant::now();
        let revision = agent.push(&[("app/cm.yaml", &config_map(n))]);
        let (body, signature) = github_push(&revision, TOKEN);
        let (status, answer) = post_hook(&url, &body, Some(&signature)).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains("GitRepository/"), "{answer}");
        let deadline = Instant::now() + WAIT;
        loop {
            let k = kustomizations.get("app").await.unwrap();
            if k.status.and_then(|s| s.last_applied_revision).as_deref() == Some(revision.as_str())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{revision} not applied within {WAIT:?} of its webhook"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(start.elapsed());
    }
    let applied = Api::<ConfigMap>::namespaced(agent.client.clone(), agent.ns())
        .get("pushed")
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["n"], "21");
    took.sort();
    println!(
        "commit → applied through a signed GitHub push webhook, {} pushes: p50 {:?} (min {:?}, max {:?})",
        took.len(),
        took[took.len() / 2],
        took[0],
        took[took.len() - 1]
    );
    agent.finish().await;
}

/// Request headers, by name.
type Headers = Vec<(&'static str, String)>;

fn hmac_hex(token: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn every_receiver_type_verifies_its_host_over_http() {
    let mut agent = Agent::start("receivers").await;
    let hooks = agent.start_notifications().await;
    agent.create_source("app", "1h").await;
    secret(&agent, "webhook-token", &[("token", TOKEN)]).await;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let good = hmac_hex(TOKEN, body);
    let bad = hmac_hex("not-the-token", body);
    // (type, headers of a genuine request, headers of a forged one)
    let cases: [(&str, Headers, Headers); 4] = [
        (
            "gitlab",
            vec![
                ("X-Gitlab-Token", TOKEN.into()),
                ("X-Gitlab-Event", "Push Hook".into()),
            ],
            vec![
                ("X-Gitlab-Token", "guess".into()),
                ("X-Gitlab-Event", "Push Hook".into()),
            ],
        ),
        (
            "gitea",
            vec![
                ("X-Gitea-Signature", good.clone()),
                ("X-Gitea-Event", "push".into()),
            ],
            vec![
                ("X-Gitea-Signature", bad.clone()),
                ("X-Gitea-Event", "push".into()),
            ],
        ),
        (
            "bitbucket",
            vec![
                ("X-Hub-Signature", format!("sha256={good}")),
                ("X-Event-Key", "repo:refs_changed".into()),
            ],
            vec![("X-Event-Key", "repo:refs_changed".into())],
        ),
        (
            "generic-hmac",
            vec![("X-Signature", format!("sha256={good}"))],
            vec![("X-Signature", format!("sha256={bad}"))],
        ),
    ];
    let receivers: Api<Receiver> = Api::namespaced(agent.client.clone(), agent.ns());
    let repos: Api<GitRepository> = Api::namespaced(agent.client.clone(), agent.ns());
    for (type_, genuine, forged) in cases {
        agent
            .create(
                json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Receiver",
                "metadata": {"name": type_},
                "spec": {"type": type_, "secretRef": {"name": "webhook-token"},
                    "resources": [{"kind": "GitRepository", "name": "app"}]}}),
            )
            .await;
        let path = eventually(
            WAIT,
            &format!("Receiver {type_} publishes its path"),
            || async {
                let r = receivers.get(type_).await.map_err(|e| e.to_string())?;
                r.status
                    .and_then(|s| s.webhook_path)
                    .ok_or_else(|| "no path yet".to_string())
            },
        )
        .await;
        let send = |headers: Headers| {
            let mut request = http().post(format!("{hooks}{path}")).body(body.to_vec());
            for (k, v) in headers {
                request = request.header(k, v);
            }
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        let before = requested_at(&repos.get("app").await.unwrap());
        let (status, answer) = send(forged).await;
        assert_eq!(status, 401, "{type_}: {answer}");
        assert_eq!(
            requested_at(&repos.get("app").await.unwrap()),
            before,
            "{type_}: a forged request triggered"
        );
        let (status, answer) = send(genuine).await;
        assert_eq!(status, 200, "{type_}: {answer}");
        let after = requested_at(&repos.get("app").await.unwrap());
        assert!(
            after.is_some() && after != before,
            "{type_}: a genuine request did not trigger"
        );
    }
    agent.finish().await;
}

/// Creates a Provider `name` of `type_` with `spec` merged in.
async fn provider(agent: &Agent, name: &str, type_: &str, spec: serde_json::Value) {
    let mut full = json!({"type": type_});
    full.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    agent
        .create(
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Provider",
            "metadata": {"name": name}, "spec": full}),
        )
        .await;
}

/// Creates Alert `name` sending the Kustomizations' Events to Provider `provider`.
async fn alert(agent: &Agent, name: &str, provider: &str, extra: serde_json::Value) {
    let mut spec = json!({"providerRef": {"name": provider},
        "eventSources": [{"kind": "Kustomization", "name": "*"}]});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    agent
        .create(json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Alert",
            "metadata": {"name": name}, "spec": spec}))
        .await;
}

/// Waits until Alert `name`'s Ready condition has `status`; returns its reason and message.
async fn alert_ready(agent: &Agent, name: &str, status: ConditionStatus) -> (String, String) {
    let alerts: Api<Alert> = Api::namespaced(agent.client.clone(), agent.ns());
    eventually(WAIT, &format!("Alert {name} Ready={status:?}"), || async {
        let a = alerts.get(name).await.map_err(|e| e.to_string())?;
        let conditions = a.status.unwrap_or_default().conditions;
        match condition::find(&conditions, READY) {
            Some(c) if c.status == status => Ok((c.reason.clone(), c.message.clone())),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Waits until `path` of `recorder` received a request `check` accepts.
async fn received(
    recorder: &Recorder,
    path: &str,
    what: &str,
    check: impl Fn(&Recorded) -> bool,
) -> Recorded {
    eventually(WAIT, &format!("{path}: {what}"), || async {
        recorder
            .at(path)
            .into_iter()
            .find(|r| check(r))
            .ok_or_else(|| format!("received at {:?}", recorder.paths()))
    })
    .await
}

#[tokio::test]
async fn alerts_reach_chat_services_through_their_filters() {
    let _sink = SINK.lock().await;
    let recorder = Recorder::start().await;
    let mut agent = Agent::start("alerts").await;
    agent.start_notifications().await;
    agent.start_dispatcher();
    let at = |path: &str| format!("{}{path}", recorder.base);

    // A missing Provider: a clear condition, Ready once the Provider appears.
    alert(&agent, "dangling", "nowhere", json!({})).await;
    let (reason, message) = alert_ready(&agent, "dangling", ConditionStatus::False).await;
    assert_eq!(reason, "ProviderNotFound");
    assert_eq!(
        message,
        format!("Provider nowhere not found in namespace {}", agent.ns())
    );

    secret(
        &agent,
        "discord-url",
        &[("address", &at("/api/webhooks/1/discord"))],
    )
    .await;
    secret(&agent, "hmac-key", &[("token", "hmac-s3cret")]).await;
    provider(
        &agent,
        "slack",
        "slack",
        json!({"address": at("/services/T0/B0/slack"), "channel": "#deploys"}),
    )
    .await;
    provider(
        &agent,
        "teams",
        "msteams",
        json!({"address": at("/workflows/teams")}),
    )
    .await;
    provider(
        &agent,
        "discord",
        "discord",
        json!({"secretRef": {"name": "discord-url"}}),
    )
    .await;
    provider(
        &agent,
        "chat",
        "googlechat",
        json!({"address": at("/v1/spaces/chat/messages")}),
    )
    .await;
    provider(
        &agent,
        "signed",
        "generic-hmac",
        json!({"address": at("/signed"), "secretRef": {"name": "hmac-key"}}),
    )
    .await;
    provider(
        &agent,
        "errors",
        "generic",
        json!({"address": at("/errors")}),
    )
    .await;
    provider(
        &agent,
        "included",
        "generic",
        json!({"address": at("/included")}),
    )
    .await;
    provider(
        &agent,
        "excluded",
        "generic",
        json!({"address": at("/excluded")}),
    )
    .await;
    provider(
        &agent,
        "nowhere",
        "generic",
        json!({"address": at("/nowhere")}),
    )
    .await;
    for name in ["slack", "teams", "discord", "chat", "signed"] {
        alert(&agent, name, name, json!({})).await;
    }
    alert(
        &agent,
        "errors",
        "errors",
        json!({"eventSeverity": "error"}),
    )
    .await;
    alert(
        &agent,
        "included",
        "included",
        json!({"inclusionList": ["^Applied revision"]}),
    )
    .await;
    alert(
        &agent,
        "excluded",
        "excluded",
        json!({"exclusionList": ["^Applied revision"]}),
    )
    .await;
    for name in [
        "slack", "teams", "discord", "chat", "signed", "errors", "included", "excluded", "dangling",
    ] {
        alert_ready(&agent, name, ConditionStatus::True).await;
    }

    let good = agent.push(&[("app/cm.yaml", &config_map(1))]);
    agent.create_source("app", "1s").await;
    agent
        .create_kustomization("app", "app", "./app", json!({}))
        .await;
    agent.wait_applied("app", &good).await;
    let applied = |r: &Recorded| {
        String::from_utf8_lossy(&r.body).contains(&format!("Applied revision: {good}"))
    };

    let slack = received(
        &recorder,
        "/services/T0/B0/slack",
        "the applied revision",
        applied,
    )
    .await
    .json();
    assert_eq!(slack["channel"], "#deploys");
    assert_eq!(slack["attachments"][0]["color"], "good");
    assert_eq!(
        slack["attachments"][0]["author_name"],
        format!("Kustomization/{}/app", agent.ns())
    );
    let teams = received(
        &recorder,
        "/workflows/teams",
        "the applied revision",
        applied,
    )
    .await
    .json();
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    let discord = received(
        &recorder,
        "/api/webhooks/1/discord",
        "the applied revision",
        applied,
    )
    .await
    .json();
    assert_eq!(
        discord["embeds"][0]["title"],
        format!("Kustomization/{}/app ReconciliationSucceeded", agent.ns())
    );
    received(
        &recorder,
        "/v1/spaces/chat/messages",
        "the applied revision",
        applied,
    )
    .await;
    let signed = received(&recorder, "/signed", "the applied revision", applied).await;
    let signature = format!("sha256={}", hmac_hex("hmac-s3cret", &signed.body));
    assert_eq!(signed.header("X-Signature"), Some(signature.as_str()));
    let event = signed.json();
    assert_eq!(event["severity"], "info");
    assert_eq!(event["metadata"]["revision"], good);
    assert_eq!(event["involvedObject"]["name"], "app");
    let included = received(&recorder, "/included", "the applied revision", applied)
        .await
        .json();
    assert_eq!(included["reason"], "ReconciliationSucceeded");

    // A broken commit: an error, which the error-only Alert and the excluding Alert send.
    let broken = agent.push(&[("app/cm.yaml", "kind: ConfigMap\n  metadata: [unclosed\n")]);
    agent
        .wait_ks("app", "failed on the broken commit", |s| {
            s.last_attempted_revision.as_deref() == Some(broken.as_str())
                && condition::find(&s.conditions, READY)
                    .is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await;
    let is_error = |r: &Recorded| r.json()["severity"] == "error";
    let error = received(&recorder, "/errors", "the failure", is_error)
        .await
        .json();
    assert_eq!(error["metadata"]["revision"], broken);
    received(&recorder, "/excluded", "the failure", is_error).await;
    received(&recorder, "/services/T0/B0/slack", "the failure", |r| {
        r.json()["attachments"][0]["color"] == "danger"
    })
    .await;

    // Give stragglers a moment, then check what the filters kept out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        recorder.at("/errors").iter().all(is_error),
        "an error-only Alert sent an info Event"
    );
    assert!(
        recorder.at("/excluded").iter().all(|r| !applied(r)),
        "an excluded message was sent"
    );
    assert!(recorder.at("/included").iter().all(|r| {
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Applied revision")
    }));
    agent.finish().await;
}

#[tokio::test]
async fn commit_statuses_in_github_gitea_and_gitlab_shapes() {
    let _sink = SINK.lock().await;
    let recorder = Recorder::start().await;
    let mut agent = Agent::start("statuses").await;
    agent.start_notifications().await;
    agent.start_dispatcher();

    secret(&agent, "github-token", &[("token", "ghp_t0ken")]).await;
    secret(&agent, "gitea-token", &[("token", "gitea_t0ken")]).await;
    secret(&agent, "gitlab-token", &[("token", "glpat-t0ken")]).await;
    let repo = |owner: &str| format!("{}/{owner}/app", recorder.base);
    provider(
        &agent,
        "github",
        "github",
        json!({"address": repo("org"), "secretRef": {"name": "github-token"}}),
    )
    .await;
    provider(
        &agent,
        "gitea",
        "gitea",
        json!({"address": repo("team"), "secretRef": {"name": "gitea-token"}}),
    )
    .await;
    // A project in a subgroup: its path goes into the URL encoded, as one segment.
    provider(
        &agent,
        "gitlab",
        "gitlab",
        json!({"address": repo("group/sub"), "secretRef": {"name": "gitlab-token"}}),
    )
    .await;
    for name in ["github", "gitea", "gitlab"] {
        let mut extra = json!({"eventSources": [{"kind": "Kustomization", "name": "app"}]});
        extra["eventSeverity"] = json!("info");
        alert(&agent, name, name, extra).await;
        alert_ready(&agent, name, ConditionStatus::True).await;
    }

    let good = agent.push(&[("app/cm.yaml", &config_map(1))]);
    let sha = good.rsplit_once("sha1:").unwrap().1.to_string();
    agent.create_source("app", "1s").await;
    agent
        .create_kustomization("app", "app", "./app", json!({}))
        .await;
    agent.wait_applied("app", &good).await;

    let success = |r: &Recorded| r.json()["state"] == "success";
    // GitHub Enterprise's shape on a host other than github.com.
    let github = received(
        &recorder,
        &format!("/api/v3/repos/org/app/statuses/{sha}"),
        "success",
        success,
    )
    .await;
    assert_eq!(github.header("Authorization"), Some("Bearer ghp_t0ken"));
    assert_eq!(github.header("Accept"), Some("application/vnd.github+json"));
    let body = github.json();
    assert_eq!(body["context"], "kustomization/app");
    assert_eq!(body["description"], format!("Applied revision: {good}"));
    let gitea = received(
        &recorder,
        &format!("/api/v1/repos/team/app/statuses/{sha}"),
        "success",
        success,
    )
    .await;
    assert_eq!(gitea.header("Authorization"), Some("token gitea_t0ken"));
    assert_eq!(gitea.json()["context"], "kustomization/app");
    let gitlab_path = |sha: &str| format!("/api/v4/projects/group%2Fsub%2Fapp/statuses/{sha}");
    let gitlab = received(&recorder, &gitlab_path(&sha), "success", success).await;
    assert_eq!(gitlab.header("PRIVATE-TOKEN"), Some("glpat-t0ken"));
    assert_eq!(gitlab.json()["name"], "kustomization/app");
    assert_eq!(
        gitlab.json()["description"],
        format!("Applied revision: {good}")
    );

    let broken = agent.push(&[("app/cm.yaml", "kind: ConfigMap\n  metadata: [unclosed\n")]);
    let broken_sha = broken.rsplit_once("sha1:").unwrap().1.to_string();
    let failure = |r: &Recorded| r.json()["state"] == "failure";
    received(
        &recorder,
        &format!("/api/v3/repos/org/app/statuses/{broken_sha}"),
        "failure",
        failure,
    )
    .await;
    received(
        &recorder,
        &format!("/api/v1/repos/team/app/statuses/{broken_sha}"),
        "failure",
        failure,
    )
    .await;
    let failed = |r: &Recorded| r.json()["state"] == "failed";
    received(&recorder, &gitlab_path(&broken_sha), "failed", failed).await;
    agent.finish().await;
}
