//! Golden-file tests of bad configurations: for each
//! `tests/bad-configs/NAME.toml`, `host serve bad-configs/NAME.toml` must
//! exit with status 1 and print exactly `tests/bad-configs/NAME.stderr`.
//!
//! Each file is a test of its own, named after it; a new file must be
//! added to the `golden_files!` list, which a test checks.
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

/// The folder of golden files.
fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bad-configs")
}

/// Runs `host serve bad-configs/NAME.toml` and compares its exit status
/// and output with the golden file `NAME.stderr`.
fn check_golden(name: &str) {
    let tests_dir = golden_dir().join("..");
    let case = golden_dir().join(format!("{name}.toml"));
    assert!(case.is_file(), "{} is missing", case.display());
    let output = host_command()
        .current_dir(&tests_dir)
        .args([
            "serve",
            &format!("bad-configs/{name}.toml"),
            "--listen",
            "127.0.0.1:0",
        ])
        // Loading logs timestamped lines (a module compiled and cached)
        // before a later error; the golden files hold the error alone.
        .env("RUST_LOG", "error")
        .env_remove("SERVERLESS_WASM_GOLDEN_TEST_UNSET")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let golden = case.with_extension("stderr");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&golden, &stderr).unwrap();
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|error| panic!("{}: {error}", golden.display()));
    assert_eq!(
        stderr, expected,
        "{name}: the output is not the golden file's (BLESS=1 rewrites it)"
    );
    assert_eq!(output.status.code(), Some(1), "{name}: the exit status");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "{name}: printed on stdout"
    );
}

/// One test per golden file, named after it (`-` becomes `_`), and
/// `GOLDEN_FILES`, the names they test.
macro_rules! golden_files {
    ($($test:ident,)*) => {
        $(
            #[test]
            fn $test() {
                check_golden(&stringify!($test).replace('_', "-"));
            }
        )*

        /// The golden files listed above, as they are named in the folder.
        fn golden_files() -> Vec<String> {
            vec![$(stringify!($test).replace('_', "-")),*]
        }
    };
}

golden_files! {
    allowed_tcp_not_covered,
    any_with_others,
    bad_allowed_http,
    bad_allowed_tcp,
    bad_app_name,
    bad_body_size,
    bad_env_name,
    bad_listen_address,
    bad_timeout,
    bad_world,
    conflicting_routes,
    core_module,
    duplicate_name,
    duplicate_parameter,
    empty_function,
    function_on_component,
    get_and_head_routes,
    legacy_files,
    legacy_handle_with_params,
    legacy_import_type,
    legacy_memory_too_large,
    legacy_no_handle,
    legacy_no_memory,
    legacy_own_memory_too_large,
    legacy_two_memories,
    legacy_unknown_function,
    legacy_unknown_import,
    legacy_wasi_import,
    lowercase_method,
    misplaced_wildcard,
    missing_component_file,
    missing_file_path,
    missing_from_env,
    missing_url_path,
    mount_missing_folder,
    mount_not_absolute,
    no_applications,
    not_wasm,
    publish_to_bad_topic,
    publish_to_with_env,
    publish_to_with_file,
    route_without_slash,
    service_bad_restart,
    service_http_not_loopback,
    service_http_outside_listen,
    service_listen_not_covered,
    service_route_file_and_service,
    service_route_named_twice,
    service_route_unknown_service,
    service_route_with_env,
    service_route_without_http,
    toml_syntax_error,
    unknown_app_key,
    unknown_method,
    unknown_top_level_key,
    world_on_core_module,
    wrong_value_type,
    subscription_bad_topic,
    subscription_dead_letter_loop,
    subscription_duplicate_name,
    subscription_unknown_key,
    subscription_zero_attempts,
    subscription_dead_letter_round,
    subscription_host_topic,
    subscription_without_topic,
    subscription_not_a_subscriber,
    publish_bad_pattern,
    publish_zero_rate,
    publish_on_publish_to,
}

/// A golden file added to the folder but not to the list above would
/// never run: every `NAME.toml` and `NAME.stderr` there must be listed
/// (and `data/` holds only what the cases use).
#[test]
fn every_golden_file_in_the_folder_has_a_test() {
    let listed = golden_files();
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if file == "data" && path.is_dir() {
            continue;
        }
        let name = file
            .strip_suffix(".toml")
            .or_else(|| file.strip_suffix(".stderr"));
        if !name.is_some_and(|name| listed.iter().any(|listed| listed == name)) {
            unlisted.push(file);
        }
    }
    unlisted.sort();
    assert!(
        unlisted.is_empty(),
        "not in the golden_files! list of tests/bad_configs.rs: {unlisted:?}"
    );
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

/// The core modules in `data/` are binary, so each sits beside the text
/// it was assembled from; the two must describe the same module.
#[test]
fn every_module_in_data_matches_its_text() {
    let engine = wasmtime::Engine::default();
    let data = golden_dir().join("data");
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let wat = entry.unwrap().path();
        if wat.extension().is_none_or(|e| e != "wat") {
            continue;
        }
        let wasm = std::fs::read(wat.with_extension("wasm")).unwrap();
        let text = std::fs::read_to_string(&wat).unwrap();
        let describe = |ty: wasmtime::ExternType| match ty {
            wasmtime::ExternType::Func(f) => format!(
                "func {:?} -> {:?}",
                f.params().map(|t| t.to_string()).collect::<Vec<_>>(),
                f.results().map(|t| t.to_string()).collect::<Vec<_>>()
            ),
            wasmtime::ExternType::Memory(m) => {
                format!("memory {} {:?}", m.minimum(), m.maximum())
            }
            _ => "other".to_owned(),
        };
        let shape = |module: wasmtime::Module| {
            let imports: Vec<String> = module
                .imports()
                .map(|i| format!("{}.{}: {}", i.module(), i.name(), describe(i.ty())))
                .collect();
            let exports: Vec<String> = module
                .exports()
                .map(|e| format!("{}: {}", e.name(), describe(e.ty())))
                .collect();
            (imports, exports)
        };
        if text.contains("(component") {
            wasmtime::component::Component::new(&engine, &wasm)
                .unwrap_or_else(|e| panic!("{}: {e:#}", wat.display()));
        } else {
            let from_text = wasmtime::Module::new(&engine, &text).unwrap();
            let from_binary = wasmtime::Module::new(&engine, &wasm).unwrap();
            assert_eq!(
                format!("{:?}", shape(from_binary)),
                format!("{:?}", shape(from_text)),
                "{}",
                wat.display()
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
}
