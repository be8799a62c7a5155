//! Per-invocation logs: the admin endpoint keeps each app's last
//! invocations with their log lines, and `host logs` reads them from a
//! running host, or follows new ones live.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::{Host, client, get, host_command, probe_config, send};

fn logs(host: &Host, app: &str) -> (String, String) {
    let output = host_command()
        .args(["logs", app, "--admin"])
        .arg(host.admin.unwrap().to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn host_logs_prints_the_last_invocations_with_their_lines() {
    let host = Host::start(None, &[]);
    let reply = get(&host.url("/hello/Logged")).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    assert_eq!(get(&host.url("/hostile-free/404")).await.status, 404);
    let (stdout, _) = logs(&host, "hello-name");
    let header = stdout
        .lines()
        .find(|line| line.contains(&id))
        .unwrap_or_else(|| panic!("the invocation {id} is listed:\n{stdout}"));
    assert!(
        header.contains("hello-name GET /hello/Logged -> 200"),
        "{header}"
    );
    assert!(
        stdout.contains("greeting Logged"),
        "the guest's line:\n{stdout}"
    );

    let (nothing, note) = logs(&host, "env");
    assert!(nothing.is_empty());
    assert!(note.contains("no invocations of `env` kept"), "{note}");

    let raw = get(&format!("http://{}/logs/hello-name", host.admin.unwrap())).await;
    let json: serde_json::Value = serde_json::from_str(&raw.text()).unwrap();
    assert_eq!(json[0]["request_id"], id.as_str());
    assert_eq!(json[0]["status"], 200);
}

#[tokio::test]
async fn follow_streams_an_invocation_as_it_finishes() {
    let host = Host::start(None, &[]);
    let mut child = host_command()
        .args(["logs", "hello-name", "--follow", "--admin"])
        .arg(host.admin.unwrap().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let started = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = started.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line = received
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("following `hello-name`");
    get(&host.url("/hello/Live")).await;
    let header = wait_for("GET /hello/Live -> 200");
    assert!(header.starts_with("== hello-name"), "{header}");
    wait_for("greeting Live");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_with_one_request_id_are_both_kept_with_their_own_lines() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let id: &[u8] = b"same-id-twice";
    let sleeping = {
        let url = host.url("/probe/sleep?ms=700");
        tokio::spawn(async move { send(&client(), "GET", &url, &[("x-request-id", id)], "").await })
    };
    // The first is running when the second begins.
    host.wait_for_log(&["sleeping 700 ms", "same-id-twice"]);
    let output = send(
        &client(),
        "GET",
        &host.url("/probe/output"),
        &[("x-request-id", id)],
        "",
    )
    .await;
    assert_eq!(output.text(), "written");
    assert_eq!(sleeping.await.unwrap().text(), "slept");

    let raw = get(&format!("http://{}/logs/probe", host.admin.unwrap())).await;
    let kept: serde_json::Value = serde_json::from_str(&raw.text()).unwrap();
    let kept = kept.as_array().unwrap();
    let messages = |path: &str| -> Vec<String> {
        let found: Vec<_> = kept.iter().filter(|i| i["path"] == path).collect();
        assert_eq!(found.len(), 1, "one invocation of {path}: {kept:?}");
        assert_eq!(found[0]["request_id"], "same-id-twice");
        found[0]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(messages("/probe/sleep"), ["sleeping 700 ms"]);
    assert_eq!(
        messages("/probe/output"),
        ["probe line on stdout", "probe line on stderr"]
    );
    assert_ne!(kept[0]["invocation"], kept[1]["invocation"]);
}

#[test]
fn a_host_that_is_not_there_is_named() {
    let output = host_command()
        .args(["logs", "hello", "--admin", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the host's admin endpoint at 127.0.0.1:9"),
        "{stderr}"
    );
}
