//! `loadgen compare`: the speed benchmark. The same hello, served by a
//! native hyper server, by `host serve` in our world and as wasi:http, and
//! by `wasmtime serve`, each loaded by `wrk` at concurrency 1 and 32. The
//! servers take turns, round after round, so that drift on the machine
//! spreads over all of them; every figure is the median over the rounds.
//!
//! Native hyper also runs with a few fixed amounts of busy work added to
//! every request, at concurrency 32. That curve turns throughput shares
//! into time: how much work per request a server may add to native hyper
//! and keep 50% of its throughput, and how much our host adds.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::host::cores;
use crate::report::{machine, write_keeping_findings};

/// The concurrencies measured.
const CONCURRENCIES: [u32; 2] = [1, 32];

/// The busy work added to native hyper's requests for the budget curve, in
/// µs: around the 50% point, what a fresh instance costs in process (about
/// 14), and far enough to place the host's handler world on the curve.
const BUSY_MICROS: [u64; 6] = [3, 6, 10, 14, 22, 34];

/// The concurrency of the budget curve: the throughput targets' own.
const BUDGET_CONNECTIONS: u32 = 32;

/// What `compare` needs to find.
pub struct Binaries {
    /// `host`, built with `--release`.
    pub host: PathBuf,
    /// `native-hello`, built with `--release`.
    pub native: PathBuf,
    /// The `wasmtime` CLI.
    pub wasmtime: PathBuf,
}

/// One of the servers under comparison.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Native,
    HostHandler,
    HostWasiHttp,
    WasmtimeServe,
    /// Native hyper keeping its core busy for this many µs per request.
    NativeBusy(u64),
}

impl Server {
    const ALL: [Server; 4] = [
        Server::Native,
        Server::HostHandler,
        Server::HostWasiHttp,
        Server::WasmtimeServe,
    ];

    fn label(self) -> String {
        match self {
            Server::Native => "native hyper".to_owned(),
            Server::HostHandler => "host serve, handler world (hello)".to_owned(),
            Server::HostWasiHttp => "host serve, wasi:http (http-hello)".to_owned(),
            Server::WasmtimeServe => "wasmtime serve, wasi:http (http-hello)".to_owned(),
            Server::NativeBusy(micros) => format!("native hyper + {micros} µs busy per request"),
        }
    }
}

