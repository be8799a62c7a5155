//! The management API and CLI against the real binary: a newcomer's
//! whole lifecycle under steady load, namespaces and every kind of refused
//! call, TLS, a SIGKILL during a deploy, a corrupted stored component,
//! concurrent deploys and the secrets that never come back.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{ConfigDir, Host, Reply, host_command};

/// A user of the CLI: their own login file.
struct User {
    dir: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn login_file(&self) -> PathBuf {
        self.dir.path().join("login.json")
    }

    /// Runs `host ARGS` as this user, with `stdin` on standard input.
    fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = host_command()
            .args(args)
            .env("SERVERLESS_WASM_LOGIN", self.login_file())
            .env_remove("SERVERLESS_WASM_STATE_DIR")
            .env_remove("SERVERLESS_WASM_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, "")
    }

    /// Runs `host ARGS` and returns its stdout, failing on an error.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "host {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `host ARGS`, which must fail, and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(output.status.code(), Some(1), "host {args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    }

    fn login(&self, url: &str, token: &str) {
        let output = self.run_with(&["login", url], &format!("{token}\n"));
        assert!(output.status.success(), "{output:?}");
    }
}

/// Makes a token offline on the state directory.
fn offline_token(state: &Path, namespace: &str, scope: &str) -> String {
    let output = host_command()
        .args([
            "tokens",
            "create",
            "--namespace",
            namespace,
            "--scope",
            scope,
        ])
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The management API's URL, from the host's banner.
fn api_url(host: &Host) -> String {
    host.stdout()
        .lines()
        .find_map(|line| line.strip_prefix("management API on ").map(str::to_owned))
        .expect("the host prints the API's address")
}

/// A host serving a configuration with one app (`GET /static`), with a
/// catalog in `state` and the API on a free loopback port.
fn start(state: &Path, extra: &[&str]) -> (Host, ConfigDir) {
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"static\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/static\"\n",
        guest_artifacts::HELLO_PATH
    ));
    let state = state.to_str().unwrap();
    let mut args = vec!["--state-dir", state, "--api-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    (Host::start(Some(&config.path()), &args), config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One call of the API with `token` (or none).
fn api(url: &str, token: Option<&str>, method: &str, path: &str, body: &str) -> Reply {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_bytes()));
    }
    runtime().block_on(support::send(
        &support::client(),
        method,
        &format!("{url}{path}"),
        &headers,
        Bytes::from(body.to_owned()),
    ))
}

/// The error message of a refused call.
fn error_of(reply: &Reply) -> String {
    let value: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    value["error"].as_str().unwrap().to_owned()
}

/// Requests to one URL in a loop until stopped, keeping every status.
struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u16>>,
}

impl Load {
    fn start(url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let client = support::client();
                let mut statuses = Vec::new();
                while !stopping.load(Ordering::SeqCst) {
                    let request = http::Request::get(&url)
                        .body(http_body_util::Full::new(Bytes::new()))
                        .unwrap();
                    match client.request(request).await {
                        Ok(response) => statuses.push(response.status().as_u16()),
                        // A connection error is a failed request too.
                        Err(_) => statuses.push(0),
                    }
                }
                statuses
            })
        });
        Load { stop, thread }
    }

    fn stop(self) -> Vec<u16> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// One request to the host's app listener.
fn call(host: &Host, method: &str, path: &str, headers: &[(&str, &[u8])], body: &str) -> Reply {
    runtime().block_on(support::send(
        &support::client(),
        method,
        &host.url(path),
        headers,
        Bytes::from(body.to_owned()),
    ))
}

fn get_text(host: &Host, path: &str) -> (u16, String) {
    let reply = runtime().block_on(support::get(&host.url(path)));
    (reply.status, reply.text())
}

