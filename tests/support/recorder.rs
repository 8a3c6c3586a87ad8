//! A recording HTTP server: stands in for the services that cannot exist here (Slack, Teams,
//! Discord, GitHub's and Gitea's status APIs). Answers every POST 201 and keeps what it got.
//! Does I/O (a listening socket).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} sent no JSON ({e}): {:?}", self.path, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct Recorder {
    pub base: String,
    got: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let got = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().fallback(record).with_state(got.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Recorder { base, got, task }
    }

    /// What was posted to `path`, in order.
    pub fn at(&self, path: &str) -> Vec<Recorded> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Every path that received something.
    pub fn paths(&self) -> Vec<String> {
        let got = self.got.lock().unwrap();
        let mut paths: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
        paths.dedup();
        paths
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(got): State<Arc<Mutex<Vec<Recorded>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    got.lock().unwrap().push(Recorded {
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
    });
    StatusCode::CREATED
}