/// A server process pinned to the last core, killed when dropped.
struct Running {
    child: Child,
    address: SocketAddr,
    _config: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// The peak resident memory of the process so far (`VmHWM`).
    fn peak_rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// The CPU time the process (all its threads) has used so far.
    fn cpu_time(&self) -> anyhow::Result<Duration> {
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

/// The command line for `server` on `address`, shown in the report.
fn command_line(server: Server, binaries: &Binaries, config: &Path, address: &str) -> Vec<String> {
    let text = |path: &Path| path.display().to_string();
    match server {
        Server::Native => vec![text(&binaries.native), address.to_owned()],
        Server::NativeBusy(micros) => vec![
            text(&binaries.native),
            address.to_owned(),
            "--busy-us".to_owned(),
            micros.to_string(),
        ],
        Server::HostHandler | Server::HostWasiHttp => vec![
            text(&binaries.host),
            "serve".to_owned(),
            text(config),
            "--listen".to_owned(),
            address.to_owned(),
            "--admin-listen".to_owned(),
            "off".to_owned(),
        ],
        Server::WasmtimeServe => vec![
            text(&binaries.wasmtime),
            "serve".to_owned(),
            "-O".to_owned(),
            "pooling-allocator=y".to_owned(),
            "-S".to_owned(),
            "cli=y".to_owned(),
            "--addr".to_owned(),
            address.to_owned(),
            guest_artifacts::HTTP_HELLO_PATH.to_owned(),
        ],
    }
}

fn start(server: Server, binaries: &Binaries) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("serverless.toml");
    let component = match server {
        Server::HostWasiHttp => guest_artifacts::HTTP_HELLO_PATH,
        _ => guest_artifacts::HELLO_PATH,
    };
    std::fs::write(
        &config,
        format!(
            "[[applications]]\nname = \"hello\"\nfile_path = {component:?}\nmethod = \"GET\"\nurl_path = \"/hello/:name\"\n"
        ),
    )?;
    let address = free_address()?;
    let line = command_line(server, binaries, &config, &address.to_string());
    let mut command = if cores() >= 2 {
        let mut command = Command::new("taskset");
        command.args(["-c", &(cores() - 1).to_string()]);
        command.args(&line);
        command
    } else {
        let mut command = Command::new(&line[0]);
        command.args(&line[1..]);
        command
    };
    // Kept in the config's folder, so that a server that exits before
    // listening can say why (a bad flag, a stale binary, a port in use).
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path)
        .with_context(|| format!("cannot create {}", stderr_path.display()))?;
    let child = command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", line.join(" ")))?;
    let mut running = Running {
        child,
        address,
        _config: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while TcpStream::connect(address).is_err() {
        if let Ok(Some(status)) = running.child.try_wait() {
            let said = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            bail!(
                "`{}` exited with {status} before listening; it said:\n{}",
                line.join(" "),
                said.trim_end()
            );
        }
        if Instant::now() > deadline {
            bail!("{} did not listen on {address} in time", server.label());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(running)
}

/// What one wrk run measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// Requests completed in the run.
    requests: u64,
    /// The server's CPU time (all threads) per completed request.
    cpu_per_request: Duration,
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Reads requests/s, the number of requests and the 50th and 99th
/// percentiles from `wrk --latency`.
fn parse_wrk(output: &str) -> anyhow::Result<Sample> {
    let mut sample = Sample::default();
    let mut found = 0;
    for line in output.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", value] => {
                sample.per_second = value.parse()?;
                found += 1;
            }
            ["50%", value] => {
                sample.p50 = parse_duration(value).context("a 50% latency")?;
                found += 1;
            }
            ["99%", value] => {
                sample.p99 = parse_duration(value).context("a 99% latency")?;
                found += 1;
            }
            [count, "requests", "in", ..] => {
                sample.requests = count.parse().context("a request count")?;
                found += 1;
            }
            ["Non-2xx", ..] | ["Socket", "errors:", ..] => {
                bail!("wrk saw failed requests:\n{output}")
            }
            _ => {}
        }
    }
    if found != 4 {
        bail!("unexpected wrk output:\n{output}");
    }
    Ok(sample)
}

