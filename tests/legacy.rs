//! Core modules of the original serverless-wasm ABI (2018) behind the real
//! binary: the samples, `function` selection, `db_get`, imported and
//! exported memory, status and header handling, TCP through the policy,
//! and hostile modules contained (500, 500, 504) while the host serves on.
//! The startup errors are golden files (`tests/bad-configs/legacy-*`).

mod support;

use std::time::{Duration, Instant};

use support::backends::EchoServer;
use support::{ConfigDir, Host, get, host_command};

/// One app per `(name, file, function, extra TOML)`, at `GET /NAME`.
fn config(apps: &[(&str, &str, Option<&str>, &str)]) -> ConfigDir {
    let mut text = String::new();
    for (name, file, function, extra) in apps {
        text.push_str(&format!(
            "[[applications]]\nname = \"{name}\"\nfile_path = {file:?}\nmethod = \"GET\"\nurl_path = \"/{name}\"\n"
        ));
        if let Some(function) = function {
            text.push_str(&format!("function = \"{function}\"\n"));
        }
        text.push_str(extra);
        text.push('\n');
    }
    ConfigDir::new(&text)
}

/// The probe module's exports, each at `/NAME`, with a 2 s deadline and
/// an `env` table for `db_get`.
fn probe_apps() -> Vec<(
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
)> {
    let probe = guest_artifacts::LEGACY_PROBE_PATH;
    let extra =
        "timeout = \"2s\"\nmax_memory = \"32 MiB\"\nenv = { present = \"value-of-present\" }\n";
    [
        "trap",
        "bad_pointer",
        "bad_size",
        "spin",
        "last_wins",
        "content_length_wrong",
        "db_get_probe",
        "grow",
        "tcp_bad_fd",
        "teapot",
        "quiet",
        "bad_content_length",
        "reserved_header",
        "bad_status",
    ]
    .into_iter()
    .map(|name| (name, probe, Some(name), extra))
    .chain([
        ("probe", probe, None, extra),
        ("spin_fuel", probe, Some("spin"), "fuel = 1000000\n"),
        (
            "big_body",
            probe,
            Some("big_body"),
            "max_response_body = \"1 MiB\"\n",
        ),
    ])
    .collect()
}

