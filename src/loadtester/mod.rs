//! `sluice loadtester`: a load tester for canary analyses that speaks Flagger's loadtester
//! webhook API, so Canaries written for Flagger's tester work unchanged. `POST /` with a webhook
//! payload whose metadata has `cmd: "hey …"` starts that load in the background (once per
//! Canary and command while it runs) and answers 202; the gates (`/gate/approve`, `/gate/halt`,
//! `/gate/check|open|close`, `/rollback/check|open|close`) behave as Flagger's; `GET /stats`
//! says what the loads got back (by status code and by the first word of the answer). `hey` is
//! read, not run: there is no shell. Does network I/O.

pub mod hey;
pub mod load;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use tokio::task::JoinHandle;

use load::SharedStats;

/// The part of Flagger's webhook payload the tester reads.
#[derive(Debug, Deserialize)]
struct Payload {
    name: String,
    namespace: String,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Default)]
struct Tester {
    tasks: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
    open: Arc<Mutex<HashSet<String>>>,
    /// Each load's counts, by its key (`name.namespace: command`).
    stats: Arc<Mutex<BTreeMap<String, SharedStats>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The webhook payload in `body`, or what is wrong with it.
fn payload(body: &[u8]) -> Result<Payload, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not a webhook payload: {e}"))
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message + "\n").into_response()
}

/// `POST /`: starts the payload's `hey` load unless the same one runs for the same Canary.
async fn new_task(State(tester): State<Tester>, body: axum::body::Bytes) -> Response {
    let payload = match payload(&body) {
        Ok(payload) => payload,
        Err(message) => return bad(message),
    };
    let Some(metadata) = payload.metadata.filter(|m| !m.is_empty()) else {
        return bad("metadata not found in payload".into());
    };
    let kind = metadata.get("type").map_or("cmd", String::as_str);
    if kind != "cmd" {
        return bad(format!(
            "task type {kind} is not supported: sluice loadtester runs hey command lines (type cmd) and no shell"
        ));
    }
    let Some(command) = metadata.get("cmd") else {
        return bad("metadata has no cmd".into());
    };
    let load = match hey::parse(command) {
        Ok(load) => load,
        Err(e) => return bad(e),
    };
    let key = format!("{}.{}: {command}", payload.name, payload.namespace);
    let mut tasks = lock(&tester.tasks);
    tasks.retain(|_, task| !task.is_finished());
    if let std::collections::hash_map::Entry::Vacant(entry) = tasks.entry(key.clone()) {
        tracing::info!(task = %key, "starting a load");
        let stats = lock(&tester.stats).entry(key).or_default().clone();
        entry.insert(tokio::spawn(load::run(load, stats)));
    }
    StatusCode::ACCEPTED.into_response()
}

/// `GET /stats`: each load's counts and their total.
async fn stats(State(tester): State<Tester>) -> axum::Json<serde_json::Value> {
    let mut total = load::Stats::default();
    let mut tasks = serde_json::Map::new();
    for (key, stats) in lock(&tester.stats).iter() {
        let stats = lock(stats).clone();
        total.add(&stats);
        tasks.insert(
            key.clone(),
            serde_json::to_value(&stats).expect("stats serialize"),
        );
    }
    axum::Json(serde_json::json!({"tasks": tasks, "total": total}))
}

/// A gate's key: `name.namespace`, or `rollback.name.namespace`.
fn gate(prefix: &str, body: &[u8]) -> Result<String, String> {
    let payload = payload(body)?;
    Ok(format!("{prefix}{}.{}", payload.name, payload.namespace))
}

async fn check(tester: &Tester, prefix: &str, body: &[u8]) -> Response {
    match gate(prefix, body) {
        Ok(key) if lock(&tester.open).contains(&key) => {
            (StatusCode::OK, "Approved\n").into_response()
        }
        Ok(_) => (StatusCode::FORBIDDEN, "Forbidden\n").into_response(),
        Err(message) => bad(message),
    }
}

async fn set(tester: &Tester, prefix: &str, body: &[u8], open: bool) -> Response {
    match gate(prefix, body) {
        Ok(key) => {
            let mut gates = lock(&tester.open);
            if open {
                gates.insert(key);
            } else {
                gates.remove(&key);
            }
            StatusCode::ACCEPTED.into_response()
        }
        Err(message) => bad(message),
    }
}

/// The tester's routes.
fn routes(tester: Tester) -> Router {
    type Body = axum::body::Bytes;
    Router::new()
        .route("/", post(new_task))
        .route("/healthz", get(|| async { "OK\n" }))
        .route("/gate/approve", any(|| async { (StatusCode::OK, "OK\n") }))
        .route("/gate/halt", any(|| async { (StatusCode::FORBIDDEN, "Forbidden\n") }))
        .route("/gate/check", post(|State(t): State<Tester>, b: Body| async move { check(&t, "", &b).await }))
        .route("/gate/open", post(|State(t): State<Tester>, b: Body| async move { set(&t, "", &b, true).await }))
        .route("/gate/close", post(|State(t): State<Tester>, b: Body| async move { set(&t, "", &b, false).await }))
        .route("/rollback/check", post(|State(t): State<Tester>, b: Body| async move { check(&t, "rollback.", &b).await }))
        .route("/rollback/open", post(|State(t): State<Tester>, b: Body| async move { set(&t, "rollback.", &b, true).await }))
        .route("/rollback/close", post(|State(t): State<Tester>, b: Body| async move { set(&t, "rollback.", &b, false).await }))
        .route("/stats", get(stats))
        .with_state(tester)
}

/// Serves the tester on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tester = Tester::default();
    let result = axum::serve(listener, routes(tester.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    for (_, task) in lock(&tester.tasks).drain() {
        task.abort();
    }
    result
}
