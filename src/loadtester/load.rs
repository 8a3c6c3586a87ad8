//! Generating a load: workers that send requests at a rate for a time (or a count), counting
//! the answers by status code and by the first word of their body (the test app says its
//! version there). Does network I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::time::Instant;

use super::hey::Load;

/// How many distinct answers are counted; the rest count as `other`.
const MAX_ANSWERS: usize = 64;

/// What the loads sent and got back.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    /// By status code; `error` for requests that got no answer.
    pub by_status: BTreeMap<String, u64>,
    /// By the first word of the body; for requests that got no answer, what went wrong
    /// (`error:connect`, `error:timeout`, `error:body`, `error:request`).
    pub by_answer: BTreeMap<String, u64>,
}

impl Stats {
    /// Adds another load's counts.
    pub fn add(&mut self, other: &Stats) {
        self.requests += other.requests;
        for (k, n) in &other.by_status {
            *self.by_status.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.by_answer {
            *self.by_answer.entry(k.clone()).or_default() += n;
        }
    }

    fn count(&mut self, status: Option<u16>, body: &str) {
        self.requests += 1;
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        *self.by_status.entry(status).or_default() += 1;
        let word = body.split_whitespace().next().unwrap_or("").to_string();
        let key = if self.by_answer.contains_key(&word) || self.by_answer.len() < MAX_ANSWERS {
            word
        } else {
            "other".into()
        };
        *self.by_answer.entry(key).or_default() += 1;
    }
}

pub type SharedStats = Arc<Mutex<Stats>>;

fn client(load: &Load) -> reqwest::Client {
    let mut builder = crate::runtime::http::client_builder().timeout(load.timeout);
    if load.disable_keepalive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().expect("an HTTP client builds")
}

/// Runs `load` to its end, counting into `stats`.
pub async fn run(load: Load, stats: SharedStats) {
    let client = client(&load);
    let deadline = load.duration.map(|d| Instant::now() + d);
    let per_worker = load.requests.div_ceil(u64::from(load.workers));
    let load = Arc::new(load);
    let workers: Vec<_> = (0..load.workers)
        .map(|_| {
            let (client, load, stats) = (client.clone(), load.clone(), stats.clone());
            tokio::spawn(async move {
                let gap = load.gap;
                let mut sent = 0u64;
                loop {
                    match deadline {
                        Some(deadline) if Instant::now() >= deadline => break,
                        None if sent >= per_worker => break,
                        _ => {}
                    }
                    let started = Instant::now();
                    let (status, body) = send(&client, &load).await;
                    stats
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .count(status, &body);
                    sent += 1;
                    if let Some(gap) = gap {
                        tokio::time::sleep_until(started + gap).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

async fn send(client: &reqwest::Client, load: &Load) -> (Option<u16>, String) {
    let method =
        reqwest::Method::from_bytes(load.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = client.request(method, &load.url);
    for (name, value) in &load.headers {
        request = request.header(name, value);
    }
    if let Some(host) = &load.host {
        request = request.header("Host", host);
    }
    if let Some(body) = &load.body {
        request = request.body(body.clone());
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (Some(status), body)
        }
        Err(e) => (None, error_kind(&e).into()),
    }
}

/// What kind of failure a request that got no answer had, as one word.
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "error:timeout"
    } else if e.is_connect() {
        "error:connect"
    } else if e.is_body() || e.is_decode() {
        "error:body"
    } else {
        "error:request"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_status_and_first_word() {
        let mut stats = Stats::default();
        stats.count(Some(200), "v1 web-primary-abc\n");
        stats.count(Some(200), "v2 web-xyz\n");
        stats.count(Some(500), "v2 web-xyz error\n");
        stats.count(None, "");
        assert_eq!(stats.requests, 4);
        assert_eq!(stats.by_status["200"], 2);
        assert_eq!(stats.by_status["error"], 1);
        assert_eq!(stats.by_answer["v2"], 2);
        for n in 0..100 {
            stats.count(Some(200), &format!("x{n}"));
        }
        assert!(stats.by_answer.len() <= MAX_ANSWERS + 1);
        assert!(stats.by_answer["other"] > 0);
    }
}