/// wrk on core 0 against `address` for `seconds`.
fn wrk(address: SocketAddr, connections: u32, seconds: u64) -> anyhow::Result<Sample> {
    let url = format!("http://{address}/hello/bench");
    let output = Command::new("taskset")
        .args(["-c", "0", "wrk", "-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg(&url)
        .output()
        .context("cannot run wrk (apt install wrk)")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

/// wrk against `running`, with the server's CPU time per request.
fn measure(running: &Running, connections: u32, seconds: u64) -> anyhow::Result<Sample> {
    let cpu_before = running.cpu_time()?;
    let mut sample = wrk(running.address, connections, seconds)?;
    let cpu = running.cpu_time()?.saturating_sub(cpu_before);
    sample.cpu_per_request =
        Duration::from_secs_f64(cpu.as_secs_f64() / sample.requests.max(1) as f64);
    Ok(sample)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The figures of one server at one concurrency, over every round.
#[derive(Default)]
struct Figures {
    samples: Vec<Sample>,
    peak_rss: u64,
}

impl Figures {
    /// The median over the rounds of one figure of the samples.
    fn median_of(&self, figure: impl Fn(&Sample) -> f64) -> f64 {
        median(&mut self.samples.iter().map(figure).collect::<Vec<_>>())
    }

    fn per_second(&self) -> f64 {
        self.median_of(|s| s.per_second)
    }

    fn p50(&self) -> Duration {
        Duration::from_secs_f64(self.median_of(|s| s.p50.as_secs_f64()))
    }

    fn p99(&self) -> Duration {
        Duration::from_secs_f64(self.median_of(|s| s.p99.as_secs_f64()))
    }

    fn cpu_per_request(&self) -> Duration {
        Duration::from_secs_f64(self.median_of(|s| s.cpu_per_request.as_secs_f64()))
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

fn version_of(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Runs the comparison and writes the report to `out`.
pub fn compare(binaries: &Binaries, rounds: usize, seconds: u64, out: &Path) -> anyhow::Result<()> {
    // figures[server][concurrency]
    let mut figures: Vec<Vec<Figures>> = Server::ALL
        .iter()
        .map(|_| CONCURRENCIES.iter().map(|_| Figures::default()).collect())
        .collect();
    let mut busy_figures: Vec<Figures> = BUSY_MICROS.iter().map(|_| Figures::default()).collect();
    for round in 1..=rounds {
        for (index, server) in Server::ALL.iter().enumerate() {
            eprintln!("round {round}/{rounds}: {}", server.label());
            let running = start(*server, binaries)?;
            wrk(running.address, 32, 2)?; // warm-up
            for (slot, connections) in CONCURRENCIES.iter().enumerate() {
                let sample = measure(&running, *connections, seconds)?;
                figures[index][slot].samples.push(sample);
            }
            let peak = running.peak_rss();
            for figure in &mut figures[index] {
                figure.peak_rss = figure.peak_rss.max(peak);
            }
        }
        for (index, micros) in BUSY_MICROS.iter().enumerate() {
            let server = Server::NativeBusy(*micros);
            eprintln!("round {round}/{rounds}: {}", server.label());
            let running = start(server, binaries)?;
            wrk(running.address, BUDGET_CONNECTIONS, 2)?; // warm-up
            let sample = measure(&running, BUDGET_CONNECTIONS, seconds)?;
            busy_figures[index].samples.push(sample);
        }
    }

    let native = 0;
    let wasmtime = 3;
    let mut text = String::new();
    writeln!(
        text,
        "# Speed: serverless-wasm next to native hyper and `wasmtime serve`\n"
    )?;
    text.push_str(&machine());
    writeln!(
        text,
        "- versions: {}; {}; {}\n- load: `taskset -c 0 wrk -t1 -cN -d{seconds}s --latency http://ADDR/hello/bench`, N = 1 and 32, after 2 s of warm-up; servers pinned to core {} with `taskset`\n- rounds: {rounds}, the servers taking turns in each; every figure is the median over the rounds, peak RSS the largest `VmHWM`\n- server CPU per request: the server's user and system time over the wrk run (`/proc/PID/stat`, all threads), divided by the requests wrk completed; when the server's core is saturated it is the inverse of its throughput, and it shows what each request costs when it is not\n- command: `just bench-speed` (= `loadgen compare --rounds {rounds} --seconds {seconds} --out {}`)\n",
        version_of(&binaries.host),
        version_of(&binaries.wasmtime),
        String::from_utf8_lossy(
            &Command::new("wrk")
                .arg("--version")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .lines()
        .next()
        .unwrap_or("wrk")
        .trim(),
        cores().saturating_sub(1),
        out.display()
    )?;
    writeln!(text, "Server command lines:\n")?;
    for server in Server::ALL {
        let example = command_line(
            server,
            binaries,
            Path::new("serverless.toml"),
            "127.0.0.1:PORT",
        );
        writeln!(text, "- {}: `{}`", server.label(), example.join(" "))?;
    }
    writeln!(text)?;
    for (slot, connections) in CONCURRENCIES.iter().enumerate() {
        writeln!(text, "## Concurrency {connections}\n")?;
        writeln!(
            text,
            "| server | req/s | p50 | p99 | server CPU per request | peak RSS | throughput vs native | vs wasmtime serve |"
        )?;
        writeln!(text, "|---|---|---|---|---|---|---|---|")?;
        for (index, server) in Server::ALL.iter().enumerate() {
            let figure = &figures[index][slot];
            writeln!(
                text,
                "| {} | {:.0} | {} | {} | {} | {:.1} MiB | {:.0}% | {:.2}x |",
                server.label(),
                figure.per_second(),
                micros(figure.p50()),
                micros(figure.p99()),
                micros(figure.cpu_per_request()),
                figure.peak_rss as f64 / (1024.0 * 1024.0),
                100.0 * figure.per_second() / figures[native][slot].per_second(),
                figure.per_second() / figures[wasmtime][slot].per_second(),
            )?;
        }
        writeln!(text)?;
    }
    let c32 = 1;
    let handler = &figures[1][c32];
    let wasi_http = &figures[2][c32];
    let share = handler.per_second() / figures[native][c32].per_second();
    let over_wasmtime = handler.per_second() / figures[wasmtime][c32].per_second();
    let http_over_wasmtime = wasi_http.per_second() / figures[wasmtime][c32].per_second();
    let added = figures[1][0].p50().as_secs_f64() - figures[native][0].p50().as_secs_f64();
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    writeln!(text, "## Targets\n")?;
    writeln!(
        text,
        "- concurrency 32, handler world: {:.0}% of native (target at least 50%: {}), {over_wasmtime:.2}x `wasmtime serve` (target at least 3x: {})",
        share * 100.0,
        verdict(share >= 0.5),
        verdict(over_wasmtime >= 3.0)
    )?;
    writeln!(
        text,
        "- concurrency 32, wasi:http: {http_over_wasmtime:.2}x `wasmtime serve` (target at least 2x: {})",
        verdict(http_over_wasmtime >= 2.0)
    )?;
    writeln!(
        text,
        "- concurrency 1, handler world p50: native + {:.0} µs (target at most native + 30 µs: {})",
        added * 1e6,
        verdict(added <= 30e-6)
    )?;
    writeln!(text)?;

    let native_c32 = &figures[native][c32];
    let mut curve = vec![(0.0, 1.0)];
    curve.extend(
        BUSY_MICROS
            .iter()
            .zip(&busy_figures)
            .map(|(micros, figure)| {
                (
                    *micros as f64,
                    figure.per_second() / native_c32.per_second(),
                )
            }),
    );
    writeln!(
        text,
        "## Budget per request at concurrency {BUDGET_CONNECTIONS}\n"
    )?;
    writeln!(
        text,
        "Native hyper with a fixed amount of busy work added to every request (`native-hello --busy-us N`, a spin on the clock, on the same core and under the same load). The curve says how much work per request a server can add to native hyper and keep a share of its throughput: the budget that a fresh instance's instantiate, call and slot reset have to fit in, next to the host's own routing and bookkeeping. A spin keeps the caches warm, so real work of the same length does no better.\n"
    )?;
    writeln!(
        text,
        "| added work per request | req/s | server CPU per request | throughput vs native |"
    )?;
    writeln!(text, "|---|---|---|---|")?;
    writeln!(
        text,
        "| none (native hyper) | {:.0} | {} | 100% |",
        native_c32.per_second(),
        micros(native_c32.cpu_per_request())
    )?;
    for (&(micros_added, share_of_native), figure) in curve[1..].iter().zip(&busy_figures) {
        writeln!(
            text,
            "| {micros_added:.0} µs | {:.0} | {} | {:.0}% |",
            figure.per_second(),
            micros(figure.cpu_per_request()),
            100.0 * share_of_native
        )?;
    }
    writeln!(text)?;
    writeln!(
        text,
        "- 50% of native leaves {} of added work per request.",
        describe_budget(&curve, 0.5)
    )?;
    writeln!(
        text,
        "- host serve's handler world ({:.0}% of native) performs like native hyper with {} of added work per request.",
        share * 100.0,
        describe_budget(&curve, share)
    )?;
    write_keeping_findings(out, text)
}

/// Where a throughput share falls on the budget curve, as `about N µs`, or
/// past its slow end. `curve` is (added µs, share of native) by rising
/// added work.
fn describe_budget(curve: &[(f64, f64)], share: f64) -> String {
    match added_work_at(curve, share) {
        Some(micros) => format!("about {micros:.1} µs"),
        None if curve.iter().all(|&(_, measured)| share < measured) => {
            let most = curve.last().map_or(0.0, |&(micros, _)| micros);
            format!("more than {most:.0} µs")
        }
        // Only noise can put a step above native's own throughput.
        None => "no figure (the measured steps do not fall through this share)".to_owned(),
    }
}

/// The added work, in µs, at which throughput falls to `share` of
/// native's, interpolated between the two measured points around it;
/// `None` when `share` is outside the curve. The time per request, the
/// inverse of throughput, grows in proportion to the added work, so the
/// interpolation is linear in `1 / share`, not in `share`.
fn added_work_at(curve: &[(f64, f64)], share: f64) -> Option<f64> {
    curve.windows(2).find_map(|pair| {
        let ((work_before, share_before), (work_after, share_after)) = (pair[0], pair[1]);
        if share_before >= share && share >= share_after {
            if share_before == share_after {
                return Some(work_before);
            }
            let fraction =
                (1.0 / share - 1.0 / share_before) / (1.0 / share_after - 1.0 / share_before);
            Some(work_before + fraction * (work_after - work_before))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_output() {
        let output = "Running 5s test @ http://127.0.0.1:1/hello/x\n  1 threads and 1 connections\n  Latency Distribution\n     50%  151.00us\n     75%  200.00us\n     90%    1.20ms\n     99%    4.31ms\n  30600 requests in 5.00s, 3.3MB read\nRequests/sec:   6120.23\nTransfer/sec:    680.00KB\n";
        let sample = parse_wrk(output).unwrap();
        assert_eq!(sample.p50, Duration::from_micros(151));
        assert_eq!(sample.p99, Duration::from_micros(4310));
        assert!((sample.per_second - 6120.23).abs() < 1e-6);
        assert_eq!(sample.requests, 30600);
    }

    #[test]
    fn a_missing_request_count_fails_the_run() {
        let output = "     50%  1.00ms\n     99%  2.00ms\nRequests/sec: 10.0\n";
        assert!(parse_wrk(output).is_err());
    }

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
    fn the_cpu_time_of_a_live_process_grows_as_it_works() {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let running = Running {
            child,
            address: "127.0.0.1:1".parse().unwrap(),
            _config: tempfile::tempdir().unwrap(),
        };
        // Busy until dropped, which kills it.
        let first = running.cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let later = running.cpu_time().unwrap();
        assert!(later > first, "{first:?} then {later:?}");
    }

    #[test]
    fn the_budget_is_interpolated_between_the_measured_points() {
        let curve = [
            (0.0, 1.0),
            (2.0, 0.7),
            (4.0, 0.54),
            (6.0, 0.46),
            (10.0, 0.3),
        ];
        // Between 54% at 4 µs and 46% at 6 µs: a request takes 1/0.54 =
        // 1.852, 2 and 1/0.46 = 2.174 times native's time, so 50% is 46%
        // of the way, at 4.92 µs.
        let at = |share| added_work_at(&curve, share).unwrap();
        assert!((at(0.5) - 4.92).abs() < 0.005, "{}", at(0.5));
        assert!((at(0.7) - 2.0).abs() < 1e-9, "{}", at(0.7));
        assert!(at(1.0).abs() < 1e-9, "{}", at(1.0));
        assert_eq!(describe_budget(&curve, 0.5), "about 4.9 µs");
        // A flat step (noise) gives its first end.
        let flat = [(0.0, 1.0), (2.0, 0.6), (4.0, 0.6), (6.0, 0.4)];
        assert_eq!(added_work_at(&flat, 0.6), Some(2.0));
        // Slower than the slowest step: past the curve's end.
        assert_eq!(added_work_at(&curve, 0.19), None);
        assert_eq!(describe_budget(&curve, 0.19), "more than 10 µs");
        // Noise can put a step above native: no crossing, and not past
        // the end either.
        let noisy = [(0.0, 1.0), (2.0, 1.05)];
        assert_eq!(
            describe_budget(&noisy, 1.02),
            "no figure (the measured steps do not fall through this share)"
        );
    }

    #[test]
    fn a_server_that_exits_before_listening_says_why() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let native = dir.path().join("old-native-hello");
        std::fs::write(
            &native,
            "#!/bin/sh\necho \"unknown option $2; usage: native-hello [ADDR]\" >&2\nexit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&native, std::fs::Permissions::from_mode(0o755)).unwrap();
        let binaries = Binaries {
            host: PathBuf::from("unused"),
            native,
            wasmtime: PathBuf::from("unused"),
        };
        let error = match start(Server::NativeBusy(3), &binaries) {
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
    fn failed_requests_fail_the_run() {
        let output = "     50%  1.00ms\n     99%  2.00ms\n  Non-2xx or 3xx responses: 12\nRequests/sec: 10.0\n";
        assert!(parse_wrk(output).is_err());
        assert!(parse_wrk("garbage").is_err());
    }
}
