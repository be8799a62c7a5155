//! The two runs and their Markdown reports.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::host::RunningHost;
use crate::load::{self, Outcome};

/// The healthy p99 next to hostile traffic may be at most this many times
/// its value alone.
const FAIRNESS_TARGET: f64 = 2.0;

pub(crate) fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

/// The machine and versions, for the top of a report.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = crate::host::cores();
    format!(
        "- machine: {cores} cores, {cpu}, Linux {}\n- serverless-wasm {}; host on core 1, load on core 0 (when there are two cores)\n",
        kernel.trim(),
        env!("CARGO_PKG_VERSION")
    )
}

/// Writes a report to `out` (creating its folder) and prints it.
pub(crate) fn write(out: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    print!("{text}");
    Ok(())
}

/// Like [`write`], but the findings written by hand below the marker in the
/// previous report survive the new run.
pub(crate) fn write_keeping_findings(out: &Path, mut text: String) -> anyhow::Result<()> {
    let previous = std::fs::read_to_string(out).unwrap_or_default();
    let marker = "<!-- findings: kept across runs -->";
    match previous.find(marker) {
        Some(at) => {
            text.push('\n');
            text.push_str(&previous[at..]);
        }
        None => {
            text.push('\n');
            text.push_str(marker);
            text.push('\n');
        }
    }
    write(out, &text)
}

/// One target of the issue, as measured.
#[derive(Debug, PartialEq)]
pub(crate) struct Target {
    /// What was measured and what the target is.
    pub text: String,
    /// Whether the measurement meets it.
    pub met: bool,
}

impl Target {
    pub(crate) fn new(met: bool, text: String) -> Target {
        Target { text, met }
    }
}

/// The "Targets" section: one line per target, met or NOT met.
pub(crate) fn targets_section(targets: &[Target]) -> String {
    let mut text = "## Targets\n\n".to_owned();
    for target in targets {
        let verdict = if target.met { "met" } else { "NOT met" };
        text.push_str(&format!("- {}: **{verdict}**\n", target.text));
    }
    text.push('\n');
    text
}

/// Bytes as MiB with one decimal.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn row(name: &str, outcome: &Outcome) -> String {
    format!(
        "| {name} | {:.0} | {} | {} | {} |\n",
        outcome.throughput(),
        micros(outcome.quantile(0.5)),
        micros(outcome.quantile(0.99)),
        outcome.errors
    )
}

