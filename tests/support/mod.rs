//! Helpers for the end-to-end tests: run the real `host` binary on a free
//! port and talk HTTP to it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

pub mod backends;
pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The `host` binary built by cargo for these tests.
pub const HOST_BIN: &str = env!("CARGO_BIN_EXE_host");

/// How long the host may take to start (it compiles every component).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// A running `host serve`. Dropping it kills the process; if the test is
/// failing, the host's stdout and stderr are printed to help diagnose it.
pub struct Host {
    child: Child,
    pub address: SocketAddr,
    /// Where the admin endpoints listen, unless they are off.
    pub admin: Option<SocketAddr>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// Reads a stream to the end on a thread, appending to a shared string.
fn collect(stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

/// The compile cache every host in the tests shares, so that only the
/// first start compiles a component.
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// A `host` command using the shared compile cache, for tests that run
/// the binary without [`Host`].
pub fn host_command() -> Command {
    let mut command = Command::new(HOST_BIN);
    command.env("SERVERLESS_WASM_CACHE_DIR", shared_cache_dir());
    command
}

impl Host {
    /// Starts `host serve [config] --listen 127.0.0.1:0 [extra...]` and
    /// waits for the `listening on` line.
    pub fn start(config: Option<&Path>, extra: &[&str]) -> Host {
        Host::start_with(Command::new(HOST_BIN), config, extra)
    }

    /// Like [`Host::start`], with `command` running the host binary (for
    /// example through `unshare`); the arguments are appended to it.
    pub fn start_with(mut command: Command, config: Option<&Path>, extra: &[&str]) -> Host {
        command.arg("serve");
        if let Some(config) = config {
            command.arg(config);
        }
        // Hosts share one compile cache, so that only the first start
        // compiles a component; tests of the cache pass their own flags.
        let own_cache = extra
            .iter()
            .any(|arg| arg.starts_with("--cache-dir") || *arg == "--no-cache")
            || command
                .get_envs()
                .any(|(name, _)| name == "SERVERLESS_WASM_CACHE_DIR");
        if !own_cache {
            command.env("SERVERLESS_WASM_CACHE_DIR", shared_cache_dir());
        }
        // Hosts run side by side: each gets its own admin port.
        if !extra.iter().any(|arg| arg.starts_with("--admin-listen")) {
            command.args(["--admin-listen", "127.0.0.1:0"]);
        }
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the host binary");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut host = Host {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
            admin: None,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let found = host
                .stdout()
                .lines()
                .find_map(|line| line.strip_prefix("listening on http://").map(str::to_owned));
            if let Some(address) = found {
                host.address = address.trim().parse().expect("a socket address");
                host.admin = host.stdout().lines().find_map(|line| {
                    let rest = line.strip_prefix("admin on http://")?;
                    rest.split_whitespace().next()?.parse().ok()
                });
                return host;
            }
            if let Ok(Some(status)) = host.child.try_wait() {
                panic!(
                    "the host exited during startup with {status}:\n{}",
                    host.stderr()
                );
            }
            assert!(Instant::now() < deadline, "the host did not start in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A URL on this host.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.address)
    }

    /// Everything the host printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the host logged on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains every one of `needles`, returning
    /// that line.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.stderr();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line contains all of {needles:?}; the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (for example `libc::SIGTERM`) to the host.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill failed");
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many file descriptors the host process has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// A memory figure of the host process from `/proc/PID/status`, in
    /// bytes: `VmRSS` (now) or `VmHWM` (peak so far).
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in /proc status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Waits for the host to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the host did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- host stdout ----\n{}", self.stdout());
            eprintln!("---- host stderr ----\n{}", self.stderr());
        }
    }
}

/// A folder with a configuration file, removed when dropped.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    /// Writes `text` as `serverless.toml` in a new folder.
    pub fn new(text: &str) -> ConfigDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("serverless.toml"), text).unwrap();
        ConfigDir { dir }
    }

    /// The configuration file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("serverless.toml")
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("a UTF-8 body")
    }

    /// A header's value as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header"))
    }
}

/// An HTTP/1.1 client with connection reuse.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request and reads the whole response.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &[u8])],
    body: impl Into<Bytes>,
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
    }
    let request = request.body(Full::new(body.into())).unwrap();
    let response = client.request(request).await.expect("the request succeeds");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET url` with a fresh client.
pub async fn get(url: &str) -> Reply {
    send(&client(), "GET", url, &[], Bytes::new()).await
}

/// Writes raw bytes on a new connection and reads until the server closes
/// it or `timeout` passes; for checks below the level of an HTTP client.
pub fn raw_exchange(address: SocketAddr, request: &[u8], timeout: Duration) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.write_all(request).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// A configuration routing `ANY /probe/:action` to the test probe, plus
/// extra TOML appended to its entry.
pub fn probe_config(entry_extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        "[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/probe/:action\"\n{entry_extra}\n",
        guest_artifacts::TEST_PROBE_PATH
    ))
}
