//! The servers the benchmarks compare, how each is started (pinned to the
//! last core, with the environment every one of them gets), and what can
//! be read of a running one: when it first answered, its CPU time, its
//! memory.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::host::cores;

/// The programs the benchmarks run.
pub struct Binaries {
    /// `host`, built with `--release`.
    pub host: PathBuf,
    /// `native-hello`, built with `--release`.
    pub native: PathBuf,
    /// The `wasmtime` CLI.
    pub wasmtime: PathBuf,
    /// wasmCloud's `wash` CLI, where the suite runs `wash dev`.
    pub wash: Option<PathBuf>,
}

/// Which world the host serves hello in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum World {
    /// The project's own handler world (guests/rust/hello).
    Handler,
    /// Plain wasi:http (guests/rust/http-hello).
    WasiHttp,
}

/// How the host logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Logging {
    /// What a user gets: `RUST_LOG` unset (info, an access line per
    /// request, the guest's own lines).
    Default,
    /// `RUST_LOG=warn`: only warnings and errors.
    Quiet,
}

/// Which instance pool `wasmtime serve` runs with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pool {
    /// `-O pooling-allocator=y` and wasmtime's defaults otherwise.
    Default,
    /// The host's own pool settings ([`TUNED_POOL`]).
    Tuned,
}

/// One of the servers under comparison.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Server {
    /// Native hyper (`native-hello`).
    Native,
    /// Native hyper keeping its core busy for this many µs per request.
    NativeBusy(u64),
    /// `host serve`.
    Host(World, Logging),
    /// `wasmtime serve`.
    Wasmtime(Pool),
    /// wasmCloud's `wash dev` serving the prebuilt component.
    WashDev,
}

/// What the servers serve.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Workload {
    /// The hello greeting at `/hello/:name`.
    Hello,
    /// Long bodies at `/stream`: `POST` echoes, `GET ?bytes=N` downloads
    /// (guests/rust/http-stream; native-hello's `/stream`).
    Stream,
}

impl Workload {
    /// A path that answers `200` once the server is ready.
    pub fn ready_path(self) -> &'static str {
        match self {
            Workload::Hello => "/hello/bench",
            Workload::Stream => "/stream?bytes=1",
        }
    }

    /// The host's configuration of the app.
    fn host_config(self, world: World) -> anyhow::Result<String> {
        Ok(match (self, world) {
            (Workload::Hello, World::Handler) => {
                hello_app(guest_artifacts::HELLO_PATH, "/hello/:name")
            }
            (Workload::Hello, World::WasiHttp) => {
                hello_app(guest_artifacts::HTTP_HELLO_PATH, "/hello/:name")
            }
            (Workload::Stream, World::WasiHttp) => format!(
                "[[applications]]\nname = \"stream\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/stream\"\nmax_request_body = \"4 GiB\"\nmax_response_body = \"4 GiB\"\ntimeout = \"600s\"\n",
                guest_artifacts::HTTP_STREAM_PATH
            ),
            (Workload::Stream, World::Handler) => {
                bail!("the streaming suite serves wasi:http only")
            }
        })
    }

    /// The wasi:http component that `wasmtime serve` and `wash dev` serve.
    fn wasi_http_component(self) -> &'static str {
        match self {
            Workload::Hello => guest_artifacts::HTTP_HELLO_PATH,
            Workload::Stream => guest_artifacts::HTTP_STREAM_PATH,
        }
    }
}

/// One app at `url_path`, for `GET`.
fn hello_app(component: &str, url_path: &str) -> String {
    format!(
        "[[applications]]\nname = \"hello\"\nfile_path = {component:?}\nmethod = \"GET\"\nurl_path = \"{url_path}\"\n"
    )
}

/// The host's pool settings (`crates/runtime/src/engine.rs`, with the
/// default `max_memory` of 128 MiB and 1000 instances) as `wasmtime serve
/// -O` options: the pool's sizes, PAGEMAP_SCAN resets and the
/// keep-resident sizes of linear memory, tables and async stacks. The host
/// sets no memory reservation or guard of its own, so wasmtime's defaults
/// stand for both.
pub const TUNED_POOL: [&str; 14] = [
    "pooling-allocator=y",
    "pooling-pagemap-scan=auto",
    "pooling-memory-keep-resident=2097152",
    "pooling-table-keep-resident=65536",
    "pooling-async-stack-keep-resident=262144",
    "pooling-max-memory-size=134217728",
    "pooling-total-component-instances=1000",
    "pooling-total-core-instances=20000",
    "pooling-max-core-instances-per-component=20",
    "pooling-total-memories=4000",
    "pooling-max-memories-per-component=4",
    "pooling-total-tables=20000",
    "pooling-max-tables-per-component=20",
    "pooling-total-stacks=1000",
];