/// `GET path`, checking the status; returns the reply.
async fn expect(host: &Host, path: &str, status: u16) -> support::Reply {
    let reply = get(&host.url(path)).await;
    assert_eq!(
        reply.status,
        status,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

fn request_id(reply: &support::Reply) -> String {
    reply
        .header("x-request-id")
        .expect("a request id")
        .to_owned()
}

#[tokio::test]
async fn the_hello_samples_answer_each_function_their_route_names() {
    let hello = guest_artifacts::LEGACY_HELLO_PATH;
    let wat = guest_artifacts::LEGACY_WAT_HELLO_PATH;
    let config = config(&[
        ("hello", hello, Some("hello"), ""),
        ("bonjour", hello, Some("bonjour"), ""),
        ("default", hello, None, ""),
        ("wat-hello", wat, Some("hello"), ""),
        ("wat-bonjour", wat, Some("bonjour"), ""),
    ]);
    let host = Host::start(Some(&config.path()), &[]);
    for (path, body) in [
        ("/hello", "Hello, world!\n"),
        ("/bonjour", "Bonjour, le monde !\n"),
        ("/default", "Hello, world!\n"),
        ("/wat-hello", "Hello from WAT!\n"),
        ("/wat-bonjour", "Bonjour de WAT !\n"),
    ] {
        let reply = expect(&host, path, 200).await;
        assert_eq!(reply.text(), body, "{path}");
        // The module sets `Content-length` itself; the host frames the
        // response with the body's real length.
        assert_eq!(
            reply.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{path}"
        );
    }
    let reply = expect(&host, "/bonjour", 200).await;
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    // The module's line carries the app and the request id, and the
    // request has its access line.
    let id = request_id(&reply);
    let line = host.wait_for_log(&[&id, "bonjour called"]);
    assert!(line.contains(" INFO guest: bonjour called"), "{line}");
    assert!(line.contains("app=\"bonjour\""), "{line}");
    let access = host.wait_for_log(&[&id, "access: request"]);
    assert!(
        access.contains("app=\"bonjour\" route=\"/bonjour\""),
        "{access}"
    );
    assert!(access.contains("status=200"), "{access}");
    assert!(
        !host.stderr().contains("Content-Length: "),
        "{}",
        host.stderr()
    );
    // The route table says what each app is.
    let routes = get(&format!(
        "http://{}/routes",
        host.admin.expect("admin endpoints are on")
    ))
    .await
    .text();
    assert!(routes.contains("\"world\":\"legacy\""), "{routes}");
}

#[tokio::test]
async fn status_headers_and_body_follow_the_last_call() {
    let config = config(&probe_apps());
    let host = Host::start(Some(&config.path()), &[]);
    let reply = expect(&host, "/last_wins", 202).await;
    assert_eq!(reply.text(), "second");
    assert_eq!(reply.header("x-a"), Some("2"));
    assert_eq!(reply.headers.get_all("x-a").iter().count(), 1);
    assert_eq!(reply.header("x-b"), Some("b"));
    let reply = expect(&host, "/teapot", 418).await;
    assert_eq!(reply.text(), "short and stout\n");
    let raw = support::raw_exchange(
        host.address,
        b"GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(raw.starts_with("HTTP/1.1 418 I'm a teapot\r\n"), "{raw}");
    // A module that answers nothing answers 200 with no body.
    let reply = expect(&host, "/quiet", 200).await;
    assert_eq!(reply.body.len(), 0);
    assert_eq!(expect(&host, "/probe", 200).await.text(), "probe\n");
    // A Content-Length that does not match the body is logged, and the
    // response is framed with the real length.
    let reply = expect(&host, "/content_length_wrong", 200).await;
    assert_eq!(reply.text(), "hello");
    assert_eq!(reply.header("content-length"), Some("5"));
    host.wait_for_log(&[
        &request_id(&reply),
        "the module set Content-Length: 3 but its body is 5 bytes; the host sent Content-Length: 5",
    ]);
}

#[tokio::test]
async fn db_get_reads_the_env_table_whole_truncated_or_absent() {
    let config = config(&probe_apps());
    let host = Host::start(Some(&config.path()), &[]);
    let reply = expect(&host, "/db_get_probe", 200).await;
    assert_eq!(
        reply.text(),
        "full=16:value-of-present truncated=16:val absent=-1\n"
    );
}

#[tokio::test]
async fn hostile_modules_fail_alone_and_the_host_serves_on() {
    let config = config(&probe_apps());
    let host = Host::start(Some(&config.path()), &[]);
    let reply = expect(&host, "/trap", 500).await;
    let line = host.wait_for_log(&[&request_id(&reply), "request failed"]);
    assert!(line.contains("kind=\"unreachable\""), "{line}");
    assert!(line.contains("backtrace: "), "{line}");
    let reply = expect(&host, "/bad_pointer", 500).await;
    let line = host.wait_for_log(&[&request_id(&reply), "request failed"]);
    assert!(line.contains("kind=\"out of bounds\""), "{line}");
    assert!(
        line.contains("log: the message at 0xfffffff0 of 100 bytes lies outside the module's"),
        "{line}"
    );
    let reply = expect(&host, "/bad_size", 500).await;
    host.wait_for_log(&[
        &request_id(&reply),
        "response_set_body: the body at 0x0 of 18446744073709551615 bytes lies outside",
    ]);
    let started = Instant::now();
    let reply = expect(&host, "/spin", 504).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline stopped it"
    );
    host.wait_for_log(&[&request_id(&reply), "kind=\"deadline\""]);
    // Fuel bounds a module's work as it bounds a component's.
    let reply = expect(&host, "/spin_fuel", 500).await;
    host.wait_for_log(&[&request_id(&reply), "kind=\"fuel\""]);
    // A call that breaks the ABI's rules stops the module; the line names
    // the function and the rule.
    for (path, why) in [
        (
            "/bad_content_length",
            "response_set_header: Content-Length `abc` is not a number of bytes",
        ),
        (
            "/reserved_header",
            "response_set_header: the host manages the `transfer-encoding` header; a module cannot set it",
        ),
        (
            "/bad_status",
            "response_set_status_line: 99 is not a final HTTP status (200 to 999)",
        ),
        (
            "/big_body",
            "response_set_body: the response would pass the app's max_response_body of 1048576 bytes",
        ),
    ] {
        let reply = expect(&host, path, 500).await;
        let line = host.wait_for_log(&[&request_id(&reply), "request failed"]);
        assert!(line.contains("kind=\"bad ABI call\""), "{path}: {line}");
        assert!(
            line.contains(&format!(
                "the handler trapped (bad ABI call): {why}; backtrace: "
            )),
            "{path}: {line}"
        );
    }
    // Growing past max_memory stops the module, as it stops a component.
    let reply = expect(&host, "/grow", 500).await;
    host.wait_for_log(&[
        &request_id(&reply),
        "kind=\"memory\"",
        "the app's limit is 33554432",
    ]);
    assert_eq!(expect(&host, "/tcp_bad_fd", 200).await.text(), "read=-4\n");
    assert_eq!(expect(&host, "/probe", 200).await.text(), "probe\n");
}

/// The backend sample: its address from `db_get("/env/backend")`, then a
/// round trip through a loopback echo server, allowed only by the flag.
#[tokio::test]
async fn the_backend_sample_reaches_its_echo_server_only_when_allowed() {
    let echo = EchoServer::start();
    let env = format!("env = {{ \"/env/backend\" = \"{}\" }}\n", echo.address);
    let backend = guest_artifacts::LEGACY_BACKEND_PATH;
    let limit = format!("{env}max_tcp_connections = 1\n");
    let config = config(&[
        ("backend", backend, None, &env),
        ("unset", backend, None, ""),
        (
            "limit",
            guest_artifacts::LEGACY_PROBE_PATH,
            Some("tcp_limit"),
            &limit,
        ),
    ]);
    let allowed = Host::start(
        Some(&config.path()),
        &["--allow-tcp", &echo.address.to_string()],
    );
    let reply = expect(&allowed, "/backend", 200).await;
    assert_eq!(
        reply.text(),
        "backend answered: hello from serverless-wasm\n"
    );
    let reply = expect(&allowed, "/unset", 500).await;
    assert_eq!(reply.text(), "no /env/backend in the app's env\n");
    // The module never closes its connection: the host does, when the
    // request ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while echo.open() > 0 {
        assert!(Instant::now() < deadline, "the connection stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A request may open `max_tcp_connections`; the next gets -5.
    let reply = expect(&allowed, "/limit", 200).await;
    let text = reply.text();
    let first: i64 = text
        .strip_prefix("first=")
        .and_then(|rest| rest.strip_suffix(" second=-5\n"))
        .and_then(|fd| fd.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(first >= 0, "{text}");
    allowed.wait_for_log(&[
        &request_id(&reply),
        "this request already opened 1 connections, the app's limit",
    ]);
    let accepted = echo.accepted();
    drop(allowed);

    let denied = Host::start(Some(&config.path()), &[]);
    let reply = expect(&denied, "/backend", 502).await;
    assert_eq!(
        reply.text(),
        format!(
            "cannot reach {}: denied by the outbound policy (-1)\n",
            echo.address
        )
    );
    denied.wait_for_log(&[
        &request_id(&reply),
        &format!("refused outbound TCP connection to {}", echo.address),
    ]);
    assert_eq!(echo.accepted(), accepted, "no connection was made");
}

#[test]
fn host_run_and_host_compile_take_core_modules() {
    let output = host_command()
        .args([
            "run",
            guest_artifacts::LEGACY_HELLO_PATH,
            "--function",
            "bonjour",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("HTTP/1.1 200 OK\n"), "{stdout}");
    assert!(stdout.ends_with("\n\nBonjour, le monde !\n"), "{stdout}");
    let output = host_command()
        .args(["run", guest_artifacts::LEGACY_WAT_HELLO_PATH])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("the core module exports no `handle` function to call; it exports `hello`, `bonjour`: name the one to call with function = \"...\""),
        "{stderr}"
    );

    let cache = tempfile::tempdir().unwrap();
    let hello = config(&[(
        "hello",
        guest_artifacts::LEGACY_HELLO_PATH,
        Some("hello"),
        "",
    )]);
    let output = host_command()
        .arg("compile")
        .arg(hello.path())
        .arg(format!("--cache-dir={}", cache.path().display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        format!(
            "{}: compiled and cached ({} ms)\n1 files ready\n",
            guest_artifacts::LEGACY_HELLO_PATH,
            stdout
                .split(" (")
                .nth(1)
                .and_then(|rest| rest.split(" ms)").next())
                .unwrap_or("?")
        )
    );
    // Each app is checked as `host serve` checks it, its `function` too.
    let config = config(&[("hola", guest_artifacts::LEGACY_HELLO_PATH, Some("hola"), "")]);
    let output = host_command()
        .arg("compile")
        .arg(config.path())
        .arg(format!("--cache-dir={}", cache.path().display()))
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: {}:6:12: app `hola` ({}): function = \"hola\" names no function the core module exports; it exports `bonjour`, `handle`, `hello`\n",
            config.path().display(),
            guest_artifacts::LEGACY_HELLO_PATH
        )
    );
}

/// The original README ran the host from the repository root with paths
/// relative to it: such a path is found in the working directory, with a
/// warning that names both places.
#[tokio::test]
async fn a_file_path_missing_next_to_the_config_is_found_in_the_working_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("samples")).unwrap();
    std::fs::copy(
        guest_artifacts::LEGACY_HELLO_PATH,
        root.path().join("samples/testfunc.wasm"),
    )
    .unwrap();
    std::fs::write(
        root.path().join("samples/config.toml"),
        "listen_address = \"127.0.0.1:0\"\n\n[[applications]]\nfile_path = \"./samples/testfunc.wasm\"\nmethod = \"GET\"\nurl_path = \"/hello\"\nfunction = \"hello\"\n",
    )
    .unwrap();
    let mut command = std::process::Command::new(support::HOST_BIN);
    command.current_dir(root.path());
    let host = Host::start_with(
        command,
        Some(std::path::Path::new("samples/config.toml")),
        &[],
    );
    assert_eq!(expect(&host, "/hello", 200).await.text(), "Hello, world!\n");
    host.wait_for_log(&[
        "samples/config.toml:4:13: file_path `./samples/testfunc.wasm` is not next to the configuration file (looked for samples/./samples/testfunc.wasm); using ./samples/testfunc.wasm in the working directory",
    ]);
}

/// The host's codes and the SDK's are one table: each of the host's
/// codes is a named error of the SDK's.
#[test]
fn the_sdk_knows_every_code_the_host_returns() {
    use serverless_runtime::legacy_codes as code;
    use serverless_wasm_legacy::TcpError;
    for (value, shown) in [
        (code::DENIED, "denied by the outbound policy (-1)"),
        (code::CONNECT_FAILED, "connection failed (-2)"),
        (code::TIMED_OUT, "timed out (-3)"),
        (code::BAD_DESCRIPTOR, "unknown or closed descriptor (-4)"),
        (
            code::TOO_MANY_CONNECTIONS,
            "too many connections for this request (-5)",
        ),
        (code::IO_ERROR, "other I/O error (-6)"),
        (code::BAD_ADDRESS, "bad address text (-7)"),
    ] {
        let error = TcpError::from_code(value).expect("a failure code");
        assert!(!matches!(error, TcpError::Unknown(_)), "{value}");
        assert_eq!(error.to_string(), shown);
    }
    assert_eq!(code::ABSENT, -1);
}

/// `allowed_http` (which the operator's flags must cover, so it is no
/// golden file) is for components: a core module makes no HTTP requests.
#[test]
fn allowed_http_on_a_core_module_is_a_startup_error() {
    let config = config(&[(
        "hello",
        guest_artifacts::LEGACY_HELLO_PATH,
        Some("hello"),
        "allowed_http = [\"http://127.0.0.1:8080\"]\n",
    )]);
    let output = host_command()
        .arg("serve")
        .arg(config.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--allow-http",
            "http://127.0.0.1:8080",
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: {}:3:13: app `hello` ({}): allowed_http is for components, but this is a core module of the serverless-wasm ABI: a serverless-wasm module makes no HTTP requests; remove the key\n",
            config.path().display(),
            guest_artifacts::LEGACY_HELLO_PATH
        )
    );
}
