//! Backends for the outbound TCP tests, all on 127.0.0.1 or ::1: an echo
//! server, a real Redis, a black hole and a server that never answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Echoes every byte back; counts connections accepted and still open.
pub struct EchoServer {
    pub address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl EchoServer {
    /// An echo server on `127.0.0.1`, on a free port.
    pub fn start() -> EchoServer {
        EchoServer::start_on("127.0.0.1:0")
    }

    /// An echo server on the given address (`[::1]:0` for IPv6).
    pub fn start_on(bind: &str) -> EchoServer {
        EchoServer::serve(TcpListener::bind(bind).unwrap())
    }

    /// Serves an already bound listener.
    pub fn serve(listener: TcpListener) -> EchoServer {
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (accepted_count, open_count) = (accepted.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                accepted_count.fetch_add(1, Ordering::SeqCst);
                open_count.fetch_add(1, Ordering::SeqCst);
                let open_count = open_count.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 8192];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    open_count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        EchoServer {
            address,
            accepted,
            open,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits (up to 10 s) until at least `count` connections were accepted
    /// and returns how many were: the accept loop counts a connection a
    /// moment after the peer sees it established.
    pub fn wait_accepted(&self, count: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.accepted() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.accepted()
    }

    /// Connections not yet closed by the peer.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// A free port on 127.0.0.1 (free when this returns).
/// A loopback port that is bound but never listens: connections to it are
/// refused, and no other program can take it while this lives (a port
/// merely found free could be taken by the time it is used).
pub struct ClosedPort {
    pub port: u16,
    _socket: socket2::Socket,
}

impl ClosedPort {
    pub fn reserve() -> ClosedPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        ClosedPort {
            port,
            _socket: socket,
        }
    }
}

/// A port that was free a moment ago, for servers that cannot be told to
/// pick one themselves; callers retry when it was taken meanwhile.
fn port_free_now() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real `redis-server` on a free loopback port, stopped when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts Redis and waits until it answers `PING`. Redis cannot pick
    /// a port itself, so a port that was free is tried, and another one if
    /// Redis exits because it was taken meanwhile.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            if let Some(server) = RedisServer::try_start(port_free_now()) {
                return server;
            }
        }
        panic!("redis-server did not start on any of five free ports");
    }

    fn try_start(port: u16) -> Option<RedisServer> {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it, for example with `apt-get install redis-server`")
            });
        let mut server = RedisServer {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return Some(server);
                }
            }
            // Exited: most likely the port was taken since it was found.
            if let Ok(Some(_)) = server.child.try_wait() {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener whose accept queue is full, so that new connection attempts
/// are neither accepted nor refused: their SYNs go unanswered.
pub struct BlackHole {
    pub address: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(0).unwrap();
        let address = socket.local_addr().unwrap().as_socket().unwrap();
        // Fill the queue; never accept.
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let filler = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            filler.set_nonblocking(true).unwrap();
            let _ = filler.connect(&address.into());
            fillers.push(TcpStream::from(filler));
        }
        std::thread::sleep(Duration::from_millis(200));
        BlackHole {
            address,
            _listener: socket,
            _fillers: fillers,
        }
    }
}

/// Accepts connections and never sends a byte.
pub struct SilentServer {
    pub address: SocketAddr,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        SilentServer { address }
    }
}

/// A plain HTTP/1.1 backend with keep-alive that answers
/// `backend saw PATH` and counts the connections it accepts.
pub struct HttpBackend {
    pub address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl HttpBackend {
    /// A backend on `127.0.0.1` (or `bind`), on a free port.
    pub fn start() -> HttpBackend {
        HttpBackend::start_on("127.0.0.1:0")
    }

    /// A backend on the given address.
    pub fn start_on(bind: &str) -> HttpBackend {
        HttpBackend::serve(TcpListener::bind(bind).unwrap())
    }

    /// Serves an already bound listener.
    pub fn serve(listener: TcpListener) -> HttpBackend {
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        serve_http(
            listener,
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
            },
            |request| async move {
                let body = format!("backend saw {}", request.uri().path());
                http::Response::builder()
                    .header("content-type", "text/plain")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap()
            },
        );
        HttpBackend {
            address,
            connections,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A `nats-server` on a free loopback port (tests/run installs it),
/// stopped when dropped.
pub struct NatsServer {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
}

impl NatsServer {
    /// Starts one on a free port and waits for its "ready" line.
    pub fn start() -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        NatsServer::start_on(port)
    }

    /// Starts one on `port` (again, after a restart) and waits for its
    /// "ready" line.
    pub fn start_on(port: u16) -> NatsServer {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("nats-server is installed (tests/run installs it from Debian)");
        let stderr = child.stderr.take().unwrap();
        let (ready, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Server is ready") {
                    let _ = ready.send(());
                }
            }
        });
        wait.recv_timeout(std::time::Duration::from_secs(20))
            .expect("nats-server printed its ready line");
        NatsServer { child, port }
    }

    /// The `--messaging` value that reaches it.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request a [`RecordingSink`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The request's path.
    pub path: String,
    /// Its `x-topic` header.
    pub topic: Option<String>,
    /// Its body, as text.
    pub body: String,
}

/// An HTTP endpoint that records what is posted to it and answers `200`
/// (or `503` while `failing` is set): the sink of the messaging tests.
pub struct RecordingSink {
    pub address: SocketAddr,
    posted: std::sync::mpsc::Receiver<Posted>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl RecordingSink {
    /// A sink on a free loopback port.
    pub fn start() -> RecordingSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, posted) = std::sync::mpsc::channel();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fail = failing.clone();
        serve_http(
            listener,
            || {},
            move |request| {
                let (sender, fail) = (sender.clone(), fail.clone());
                async move {
                    use http_body_util::BodyExt as _;
                    let path = request.uri().path().to_owned();
                    let topic = request
                        .headers()
                        .get("x-topic")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let status = if fail.load(Ordering::SeqCst) {
                        503
                    } else {
                        200
                    };
                    if status == 200 {
                        let _ = sender.send(Posted {
                            path,
                            topic,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                    }
                    http::Response::builder()
                        .status(status)
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap()
                }
            },
        );
        RecordingSink {
            address,
            posted,
            failing,
        }
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The `--allow-http` rule that reaches it.
    pub fn rule(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The next request it took, within 20 s.
    pub fn next(&self) -> Posted {
        self.posted
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the sink got a request within 20 s")
    }

    /// The next request within `wait`, if one came.
    pub fn next_within(&self, wait: std::time::Duration) -> Option<Posted> {
        self.posted.recv_timeout(wait).ok()
    }

    /// Makes it answer `503` (without recording) until set back.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

/// Serves HTTP/1.1 with keep-alive on `listener`, on a thread of its own:
/// `accepted` runs for each connection, `answer` for each request.
fn serve_http<F, Fut>(listener: TcpListener, accepted: impl Fn() + Send + 'static, answer: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = answer(request);
                        async move { Ok::<_, std::convert::Infallible>(response.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
}