impl Server {
    /// The name in the report's tables.
    pub fn label(self) -> String {
        match self {
            Server::Native => "native hyper".to_owned(),
            Server::NativeBusy(micros) => format!("native hyper + {micros} µs busy per request"),
            Server::Host(world, logging) => {
                let world = match world {
                    World::Handler => "handler world (hello)",
                    World::WasiHttp => "wasi:http (http-hello)",
                };
                match logging {
                    Logging::Default => format!("host serve, {world}"),
                    Logging::Quiet => format!("host serve, {world}, quiet (RUST_LOG=warn)"),
                }
            }
            Server::Wasmtime(Pool::Default) => "wasmtime serve, wasi:http (http-hello)".to_owned(),
            Server::Wasmtime(Pool::Tuned) => {
                "wasmtime serve tuned, wasi:http (http-hello)".to_owned()
            }
            Server::WashDev => "wash dev, wasi:http (http-hello)".to_owned(),
        }
    }

    /// The name in the streaming report, which serves http-stream.
    pub fn stream_label(self) -> String {
        match self {
            Server::Host(..) => "host serve, wasi:http (http-stream)".to_owned(),
            Server::Wasmtime(Pool::Default) => "wasmtime serve (http-stream)".to_owned(),
            Server::Wasmtime(Pool::Tuned) => "wasmtime serve tuned (http-stream)".to_owned(),
            other => other.label(),
        }
    }

    /// The command line of the server on `address`, with the host's
    /// configuration at `config`.
    pub fn command_line(
        self,
        binaries: &Binaries,
        workload: Workload,
        config: &Path,
        address: &str,
    ) -> anyhow::Result<Vec<String>> {
        let text = |path: &Path| path.display().to_string();
        let owned = |items: &[&str]| items.iter().map(|&s| s.to_owned()).collect::<Vec<_>>();
        Ok(match self {
            Server::Native => vec![text(&binaries.native), address.to_owned()],
            Server::NativeBusy(micros) => vec![
                text(&binaries.native),
                address.to_owned(),
                "--busy-us".to_owned(),
                micros.to_string(),
            ],
            Server::Host(..) => {
                let mut line = vec![text(&binaries.host)];
                line.extend(owned(&["serve"]));
                line.push(text(config));
                line.extend(owned(&["--listen", address, "--admin-listen", "off"]));
                line
            }
            Server::Wasmtime(pool) => {
                let mut line = vec![text(&binaries.wasmtime), "serve".to_owned()];
                let options: &[&str] = match pool {
                    Pool::Default => &["pooling-allocator=y"],
                    Pool::Tuned => &TUNED_POOL,
                };
                for option in options {
                    line.extend(owned(&["-O", option]));
                }
                line.extend(owned(&["-S", "cli=y", "--addr", address]));
                line.push(workload.wasi_http_component().to_owned());
                line
            }
            Server::WashDev => {
                let wash = binaries
                    .wash
                    .as_deref()
                    .context("`wash dev` needs --wash (guests/tools/install bench installs it)")?;
                vec![text(wash), "dev".to_owned(), "--non-interactive".to_owned()]
            }
        })
    }
}

/// The project configuration that makes `wash dev` serve a prebuilt
/// component on `address`: a build command that does nothing, and the
/// component's path.
pub fn wash_config(component: &str, address: &str) -> String {
    format!(
        "build:\n  command: \"true\"\n  component_path: {component:?}\ndev:\n  address: {address:?}\n"
    )
}

/// A server process pinned to the last core, killed when dropped.
pub struct Running {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// From spawning the process to its first `200`.
    pub ready_after: Duration,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A figure of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

impl Running {
    /// The peak resident memory of the process so far (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        status_bytes(self.child.id(), "VmHWM:")
    }

    /// The resident memory of the process now (`VmRSS`).
    pub fn rss(&self) -> u64 {
        status_bytes(self.child.id(), "VmRSS:")
    }

    /// Forgets the peak so far, so that [`Running::peak_rss`] covers only
    /// what comes next (writing 5 to `/proc/PID/clear_refs`).
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        let path = format!("/proc/{}/clear_refs", self.child.id());
        std::fs::write(&path, "5").with_context(|| format!("cannot write {path}"))
    }

    /// The CPU time the process (all its threads) has used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        cpu_time_from_stat(&stat, clock_ticks_per_second()?)
            .with_context(|| format!("unexpected contents of {path}: {stat}"))
    }
}

