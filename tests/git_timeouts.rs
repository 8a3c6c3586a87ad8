//! libgit2's own network timeouts and the lock per Git cache, against a server that accepts
//! connections and never answers. A binary of its own: the timeouts are process-wide and set
//! once, here shorter than the agent's defaults.

mod support;

use std::time::{Duration, Instant};

use sluice::source::git::{self, Credentials, GitError};
use sluice::source::revision::{RefSpec, Selection};
use sluice::source::sync::{self, SourceSpec, SyncError, Workspace};
use sluice::source::url::RemoteUrl;

fn spec(port: u16, timeout: Duration) -> SourceSpec {
    SourceSpec {
        url: RemoteUrl::parse(&format!("git://127.0.0.1:{port}/repo.git")).unwrap(),
        // A commit needs no listing of refs: the poll goes straight to the fetch, which writes
        // into the cache.
        selection: Selection::from_spec(&RefSpec {
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ..Default::default()
        })
        .unwrap(),
        credentials: Credentials::default(),
        timeout,
        ignore: None,
        verification: None,
        insecure: false,
    }
}

#[tokio::test]
async fn a_lingering_fetch_holds_its_cache_until_libgit2_gives_up() {
    git::configure_network_timeouts(Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    // Accepts (the kernel completes the handshake) and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::under(dir.path());

    // The poll gives up after its own timeout; the blocking libgit2 fetch goes on.
    let err = sync::poll(&spec(port, Duration::from_millis(300)), &ws, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::Timeout { .. })),
        "{err}"
    );

    // Meanwhile the cache is still in use: a second poll on it waits and says so.
    let err = sync::poll(&spec(port, Duration::from_millis(200)), &ws, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::CacheBusy { .. })),
        "{err}"
    );

    // libgit2's read timeout ends the lingering call: the cache frees up, and a patient poll
    // gets libgit2's own timeout error well before its generous deadline.
    let started = Instant::now();
    let err = sync::poll(&spec(port, Duration::from_secs(30)), &ws, None)
        .await
        .unwrap_err();
    assert!(
        !matches!(
            err,
            SyncError::Git(GitError::Timeout { .. } | GitError::CacheBusy { .. })
        ),
        "libgit2 never gave up by itself: {err} after {:?}",
        started.elapsed()
    );
    let text = sluice::runtime::text::error_chain(&err);
    assert!(
        text.contains("timed out") || text.contains("timeout"),
        "{text}"
    );
    drop(listener);
}