#[test]
fn a_newcomer_deploys_tries_promotes_rolls_back_and_deletes_with_no_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The first token, offline: it never travels.
    let token = offline_token(&state, "default", "admin");
    let (host, _config) = start(&state, &[]);
    let url = api_url(&host);
    let user = User::new();

    let login = user.run_with(&["login", &url], &format!("{token}\n"));
    assert!(login.status.success(), "{login:?}");
    let id = &token[4..16];
    assert_eq!(
        String::from_utf8_lossy(&login.stdout),
        format!(
            "logged in to {url} as token {id} of namespace `default` (scope admin); saved in {}\n",
            user.login_file().display()
        )
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(user.login_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the login file is the user's alone");
    }
    let me: serde_json::Value =
        serde_json::from_str(&user.ok(&["whoami", "--output", "json"])).unwrap();
    assert_eq!(
        (me["namespace"].as_str(), me["scope"].as_str()),
        (Some("default"), Some("admin"))
    );

    // Previews take a read token: deploy and admin tokens stay off the
    // app listener.
    let made: serde_json::Value = serde_json::from_str(&user.ok(&[
        "tokens",
        "create",
        "--scope",
        "read",
        "--description",
        "previews",
        "--output",
        "json",
    ]))
    .unwrap();
    let reader = made["token"].as_str().unwrap().to_owned();
    assert_eq!(made["namespace"], "default");
    assert_eq!(
        user.ok(&[
            "apps",
            "deploy",
            "hello",
            guest_artifacts::HELLO_PATH,
            "--route",
            "GET /hello"
        ]),
        "deployed `hello` version 1, now active\n"
    );
    assert_eq!(
        get_text(&host, "/hello"),
        (200, "Hello, world!\n".to_owned())
    );

    // A route that another app has is refused as the configuration
    // refuses it, and nothing is written.
    assert_eq!(
        user.fails(&[
            "apps",
            "deploy",
            "taken",
            guest_artifacts::HELLO_PATH,
            "--route",
            "GET /static"
        ]),
        format!(
            "error: the deploy of `taken` was refused: the API answered 409 Conflict: route GET /static of app `taken` version 1 overlaps route GET /static of app `static` ({}:3:13); change the path or the methods so that each request has one route\n",
            _config.path().display()
        )
    );
    assert_eq!(
        user.fails(&["apps", "show", "taken"]),
        "error: the API answered 404 Not Found: namespace `default` has no app `taken`\n"
    );
    assert_eq!(
        user.fails(&[
            "apps",
            "deploy",
            "static",
            guest_artifacts::HELLO_PATH,
            "--route",
            "GET /other"
        ]),
        format!(
            "error: the deploy of `static` was refused: the API answered 409 Conflict: app name `static` is already used by the configuration's app `static` ({}:3:13); deploy under another name\n",
            _config.path().display()
        )
    );

    // Steady load from here to the delete.
    let load = Load::start(host.url("/hello"));
    assert_eq!(
        user.ok(&[
            "apps",
            "deploy",
            "hello",
            guest_artifacts::ECHO_PATH,
            "--route",
            "GET /hello",
            "--route",
            "POST /hello",
            "--no-activate",
        ]),
        "deployed `hello` version 2 (not active; try it with `serverless-preview: hello@2`, then `host apps promote hello 2`)\n"
    );
    // Version 2 is tried with the token; the active one is untouched.
    let tried = call(
        &host,
        "POST",
        "/hello",
        &[
            ("serverless-preview", b"hello@2"),
            ("serverless-preview-token", reader.as_bytes()),
        ],
        "tried before promotion",
    );
    assert_eq!(
        (tried.status, tried.text()),
        (200, "tried before promotion".to_owned())
    );
    assert!(
        tried.header("x-echo-header-host").is_some(),
        "the echo shows the headers it got"
    );
    assert_eq!(
        (
            tried.header("x-echo-header-serverless-preview"),
            tried.header("x-echo-header-serverless-preview-token")
        ),
        (None, None),
        "the app never sees the preview's headers"
    );
    let admin_preview = call(
        &host,
        "POST",
        "/hello",
        &[
            ("serverless-preview", b"hello@2"),
            ("serverless-preview-token", token.as_bytes()),
        ],
        "",
    );
    assert_eq!(
        (admin_preview.status, admin_preview.text()),
        (
            403,
            "a preview takes a token of scope `read` only, so that admin tokens stay off the app listener; make one with `host tokens create --scope read`\n"
                .to_owned()
        )
    );
    let untried = call(
        &host,
        "POST",
        "/hello",
        &[("serverless-preview", b"hello@2")],
        "",
    );
    assert_eq!(
        (untried.status, untried.text()),
        (
            401,
            "a preview needs a token of the app's namespace in the `serverless-preview-token` header\n"
                .to_owned()
        )
    );
    assert_eq!(
        get_text(&host, "/hello"),
        (200, "Hello, world!\n".to_owned())
    );

    assert_eq!(
        user.ok(&["apps", "promote", "hello", "2"]),
        "`hello` now serves version 2\n"
    );
    // A preview token without the preview header is removed all the same.
    let stray = call(
        &host,
        "POST",
        "/hello",
        &[("serverless-preview-token", reader.as_bytes())],
        "",
    );
    assert_eq!(stray.status, 200);
    assert!(stray.header("x-echo-header-host").is_some());
    assert_eq!(stray.header("x-echo-header-serverless-preview-token"), None);
    assert_eq!(
        get_text(&host, "/hello"),
        (200, String::new()),
        "the echo answers"
    );
    assert_eq!(
        user.ok(&["apps", "rollback", "hello"]),
        "`hello` rolled back to version 1\n"
    );
    assert_eq!(
        get_text(&host, "/hello"),
        (200, "Hello, world!\n".to_owned())
    );
    // A reload keeps the deployed apps, under the same load.
    host.signal(libc::SIGHUP);
    host.wait_for_log(&["reload (SIGHUP): now serving 2 routes"]);
    assert_eq!(
        get_text(&host, "/hello"),
        (200, "Hello, world!\n".to_owned())
    );
    // `host apps logs --follow` prints each new invocation as it ends.
    /// Kills the follower however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut follow = host_command()
        .args(["apps", "logs", "hello", "--follow"])
        .env("SERVERLESS_WASM_LOGIN", user.login_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let follow_out = follow.stdout.take().unwrap();
    let follow_err = follow.stderr.take().unwrap();
    let _follow = Killed(follow);
    let (lines, received) = std::sync::mpsc::channel();
    for stream in [
        Box::new(follow_out) as Box<dyn std::io::Read + Send>,
        Box::new(follow_err),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let wait_for = |needle: &str| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the follower printed no line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("following `hello`");
    let followed = call(
        &host,
        "GET",
        "/hello",
        &[("x-request-id", b"followed-1")],
        "",
    );
    assert_eq!(followed.status, 200);
    let line = wait_for("(request followed-1)");
    assert!(line.starts_with("== hello GET /hello -> 200 in "), "{line}");
    let shown = user.ok(&["apps", "show", "hello"]);
    assert!(
        shown.starts_with(
            "app hello (namespace default, served as hello)\nVERSION  STATE   CREATED"
        ),
        "{shown}"
    );
    assert_eq!(
        shown.lines().filter(|l| l.contains(" active ")).count(),
        1,
        "{shown}"
    );
    let statuses = load.stop();
    // The invocations, through the API as `host logs` has them.
    let logs = user.ok(&["apps", "logs", "hello"]);
    assert!(logs.contains("== hello GET /hello -> 200 in "), "{logs}");
    assert!(statuses.len() >= 10, "the load ran: {statuses:?}");
    assert!(
        statuses.iter().all(|status| *status == 200),
        "no request failed during deploy, promote and rollback: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );

    // The delete: before it 200, after it 404, never anything else.
    let load = Load::start(host.url("/hello"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        user.ok(&["apps", "delete", "hello"]),
        "`hello` and its versions are deleted\n"
    );
    let deleted_at = Instant::now();
    while get_text(&host, "/hello").0 != 404 {
        assert!(deleted_at.elapsed() < Duration::from_secs(5));
    }
    let statuses = load.stop();
    let first_404 = statuses
        .iter()
        .position(|s| *s == 404)
        .unwrap_or(statuses.len());
    assert!(
        statuses[..first_404].iter().all(|s| *s == 200)
            && statuses[first_404..].iter().all(|s| *s == 404),
        "200 until the delete, then 404: {statuses:?}"
    );
    assert_eq!(user.ok(&["apps", "list"]), "no apps\n");
    assert_eq!(
        get_text(&host, "/static").0,
        200,
        "the configuration's app serves on"
    );

    // Every change has its audit record: who and from where.
    let audit = api(&url, Some(&token), "GET", "/v1/audit", "");
    let audit: serde_json::Value = serde_json::from_slice(&audit.body).unwrap();
    let records = audit["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .filter(|action| *action != "component.upload")
        .collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "token.create",
            "app.deploy",
            "app.deploy-inactive",
            "app.promote",
            "app.rollback",
            "app.delete"
        ]
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["action"] == "component.upload")
            .count(),
        4,
        "each upload is recorded: {records:?}"
    );
    for record in &records[1..] {
        assert_eq!(record["actor"], format!("token:{id}"));
        assert!(
            record["origin"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{record}"
        );
    }
    assert!(
        !host.stderr().contains(&token[17..]),
        "the token's secret is never logged"
    );
}

#[test]
fn tokens_reach_only_their_namespace_s_apps_and_paths_and_every_refusal_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let admin = offline_token(&state, "default", "admin");
    let a_deploy = offline_token(&state, "team-a", "deploy");
    let a_read = offline_token(&state, "team-a", "read");
    let b_deploy = offline_token(&state, "team-b", "deploy");
    let b_read = offline_token(&state, "team-b", "read");
    let (host, _config) = start(&state, &[]);
    let url = api_url(&host);
    let (team_a, team_b, operator) = (User::new(), User::new(), User::new());
    team_a.login(&url, &a_deploy);
    team_b.login(&url, &b_deploy);
    operator.login(&url, &admin);
    let hello = guest_artifacts::HELLO_PATH;

    // A tenant deploys only once the operator has given it a prefix.
    assert_eq!(
        team_a.fails(&[
            "apps",
            "deploy",
            "hello",
            hello,
            "--route",
            "GET /team-a/hello"
        ]),
        "error: the deploy of `hello` was refused: the API answered 403 Forbidden: namespace `team-a` has no route prefix yet; an admin of `default` assigns one (`host namespaces set team-a --prefix /team-a`)\n"
    );
    assert_eq!(
        team_a.fails(&["namespaces", "set", "team-a", "--prefix", "/team-a"]),
        "error: the API answered 403 Forbidden: the token belongs to namespace `team-a` and can reach only its apps\n"
    );
    operator.ok(&["namespaces", "set", "team-a", "--prefix", "/team-a"]);
    operator.ok(&["namespaces", "set", "team-b", "--prefix", "/team-b"]);
    assert_eq!(
        team_a.fails(&["apps", "deploy", "hello", hello, "--route", "GET /hello"]),
        "error: the deploy of `hello` was refused: the API answered 403 Forbidden: route `GET /hello` is outside namespace `team-a`'s prefix `/team-a`; its routes must start with `/team-a/`\n"
    );
    team_a.ok(&[
        "apps",
        "deploy",
        "hello",
        hello,
        "--route",
        "GET /team-a/hello",
    ]);
    assert_eq!(
        get_text(&host, "/team-a/hello"),
        (200, "Hello, world!\n".to_owned())
    );
    let logs = host.wait_for_log(&["access", "app=\"team-a/hello\""]);
    assert!(logs.contains("path=\"/team-a/hello\""), "{logs}");

    // Another tenant, or the operator, cannot take its paths.
    assert_eq!(
        team_b.fails(&["apps", "deploy", "x", hello, "--route", "GET /team-a/x"]),
        "error: the deploy of `x` was refused: the API answered 403 Forbidden: route `GET /team-a/x` is outside namespace `team-b`'s prefix `/team-b`; its routes must start with `/team-b/`\n"
    );
    assert_eq!(
        operator.fails(&["apps", "deploy", "x", hello, "--route", "GET /team-a/x"]),
        "error: the deploy of `x` was refused: the API answered 403 Forbidden: route `GET /team-a/x` lies under `/team-a`, which belongs to namespace `team-a`\n"
    );
    // Nor see or change its apps: they are not in its namespace.
    for args in [
        &["apps", "show", "hello"][..],
        &["apps", "promote", "hello", "1"],
        &["apps", "rollback", "hello"],
        &["apps", "delete", "hello"],
        &["apps", "logs", "hello"],
    ] {
        assert_eq!(
            team_b.fails(args),
            "error: the API answered 404 Not Found: namespace `team-b` has no app `hello`\n",
            "{args:?}"
        );
    }
    assert_eq!(team_b.ok(&["apps", "list"]), "no apps\n");
    let previewed = call(
        &host,
        "GET",
        "/team-a/hello",
        &[
            ("serverless-preview", b"hello@1"),
            ("serverless-preview-token", b_read.as_bytes()),
        ],
        "",
    );
    assert_eq!(
        (previewed.status, previewed.text()),
        (404, "namespace `team-b` has no app `hello`\n".to_owned())
    );

    // Scopes: read lists, deploy changes, admin manages tokens.
    let read = api(&url, Some(&a_read), "GET", "/v1/apps", "");
    assert_eq!(read.status, 200);
    let refused = api(&url, Some(&a_read), "DELETE", "/v1/apps/hello", "");
    assert_eq!(
        (refused.status, error_of(&refused)),
        (
            403,
            "this call needs scope `deploy`; the token has `read`".to_owned()
        )
    );
    let refused = api(&url, Some(&a_deploy), "GET", "/v1/tokens", "");
    assert_eq!(
        (refused.status, error_of(&refused)),
        (
            403,
            "this call needs scope `admin`; the token has `deploy`".to_owned()
        )
    );

    // No token, a wrong one, a revoked one: 401, all alike.
    let missing = api(&url, None, "GET", "/v1/apps", "");
    assert_eq!(
        (missing.status, error_of(&missing)),
        (401, "this call needs a token: send `Authorization: Bearer swt_...` (`host login` stores one)".to_owned())
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"serverless-wasm\"")
    );
    let invalid = "the token is not valid: it is malformed, unknown, wrong or revoked";
    let mut wrong = a_read.clone();
    wrong.replace_range(
        wrong.len() - 1..,
        if a_read.ends_with('0') { "1" } else { "0" },
    );
    let refused = api(&url, Some(&wrong), "GET", "/v1/apps", "");
    assert_eq!(
        (refused.status, error_of(&refused)),
        (401, invalid.to_owned())
    );
    // The operator makes and revokes tokens through the API.
    let made: serde_json::Value = serde_json::from_str(&operator.ok(&[
        "tokens",
        "create",
        "--namespace",
        "team-a",
        "--scope",
        "read",
        "--output",
        "json",
    ]))
    .unwrap();
    let made_token = made["token"].as_str().unwrap();
    assert_eq!(
        api(&url, Some(made_token), "GET", "/v1/apps", "").status,
        200
    );
    let listed = operator.ok(&["tokens", "list", "--namespace", "team-a"]);
    assert_eq!(
        listed.lines().count(),
        4,
        "a header and three team-a tokens: {listed}"
    );
    let read_id = &a_read[4..16];
    operator.ok(&["tokens", "revoke", read_id]);
    let refused = api(&url, Some(&a_read), "GET", "/v1/apps", "");
    assert_eq!(
        (refused.status, error_of(&refused)),
        (401, invalid.to_owned())
    );

    // Failures are rate-limited: past ten in a minute, even a good token
    // from that address waits.
    let mut tries = 2;
    loop {
        let refused = api(&url, Some("swt_000000000000_00"), "GET", "/v1/apps", "");
        if refused.status == 429 {
            break;
        }
        assert_eq!(refused.status, 401);
        tries += 1;
        assert!(tries <= 10, "locked out after ten failures");
    }
    let locked = api(&url, Some(&admin), "GET", "/v1/whoami", "");
    assert_eq!(locked.status, 429);
    assert!(
        error_of(&locked)
            .starts_with("too many failed authentications from this address; try again in ")
    );
}

#[test]
fn the_api_off_loopback_needs_tls_and_speaks_it_with_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let refused = host_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--api-listen",
            "0.0.0.0:0",
        ])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).lines().last(),
        Some(
            "error: --api-listen 0.0.0.0:0 is not a loopback address: the management API's tokens would cross the network in the clear; give --api-tls-cert and --api-tls-key, or listen on 127.0.0.1"
        )
    );

    // A CA and a certificate for localhost and 127.0.0.1 that it signs.
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl is installed (tests/run installs it)");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "api.key",
        "-out",
        "api.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.path().join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "api.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let token = offline_token(&state, "default", "admin");
    let cert = dir.path().join("api.pem");
    let key = dir.path().join("api.key");
    let (host, _config) = start(
        &state,
        &[
            "--api-tls-cert",
            cert.to_str().unwrap(),
            "--api-tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = api_url(&host);
    let port = url
        .strip_prefix("https://127.0.0.1:")
        .expect("an https URL");
    let user = User::new();
    let ca = dir.path().join("ca.pem");
    let login = user.run_with(
        &[
            "login",
            &format!("https://localhost:{port}"),
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
        &format!("{token}\n"),
    );
    assert!(login.status.success(), "{login:?}");
    assert!(user.ok(&["whoami"]).contains("namespace:    default\n"));
    // Without the CA the certificate is not trusted, and nothing is stored.
    let stranger = User::new();
    let untrusted = stranger.run_with(
        &["login", &format!("https://localhost:{port}")],
        &format!("{token}\n"),
    );
    assert_eq!(untrusted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: the login was not stored: TLS with https://localhost:{port} failed: "
        )),
        "{stderr}"
    );
    assert!(!stranger.login_file().exists());
    // Plain HTTP gets no answer from the TLS listener.
    let plain = User::new();
    let refused = plain.run_with(
        &["login", &format!("http://127.0.0.1:{port}")],
        &format!("{token}\n"),
    );
    assert_eq!(refused.status.code(), Some(1));
}

