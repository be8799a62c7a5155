//! Closed-loop load: a number of workers, each sending one request after
//! another to its share of the paths until the time is up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What one run of load saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every successful request.
    pub latencies: Vec<Duration>,
    /// Requests answered with a status other than the expected one, or
    /// failed outright.
    pub errors: u64,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl Outcome {
    /// The latency at quantile `q` (0.5 for the median).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index]
    }

    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Runs `workers` loops against `paths` (round robin), each request
/// expected to answer with one of `ok_statuses`, for `duration`.
pub async fn run(
    address: SocketAddr,
    paths: &[String],
    ok_statuses: &[u16],
    workers: usize,
    duration: Duration,
) -> Outcome {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let paths: Arc<Vec<String>> = Arc::new(paths.to_vec());
    let ok: Arc<Vec<u16>> = Arc::new(ok_statuses.to_vec());
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, paths, ok) = (client.clone(), paths.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut next = worker;
            while Instant::now() < end {
                let path = &paths[next % paths.len()];
                next += 1;
                let Ok(request) = http::Request::get(format!("http://{address}{path}"))
                    .body(Full::new(Bytes::new()))
                else {
                    outcome.errors += 1;
                    continue;
                };
                let sent = Instant::now();
                let status = match client.request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.into_body().collect().await {
                            Ok(_) => Some(status),
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                match status {
                    Some(status) if ok.contains(&status) => outcome.latencies.push(sent.elapsed()),
                    _ => outcome.errors += 1,
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        if let Ok(outcome) = task.await {
            total.latencies.extend(outcome.latencies);
            total.errors += outcome.errors;
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// One `GET` on a new connection: how long until the whole `200` response
/// arrived.
pub async fn once(address: SocketAddr, path: &str) -> anyhow::Result<Duration> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request =
        http::Request::get(format!("http://{address}{path}")).body(Full::new(Bytes::new()))?;
    let sent = Instant::now();
    let response = client.request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    let took = sent.elapsed();
    anyhow::ensure!(status == 200, "GET {path} answered {status}");
    Ok(took)
}
