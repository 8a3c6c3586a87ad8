//! Real Git servers on 127.0.0.1 for tests: `git daemon` (git://, push enabled), `git http-backend`
//! behind nginx + fcgiwrap over HTTPS with basic and bearer auth and a CA made here, and sshd with
//! key authentication. Each server is killed when its guard is dropped.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command to completion and panics with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on port {port}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Starts a server in its own process group, so the guard can stop it with every child it forked.
pub fn spawn_server(cmd: &mut Command, what: &str) -> ProcessGuard {
    use std::os::unix::process::CommandExt;
    ProcessGuard(
        cmd.process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}")),
    )
}

/// Kills a server's process group when dropped.
pub struct ProcessGuard(pub Child);

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates an empty bare repository that every server may serve and push to.
pub fn create_bare(root: &Path, name: &str) -> PathBuf {
    let path = root.join(name);
    run(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&path));
    run(Command::new("git")
        .arg("-C")
        .arg(&path)
        .args(["config", "http.receivepack", "true"]));
    run(Command::new("git").arg("-C").arg(&path).args([
        "config",
        "uploadpack.allowReachableSHA1InWant",
        "true",
    ]));
    std::fs::write(path.join("git-daemon-export-ok"), "").unwrap();
    path
}

/// `git daemon` serving a directory of bare repositories over git://, push enabled.
pub struct GitDaemon {
    pub root: tempfile::TempDir,
    pub port: u16,
    _process: ProcessGuard,
}

impl GitDaemon {
    pub fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = root.path().join("daemon.log");
        // git-daemon itself, not the `git` wrapper, so the guard stops the server.
        let exec_path = run(Command::new("git").arg("--exec-path"));
        let mut child = spawn_server(
            Command::new(Path::new(exec_path.trim()).join("git-daemon"))
                .args([
                    "--reuseaddr",
                    "--export-all",
                    "--enable=receive-pack",
                    "--listen=127.0.0.1",
                ])
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", root.path().display()))
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
            "git daemon",
        );
        wait_for_port(port, &mut child.0, "git daemon", &log);
        GitDaemon {
            root,
            port,
            _process: child,
        }
    }

    pub fn create_repo(&self, name: &str) -> PathBuf {
        create_bare(self.root.path(), name)
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_pem: Vec<u8>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=sluice test CA",
            ])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.crt")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")));
        std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.crt"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("ext.cnf"))
            .arg("-out")
            .arg(p("server.crt")));
        let ca_pem = std::fs::read(p("ca.crt")).unwrap();
        TestCa {
            ca_pem,
            cert: p("server.crt"),
            key: p("server.key"),
            dir,
        }
    }
}

/// `git http-backend` behind nginx + fcgiwrap over HTTPS. `/git/<repo>` needs basic auth,
/// `/bearer/<repo>` needs `Authorization: Bearer <token>`.
pub struct HttpsGit {
    pub root: tempfile::TempDir,
    pub port: u16,
    /// The same repositories over plain HTTP.
    pub http_port: u16,
    pub ca: TestCa,
    pub username: String,
    pub password: String,
    pub token: String,
    _nginx: ProcessGuard,
    _fcgiwrap: ProcessGuard,
}

impl HttpsGit {
    pub fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join(".state");
        std::fs::create_dir_all(state.join("tmp")).unwrap();
        let ca = TestCa::new();
        let port = free_port();
        let http_port = free_port();
        let (username, password, token) = (
            "flux".to_owned(),
            "s3cret-pass".to_owned(),
            "tok-0123456789".to_owned(),
        );
        let hash = run(Command::new("openssl").args(["passwd", "-apr1", &password]));
        std::fs::write(
            state.join("htpasswd"),
            format!("{username}:{}\n", hash.trim()),
        )
        .unwrap();

