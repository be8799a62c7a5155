//! The `hello`, `echo` and `tcp` samples of every guest language
//! (guests/SAMPLES.md), each run through the real `host serve` and checked
//! against one shared table of requests and expected responses.
//!
//! The Rust samples come from `guest-artifacts`. The others are built by
//! `guests/<language>/build` into `target/guests/<language>/` (tests/run
//! does that first). When a language's components are missing or older
//! than their sources, its test fails with the command that builds them:
//! a language that was not checked never counts as passed.

mod support;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use support::backends::EchoServer;
use support::{ConfigDir, Host, Reply, client, send};

/// The three sample components of one language.
struct Samples {
    hello: PathBuf,
    echo: PathBuf,
    tcp: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// The newest modification time of the files under `path`, ignoring the
/// documentation and the sample configuration, which do not go into a
/// component.
fn newest_source(path: &Path) -> SystemTime {
    let metadata = std::fs::metadata(path).expect("a readable source path");
    if metadata.is_file() {
        return metadata.modified().expect("a modification time");
    }
    std::fs::read_dir(path)
        .expect("a readable source folder")
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.ends_with(".md") && name != "serve.toml" && !name.starts_with('.')
        })
        .map(|path| newest_source(&path))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Why a language's components cannot be used, if they cannot.
fn unusable(language: &str, samples: &Samples) -> Option<String> {
    let root = repo_root();
    let sources =
        newest_source(&root.join("guests").join(language)).max(newest_source(&root.join("wit")));
    for component in [&samples.hello, &samples.echo, &samples.tcp] {
        match std::fs::metadata(component).and_then(|m| m.modified()) {
            Err(_) => return Some(format!("{} is missing", component.display())),
            Ok(built) if built < sources => {
                return Some(format!(
                    "{} is older than its sources in guests/{language}/ or wit/",
                    component.display()
                ));
            }
            Ok(_) => {}
        }
    }
    None
}

/// The samples of `language`; panics, saying how to build them, when they
/// are missing or stale.
fn samples(language: &str) -> Samples {
    if language == "rust" {
        return Samples {
            hello: guest_artifacts::HELLO_PATH.into(),
            echo: guest_artifacts::ECHO_PATH.into(),
            tcp: guest_artifacts::TCP_ECHO_PATH.into(),
        };
    }
    let out = std::env::var_os("SERVERLESS_WASM_GUESTS_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/guests"))
        .join(language);
    let samples = Samples {
        hello: out.join("hello.wasm"),
        echo: out.join("echo.wasm"),
        tcp: out.join("tcp.wasm"),
    };
    let Some(problem) = unusable(language, &samples) else {
        return samples;
    };
    panic!(
        "the {language} samples cannot be checked: {problem}; build them with `just guests-{language}` \
         (or `guests/tools/install {language} && guests/{language}/build`), or run the whole suite with `tests/run`"
    );
}

/// What a case expects of the response body.
enum BodyIs {
    Exactly(Vec<u8>),
    /// The tcp sample's refusal: the backend's address, then the name of
    /// the `not-allowed` error case in the language's own spelling.
    NotAllowed,
}

/// One request of the shared table and what every language must answer.
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static [u8])>,
    body: Vec<u8>,
    status: u16,
    body_is: BodyIs,
    /// Response headers with all their values, in order.
    response_headers: Vec<(&'static str, Vec<&'static [u8]>)>,
    /// Text that a host log line tagged with this request's id contains.
    log: Option<&'static str>,
}

fn binary(len: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(len).collect()
}

