//! The admin endpoints of a running host: health, readiness (also while
//! draining), Prometheus metrics after known traffic, and the route table.

mod support;

use std::time::{Duration, Instant};

use support::backends::EchoServer;
use support::{ConfigDir, Host, get};

fn admin_url(host: &Host, path: &str) -> String {
    format!(
        "http://{}{path}",
        host.admin.expect("admin endpoints are on")
    )
}

/// The value of the metric line that is `series` (name and labels), a
/// space and a number; a missing series fails the test.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

fn config(echo: &EchoServer) -> ConfigDir {
    ConfigDir::new(&format!(
        "[[applications]]\nname = \"hello\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/hello\"\n\n\
         [[applications]]\nname = \"hostile\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/hostile/:action\"\ntimeout = \"3s\"\n\n\
         [[applications]]\nname = \"tcp\"\nfile_path = {:?}\nmethod = \"POST\"\nurl_path = \"/tcp-echo\"\nenv = {{ ECHO_ADDRESS = \"{}\" }}\n",
        guest_artifacts::HELLO_PATH,
        guest_artifacts::TEST_HOSTILE_PATH,
        guest_artifacts::TCP_ECHO_PATH,
        echo.address,
    ))
}

#[tokio::test]
async fn health_routes_and_metrics_after_known_traffic() {
    let echo = EchoServer::start();
    let config = config(&echo);
    let host = Host::start(Some(&config.path()), &[]);
    assert!(host.stdout().contains("admin on http://127.0.0.1:"));

    let health = get(&admin_url(&host, "/healthz")).await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    assert_eq!(get(&admin_url(&host, "/readyz")).await.status, 200);

    let routes: serde_json::Value =
        serde_json::from_str(&get(&admin_url(&host, "/routes")).await.text()).unwrap();
    let hello = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["app"] == "hello")
        .expect("the hello route");
    assert_eq!(hello["path"], "/hello");
    assert_eq!(hello["world"], "handler");

    for _ in 0..3 {
        assert_eq!(get(&host.url("/hello")).await.status, 200);
    }
    assert_eq!(get(&host.url("/nothing")).await.status, 404);
    assert_eq!(get(&host.url("/hostile/panic")).await.status, 500);
    for _ in 0..2 {
        assert_eq!(get(&host.url("/hostile/ok")).await.status, 200);
    }
    let denied = support::send(&support::client(), "POST", &host.url("/tcp-echo"), &[], "x").await;
    assert_eq!(denied.status, 502);

    let metrics = get(&admin_url(&host, "/metrics")).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert_eq!(
        metric(
            &text,
            "serverless_requests_total{app=\"hello\",status=\"200\"}"
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "serverless_requests_total{app=\"-\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "serverless_request_duration_seconds_count{app=\"hello\"}"
        ),
        3.0
    );
    // One app, two statuses: a series each, and one latency series.
    assert_eq!(
        metric(
            &text,
            "serverless_requests_total{app=\"hostile\",status=\"500\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "serverless_requests_total{app=\"hostile\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "serverless_request_duration_seconds_count{app=\"hostile\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(&text, "serverless_log_lines_dropped_total"),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "serverless_guest_failures_total{app=\"hostile\",kind=\"unreachable\"}"
        ),
        1.0,
        "{text}"
    );
    // Counters, in OpenMetrics form: a `counter` type and `_total` samples.
    for lines in [
        "# HELP serverless_outbound_denied Outbound attempts the policy refused since the host started, by interface.\n\
         # TYPE serverless_outbound_denied counter\n",
        "serverless_outbound_denied_total{via=\"outbound-tcp\"} 1\n",
        "# HELP serverless_slow_lane_moves Requests whose guest ran past four epoch slices without waiting and moved to the low-priority slow lane, since the host started.\n\
         # TYPE serverless_slow_lane_moves counter\n\
         serverless_slow_lane_moves_total 0\n",
    ] {
        assert!(text.contains(lines), "{lines:?} in:\n{text}");
    }
    assert_eq!(metric(&text, "serverless_instances_in_flight"), 0.0);
    // The pool is sized for the default --max-instances.
    assert_eq!(metric(&text, "serverless_pool_capacity_instances"), 1000.0);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text: {text}");
}

#[tokio::test]
async fn readiness_turns_false_while_draining_and_health_stays_true() {
    let echo = EchoServer::start();
    let config = config(&echo);
    let host = Host::start(Some(&config.path()), &[]);
    let url = host.url("/hostile/sleep");
    // A request that stays in flight until its 3 s deadline.
    let slow = tokio::spawn(async move { get(&url).await.status });
    let started = Instant::now();
    while metric(
        &get(&admin_url(&host, "/metrics")).await.text(),
        "serverless_instances_in_flight",
    ) < 1.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.signal(libc::SIGTERM);
    host.wait_for_log(&["draining in-flight requests"]);
    assert_eq!(get(&admin_url(&host, "/readyz")).await.status, 503);
    assert_eq!(get(&admin_url(&host, "/healthz")).await.status, 200);
    assert_eq!(slow.await.unwrap(), 504);
}

#[test]
fn admin_endpoints_can_be_turned_off_and_a_bad_address_is_named() {
    let host = Host::start(None, &["--admin-listen", "off"]);
    assert!(host.stdout().contains("admin endpoints: off"));
    assert!(host.admin.is_none());
    let output = support::host_command()
        .args(["serve", "--admin-listen", "localhost"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("or `off`"), "{stderr}");
}

/// A `host serve` started without `--admin-listen`, killed when dropped.
struct Bare {
    child: std::process::Child,
    stdout: String,
}

impl Bare {
    /// Starts `host serve --listen 127.0.0.1:0` and reads stdout up to
    /// the `listening on` line; fails with the host's stderr if it exits.
    fn start() -> Bare {
        use std::io::{BufRead as _, Read as _};
        let child = support::host_command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // From here on, dropping `host` kills and reaps the process.
        let mut host = Bare {
            child,
            stdout: String::new(),
        };
        let mut reader = std::io::BufReader::new(host.child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let mut stderr = String::new();
                let _ = host
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr);
                panic!("the host exited at startup: {stderr}");
            }
            host.stdout.push_str(&line);
            if line.starts_with("listening on http://") {
                return host;
            }
        }
    }

    /// The admin address the banner names.
    fn admin(&self) -> std::net::SocketAddr {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix("admin on http://")?.split(' ').next())
            .unwrap_or_else(|| panic!("no admin line in:\n{}", self.stdout))
            .parse()
            .unwrap()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn with_listen_port_0_and_no_admin_listen_the_admin_port_is_free_too() {
    let (first, second) = (Bare::start(), Bare::start());
    let (one, two) = (first.admin(), second.admin());
    assert_ne!(one, two);
    for admin in [one, two] {
        assert!(admin.ip().is_loopback() && admin.port() != 9464, "{admin}");
        let health = get(&format!("http://{admin}/healthz")).await;
        assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    }
}