        let sock = state.join("fcgiwrap.sock");
        let fcgi_log = state.join("fcgiwrap.log");
        let fcgiwrap = spawn_server(
            Command::new("fcgiwrap")
                .arg("-s")
                .arg(format!("unix:{}", sock.display()))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&fcgi_log).unwrap()),
            "fcgiwrap",
        );
        for _ in 0..200 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(
            sock.exists(),
            "fcgiwrap made no socket: {}",
            std::fs::read_to_string(&fcgi_log).unwrap_or_default()
        );

        let s = state.display();
        let r = root.path().display();
        let backend = |path_info: &str| {
            format!(
                "include /etc/nginx/fastcgi_params;
                 fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
                 fastcgi_param GIT_PROJECT_ROOT {r};
                 fastcgi_param GIT_HTTP_EXPORT_ALL \"\";
                 fastcgi_param REMOTE_USER $remote_user;
                 fastcgi_param PATH_INFO {path_info};
                 fastcgi_pass unix:{};",
                sock.display()
            )
        };
        let conf = format!(
            "daemon off;
             master_process off;
             worker_processes 1;
             user root;
             pid {s}/nginx.pid;
             error_log {s}/error.log info;
             events {{ worker_connections 64; }}
             http {{
               access_log {s}/access.log;
               client_body_temp_path {s}/tmp/body;
               fastcgi_temp_path {s}/tmp/fastcgi;
               proxy_temp_path {s}/tmp/proxy;
               uwsgi_temp_path {s}/tmp/uwsgi;
               scgi_temp_path {s}/tmp/scgi;
               client_max_body_size 0;
               server {{
                 listen 127.0.0.1:{port} ssl;
                 listen 127.0.0.1:{http_port};
                 ssl_certificate {cert};
                 ssl_certificate_key {key};
                 location ~ ^/git(/.*)$ {{
                   auth_basic \"git\";
                   auth_basic_user_file {s}/htpasswd;
                   {basic}
                 }}
                 location ~ ^/redirect(/.*)$ {{
                   return 302 http://localhost:{http_port}/git$1$is_args$args;
                 }}
                 location ~ ^/bearer(/.*)$ {{
                   if ($http_authorization != \"Bearer {token}\") {{ return 401; }}
                   {bearer}
                 }}
               }}
             }}",
            cert = ca.cert.display(),
            key = ca.key.display(),
            http_port = http_port,
            basic = backend("$1"),
            bearer = backend("$1"),
        );
        let conf_path = state.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = state.join("nginx.stderr");
        let mut nginx = spawn_server(
            Command::new("nginx")
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&state)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
            "nginx",
        );
        wait_for_port(port, &mut nginx.0, "nginx", &log);
        HttpsGit {
            root,
            port,
            http_port,
            ca,
            username,
            password,
            token,
            _nginx: nginx,
            _fcgiwrap: fcgiwrap,
        }
    }

    pub fn create_repo(&self, name: &str) -> PathBuf {
        create_bare(self.root.path(), name)
    }

    /// URL for basic auth.
    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/git/{name}", self.port)
    }

    /// Plain-HTTP URL for basic auth.
    pub fn http_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.http_port)
    }

    /// Plain-HTTP URL that redirects to the basic-auth URL on another host name (`localhost`).
    pub fn redirect_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/redirect/{name}", self.http_port)
    }

    /// The access log (combined format: the basic-auth user of each request is in it).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join(".state/access.log")).unwrap_or_default()
    }

    /// URL for bearer-token auth.
    pub fn bearer_url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/bearer/{name}", self.port)
    }
}

/// An SSH key pair made by ssh-keygen.
pub struct SshKeyPair {
    pub private: PathBuf,
    pub public: String,
}

pub fn ssh_keygen(dir: &Path, name: &str, passphrase: &str, comment: &str) -> SshKeyPair {
    let private = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f"])
        .arg(&private));
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    SshKeyPair { private, public }
}

/// sshd with public-key authentication only, serving repositories by absolute path as root.
pub struct SshGit {
    pub root: tempfile::TempDir,
    pub port: u16,
    /// The client key the server accepts, unencrypted.
    pub client: SshKeyPair,
    /// Another accepted client key, encrypted with `client_passphrase`.
    pub client_encrypted: SshKeyPair,
    pub client_passphrase: String,
    /// `[127.0.0.1]:port ssh-ed25519 ...` (or `127.0.0.1 ...` on port 22).
    pub known_hosts: String,
    pub host_public: String,
    _sshd: ProcessGuard,
}

impl SshGit {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join(".state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host = ssh_keygen(&state, "host_ed25519", "", "host");
        let client = ssh_keygen(&state, "client", "", "client");
        let client_passphrase = "key-pass-123".to_owned();
        let client_encrypted = ssh_keygen(&state, "client_enc", &client_passphrase, "client-enc");
        std::fs::write(
            state.join("authorized_keys"),
            format!("{}{}", client.public, client_encrypted.public),
        )
        .unwrap();
        let conf = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {s}/host_ed25519\nAuthorizedKeysFile {s}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPidFile {s}/sshd.pid\nLogLevel VERBOSE\n",
            s = state.display()
        );
        std::fs::write(state.join("sshd_config"), conf).unwrap();
        let log = state.join("sshd.log");
        let mut child = spawn_server(
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(state.join("sshd_config"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
            "sshd",
        );
        wait_for_port(port, &mut child.0, "sshd", &log);
        let key = host
            .public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let host_name = if port == 22 {
            "127.0.0.1".to_owned()
        } else {
            format!("[127.0.0.1]:{port}")
        };
        SshGit {
            root,
            port,
            client,
            client_encrypted,
            client_passphrase,
            known_hosts: format!("{host_name} {key}\n"),
            host_public: key,
            _sshd: child,
        }
    }

    pub fn create_repo(&self, name: &str) -> PathBuf {
        create_bare(self.root.path(), name)
    }

    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://root@127.0.0.1:{}{}",
            self.port,
            self.root.path().join(name).display()
        )
    }

    /// The scp-like form `root@127.0.0.1:/path`, which always means port 22.
    pub fn scp_url(&self, name: &str) -> String {
        format!("root@127.0.0.1:{}", self.root.path().join(name).display())
    }
}
