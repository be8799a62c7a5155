//! Golden-file tests of bad configurations: for each
//! `tests/bad-configs/NAME.toml`, `host serve bad-configs/NAME.toml` must
//! exit with status 1 and print exactly `tests/bad-configs/NAME.stderr`.
//!
//! Run with `BLESS=1` to rewrite the expected files after an intended
//! change of wording, then review the diff.

use std::path::Path;
use std::process::Command;

const HOST_BIN: &str = env!("CARGO_BIN_EXE_host");

/// The host binary, with the compile cache the other tests share (a config
/// that gets as far as compiling must not write to the user's cache).
fn host_command() -> Command {
    let mut command = Command::new(HOST_BIN);
    command.env(
        "SERVERLESS_WASM_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"),
    );
    command
}

#[test]
fn bad_configs_print_their_golden_error() {
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
    let mut cases: Vec<_> = std::fs::read_dir(tests_dir.join("bad-configs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "the golden cases are missing: {cases:?}");
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let output = host_command()
            .current_dir(&tests_dir)
            .args([
                "serve",
                &format!("bad-configs/{name}"),
                "--listen",
                "127.0.0.1:0",
            ])
            .env_remove("RUST_LOG")
            .env_remove("SERVERLESS_WASM_GOLDEN_TEST_UNSET")
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let golden = case.with_extension("stderr");
        if bless {
            std::fs::write(&golden, &stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if output.status.code() != Some(1) {
            failures.push(format!(
                "{name}: exit status {:?}, expected 1",
                output.status.code()
            ));
        }
        if stderr != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- got\n{stderr}"
            ));
        }
        if !output.stdout.is_empty() {
            failures.push(format!(
                "{name}: printed on stdout: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_config_file_is_named() {
    let output = host_command()
        .args(["serve", "/nonexistent/serverless.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "error: cannot read configuration file /nonexistent/serverless.toml: No such file or directory (os error 2)\n"
    );
}
