//! `host tokens` on a state directory, offline: the first admin token is
//! made without any server, shown once, listed without its secret, and
//! revoked.

mod support;

use std::process::Output;

use support::host_command;

fn tokens(state: &std::path::Path, args: &[&str]) -> Output {
    host_command()
        .arg("tokens")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn the_first_admin_token_is_made_offline_listed_without_its_secret_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let made = tokens(
        &state,
        &[
            "create",
            "--namespace",
            "default",
            "--scope",
            "admin",
            "--output",
            "json",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    let secret = made["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("swt_{id}_")), "{secret}");
    assert_eq!(
        (made["namespace"].as_str(), made["scope"].as_str()),
        (Some("default"), Some("admin"))
    );

    // For people: the secret alone on stdout, what it is on stderr.
    let second = tokens(
        &state,
        &[
            "create",
            "--namespace",
            "team-a",
            "--scope",
            "deploy",
            "--description",
            "ci",
        ],
    );
    assert!(second.status.success(), "{second:?}");
    let second_secret = text(&second.stdout);
    assert!(
        second_secret.starts_with("swt_") && second_secret.ends_with('\n'),
        "{second_secret}"
    );
    assert!(
        text(&second.stderr).contains(
            "for namespace `team-a`, scope deploy; it is shown this once, keep it secret:"
        ),
        "{second:?}"
    );

    let listed = tokens(&state, &["list"]);
    let listed = text(&listed.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[0].starts_with("ID            NAMESPACE  SCOPE   CREATED"),
        "{listed}"
    );
    assert!(
        lines[1].starts_with(&format!("{id}  default    admin   ")),
        "{listed}"
    );
    assert!(lines[1].contains("Z  active"), "{listed}");
    assert!(lines[2].ends_with("active  ci"), "{listed}");
    assert!(
        !listed.contains(&secret[17..]),
        "a secret in the list: {listed}"
    );

    let revoked = tokens(&state, &["revoke", &id]);
    assert_eq!(
        text(&revoked.stdout),
        format!("token {id} of namespace `default` is revoked\n")
    );
    let listed: serde_json::Value = serde_json::from_slice(
        &tokens(
            &state,
            &["list", "--namespace", "default", "--output", "json"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0]["revoked"].is_string(), "{listed}");

    // Bad input names what is wrong.
    let unknown = tokens(&state, &["revoke", "ffffffffffff"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        "error: no token has the id `ffffffffffff`; `host tokens list` shows them\n"
    );
    let bad_scope = tokens(&state, &["create", "--scope", "root"]);
    assert_eq!(bad_scope.status.code(), Some(2));
    assert!(
        text(&bad_scope.stderr).contains("invalid value 'root' for '--scope <SCOPE>': unknown scope `root`; use read, deploy or admin"),
        "{bad_scope:?}"
    );
    let bad_namespace = tokens(&state, &["create", "--scope", "read", "--namespace", "a/b"]);
    assert_eq!(bad_namespace.status.code(), Some(1));
    assert_eq!(
        text(&bad_namespace.stderr),
        "error: namespace `a/b` is not a name: use 1 to 64 letters, digits, `.`, `_` or `-`\n"
    );
}
