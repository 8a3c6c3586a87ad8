//! Registries for the image automation tests: tags pushed with `skopeo` to the cluster's registry
//! (TLS + basic auth), extra `docker-registry` processes on 127.0.0.1 (anonymous, or behind the
//! Bearer token flow of a small token server written here), and the Secrets the kinds read. Does
//! I/O (processes, network, the API server).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::git_servers::{ProcessGuard, free_port, run, spawn_server};
use super::node;

/// The cluster's CA (it signed every registry certificate here).
pub fn cluster_ca() -> PathBuf {
    let ca = std::env::var("SLUICE_REGISTRY_CA")
        .ok()
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let auth = PathBuf::from(&node::registry().auth_file);
            auth.parent().unwrap().parent().unwrap().join("pki/ca.crt")
        });
    assert!(ca.exists(), "no cluster CA at {}", ca.display());
    ca
}

fn pki(file: &str) -> PathBuf {
    cluster_ca().parent().unwrap().join(file)
}

/// A directory holding the cluster CA as skopeo's `--*-cert-dir` wants it.
fn cert_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(cluster_ca(), dir.path().join("ca.crt")).unwrap();
        dir
    })
    .path()
}

/// The test app pushed once to the cluster's registry, the source of every tag the tests push.
pub fn base_image() -> &'static str {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BASE.get_or_init(|| node::push_testapp(&["image-automation-base"], &[]).remove(0))
}

/// Copies the base image to `dest` (`host:port/repo:tag`), with `creds` (`user:pass`) for the
/// destination or the cluster's auth file.
pub fn copy_to(dest: &str, creds: Option<&str>) {
    let registry = node::registry();
    let mut c = Command::new("skopeo");
    c.args(["copy", "--quiet", "--src-authfile", &registry.auth_file])
        .arg("--src-cert-dir")
        .arg(cert_dir())
        .arg("--dest-cert-dir")
        .arg(cert_dir());
    match creds {
        Some(creds) => c.args(["--dest-creds", creds]),
        None => c.args(["--dest-authfile", &registry.auth_file]),
    };
    c.arg(format!("docker://{}", base_image()))
        .arg(format!("docker://{dest}"));
    run(&mut c);
}

/// Builds the test app with `env` (`KEY=VALUE`) in its image config and pushes it to the cluster's
/// registry as `name_tag` (`repo:tag`): an image with a digest of its own.
pub fn push_build(name_tag: &str, env: &str) {
    let script = super::repo_root().join("scripts/image");
    let binary = run(Command::new(&script).arg("testapp-binary"));
    let registry = node::registry();
    run(Command::new(&script)
        .args(["push", "--env", env, binary.trim(), name_tag])
        .env("SLUICE_REGISTRY", &registry.address)
        .env("REGISTRY_AUTH_FILE", &registry.auth_file));
}

/// Pushes `tags` of `repo` to the cluster's registry; returns `host:port/repo`.
pub fn push_tags(repo: &str, tags: &[&str]) -> String {
    let image = format!("{}/{repo}", node::registry().address);
    for tag in tags {
        copy_to(&format!("{image}:{tag}"), None);
    }
    image
}

/// Creates a Secret from string data.
pub async fn create_secret(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    data: serde_json::Value,
) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": type_,
        "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("creating Secret {name}: {e}"));
}

/// A `.dockerconfigjson` for `host` with `user:password`.
pub fn docker_config(host: &str, user: &str, password: &str) -> String {
    json!({"auths": {host: {"auth": STANDARD.encode(format!("{user}:{password}"))}}}).to_string()
}

/// A `docker-registry` on 127.0.0.1 with the cluster's registry certificate.
pub struct ExtraRegistry {
    pub address: String,
    pub dir: tempfile::TempDir,
    _process: ProcessGuard,
    _tokens: Option<TokenServer>,
}

impl ExtraRegistry {
    /// Anonymous pulls and pushes.
    pub fn anonymous() -> ExtraRegistry {
        Self::start("", None)
    }

