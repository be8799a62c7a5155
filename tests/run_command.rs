//! `host run`: one request through one component without a server, for
//! both worlds, printed as HTTP/1.1 text with the guest's logs on stderr.

mod support;

use std::process::Output;

use support::backends::EchoServer;
use support::host_command;

fn run(component: &str, args: &[&str]) -> Output {
    host_command()
        .arg("run")
        .arg(component)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run host run")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_handler_world_component_answers_with_route_parameters_and_logs() {
    let output = run(
        guest_artifacts::HELLO_PATH,
        &["--path", "/hello/Ada", "--route", "/hello/:name"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("HTTP/1.1 200 OK\n"), "{text}");
    assert!(
        text.contains("content-type: text/plain; charset=utf-8\n"),
        "{text}"
    );
    assert!(text.ends_with("\n\nHello, Ada!\n"), "{text}");
    let id = text
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a request id");
    let log = stderr(&output);
    assert!(
        log.lines()
            .any(|line| line.contains("greeting Ada") && line.contains(id)),
        "the guest's log line carries the request id:\n{log}"
    );
}

#[test]
fn a_wasi_http_component_answers_too() {
    let output = run(
        guest_artifacts::HTTP_HELLO_PATH,
        &[
            "--path",
            "/http-hello/Grace",
            "--route",
            "/http-hello/:name",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).ends_with("\n\nHello from wasi:http, Grace!\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn method_query_headers_and_body_reach_the_handler() {
    let output = run(
        guest_artifacts::ECHO_PATH,
        &[
            "--method",
            "PUT",
            "--path",
            "/echo?x=1",
            "--header",
            "x-custom: a value",
            "--header",
            "content-type: text/plain",
            "--body",
            "ping",
        ],
    );
    let text = stdout(&output);
    for expected in [
        "x-echo-method: PUT\n",
        "x-echo-query: x=1\n",
        "x-echo-header-x-custom: a value\n",
        "content-type: text/plain\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert!(text.ends_with("\n\nping"), "{text}");
}

#[test]
fn outbound_policy_flags_apply_as_in_serve() {
    let echo = EchoServer::start();
    let env = format!("ECHO_ADDRESS={}", echo.address);
    let request = [
        "--method",
        "POST",
        "--path",
        "/tcp-echo",
        "--env",
        &env,
        "--body",
        "hi",
    ];
    let denied = run(guest_artifacts::TCP_ECHO_PATH, &request);
    assert_eq!(
        denied.status.code(),
        Some(1),
        "a 5xx answer exits 1: {}",
        stdout(&denied)
    );
    assert!(
        stdout(&denied).starts_with("HTTP/1.1 502"),
        "{}",
        stdout(&denied)
    );
    let rule = echo.address.to_string();
    let allowed = run(
        guest_artifacts::TCP_ECHO_PATH,
        &[&request[..], &["--allow-tcp", &rule]].concat(),
    );
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert!(stdout(&allowed).ends_with("\n\nhi"), "{}", stdout(&allowed));
}

#[test]
fn a_trap_exits_1_with_the_cause_in_the_log() {
    let output = run(
        guest_artifacts::TEST_HOSTILE_PATH,
        &["--path", "/hostile/panic", "--route", "/hostile/:action"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("HTTP/1.1 500"),
        "{}",
        stdout(&output)
    );
    // The path, /hostile/panic, is in the access line: the guest's own
    // panic message must be in the log, as its stderr and in the failure.
    let log = stderr(&output);
    let stdout = stdout(&output);
    let id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {stdout}"));
    let line = format!(
        " WARN guest: hostile guest panicked on purpose app=\"test_hostile\" request_id=\"{id}\" source=\"stderr\""
    );
    assert!(
        log.lines().any(|l| l.ends_with(&line)),
        "{line:?} in:\n{log}"
    );
    let failed = log
        .lines()
        .find(|line| line.contains("request failed: "))
        .unwrap_or_else(|| panic!("no failure line in:\n{log}"));
    assert!(
        failed.contains("request failed: the handler trapped (unreachable): "),
        "{failed}"
    );
    // The guest's stderr follows: where it panicked (the line moves when
    // the guest changes) and exactly what it said.
    let (location, said) = failed
        .split_once("; guest stderr: thread '<unnamed>' (1) panicked at guests/rust/test-hostile/src/lib.rs:")
        .and_then(|(_, rest)| rest.split_once(": "))
        .unwrap_or_else(|| panic!("no guest stderr in {failed}"));
    assert!(
        location.split(':').all(|n| n.parse::<u32>().is_ok()),
        "{failed}"
    );
    assert_eq!(
        said,
        format!(
            "hostile guest panicked on purpose app=\"test_hostile\" request_id=\"{id}\" kind=\"unreachable\""
        ),
        "{failed}"
    );
}

#[test]
fn bad_arguments_are_named() {
    let missing = run("/no/such/component.wasm", &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/no/such/component.wasm: no such component file"));
    let header = run(guest_artifacts::HELLO_PATH, &["--header", "no separator"]);
    assert!(
        stderr(&header).contains("write it as `name: value`"),
        "{}",
        stderr(&header)
    );
    let env = run(guest_artifacts::HELLO_PATH, &["--env", "NOVALUE"]);
    assert!(stderr(&env).contains("NAME=value"), "{}", stderr(&env));
}

#[test]
fn a_bad_timeout_is_a_clear_error_naming_the_flag_not_a_panic() {
    for bad in ["inf", "-1", "nan", "0"] {
        let output = run(guest_artifacts::HELLO_PATH, &[&format!("--timeout={bad}")]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{bad}: {text}");
        let reason = if bad == "0" {
            "is zero; the time must be longer"
        } else {
            "is not a duration"
        };
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "error: invalid value '{bad}' for '--timeout <DURATION>': \"{bad}\" {reason}; write 250ms, 5s, 2m, 1h, or a number of seconds"
            ),
            "{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn the_timeout_takes_a_duration_or_bare_seconds() {
    for (timeout, status) in [("300ms", "504"), ("1", "504"), ("5s", "200")] {
        let output = run(
            guest_artifacts::TEST_PROBE_PATH,
            &[
                "--path",
                "/probe/sleep?ms=1500",
                "--route",
                "/probe/:action",
                "--timeout",
                timeout,
            ],
        );
        let text = stdout(&output);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "--timeout {timeout}: {text}{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_huge_timeout_answers_normally_instead_of_panicking() {
    for (component, path, route, body) in [
        (
            guest_artifacts::HELLO_PATH,
            "/hello/Ada",
            "/hello/:name",
            "Hello, Ada!\n",
        ),
        (
            guest_artifacts::HTTP_HELLO_PATH,
            "/http-hello/Grace",
            "/http-hello/:name",
            "Hello from wasi:http, Grace!\n",
        ),
    ] {
        let output = run(
            component,
            &[
                "--path",
                path,
                "--route",
                route,
                "--timeout",
                "10000000000000000000",
            ],
        );
        let text = stdout(&output);
        assert!(
            output.status.success() && text.ends_with(&format!("\n\n{body}")),
            "{component}: {text}{}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }
}