/// Healthy latency alone, then next to hostile traffic.
pub async fn fairness(binary: &Path, phase: Duration, out: &Path) -> anyhow::Result<()> {
    let config = format!(
        r#"[[applications]]
name = "healthy"
file_path = {hello:?}
method = "GET"
url_path = "/hello/:name"

[[applications]]
name = "hostile"
file_path = {hostile:?}
method = "ANY"
url_path = "/hostile/:action"
timeout = "200ms"
max_memory = "32 MiB"
max_response_body = "4 MiB"
max_concurrency = 2
"#,
        hello = guest_artifacts::HELLO_PATH,
        hostile = guest_artifacts::TEST_HOSTILE_PATH,
    );
    let host = RunningHost::start(binary, &config, &["--queue-timeout", "50"])?;
    let healthy = vec!["/hello/fair".to_owned()];
    let actions = std::env::var("LOADGEN_HOSTILE")
        .unwrap_or_else(|_| "spin,memory,recurse,huge,panic,sleep".to_owned());
    let hostile: Vec<String> = actions
        .split(',')
        .map(|action| format!("/hostile/{action}"))
        .collect();
    // Warm up.
    load::run(host.address, &healthy, &[200], 4, Duration::from_secs(2)).await;

    let alone = load::run(host.address, &healthy, &[200], 4, phase).await;
    let hammer = tokio::spawn({
        let address = host.address;
        async move { load::run(address, &hostile, &[500, 503, 504], 8, phase).await }
    });
    let contended = load::run(host.address, &healthy, &[200], 4, phase).await;
    let hostile_outcome = hammer.await.context("the hostile load failed")?;
    drop(host);

    // The same apps on a host that also runs a service spinning forever
    // (it starts with the host, so it has its own host process).
    let spinning_config = format!(
        "{config}\n[[services]]\nname = \"spinner\"\nfile_path = {service:?}\nargs = [\"spin\"]\nrestart = \"always\"\n",
        service = guest_artifacts::SERVICE_HELLO_PATH,
    );
    let host = RunningHost::start_with_admin(binary, &spinning_config, &["--queue-timeout", "50"])?;
    load::run(host.address, &healthy, &[200], 4, Duration::from_secs(2)).await;
    let spinner_before = host.thread_cpu("slow-lane");
    let next_to_service = load::run(host.address, &healthy, &[200], 4, phase).await;
    // The spinner runs on the slow lane's threads; the hello requests
    // never last long enough to move there.
    let spinner_share =
        (host.thread_cpu("slow-lane") - spinner_before).as_secs_f64() / phase.as_secs_f64();
    // The phase counts only if the spinner ran all along, in one run.
    let services: serde_json::Value = serde_json::from_str(&host.admin_get("/services")?)
        .context("the host's /services is not JSON")?;
    let spinner = &services[0];
    if spinner["name"] != "spinner" || spinner["state"] != "running" || spinner["runs"] != 1 {
        bail!("the spinning service did not run through the phase: {spinner}");
    }
    if spinner_share < 0.01 {
        bail!(
            "the spinning service used {:.1}% of a core during the phase: it did not spin",
            spinner_share * 100.0
        );
    }
    drop(host);

    let p99 = |outcome: &load::Outcome| outcome.quantile(0.99).as_secs_f64();
    let ratio = p99(&contended) / p99(&alone).max(1e-9);
    let service_ratio = p99(&next_to_service) / p99(&alone).max(1e-9);
    let verdict = |ratio: f64| {
        if ratio <= FAIRNESS_TARGET {
            "met"
        } else {
            "NOT met"
        }
    };
    let mut text = String::new();
    writeln!(text, "# Fairness: a healthy route next to hostile guests\n")?;
    text.push_str(&machine());
    writeln!(
        text,
        "- command: `just bench-fairness` (= `loadgen fairness --host target/release/host --seconds {} --out {}`)",
        phase.as_secs(),
        out.display()
    )?;
    writeln!(
        text,
        "- healthy: `GET /hello/:name` (guests/rust/hello), 4 closed-loop clients\n- hostile: `/hostile/{{spin,memory,recurse,huge,panic,sleep}}` (guests/rust/test-hostile), 8 closed-loop clients; app limits: timeout 200ms, max_memory 32 MiB, max_response_body 4 MiB, max_concurrency 2\n- spinning service: a second host with the same apps and a `[[services]]` entry running `service_hello spin` (guests/rust/service-hello), a loop that never yields on its own, for the whole phase\n"
    )?;
    writeln!(text, "| phase | healthy req/s | p50 | p99 | errors |")?;
    writeln!(text, "|---|---|---|---|---|")?;
    text.push_str(&row("healthy alone", &alone));
    text.push_str(&row("healthy next to hostile", &contended));
    text.push_str(&row("healthy next to a spinning service", &next_to_service));
    writeln!(
        text,
        "\nThe spinning service's threads (the slow lane) used {:.0}% of a core during its phase, in one run.",
        spinner_share * 100.0
    )?;
    writeln!(
        text,
        "\nHostile requests answered meanwhile: {} (500/503/504 as expected), unexpected answers: {}.\n",
        hostile_outcome.latencies.len(),
        hostile_outcome.errors
    )?;
    writeln!(
        text,
        "**Healthy p99 next to hostile traffic is {ratio:.2}x its value alone; target at most {FAIRNESS_TARGET}x: {}.**\n",
        verdict(ratio)
    )?;
    writeln!(
        text,
        "**Healthy p99 next to a spinning service is {service_ratio:.2}x its value alone; target at most {FAIRNESS_TARGET}x: {}.**",
        verdict(service_ratio)
    )?;
    write_keeping_findings(out, text)
}

