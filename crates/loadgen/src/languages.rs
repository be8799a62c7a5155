//! `loadgen languages`: for every guest language, the size and clean build
//! time of its samples, the first request after the host starts, and the
//! steady-state latency of `hello` (a fresh instance per request). The
//! table replaces the marked section of `guests/README.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::host::RunningHost;
use crate::load;
use crate::report::{machine, micros};

/// Every language with samples, in the order of the table.
const LANGUAGES: &[&str] = &["rust", "c", "cpp", "python", "javascript", "go", "zig"];

/// The table sits between these lines in the output file.
const TABLE_START: &str = "<!-- languages-table:start (written by `just bench-languages`) -->";
const TABLE_END: &str = "<!-- languages-table:end -->";

/// How many fresh hosts the first-request latency is the median of.
const FIRST_REQUEST_RUNS: usize = 5;

/// What was measured for one language.
struct Measured {
    language: &'static str,
    build: Duration,
    sizes: [u64; 3],
    first_request: Duration,
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// Builds `language`'s samples from a clean state into `out`, returning
/// how long it took.
fn build(repo: &Path, language: &str, out: &Path) -> anyhow::Result<Duration> {
    let command = if language == "rust" {
        // A clean target folder, so that the time includes the bindings
        // crates as the other languages' times include their generators.
        let mut command = Command::new("cargo");
        command
            .current_dir(repo)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .args(["-p", "hello", "-p", "echo", "-p", "tcp-echo"])
            .env("CARGO_TARGET_DIR", out.join("cargo-target"));
        command
    } else {
        let mut command = Command::new(repo.join("guests").join(language).join("build"));
        command.arg(out);
        command
    };
    // This process is pinned to one core; the build may use them all.
    let cores = crate::host::cores();
    let mut command = if cores >= 2 && Path::new("/usr/bin/taskset").exists() {
        let mut pinned = Command::new("taskset");
        pinned
            .args(["-c", &format!("0-{}", cores - 1)])
            .arg(command.get_program())
            .args(command.get_args());
        if let Some(dir) = command.get_current_dir() {
            pinned.current_dir(dir);
        }
        for (name, value) in command.get_envs() {
            if let Some(value) = value {
                pinned.env(name, value);
            }
        }
        pinned
    } else {
        command
    };
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run the {language} build"))?;
    let took = started.elapsed();
    if !status.success() {
        bail!("the {language} build failed ({status})");
    }
    if language == "rust" {
        let built = out.join("cargo-target/wasm32-wasip2/release");
        for (from, to) in [("hello", "hello"), ("echo", "echo"), ("tcp_echo", "tcp")] {
            std::fs::copy(
                built.join(format!("{from}.wasm")),
                out.join(format!("{to}.wasm")),
            )
            .with_context(|| format!("the Rust build made no {from}.wasm"))?;
        }
    }
    Ok(took)
}

fn hello_config(hello: &Path) -> String {
    format!(
        "[[applications]]\nname = \"hello\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/hello/:name\"\n",
        hello.display().to_string()
    )
}

/// The median time of the first `GET` after a fresh host reports that it
/// listens.
async fn first_request(binary: &Path, hello: &Path) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..FIRST_REQUEST_RUNS {
        let host = RunningHost::start(binary, &hello_config(hello), &[])?;
        let outcome = load::once(host.address, "/hello/first").await;
        times.push(outcome.with_context(|| "the first request failed")?);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

async fn measure(
    repo: &Path,
    binary: &Path,
    language: &'static str,
    seconds: Duration,
) -> anyhow::Result<Measured> {
    let out = tempfile::tempdir()?;
    eprintln!("{language}: building");
    let build = build(repo, language, out.path())?;
    let component = |name: &str| out.path().join(format!("{name}.wasm"));
    let mut sizes = [0; 3];
    for (size, name) in sizes.iter_mut().zip(["hello", "echo", "tcp"]) {
        *size = std::fs::metadata(component(name))
            .with_context(|| format!("the {language} build made no {name}.wasm"))?
            .len();
    }
    eprintln!("{language}: first requests");
    let first_request = first_request(binary, &component("hello")).await?;
    eprintln!("{language}: steady load");
    let host = RunningHost::start(binary, &hello_config(&component("hello")), &[])?;
    let path = vec!["/hello/steady".to_owned()];
    load::run(host.address, &path, &[200], 1, Duration::from_secs(1)).await;
    let steady = load::run(host.address, &path, &[200], 1, seconds).await;
    if steady.errors > 0 {
        bail!("{language}: {} requests to hello failed", steady.errors);
    }
    Ok(Measured {
        language,
        build,
        sizes,
        first_request,
        p50: steady.quantile(0.5),
        p99: steady.quantile(0.99),
        per_second: steady.throughput(),
    })
}

fn kib(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// Measures every language and writes the table into `out`.
pub async fn languages(binary: &Path, seconds: Duration, out: &Path) -> anyhow::Result<()> {
    let repo: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut rows = Vec::new();
    for language in LANGUAGES {
        rows.push(measure(&repo, binary, language, seconds).await?);
    }
    let mut table = String::new();
    writeln!(table, "{TABLE_START}")?;
    table.push_str(&machine());
    writeln!(
        table,
        "- command: `just bench-languages` (= `loadgen languages --host target/release/host --seconds {} --out {}`); release host, one fresh instance per request\n- build: clean build of the three samples (Rust: `cargo build --release` with an empty target folder)\n- first request: median over {FIRST_REQUEST_RUNS} fresh hosts of the first `GET /hello/:name` after the host listens\n- steady: one closed-loop client on `GET /hello/:name` for {} s\n",
        seconds.as_secs(),
        out.display(),
        seconds.as_secs()
    )?;
    writeln!(
        table,
        "| language | hello | echo | tcp | build (3 samples) | first request | hello p50 | hello p99 | hello req/s |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|---|---|---|")?;
    for row in &rows {
        writeln!(
            table,
            "| {} | {} | {} | {} | {:.1} s | {} | {} | {} | {:.0} |",
            row.language,
            kib(row.sizes[0]),
            kib(row.sizes[1]),
            kib(row.sizes[2]),
            row.build.as_secs_f64(),
            micros(row.first_request),
            micros(row.p50),
            micros(row.p99),
            row.per_second
        )?;
    }
    write!(table, "{TABLE_END}")?;
    println!("{table}");

    let text =
        std::fs::read_to_string(out).with_context(|| format!("cannot read {}", out.display()))?;
    let (Some(start), Some(end)) = (text.find(TABLE_START), text.find(TABLE_END)) else {
        bail!(
            "{} has no table markers; add the lines\n{TABLE_START}\n{TABLE_END}\nwhere the table belongs",
            out.display()
        );
    };
    let updated = format!(
        "{}{table}{}",
        &text[..start],
        &text[end + TABLE_END.len()..]
    );
    std::fs::write(out, updated).with_context(|| format!("cannot write {}", out.display()))
}