/// The shared table: guests/SAMPLES.md as requests and answers.
fn cases() -> Vec<Case> {
    let text = |s: &'static str| vec![s.as_bytes()];
    vec![
        Case {
            what: "hello without a name",
            method: "GET",
            path: "/hello",
            headers: vec![],
            body: vec![],
            status: 200,
            body_is: BodyIs::Exactly(b"Hello, world!\n".to_vec()),
            response_headers: vec![("content-type", text("text/plain; charset=utf-8"))],
            log: Some("greeting world"),
        },
        Case {
            what: "hello with a percent-encoded UTF-8 name",
            method: "GET",
            path: "/hello/J%C3%BCrgen",
            headers: vec![],
            body: vec![],
            status: 200,
            body_is: BodyIs::Exactly("Hello, Jürgen!\n".as_bytes().to_vec()),
            response_headers: vec![("content-type", text("text/plain; charset=utf-8"))],
            log: Some("greeting J"),
        },
        Case {
            what: "echo of method, path, query, headers and body",
            method: "PUT",
            path: "/echo?x=1&y=two%20words",
            headers: vec![
                ("content-type", b"text/plain"),
                ("x-custom", b"value"),
                ("x-latin1", b"caf\xe9"),
                ("x-twice", b"first"),
                ("x-twice", b"second"),
            ],
            body: b"ping".to_vec(),
            status: 200,
            body_is: BodyIs::Exactly(b"ping".to_vec()),
            response_headers: vec![
                ("content-type", text("text/plain")),
                ("x-echo-method", text("PUT")),
                ("x-echo-path", text("/echo")),
                ("x-echo-query", text("x=1&y=two%20words")),
                ("x-echo-route", text("/echo")),
                ("x-echo-params", text("")),
                ("x-echo-header-x-custom", text("value")),
                ("x-echo-header-x-latin1", vec![b"caf\xe9"]),
                ("x-echo-header-x-twice", vec![b"first", b"second"]),
            ],
            log: None,
        },
        Case {
            what: "echo of a wildcard route without a content type",
            method: "GET",
            path: "/echo/a%20b/c",
            headers: vec![],
            body: vec![],
            status: 200,
            body_is: BodyIs::Exactly(vec![]),
            response_headers: vec![
                ("content-type", text("application/octet-stream")),
                ("x-echo-route", text("/echo/*")),
                ("x-echo-params", text("*=a%20b%2Fc")),
                ("x-echo-path", text("/echo/a%20b/c")),
                ("x-echo-query", text("")),
            ],
            log: None,
        },
        Case {
            what: "echo of a 70000-byte binary body",
            method: "POST",
            path: "/echo",
            headers: vec![("content-type", b"application/octet-stream")],
            body: binary(70_000),
            status: 200,
            body_is: BodyIs::Exactly(binary(70_000)),
            response_headers: vec![("x-echo-method", text("POST"))],
            log: None,
        },
        Case {
            what: "tcp round trip through the allowed echo backend",
            method: "POST",
            path: "/tcp-echo",
            headers: vec![],
            body: binary(20_000),
            status: 200,
            body_is: BodyIs::Exactly(binary(20_000)),
            response_headers: vec![],
            log: None,
        },
        Case {
            what: "tcp to a backend the operator did not allow",
            method: "POST",
            path: "/tcp-denied",
            headers: vec![],
            body: b"hello".to_vec(),
            status: 502,
            body_is: BodyIs::NotAllowed,
            response_headers: vec![],
            log: Some("echo backend"),
        },
        Case {
            what: "tcp without ECHO_ADDRESS",
            method: "POST",
            path: "/tcp-unset",
            headers: vec![],
            body: b"hello".to_vec(),
            status: 500,
            body_is: BodyIs::Exactly(b"ECHO_ADDRESS is not set in the app's env\n".to_vec()),
            response_headers: vec![],
            log: None,
        },
    ]
}

