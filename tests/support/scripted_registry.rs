//! A registry scripted to do what the installed `docker-registry` (distribution 2.8) will not: a
//! plain-HTTP server on 127.0.0.1 that paginates tag lists with `Link` headers (distribution 2.8
//! ignores `n`), answers garbage instead of a tag list, streams one page of millions of tags, or is
//! busy (503, then 429 with `Retry-After`) before it answers, or never answers a manifest request.
//! Counts the requests per path. And a listener that never answers at all. Network I/O.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Tags in the one page `millions` sends.
pub const MILLIONS: usize = 3_000_000;
/// Tags of `paged`.
pub const PAGED: usize = 250;

pub struct ScriptedRegistry {
    /// `127.0.0.1:PORT`, plain HTTP (`spec.insecure: true`).
    pub address: String,
    requests: Arc<Mutex<HashMap<String, usize>>>,
}

impl ScriptedRegistry {
    /// Repositories: `paged` ([`PAGED`] tags `1.0.0`, `1.0.1`, ..., `n` per page, linked),
    /// `garbage` (a 200 whose body is not JSON), `millions` (one page of [`MILLIONS`] tags,
    /// without a length), `busy` (503, then 429, then tags `1.0.0` and `1.1.0`), `stalls` (tag
    /// `1.0.0`, but no answer to a manifest request); any other name is not found.
    pub fn start() -> ScriptedRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let counts = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = counts.clone();
                std::thread::spawn(move || serve(stream, &counts));
            }
        });
        ScriptedRegistry { address, requests }
    }

    /// Requests received for `path` (without the query).
    pub fn requests(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// A TCP listener on 127.0.0.1 that accepts every connection and never answers, for as long as
/// the test runs. Returns `127.0.0.1:PORT`.
pub fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            open.push(stream);
        }
    });
    address
}

fn serve(mut stream: TcpStream, counts: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = path.to_owned();
    let seen = {
        let mut counts = counts.lock().unwrap();
        let n = counts.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let _ = match path.as_str() {
        "/v2/" => respond(&mut stream, "200 OK", "", "{}"),
        "/v2/garbage/tags/list" => respond(
            &mut stream,
            "200 OK",
            "",
            "<html><body>Service temporarily moved</body></html>",
        ),
        "/v2/busy/tags/list" if seen == 1 => respond(
            &mut stream,
            "503 Service Unavailable",
            "",
            r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
        ),
        "/v2/busy/tags/list" if seen == 2 => respond(
            &mut stream,
            "429 Too Many Requests",
            "Retry-After: 1\r\n",
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
        ),
        "/v2/busy/tags/list" => respond(
            &mut stream,
            "200 OK",
            "",
            r#"{"name":"busy","tags":["1.0.0","1.1.0"]}"#,
        ),
        "/v2/millions/tags/list" => millions(&mut stream),
        "/v2/stalls/tags/list" => respond(
            &mut stream,
            "200 OK",
            "",
            r#"{"name":"stalls","tags":["1.0.0"]}"#,
        ),
        // Never answers, holding the connection open.
        p if p.starts_with("/v2/stalls/manifests/") => loop {
            std::thread::park();
        },
        "/v2/paged/tags/list" => paged(&mut stream, query),
        _ => respond(
            &mut stream,
            "404 Not Found",
            "",
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        ),
    };
}

fn respond(stream: &mut TcpStream, status: &str, headers: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One page of millions of tags, streamed without a `Content-Length` until the client hangs up.
fn millions(stream: &mut TcpStream) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"name\":\"millions\",\"tags\":[\"0000000\""
    )?;
    let mut chunk = String::new();
    for i in 1..MILLIONS {
        chunk.push_str(&format!(",\"{i:07}\""));
        if chunk.len() > 64 << 10 {
            stream.write_all(chunk.as_bytes())?;
            chunk.clear();
        }
    }
    chunk.push_str("]}");
    stream.write_all(chunk.as_bytes())
}

/// One page of `paged`: `n` tags after `last`, and a `Link` to the next page while there is one.
fn paged(stream: &mut TcpStream, query: &str) -> std::io::Result<()> {
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let n: usize = param("n").and_then(|n| n.parse().ok()).unwrap_or(PAGED);
    let start = param("last")
        .and_then(|last| last.rsplit('.').next()?.parse::<usize>().ok())
        .map_or(0, |i| i + 1);
    let end = (start + n).min(PAGED);
    let tags: Vec<String> = (start..end).map(|i| format!("1.0.{i}")).collect();
    let link = if end < PAGED {
        format!(
            "Link: </v2/paged/tags/list?n={n}&last=1.0.{}>; rel=\"next\"\r\n",
            end - 1
        )
    } else {
        String::new()
    };
    let body = serde_json::json!({"name": "paged", "tags": tags}).to_string();
    respond(stream, "200 OK", &link, &body)
}
