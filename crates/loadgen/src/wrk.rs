//! Load from `wrk`, pinned to core 0, and what its output says: the
//! request rate and latency percentiles of one run, and their medians over
//! rounds.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::servers::Running;

/// What one wrk run measured.
#[derive(Clone, Copy, Default, Debug)]
pub struct Sample {
    /// Requests per second over the run.
    pub per_second: f64,
    /// The median latency.
    pub p50: Duration,
    /// The 99th percentile latency.
    pub p99: Duration,
    /// Requests completed in the run.
    pub requests: u64,
    /// The server's CPU time (all threads) per completed request.
    pub cpu_per_request: Duration,
}

/// One wrk run: where, how many connections, how long, and optionally a
/// Lua script that picks each request's path.
pub struct Load<'a> {
    /// The server.
    pub address: SocketAddr,
    /// The path of every request, unless the script picks one.
    pub path: &'a str,
    /// Open connections (one wrk thread drives them all).
    pub connections: u32,
    /// How long the run lasts.
    pub seconds: u64,
    /// A `wrk -s` script.
    pub script: Option<&'a Path>,
}

/// `wrk`'s version line, for the top of a report.
pub fn version() -> String {
    let output = Command::new("wrk")
        .arg("--version")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&output)
        .lines()
        .next()
        .unwrap_or("wrk")
        .trim()
        .to_owned()
}

/// Runs wrk on core 0 and reads its output.
pub fn run(load: &Load<'_>) -> anyhow::Result<Sample> {
    let url = format!("http://{}{}", load.address, load.path);
    let mut command = Command::new("taskset");
    command
        .args(["-c", "0", "wrk", "-t1", "--latency"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds));
    if let Some(script) = load.script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(&url)
        .output()
        .context("cannot run wrk (guests/tools/install bench installs it)")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// wrk against `running`, with the server's CPU time per request.
pub fn measure(running: &Running, load: &Load<'_>) -> anyhow::Result<Sample> {
    let cpu_before = running.cpu_time()?;
    let mut sample = run(load)?;
    let cpu = running.cpu_time()?.saturating_sub(cpu_before);
    sample.cpu_per_request =
        Duration::from_secs_f64(cpu.as_secs_f64() / sample.requests.max(1) as f64);
    Ok(sample)
}

/// A wrk duration such as `151.00us` or `1.20ms`.
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
/// percentiles from `wrk --latency`; failed requests fail the run.
pub fn parse(output: &str) -> anyhow::Result<Sample> {
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

/// The median (the upper one of an even count); zero when there is none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The samples of one server under one load, over every round.
#[derive(Default)]
pub struct Figures {
    /// One per round.
    pub samples: Vec<Sample>,
    /// The largest peak RSS (`VmHWM`) seen after a round, in bytes.
    pub peak_rss: u64,
}

impl Figures {
    /// The median over the rounds of one figure of the samples.
    fn median_of(&self, figure: impl Fn(&Sample) -> f64) -> f64 {
        median(&mut self.samples.iter().map(figure).collect::<Vec<_>>())
    }

    /// Median requests per second.
    pub fn per_second(&self) -> f64 {
        self.median_of(|s| s.per_second)
    }

    /// Median p50.
    pub fn p50(&self) -> Duration {
        Duration::from_secs_f64(self.median_of(|s| s.p50.as_secs_f64()))
    }

    /// Median p99.
    pub fn p99(&self) -> Duration {
        Duration::from_secs_f64(self.median_of(|s| s.p99.as_secs_f64()))
    }

    /// Median server CPU per request.
    pub fn cpu_per_request(&self) -> Duration {
        Duration::from_secs_f64(self.median_of(|s| s.cpu_per_request.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_output() {
        let output = "Running 5s test @ http://127.0.0.1:1/hello/x\n  1 threads and 1 connections\n  Latency Distribution\n     50%  151.00us\n     75%  200.00us\n     90%    1.20ms\n     99%    4.31ms\n  30600 requests in 5.00s, 3.3MB read\nRequests/sec:   6120.23\nTransfer/sec:    680.00KB\n";
        let sample = parse(output).unwrap();
        assert_eq!(sample.p50, Duration::from_micros(151));
        assert_eq!(sample.p99, Duration::from_micros(4310));
        assert!((sample.per_second - 6120.23).abs() < 1e-6);
        assert_eq!(sample.requests, 30600);
    }

    #[test]
    fn a_missing_request_count_fails_the_run() {
        let output = "     50%  1.00ms\n     99%  2.00ms\nRequests/sec: 10.0\n";
        assert!(parse(output).is_err());
    }

    #[test]
    fn failed_requests_fail_the_run() {
        let output = "     50%  1.00ms\n     99%  2.00ms\n  Non-2xx or 3xx responses: 12\nRequests/sec: 10.0\n";
        assert!(parse(output).is_err());
        assert!(parse("garbage").is_err());
    }

    #[test]
    fn durations_in_every_unit_wrk_prints() {
        assert_eq!(parse_duration("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.50m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("3.00ms"), Some(Duration::from_millis(3)));
        assert_eq!(parse_duration("12"), None);
        assert_eq!(parse_duration("1.0h"), None);
    }

    #[test]
    fn medians_of_odd_even_and_empty_rounds() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(&mut []), 0.0);
        let figures = Figures {
            samples: [30.0, 10.0, 20.0]
                .iter()
                .map(|&per_second| Sample {
                    per_second,
                    p50: Duration::from_micros(per_second as u64),
                    ..Sample::default()
                })
                .collect(),
            peak_rss: 0,
        };
        assert_eq!(figures.per_second(), 20.0);
        assert_eq!(figures.p50(), Duration::from_micros(20));
    }
}