/// The kernel's clock ticks per second, the unit of `/proc/PID/stat` times.
fn clock_ticks_per_second() -> anyhow::Result<u64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0)
        .context("the kernel did not give its clock tick rate (sysconf _SC_CLK_TCK)")
}

/// User plus system time from a `/proc/PID/stat` line. The command name
/// in parentheses may hold spaces, so the fields are counted after its
/// closing parenthesis: utime and stime are the 14th and 15th fields.
fn cpu_time_from_stat(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_second as f64,
    ))
}

fn free_address() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The status code of an HTTP/1.1 status line such as `HTTP/1.1 200 OK`.
fn status_of(line: &str) -> Option<u16> {
    let mut fields = line.split_whitespace();
    fields.next()?.strip_prefix("HTTP/1.")?;
    fields.next()?.parse().ok()
}

/// The status of one `GET path` on a new connection, or `None` when the
/// server does not answer (yet).
pub fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 256];
    while !head.contains(&b'\n') {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    status_of(&String::from_utf8_lossy(&head))
}

/// Everything one server start needs.
pub struct Launch {
    /// The command line.
    pub line: Vec<String>,
    /// The folder the server runs in (the config's), kept while it runs.
    pub dir: tempfile::TempDir,
    /// Where it will listen.
    pub address: SocketAddr,
    /// Whether `RUST_LOG=warn` is set.
    pub logging: Logging,
    /// What answers `200` once it is ready.
    pub ready_path: String,
    /// The name in error messages.
    pub label: String,
}

/// The command for `line` on the last core, with `RUST_BACKTRACE` (and
/// `RUST_LIB_BACKTRACE`) unset: capturing a backtrace whenever an error is
/// made costs time in wasmtime and anyhow, and a value inherited from the
/// shell would slow some servers and not others. `RUST_LOG` is unset too
/// unless the logging is quiet.
///
/// A relative program path is made absolute, since the server runs in its
/// own folder.
fn command_for(line: &[String], logging: Logging) -> Command {
    let mut program = PathBuf::from(&line[0]);
    if program.components().count() > 1 {
        program = std::path::absolute(&program).unwrap_or(program);
    }
    let mut command = if cores() >= 2 {
        let mut command = Command::new("taskset");
        command.args(["-c", &(cores() - 1).to_string()]);
        command.arg(program);
        command
    } else {
        Command::new(program)
    };
    command.args(&line[1..]);
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    match logging {
        Logging::Default => command.env_remove("RUST_LOG"),
        Logging::Quiet => command.env("RUST_LOG", "warn"),
    };
    command
}

/// Starts `launch` ([`command_for`] says with what environment) and waits
/// until its ready path answers `200`.
pub fn launch(launch: Launch) -> anyhow::Result<Running> {
    let Launch {
        line,
        dir,
        address,
        logging,
        ready_path,
        label,
    } = launch;
    let mut command = command_for(&line, logging);
    // Kept in the server's folder, so that a server that exits before
    // listening can say why (a bad flag, a stale binary, a port in use).
    let stderr_path = dir.path().join("stderr.log");
    let stdout_path = dir.path().join("stdout.log");
    let create = |path: &Path| {
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
    };
    let started = Instant::now();
    let child = command
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("cannot start {}", line.join(" ")))?;
    let mut running = Running {
        child,
        address,
        ready_after: Duration::ZERO,
        _dir: dir,
    };
    let deadline = started + Duration::from_secs(300);
    while http_status(address, &ready_path) != Some(200) {
        if let Ok(Some(status)) = running.child.try_wait() {
            let mut said = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            said.push_str(&std::fs::read_to_string(&stdout_path).unwrap_or_default());
            bail!(
                "`{}` exited with {status} before answering; it said:\n{}",
                line.join(" "),
                said.trim_end()
            );
        }
        if Instant::now() > deadline {
            bail!("{label} did not answer GET {ready_path} on {address} in time");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    running.ready_after = started.elapsed();
    Ok(running)
}

/// Starts `server` serving `workload` on a free port.
pub fn start(server: Server, binaries: &Binaries, workload: Workload) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("serverless.toml");
    let address = free_address()?;
    match server {
        Server::Host(world, _) => std::fs::write(&config, workload.host_config(world)?)?,
        Server::WashDev => {
            std::fs::create_dir(dir.path().join(".wash"))?;
            std::fs::write(
                dir.path().join(".wash/config.yaml"),
                wash_config(workload.wasi_http_component(), &address.to_string()),
            )?;
        }
        _ => {}
    }
    let line = server.command_line(binaries, workload, &config, &address.to_string())?;
    launch(Launch {
        line,
        dir,
        address,
        logging: match server {
            Server::Host(_, logging) => logging,
            _ => Logging::Default,
        },
        ready_path: workload.ready_path().to_owned(),
        label: server.label(),
    })
}