/// Steady load across the sample routes, watching errors, RSS and fds.
pub async fn soak(binary: &Path, duration: Duration, out: &Path) -> anyhow::Result<()> {
    let config = format!(
        r#"[[applications]]
name = "hello"
file_path = {hello:?}
method = "GET"
url_path = "/hello/:name"

[[applications]]
name = "echo"
file_path = {echo:?}
method = "ANY"
url_path = "/echo/*"

[[applications]]
name = "env"
file_path = {env:?}
method = "GET"
url_path = "/env"
env = {{ MODE = "soak" }}

[[applications]]
name = "http-hello"
file_path = {http_hello:?}
method = "GET"
url_path = "/http-hello/:name"

[[applications]]
name = "static"
file_path = {statics:?}
method = "GET"
url_path = "/static/*"
[applications.files]
"/site" = "site"
"#,
        hello = guest_artifacts::HELLO_PATH,
        echo = guest_artifacts::ECHO_PATH,
        env = guest_artifacts::ENV_PATH,
        http_hello = guest_artifacts::HTTP_HELLO_PATH,
        statics = guest_artifacts::STATIC_FILES_PATH,
    );
    let host = RunningHost::start(binary, &config, &[])?;
    let paths: Vec<String> = [
        "/hello/soak",
        "/echo/a/b?x=1",
        "/env",
        "/http-hello/soak",
        "/static/index.html",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    load::run(host.address, &paths, &[200], 16, Duration::from_secs(5)).await;

    let sample_every = Duration::from_secs(10).min(duration / 4);
    let mut samples = vec![(Duration::ZERO, host.rss(), host.fds())];
    let run = tokio::spawn({
        let (address, paths) = (host.address, paths.clone());
        async move { load::run(address, &paths, &[200], 16, duration).await }
    });
    let started = std::time::Instant::now();
    while !run.is_finished() {
        tokio::time::sleep(sample_every).await;
        samples.push((started.elapsed(), host.rss(), host.fds()));
    }
    let outcome = run.await.context("the soak load failed")?;
    let (first_rss, first_fds) = (samples[0].1, samples[0].2);
    let (last_rss, last_fds) = samples.last().map_or((0, 0), |s| (s.1, s.2));
    let rss_growth = last_rss.saturating_sub(first_rss);
    let flat = rss_growth < 16 << 20 && last_fds <= first_fds + 4;
    let mut text = String::new();
    writeln!(text, "# Soak: steady load across the sample routes\n")?;
    text.push_str(&machine());
    writeln!(
        text,
        "- command: `just soak` (= `loadgen soak --host target/release/host --seconds {} --out {}`)\n- routes: {}; 16 closed-loop clients\n",
        duration.as_secs(),
        out.display(),
        paths.join(", ")
    )?;
    writeln!(text, "| requests | req/s | p50 | p99 | errors |")?;
    writeln!(text, "|---|---|---|---|---|")?;
    writeln!(
        text,
        "| {} | {:.0} | {} | {} | {} |\n",
        outcome.latencies.len(),
        outcome.throughput(),
        micros(outcome.quantile(0.5)),
        micros(outcome.quantile(0.99)),
        outcome.errors
    )?;
    writeln!(text, "| time | RSS | open fds |")?;
    writeln!(text, "|---|---|---|")?;
    for (at, rss, fds) in &samples {
        writeln!(
            text,
            "| {:.0} s | {:.1} MiB | {fds} |",
            at.as_secs_f64(),
            *rss as f64 / (1 << 20) as f64
        )?;
    }
    writeln!(
        text,
        "\n**Errors: {}. RSS grew by {:.1} MiB, fds from {first_fds} to {last_fds}: {}.**",
        outcome.errors,
        rss_growth as f64 / (1 << 20) as f64,
        if outcome.errors == 0 && flat {
            "flat, no errors"
        } else {
            "NOT flat or with errors"
        }
    )?;
    write(out, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_say_met_or_not() {
        let section = targets_section(&[
            Target::new(true, "a: 2x (target at least 1.5x)".to_owned()),
            Target::new(false, "b: 1.1x (target at least 1.3x)".to_owned()),
        ]);
        assert_eq!(
            section,
            "## Targets\n\n- a: 2x (target at least 1.5x): **met**\n- b: 1.1x (target at least 1.3x): **NOT met**\n\n"
        );
        assert_eq!(mib(3 << 20), "3.0 MiB");
    }

    #[test]
    fn findings_below_the_marker_survive_a_new_report() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.md");
        write_keeping_findings(&out, "# First run\n".to_owned()).unwrap();
        let first = std::fs::read_to_string(&out).unwrap();
        assert!(first.ends_with("<!-- findings: kept across runs -->\n"));
        std::fs::write(&out, format!("{first}\n## Findings\n\nwritten by hand\n")).unwrap();
        write_keeping_findings(&out, "# Second run\n".to_owned()).unwrap();
        let second = std::fs::read_to_string(&out).unwrap();
        assert!(second.starts_with("# Second run\n"));
        assert!(!second.contains("First run"));
        assert!(second.contains("## Findings\n\nwritten by hand\n"));
        assert_eq!(second.matches("<!-- findings").count(), 1);
    }
}
