//! `loadgen`: puts a real `host serve` under load and writes what it saw.
//!
//! * `loadgen fairness`: a healthy route alone, then the same while hostile
//!   routes are hammered in parallel; the healthy p99 should stay within 2x.
//! * `loadgen soak`: steady load across the sample routes for a while;
//!   errors should be zero and RSS and fds flat.
//! * `loadgen languages`: size, build time and latency of the samples in
//!   every guest language.
//! * `loadgen compare`: the speed benchmark against native hyper,
//!   `wasmtime serve` (default and tuned pool) and `wash dev`, loaded by
//!   wrk, in the host's default configuration and quiet.
//! * `loadgen streaming`: 1 GiB echo and download through wasi:http next to
//!   native hyper and `wasmtime serve`.
//! * `loadgen routes`: startup, memory and req/s with 1 to 10,000 routes.
//! * `loadgen messaging`: messages per second and publish-to-handler
//!   latency of subscriptions, embedded and on NATS, next to a native
//!   Rust consumer on the same NATS.
//! * `loadgen startup`: start-to-first-response with many routes, cold and
//!   warm compile cache, and memory idle and per in-flight instance.
//!
//! The host runs on its own core and the load on another where the machine
//! has two or more.

mod budget;
mod compare;
mod host;
mod languages;
mod load;
mod messaging;
mod report;
mod routes;
mod servers;
mod startup;
mod stream_client;
mod streaming;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Load for serverless-wasm's fairness benchmark and soak.
#[derive(Parser)]
#[command(name = "loadgen", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Healthy latency alone and next to hostile traffic.
    Fairness {
        /// The `host` binary to run.
        #[arg(long)]
        host: PathBuf,
        /// Seconds per phase.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Steady load across the sample routes.
    Soak {
        /// The `host` binary to run.
        #[arg(long)]
        host: PathBuf,
        /// Seconds of load.
        #[arg(long, default_value_t = 180)]
        seconds: u64,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Throughput and latency next to native hyper, `wasmtime serve` and
    /// `wash dev`.
    Compare {
        #[command(flatten)]
        servers: Servers,
        /// wasmCloud's `wash` CLI.
        #[arg(long)]
        wash: PathBuf,
        /// How many times every server takes its turn.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds of load per server, concurrency and round.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Long wasi:http bodies (echo and download) next to native hyper and
    /// `wasmtime serve`.
    Streaming {
        #[command(flatten)]
        servers: Servers,
        /// How many times every server takes its turn.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// MiB per transfer.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Startup, memory and throughput with many routes.
    Routes {
        /// The `host` binary to run (a release build).
        #[arg(long)]
        host: PathBuf,
        /// The route counts to measure, rising.
        #[arg(long, default_value = "1,100,1000,10000")]
        counts: String,
        /// How many times every configuration takes its turn.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds of load per run.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Startup time with many routes, and memory idle and per instance.
    Startup {
        /// The `host` binary to run (a release build).
        #[arg(long)]
        host: PathBuf,
        /// How many routes, each with its own component file.
        #[arg(long, default_value_t = 50)]
        routes: usize,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Messages per second and publish-to-handler latency of
    /// subscriptions, embedded and on NATS, next to a native consumer.
    Messaging {
        /// The `host` binary to run (a release build).
        #[arg(long)]
        host: PathBuf,
        /// Messages sent one at a time, for latency.
        #[arg(long, default_value_t = 500)]
        latency_messages: usize,
        /// Messages sent at once, for throughput.
        #[arg(long, default_value_t = 5000)]
        throughput_messages: usize,
        /// Where to write the report (Markdown).
        #[arg(long)]
        out: PathBuf,
    },
    /// Size, build time and latency of every guest language's samples.
    Languages {
        /// The `host` binary to run.
        #[arg(long)]
        host: PathBuf,
        /// Seconds of steady load per language.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The Markdown file whose marked table is replaced.
        #[arg(long)]
        out: PathBuf,
    },
}

/// The servers that the speed and streaming suites put side by side.
#[derive(clap::Args)]
struct Servers {
    /// The `host` binary to run (a release build).
    #[arg(long)]
    host: PathBuf,
    /// The `native-hello` binary (a release build).
    #[arg(long)]
    native: PathBuf,
    /// The `wasmtime` CLI.
    #[arg(long)]
    wasmtime: PathBuf,
}

impl Servers {
    fn binaries(self, wash: Option<PathBuf>) -> servers::Binaries {
        servers::Binaries {
            host: self.host,
            native: self.native,
            wasmtime: self.wasmtime,
            wash,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    host::pin_this_process_to_first_core();
    runtime.block_on(async {
        match cli.command {
            Command::Fairness { host, seconds, out } => {
                report::fairness(&host, Duration::from_secs(seconds), &out).await
            }
            Command::Soak { host, seconds, out } => {
                report::soak(&host, Duration::from_secs(seconds), &out).await
            }
            Command::Compare {
                servers,
                wash,
                rounds,
                seconds,
                out,
            } => compare::compare(
                &servers.binaries(Some(wash)),
                &compare::Plan { rounds, seconds },
                &out,
            ),
            Command::Streaming {
                servers,
                rounds,
                mib,
                out,
            } => streaming::streaming(
                &servers.binaries(None),
                &streaming::Plan {
                    rounds,
                    bytes: mib << 20,
                },
                &out,
            ),
            Command::Routes {
                host,
                counts,
                rounds,
                seconds,
                out,
            } => routes::routes(
                &host,
                &routes::Plan {
                    counts: routes::parse_counts(&counts)?,
                    rounds,
                    seconds,
                },
                &out,
            ),
            Command::Startup { host, routes, out } => startup::startup(&host, routes, &out).await,
            Command::Messaging {
                host,
                latency_messages,
                throughput_messages,
                out,
            } => messaging::messaging(&host, latency_messages, throughput_messages, &out).await,
            Command::Languages { host, seconds, out } => {
                languages::languages(&host, Duration::from_secs(seconds), &out).await
            }
        }
    })
}