/// The first line a program prints for `--version`.
pub fn version_of(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("unknown")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a thread may
        // be named; utime 250 and stime 50 ticks.
        let stat =
            "4242 (host (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 5 0 100 0 0";
        assert_eq!(cpu_time_from_stat(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(cpu_time_from_stat("garbage", 100), None);
        assert_eq!(cpu_time_from_stat("1 (x) S 1 2", 100), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of(""), None);
    }

    fn binaries(native: PathBuf) -> Binaries {
        Binaries {
            host: PathBuf::from("host"),
            native,
            wasmtime: PathBuf::from("wasmtime"),
            wash: None,
        }
    }

    #[test]
    fn the_tuned_wasmtime_gets_every_pool_option_and_wash_needs_its_binary() {
        let line = Server::Wasmtime(Pool::Tuned)
            .command_line(
                &binaries(PathBuf::from("native")),
                Workload::Hello,
                Path::new("c.toml"),
                "127.0.0.1:1",
            )
            .unwrap();
        for option in TUNED_POOL {
            assert!(
                line.windows(2).any(|w| w[0] == "-O" && w[1] == option),
                "{line:?}"
            );
        }
        assert_eq!(
            line.last().map(String::as_str),
            Some(guest_artifacts::HTTP_HELLO_PATH)
        );
        let error = Server::WashDev
            .command_line(
                &binaries(PathBuf::from("native")),
                Workload::Hello,
                Path::new("c.toml"),
                "127.0.0.1:1",
            )
            .unwrap_err();
        assert!(format!("{error}").contains("needs --wash"), "{error}");
    }

    #[test]
    fn the_wash_config_builds_nothing_and_names_the_component() {
        let config = wash_config("/x/http_hello.wasm", "127.0.0.1:8000");
        assert_eq!(
            config,
            "build:\n  command: \"true\"\n  component_path: \"/x/http_hello.wasm\"\ndev:\n  address: \"127.0.0.1:8000\"\n"
        );
    }

    #[test]
    fn the_stream_workload_is_wasi_http_only() {
        assert!(Workload::Stream.host_config(World::Handler).is_err());
        let config = Workload::Stream.host_config(World::WasiHttp).unwrap();
        assert!(config.contains("max_request_body = \"4 GiB\""), "{config}");
        assert!(
            config.contains(guest_artifacts::HTTP_STREAM_PATH),
            "{config}"
        );
    }

    #[test]
    fn a_server_that_exits_before_answering_says_why() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let native = dir.path().join("old-native-hello");
        std::fs::write(
            &native,
            "#!/bin/sh\necho \"unknown option $2; usage: native-hello [ADDR]\" >&2\nexit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&native, std::fs::Permissions::from_mode(0o755)).unwrap();
        let error = match start(Server::NativeBusy(3), &binaries(native), Workload::Hello) {
            Ok(_) => panic!("the script cannot listen"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains("--busy-us 3` exited with"), "{error}");
        assert!(
            error.contains("it said:\nunknown option --busy-us; usage: native-hello [ADDR]"),
            "{error}"
        );
    }

    #[test]
    fn every_server_runs_without_backtraces_and_only_quiet_sets_the_log_level() {
        let line = ["server".to_owned()];
        let envs = |logging| {
            command_for(&line, logging)
                .get_envs()
                .map(|(key, value)| (key.to_owned(), value.map(|v| v.to_owned())))
                .collect::<Vec<_>>()
        };
        let default = envs(Logging::Default);
        for name in ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "RUST_LOG"] {
            assert!(
                default.contains(&(name.into(), None)),
                "{name}: {default:?}"
            );
        }
        let quiet = envs(Logging::Quiet);
        assert!(
            quiet.contains(&("RUST_LOG".into(), Some("warn".into()))),
            "{quiet:?}"
        );
        assert!(
            quiet.contains(&("RUST_BACKTRACE".into(), None)),
            "{quiet:?}"
        );
    }

    #[test]
    fn the_cpu_time_of_a_live_process_grows_as_it_works() {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let running = Running {
            child,
            address: "127.0.0.1:1".parse().unwrap(),
            ready_after: Duration::ZERO,
            _dir: tempfile::tempdir().unwrap(),
        };
        // Busy until dropped, which kills it.
        let first = running.cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let later = running.cpu_time().unwrap();
        assert!(later > first, "{first:?} then {later:?}");
    }
}
