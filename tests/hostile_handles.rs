//! Hostile guests against the host's file descriptors: every OS handle a
//! request holds (mounted folders, opened files, `wasi:sockets` sockets,
//! `outbound-tcp` connections) counts against one per-request budget, and
//! all requests together against a host-wide budget kept below the
//! process's open-file limit.

mod support;

use std::os::unix::process::CommandExt as _;

use serverless_runtime::MAX_HANDLES_PER_REQUEST;
use support::backends::EchoServer;
use support::{ConfigDir, Host, get};

/// The probe with the folder `site` (holding `f.txt`) mounted at `/site`,
/// allowed far more outbound-tcp connections than the handle budget.
fn mounted_probe() -> ConfigDir {
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/probe/:action\"\nmax_tcp_connections = 1000\n[applications.files]\n\"/site\" = \"site\"\n",
        guest_artifacts::TEST_PROBE_PATH
    ));
    std::fs::create_dir(config.dir.path().join("site")).unwrap();
    std::fs::write(config.dir.path().join("site/f.txt"), "x").unwrap();
    config
}

#[tokio::test]
async fn a_request_holds_at_most_its_budget_of_descriptors_whatever_opens_them() {
    let config = mounted_probe();
    let backend = EchoServer::start();
    let host = Host::start(
        Some(&config.path()),
        &["--allow-tcp", &backend.address.to_string()],
    );
    // One request first, so that every lazily opened descriptor of the
    // host is open before the baseline is taken.
    assert_eq!(
        get(&host.url("/probe/sockets?count=1")).await.text(),
        "created 1"
    );
    let baseline = host.open_fds();
    // The mounted folder is one of the request's handles.
    let room = MAX_HANDLES_PER_REQUEST - 1;
    let limit_line = format!(
        "this request already holds {MAX_HANDLES_PER_REQUEST} OS handles (files, sockets and connections), its limit"
    );
    let reply = get(&host.url("/probe/sockets?count=10000")).await;
    assert_eq!(
        reply.text(),
        format!("created {room} then new-socket-limit")
    );
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        &format!("refused to open a TCP socket: {limit_line}"),
    ]);
    let reply = get(&host.url("/probe/open-files?path=/site/f.txt&count=10000")).await;
    assert_eq!(reply.text(), format!("opened {room} then Uncategorized"));
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        &format!("refused to open \"f.txt\": {limit_line}"),
    ]);
    // outbound-tcp connections count too: the app's own cap is far above
    // the budget, so the budget is what stops them.
    let reply = get(&host.url(&format!(
        "/probe/tcp-hold?addr={}&count=10000",
        backend.address
    )))
    .await;
    assert_eq!(
        reply.text(),
        format!("opened {room} then Error::LimitReached")
    );
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        &format!(
            "refused outbound TCP connection to {}: {limit_line}",
            backend.address
        ),
    ]);
    // Everything the requests held is closed with them: a request's store
    // is dropped just after its response goes out, so wait for that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut after = host.open_fds();
    while after > baseline + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        after = host.open_fds();
    }
    assert!(
        after <= baseline + 2,
        "{after} descriptors open after the requests, {baseline} before"
    );
}