/// A configuration serving one language's samples on the table's routes.
fn config(language: &str, samples: &Samples, allowed: &str, denied: &str) -> ConfigDir {
    let app = |name: &str, wasm: &Path, method: &str, path: &str, extra: &str| {
        format!(
            "[[applications]]\nname = \"{language}-{name}\"\nfile_path = {:?}\nmethod = \"{method}\"\nurl_path = \"{path}\"\n{extra}\n",
            wasm.display().to_string()
        )
    };
    let text = [
        app("hello", &samples.hello, "GET", "/hello", ""),
        app("hello-name", &samples.hello, "GET", "/hello/:name", ""),
        app("echo", &samples.echo, "ANY", "/echo", ""),
        app("echo-rest", &samples.echo, "ANY", "/echo/*", ""),
        app(
            "tcp",
            &samples.tcp,
            "POST",
            "/tcp-echo",
            &format!("env = {{ ECHO_ADDRESS = \"{allowed}\" }}"),
        ),
        app(
            "tcp-denied",
            &samples.tcp,
            "POST",
            "/tcp-denied",
            &format!("env = {{ ECHO_ADDRESS = \"{denied}\" }}"),
        ),
        app("tcp-unset", &samples.tcp, "POST", "/tcp-unset", ""),
    ]
    .concat();
    ConfigDir::new(&text)
}

/// Everything wrong with `reply` for `case`, one line each.
fn mismatches(case: &Case, reply: &Reply, denied: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    if reply.status != case.status {
        wrong.push(format!(
            "status {} instead of {}; body: {}",
            reply.status,
            case.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    match &case.body_is {
        BodyIs::Exactly(expected) if reply.body.as_ref() != expected.as_slice() => {
            wrong.push(format!(
                "body of {} bytes instead of {}: {:?}",
                reply.body.len(),
                expected.len(),
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
            ))
        }
        BodyIs::Exactly(_) => {}
        BodyIs::NotAllowed => {
            let body = String::from_utf8_lossy(&reply.body);
            let prefix = format!("cannot use the echo backend at {denied}: ");
            let named: String = body
                .to_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            if !body.starts_with(&prefix) || !named.contains("notallowed") || !body.ends_with('\n')
            {
                wrong.push(format!(
                    "body {body:?} should start with {prefix:?}, name not-allowed and end with a newline"
                ));
            }
        }
    }
    for (name, expected) in &case.response_headers {
        let actual: Vec<&[u8]> = reply
            .headers
            .get_all(*name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if &actual != expected {
            let show = |values: &[&[u8]]| -> Vec<String> {
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect()
            };
            wrong.push(format!(
                "header {name}: {:?} instead of {:?}",
                show(&actual),
                show(expected)
            ));
        }
    }
    wrong
}

/// Serves `language`'s samples and checks every case of the table.
async fn check_language(language: &str) {
    let samples = samples(language);
    let allowed = EchoServer::start();
    let denied = EchoServer::start();
    let config = config(
        language,
        &samples,
        &allowed.address.to_string(),
        &denied.address.to_string(),
    );
    let host = Host::start(
        Some(&config.path()),
        &["--allow-tcp", &allowed.address.to_string()],
    );
    let client = client();
    let mut failures = Vec::new();
    for case in cases() {
        let reply = send(
            &client,
            case.method,
            &host.url(case.path),
            &case.headers,
            case.body.clone(),
        )
        .await;
        for problem in mismatches(&case, &reply, &denied.address.to_string()) {
            failures.push(format!("{language}: {}: {problem}", case.what));
        }
        if let (Some(text), Some(id)) = (case.log, reply.header("x-request-id")) {
            host.wait_for_log(&[text, id]);
        }
    }
    assert_eq!(denied.accepted(), 0, "the denied backend was reached");
    assert!(
        failures.is_empty(),
        "{} of the shared cases failed:\n{}\nhost log:\n{}",
        failures.len(),
        failures.join("\n"),
        host.stderr()
    );
}

#[tokio::test]
async fn rust_samples() {
    check_language("rust").await;
}

#[tokio::test]
async fn c_samples() {
    check_language("c").await;
}

#[tokio::test]
async fn cpp_samples() {
    check_language("cpp").await;
}

#[tokio::test]
async fn python_samples() {
    check_language("python").await;
}

#[tokio::test]
async fn javascript_samples() {
    check_language("javascript").await;
}

#[tokio::test]
async fn go_samples() {
    check_language("go").await;
}

#[tokio::test]
async fn zig_samples() {
    check_language("zig").await;
}