    /// Every request needs a Bearer token from a token server that knows `user:password`.
    pub fn with_tokens(user: &str, password: &str) -> (ExtraRegistry, Arc<AtomicUsize>) {
        let tokens = TokenServer::start(user, password);
        let issued = tokens.requests.clone();
        let auth = format!(
            "auth:\n  token:\n    realm: https://127.0.0.1:{}/token\n    service: sluice-test\n    issuer: sluice-test-issuer\n    rootcertbundle: {}\n",
            tokens.port,
            tokens.cert.display()
        );
        (Self::start(&auth, Some(tokens)), issued)
    }

    fn start(auth: &str, tokens: Option<TokenServer>) -> ExtraRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test\n  tls:\n    certificate: {}\n    key: {}\n{auth}",
                dir.path().join("data").display(),
                pki("registry.crt").display(),
                pki("registry.key").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let mut c = Command::new("docker-registry");
        c.args(["serve"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log);
        // The registry reads REGISTRY_* variables as settings.
        for (key, _) in std::env::vars() {
            if key.starts_with("REGISTRY_") {
                c.env_remove(key);
            }
        }
        let process = spawn_server(&mut c, "docker-registry");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ExtraRegistry {
            address: format!("127.0.0.1:{port}"),
            dir,
            _process: process,
            _tokens: tokens,
        }
    }
}

/// A token server for the registry's `auth.token`: checks basic credentials, answers JWTs signed
/// with a key whose self-signed certificate the registry trusts. HTTPS with the cluster's registry
/// certificate. Counts the tokens it issued.
pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    pub requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    fn start(user: &str, password: &str) -> TokenServer {
        use openssl::asn1::Asn1Time;
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
        use openssl::x509::{X509, X509NameBuilder};

        let dir = tempfile::tempdir().unwrap();
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "sluice-test-token-issuer")
            .unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = cert.build();
        let cert_path = dir.path().join("token.crt");
        std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
        let der = cert.to_der().unwrap();

        let mut acceptor = SslAcceptor::mozilla_intermediate(SslMethod::tls()).unwrap();
        acceptor
            .set_certificate_chain_file(pki("registry.crt"))
            .unwrap();
        acceptor
            .set_private_key_file(pki("registry.key"), SslFiletype::PEM)
            .unwrap();
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Ok(mut tls) = acceptor.accept(stream) else {
                    continue;
                };
                let mut reader = BufReader::new(&mut tls);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut authorization = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(v.trim().to_owned());
                    }
                }
                let query = request_line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.split_once('?'))
                    .map(|(_, q)| q.to_owned())
                    .unwrap_or_default();
                let (status, body) = if authorization.as_deref() != Some(expected.as_str()) {
                    (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.to_owned(),
                    )
                } else {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let token = sign_token(&key, &der, &query);
                    (
                        "200 OK",
                        json!({"token": token, "expires_in": 300}).to_string(),
                    )
                };
                let _ = write!(
                    tls,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.shutdown();
            }
        });
        TokenServer {
            port,
            cert: cert_path,
            requests,
            _dir: dir,
        }
    }
}

/// A JWT granting what the query's `scope`s ask for, as distribution's token auth reads it.
fn sign_token(
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    der: &[u8],
    query: &str,
) -> String {
    use openssl::hash::MessageDigest;
    use openssl::sign::Signer;
    let decode = percent_decode;
    let mut access = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service" => service = decode(v),
            "scope" => {
                let scope = decode(v);
                let parts: Vec<&str> = scope.splitn(3, ':').collect();
                if let [kind, name, actions] = parts.as_slice() {
                    access.push(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
                }
            }
            _ => {}
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [STANDARD.encode(der)]});
    let claims = json!({
        "iss": "sluice-test-issuer", "sub": "tester", "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand::random::<u64>()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
    signer.update(signing_input.as_bytes()).unwrap();
    let signature = signer.sign_to_vec().unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("20");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b' '));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