/// The host command, run under an open-file limit (soft and hard) of
/// `limit`, so that it cannot raise it.
fn host_command_with_open_file_limit(limit: libc::rlim_t) -> std::process::Command {
    let mut command = support::host_command();
    // SAFETY: setrlimit in the child before exec touches nothing else.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

/// How many folders the app `wide` mounts: each is a handle its requests
/// hold from their start.
const WIDE_MOUNTS: usize = 200;

/// [`mounted_probe`] and the probe again as the app `wide` under
/// `/wide/:action`, with [`WIDE_MOUNTS`] folders mounted.
fn mounted_probe_and_wide() -> ConfigDir {
    let config = mounted_probe();
    let mut wide = format!(
        "\n[[applications]]\nname = \"wide\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/wide/:action\"\n[applications.files]\n",
        guest_artifacts::TEST_PROBE_PATH
    );
    for mount in 0..WIDE_MOUNTS {
        wide.push_str(&format!("\"/m{mount}\" = \"site\"\n"));
    }
    let path = config.path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&wide);
    std::fs::write(&path, text).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_guests_together_stay_below_the_open_file_limit() {
    let config = mounted_probe_and_wide();
    let host = Host::start_with(
        host_command_with_open_file_limit(1024),
        Some(&config.path()),
        &["--max-connections", "500"],
    );
    // What the connections and the host's reserve of 256 leave.
    let budget = 1024 - 500 - 256;
    host.wait_for_log(&[&format!(
        "guests may hold {budget} OS handles (files, sockets, connections) together, 256 per request; the rest of the 1024 open files, 756, is kept for the host: its client connections (--max-connections), listeners, pooled connections and compile cache"
    )]);
    let host_line = format!(
        "the host's guests already hold {budget} OS handles, the host-wide limit kept below its open-file limit"
    );
    // A request of `wide` holds its mounts while it sleeps.
    let sleeper = host.url("/wide/sleep?ms=3000");
    let sleeping = tokio::spawn(async move { get(&sleeper).await });
    host.wait_for_log(&["sleeping 3000 ms"]);
    // Another request creates sockets until the host-wide budget is
    // spent: what is left after both requests' mounts.
    let reply = get(&host.url("/probe/sockets?count=10000")).await;
    assert_eq!(
        reply.text(),
        format!("created {} then new-socket-limit", budget - WIDE_MOUNTS - 1)
    );
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        &format!("refused to open a TCP socket: {host_line}"),
    ]);
    // A request whose mounted folders do not fit while the sleeper holds
    // its own is refused for capacity: 503, to be retried.
    let reply = get(&host.url("/wide/params")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("retry-after"), Some("1"));
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        &format!("cannot open the mounted folders: {host_line}"),
    ]);
    assert_eq!(sleeping.await.unwrap().text(), "slept");
    // The budget comes back when the request's store is dropped, just
    // after its response has gone out; the host kept accepting meanwhile.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = get(&host.url("/probe/sockets?count=10")).await;
        if reply.status == 200 {
            assert_eq!(reply.text(), "created 10");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the budget never came back: {} {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[test]
fn the_connection_cap_and_the_guests_budget_fit_in_the_open_file_limit() {
    let config = mounted_probe();
    // By default, half the limit for connections, 256 for the host, and
    // the guests keep the rest, a quarter.
    let host = Host::start_with(
        host_command_with_open_file_limit(1024),
        Some(&config.path()),
        &[],
    );
    host.wait_for_log(&[
        "guests may hold 256 OS handles (files, sockets, connections) together, 256 per request; the rest of the 1024 open files, 768, is kept for the host",
    ]);
    host.wait_for_log(&["at most 512 connections at once (--max-connections)"]);
    drop(host);
    // More connections would leave the guests less than that.
    let mut command = host_command_with_open_file_limit(1024);
    let output = command
        .arg("serve")
        .arg(config.path())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "off"])
        .args(["--max-connections", "600"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).lines().last(),
        Some(
            "error: --max-connections 600 is too large: with 256 more open files for the host's listeners, admin endpoints, pooled connections and compile cache, reserving 856 of the 1024 open files (RLIMIT_NOFILE) leaves the guests 168 OS handles, fewer than the 256 they need (a quarter of the limit, and at least 256); lower --max-connections or raise the open-file limit (ulimit -n)"
        ),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "nothing served");
}

#[tokio::test]
async fn a_guest_repeating_a_refused_call_cannot_flood_the_log_through_the_host() {
    let host = Host::start(Some(&support::probe_config("").path()), &[]);
    let reply = get(&host.url("/probe/tcp-again?addr=10.1.2.3:80&count=12000")).await;
    assert_eq!(reply.text(), "tried 12000");
    let id = reply.header("x-request-id").unwrap();
    // The host's lines about the refusals share the request's output
    // budget of 10000 lines; the rest are counted in one line.
    host.wait_for_log(&[id, "dropped", "lines of guest output (log, stdout and stderr) past the budget of 1048576 bytes or 10000 lines per request"]);
    let refusals = host
        .stderr()
        .lines()
        .filter(|line| {
            line.contains(id) && line.contains("refused outbound TCP connection to 10.1.2.3:80")
        })
        .count();
    assert_eq!(refusals, 10_000);
}

#[tokio::test]
async fn a_files_streams_count_after_its_descriptor_is_dropped() {
    let config = mounted_probe();
    let host = Host::start(Some(&config.path()), &[]);
    // The descriptor of each file is dropped, but its stream keeps the
    // file open and counts. At the end the mount and the descriptor just
    // opened (whose stream is refused) hold the last two handles. Before
    // the fix all 10000 streams were kept.
    let reply = get(&host.url("/probe/file-streams?name=f.txt&count=10000")).await;
    assert_eq!(
        reply.text(),
        format!("kept {} streams then io", MAX_HANDLES_PER_REQUEST - 2)
    );
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        "refused to open",
        "this request already holds 256 OS handles",
    ]);
}