/// The active version and the digest of each version, from `apps show`.
fn shown(user: &User, app: &str) -> serde_json::Value {
    serde_json::from_str(&user.ok(&["apps", "show", app, "--output", "json"])).unwrap()
}

#[test]
fn a_sigkill_during_a_deploy_leaves_the_old_or_the_new_version_and_a_corrupted_component_is_refused()
 {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let token = offline_token(&state, "default", "admin");
    let (mut host, config) = start(&state, &[]);
    let user = User::new();
    user.login(&api_url(&host), &token);
    user.ok(&[
        "apps",
        "deploy",
        "hello",
        guest_artifacts::HELLO_PATH,
        "--route",
        "GET /hello",
    ]);

    // Killed while the deploy of version 2 is under way.
    let deploy = host_command()
        .args([
            "apps",
            "deploy",
            "hello",
            guest_artifacts::ECHO_PATH,
            "--route",
            "GET /hello",
        ])
        .env("SERVERLESS_WASM_LOGIN", user.login_file())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    host.wait_for_log(&["deploy of hello version 2 by token:", ": loading"]);
    host.signal(libc::SIGKILL);
    host.wait(Duration::from_secs(10));
    let _ = deploy.wait_with_output();

    let state_arg = state.to_str().unwrap().to_owned();
    let host = Host::start(
        Some(&config.path()),
        &["--state-dir", &state_arg, "--api-listen", "127.0.0.1:0"],
    );
    user.login(&api_url(&host), &token);
    let app = shown(&user, "hello");
    let active = app["active"].as_i64().unwrap();
    let expected = if active == 1 { "Hello, world!\n" } else { "" };
    assert!(matches!(active, 1 | 2), "{app}");
    assert_eq!(
        get_text(&host, "/hello"),
        (200, expected.to_owned()),
        "{app}"
    );

    // A stored component changed behind the catalog's back is not served.
    let digest = app["versions"][0]["digest"].as_str().unwrap().to_owned();
    drop(host);
    let blob = state.join("components").join(format!("{digest}.wasm"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let host = Host::start(
        Some(&config.path()),
        &["--state-dir", &state_arg, "--api-listen", "127.0.0.1:0"],
    );
    user.login(&api_url(&host), &token);
    if active == 1 {
        let line =
            host.wait_for_log(&["catalog: app `hello` version 1 is not served: stored component"]);
        assert!(
            line.contains(&format!(
                "does not match its digest (expected {digest}, found "
            )),
            "{line}"
        );
        assert_eq!(get_text(&host, "/hello").0, 404);
    }
    let refused = user.fails(&["apps", "promote", "hello", "1"]);
    assert!(
        refused.starts_with("error: the API answered 422 Unprocessable Entity: stored component "),
        "{refused}"
    );
    assert!(
        refused.contains(&format!(
            "does not match its digest (expected {digest}, found "
        )),
        "{refused}"
    );
}

#[test]
fn concurrent_deploys_of_one_app_are_serialised_into_versions() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let token = offline_token(&state, "default", "deploy");
    let (host, _config) = start(&state, &[]);
    let user = Arc::new(User::new());
    user.login(&api_url(&host), &token);
    let deploys: Vec<_> = (0..4)
        .map(|index| {
            let user = user.clone();
            std::thread::spawn(move || {
                let env = format!("DEPLOY={index}");
                let out = user.ok(&[
                    "apps",
                    "deploy",
                    "hello",
                    guest_artifacts::ENV_PATH,
                    "--route",
                    "GET /hello",
                    "--env",
                    &env,
                    "--output",
                    "json",
                ]);
                let value: serde_json::Value = serde_json::from_str(&out).unwrap();
                value["version"].as_i64().unwrap()
            })
        })
        .collect();
    let mut versions: Vec<i64> = deploys.into_iter().map(|d| d.join().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, [1, 2, 3, 4]);
    let app = shown(&user, "hello");
    assert_eq!(app["active"].as_i64(), Some(4), "the last deploy serves");
    assert_eq!(app["versions"].as_array().unwrap().len(), 4);
    // Version 4 serves, with its own env: no deploy overtook another.
    let fourth = app["versions"][3]["env"]["DEPLOY"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get_text(&host, "/hello"),
        (200, format!("DEPLOY={fourth}\n"))
    );
}

#[test]
fn uploads_are_bounded_names_checked_and_from_env_values_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let token = offline_token(&state, "default", "admin");
    let secret = "s3cr3t-from-the-operator";
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"static\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/static\"\n",
        guest_artifacts::HELLO_PATH
    ));
    let state_arg = state.to_str().unwrap().to_owned();
    let mut command = Command::new(support::HOST_BIN);
    command.env("OPERATOR_SECRET", secret);
    let host = Host::start_with(
        command,
        Some(&config.path()),
        &[
            "--state-dir",
            &state_arg,
            "--api-listen",
            "127.0.0.1:0",
            "--api-max-upload",
            "1 MiB",
        ],
    );
    let url = api_url(&host);
    let user = User::new();
    user.login(&url, &token);

    let big = dir.path().join("big.wasm");
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.resize(2 << 20, 0);
    std::fs::write(&big, bytes).unwrap();
    assert_eq!(
        user.fails(&[
            "apps",
            "deploy",
            "big",
            big.to_str().unwrap(),
            "--route",
            "GET /big"
        ]),
        format!(
            "error: the upload of {} was refused: the API answered 413 Payload Too Large: the body is larger than this call's limit of 1048576 bytes\n",
            big.display()
        )
    );
    let refused = api(&url, Some(&token), "GET", "/v1/apps/a%20b", "");
    assert_eq!(
        (refused.status, error_of(&refused)),
        (
            400,
            "app name `a%20b` is not a name: use 1 to 64 letters, digits, `.`, `_` or `-`"
                .to_owned()
        )
    );
    let refused = user.fails(&[
        "apps",
        "deploy",
        "env",
        guest_artifacts::ENV_PATH,
        "--route",
        "GET /env",
        "--set",
        "timeout=\"5 parsecs\"",
    ]);
    assert!(
        refused.starts_with("error: the deploy of `env` was refused: the API answered 422 Unprocessable Entity: deploy of env:"),
        "{refused}"
    );
    assert!(
        refused.contains("timeout = \"5 parsecs\""),
        "the message shows the setting: {refused}"
    );

    // A component of no world a route can serve is refused before
    // anything changes, and named by its digest, not by where it is kept.
    let refused = user.fails(&[
        "apps",
        "deploy",
        "bad",
        guest_artifacts::TEST_MISSING_EXPORT_PATH,
        "--route",
        "GET /bad",
    ]);
    assert!(
        refused.starts_with("error: the deploy of `bad` was refused: the API answered 422 Unprocessable Entity: deploy of bad:2:13: app `bad` (sha256:"),
        "{refused}"
    );
    assert!(
        refused.ends_with("): the component exports `run`, but a route needs a component that exports `handle` (the serverless-wasm handler world) or `wasi:http/incoming-handler@0.2.x` (the wasi:http/proxy world)\n"),
        "{refused}"
    );
    assert!(!refused.contains(state.to_str().unwrap()), "{refused}");
    assert_eq!(
        user.fails(&["apps", "show", "bad"]),
        "error: the API answered 404 Not Found: namespace `default` has no app `bad`\n"
    );
    user.ok(&[
        "apps",
        "deploy",
        "env",
        guest_artifacts::ENV_PATH,
        "--route",
        "GET /env",
        "--env",
        "PLAIN=visible",
        "--env-from-host",
        "KEY=OPERATOR_SECRET",
    ]);
    let (status, body) = get_text(&host, "/env");
    assert_eq!(
        (status, body.as_str()),
        (200, format!("KEY={secret}\nPLAIN=visible\n").as_str())
    );
    let shown = user.ok(&["apps", "show", "env", "--output", "json"]);
    assert!(
        shown.contains("\"from_env\":\"OPERATOR_SECRET\""),
        "{shown}"
    );
    let audit = api(&url, Some(&token), "GET", "/v1/audit", "").text();
    host.wait_for_log(&["listed 2 environment variables"]);
    for (what, text) in [
        ("the answer", shown),
        ("the audit log", audit),
        ("the log", host.stderr()),
    ] {
        assert!(!text.contains(secret), "{what} holds the secret: {text}");
        assert!(
            !text.contains(&token[17..]),
            "{what} holds the token: {text}"
        );
    }
}
