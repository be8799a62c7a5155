//! `loadgen streaming`: long bodies through wasi:http. A 1 GiB echo (the
//! request body streamed back as it arrives) and a 1 GiB download, on
//! `host serve`, `wasmtime serve` (default and tuned pool) and native
//! hyper, one transfer at a time from a client on core 0
//! ([`crate::stream_client`]). The
//! report gives MB/s, the server's CPU time per GiB and its resident memory
//! idle and at its peak during the transfer, and the host's ratio to
//! `wasmtime serve`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::report::{Target, machine, mib, targets_section, write_keeping_findings};
use crate::servers::{Binaries, Logging, Pool, Server, Workload, World, start, version_of};
use crate::stream_client::{Mode, transfer};
use crate::wrk::median;

/// The servers, in the order they take turns.
const SERVERS: [Server; 4] = [
    Server::Native,
    Server::Host(World::WasiHttp, Logging::Default),
    Server::Wasmtime(Pool::Default),
    Server::Wasmtime(Pool::Tuned),
];

/// The host, whose figures the targets are about.
const HOST: Server = Server::Host(World::WasiHttp, Logging::Default);

/// The reference of the targets.
const WASMTIME: Server = Server::Wasmtime(Pool::Default);

/// How much the host's resident memory may grow during a transfer and
/// still count as flat: far less than any buffered stream.
const FLAT_RSS_GROWTH: u64 = 32 << 20;

/// How big and how often.
pub struct Plan {
    /// Rounds of every server taking its turn.
    pub rounds: usize,
    /// Bytes per transfer.
    pub bytes: u64,
}

/// What one server measured in one mode over the rounds.
#[derive(Default, Clone)]
struct Measured {
    /// MB/s (10^6 bytes per second), one per round.
    rates: Vec<f64>,
    /// Server CPU seconds per GiB, one per round.
    cpu_per_gib: Vec<f64>,
    /// RSS before the transfer, largest over the rounds.
    idle_rss: u64,
    /// Peak RSS during the transfer, largest over the rounds.
    peak_rss: u64,
    /// Peak less idle RSS within one round, largest over the rounds (the
    /// two largest above may come from different rounds).
    largest_growth: u64,
}

impl Measured {
    fn rate(&self) -> f64 {
        median(&mut self.rates.clone())
    }

    fn growth(&self) -> u64 {
        self.largest_growth
    }
}

/// The streaming targets (issue 23, item 3): the host at least 90% of
/// `wasmtime serve`'s MB/s, and its memory flat.
fn targets(host: &[Measured], wasmtime: &[Measured]) -> Vec<Target> {
    let mut targets = Vec::new();
    for ((mode, host), wasmtime) in Mode::ALL.iter().zip(host).zip(wasmtime) {
        let share = host.rate() / wasmtime.rate().max(1e-9);
        targets.push(Target::new(
            share >= 0.9,
            format!(
                "{}: host serve {:.0} MB/s, {:.0}% of `wasmtime serve`'s {:.0} MB/s (target at least 90%)",
                mode.label(),
                host.rate(),
                share * 100.0,
                wasmtime.rate()
            ),
        ));
        targets.push(Target::new(
            host.growth() <= FLAT_RSS_GROWTH,
            format!(
                "{}: host RSS {} idle, {} at its peak during the transfer, {} more (flat: at most {} more)",
                mode.label(),
                mib(host.idle_rss),
                mib(host.peak_rss),
                mib(host.growth()),
                mib(FLAT_RSS_GROWTH)
            ),
        ));
    }
    targets
}

/// Runs the streaming suite and writes its report to `out`.
pub fn streaming(binaries: &Binaries, plan: &Plan, out: &Path) -> anyhow::Result<()> {
    // measured[server][mode]
    let mut measured = vec![vec![Measured::default(); Mode::ALL.len()]; SERVERS.len()];
    let warm_up = plan.bytes.min(16 << 20);
    for round in 1..=plan.rounds {
        for (server, measured) in SERVERS.iter().zip(&mut measured) {
            eprintln!("round {round}/{}: {}", plan.rounds, server.stream_label());
            let running = start(*server, binaries, Workload::Stream)?;
            for mode in Mode::ALL {
                transfer(running.address, mode, warm_up)?;
            }
            for (mode, figures) in Mode::ALL.iter().zip(measured.iter_mut()) {
                std::thread::sleep(Duration::from_millis(200));
                let idle = running.rss();
                running.reset_peak_rss()?;
                let cpu_before = running.cpu_time()?;
                let took = transfer(running.address, *mode, plan.bytes)?;
                let cpu = running.cpu_time()?.saturating_sub(cpu_before);
                figures
                    .rates
                    .push(plan.bytes as f64 / took.as_secs_f64() / 1e6);
                figures
                    .cpu_per_gib
                    .push(cpu.as_secs_f64() * (1u64 << 30) as f64 / plan.bytes as f64);
                let peak = running.peak_rss();
                figures.idle_rss = figures.idle_rss.max(idle);
                figures.peak_rss = figures.peak_rss.max(peak);
                figures.largest_growth = figures.largest_growth.max(peak.saturating_sub(idle));
            }
        }
    }
    let of = |server: Server| {
        let index = SERVERS.iter().position(|&s| s == server).unwrap_or(0);
        &measured[index]
    };

    let mut text = String::new();
    writeln!(text, "# Streaming: long bodies through wasi:http\n")?;
    text.push_str(&machine());
    writeln!(
        text,
        "- versions: {}; {}",
        version_of(&binaries.host),
        version_of(&binaries.wasmtime)
    )?;
    writeln!(
        text,
        "- transfers: {} MiB each, one at a time on a new connection, from loadgen's own client on core 0 (plain HTTP/1.1, 1 MiB reads and writes, the request body written from a thread of its own; `crates/loadgen/src/stream_client.rs`); echo is `POST /stream` with the body streamed back as it arrives, download is `GET /stream?bytes=N`; the component is guests/rust/http-stream (chunks of up to 64 KiB, each write waiting for the stream's permit), native hyper serves the same from native-hello",
        plan.bytes >> 20
    )?;
    writeln!(
        text,
        "- rounds: {}, the servers taking turns, each started afresh and warmed with a {} MiB transfer of each kind; MB/s (10^6 bytes/s) and CPU per GiB are medians over the rounds; RSS idle is `VmRSS` before a transfer, peak the `VmHWM` during it (reset before it through `/proc/PID/clear_refs`), largest over the rounds",
        plan.rounds,
        warm_up >> 20
    )?;
    writeln!(
        text,
        "- the host runs its default configuration (`RUST_LOG` unset); every server starts with `RUST_BACKTRACE` unset (see bench/results.md)"
    )?;
    writeln!(
        text,
        "- command: `just bench-streaming` (= `loadgen streaming --rounds {} --mib {} --out {}`)\n",
        plan.rounds,
        plan.bytes >> 20,
        out.display()
    )?;
    writeln!(text, "Server command lines:\n")?;
    for server in SERVERS {
        let line = server.command_line(
            binaries,
            Workload::Stream,
            Path::new("serverless.toml"),
            "127.0.0.1:PORT",
        )?;
        writeln!(text, "- {}: `{}`", server.stream_label(), line.join(" "))?;
    }
    writeln!(text)?;
    for (slot, mode) in Mode::ALL.iter().enumerate() {
        writeln!(text, "## {} {} MiB\n", mode.label(), plan.bytes >> 20)?;
        writeln!(
            text,
            "| server | MB/s | server CPU per GiB | RSS idle | RSS peak | vs wasmtime serve | vs tuned | vs native |"
        )?;
        writeln!(text, "|---|---|---|---|---|---|---|---|")?;
        for (server, figures) in SERVERS.iter().zip(&measured) {
            let figure = &figures[slot];
            let ratio = |other: Server| figure.rate() / of(other)[slot].rate().max(1e-9);
            writeln!(
                text,
                "| {} | {:.0} | {:.2} s | {} | {} | {:.2}x | {:.2}x | {:.0}% |",
                server.stream_label(),
                figure.rate(),
                median(&mut figure.cpu_per_gib.clone()),
                mib(figure.idle_rss),
                mib(figure.peak_rss),
                ratio(WASMTIME),
                ratio(Server::Wasmtime(Pool::Tuned)),
                100.0 * ratio(Server::Native),
            )?;
        }
        writeln!(text)?;
    }
    text.push_str(&targets_section(&targets(of(HOST), of(WASMTIME))));
    write_keeping_findings(out, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(rate: f64, idle: u64, peak: u64) -> Measured {
        Measured {
            rates: vec![rate, rate * 2.0, rate / 2.0],
            cpu_per_gib: vec![1.0],
            idle_rss: idle,
            peak_rss: peak,
            largest_growth: peak - idle,
        }
    }

    #[test]
    fn targets_compare_the_median_rate_and_the_rss_growth() {
        let host = [
            measured(800.0, 20 << 20, 30 << 20),
            measured(900.0, 20 << 20, 200 << 20),
        ];
        let wasmtime = [measured(850.0, 0, 0), measured(1100.0, 0, 0)];
        let targets = targets(&host, &wasmtime);
        let met: Vec<bool> = targets.iter().map(|t| t.met).collect();
        assert_eq!(met, [true, true, false, false], "{targets:?}");
        assert_eq!(
            targets[0].text,
            "echo: host serve 800 MB/s, 94% of `wasmtime serve`'s 850 MB/s (target at least 90%)"
        );
        assert_eq!(
            targets[3].text,
            "download: host RSS 20.0 MiB idle, 200.0 MiB at its peak during the transfer, 180.0 MiB more (flat: at most 32.0 MiB more)"
        );
    }
}
