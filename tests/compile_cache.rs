//! The on-disk compile cache through the real binary: `host compile` fills
//! it, `host serve` loads from it, and a damaged entry is recompiled
//! instead of trusted.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{ConfigDir, HOST_BIN, Host, get};

fn two_apps() -> ConfigDir {
    ConfigDir::new(&format!(
        "[[applications]]\nname = \"hello\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/hello\"\n\n\
         [[applications]]\nname = \"echo\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/echo\"\n",
        guest_artifacts::HELLO_PATH,
        guest_artifacts::ECHO_PATH,
    ))
}

fn compile(config: &Path, cache: &Path) -> Output {
    Command::new(HOST_BIN)
        .arg("compile")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("SERVERLESS_WASM_CACHE_DIR")
        .output()
        .expect("run host compile")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn entries(cache: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache)
        .expect("the cache folder exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[tokio::test]
async fn host_compile_fills_the_cache_and_serve_loads_from_it() {
    let config = two_apps();
    let cache = tempfile::tempdir().unwrap();
    let first = compile(&config.path(), cache.path());
    assert!(first.status.success(), "{first:?}");
    let text = stdout(&first);
    assert_eq!(text.matches("compiled and cached").count(), 2, "{text}");
    assert!(text.contains("2 files ready"), "{text}");
    assert_eq!(entries(cache.path()).len(), 2);

    let second = compile(&config.path(), cache.path());
    let text = stdout(&second);
    assert_eq!(
        text.matches("loaded from the compile cache").count(),
        2,
        "{text}"
    );

    let cache_flag = format!("--cache-dir={}", cache.path().display());
    let host = Host::start(Some(&config.path()), &[&cache_flag]);
    host.wait_for_log(&["loaded from the compile cache", "hello.wasm"]);
    host.wait_for_log(&["loaded from the compile cache", "echo.wasm"]);
    let reply = get(&host.url("/hello")).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "Hello, world!\n")
    );
}

#[tokio::test]
async fn a_damaged_entry_is_recompiled_and_replaced_never_trusted() {
    let config = two_apps();
    let cache = tempfile::tempdir().unwrap();
    assert!(compile(&config.path(), cache.path()).status.success());
    for entry in entries(cache.path()) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&entry, bytes).unwrap();
    }
    let cache_flag = format!("--cache-dir={}", cache.path().display());
    let host = Host::start(Some(&config.path()), &[&cache_flag]);
    let line = host.wait_for_log(&["recompiled", "hello.wasm"]);
    assert!(line.contains("checksum does not match"), "{line}");
    let reply = get(&host.url("/hello")).await;
    assert_eq!(reply.status, 200);

    let again = compile(&config.path(), cache.path());
    assert_eq!(
        stdout(&again)
            .matches("loaded from the compile cache")
            .count(),
        2,
        "the entries were rewritten: {}",
        stdout(&again)
    );
}

#[test]
fn host_compile_names_the_app_whose_component_is_broken() {
    let dir = ConfigDir::new(
        "[[applications]]\nname = \"broken\"\nfile_path = \"broken.wasm\"\nmethod = \"GET\"\nurl_path = \"/\"\n",
    );
    std::fs::write(dir.path().with_file_name("broken.wasm"), b"not wasm").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let output = compile(&dir.path(), cache.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("app `broken`") && stderr.contains("not a WebAssembly component"),
        "{stderr}"
    );
    assert!(entries(cache.path()).is_empty());
}

#[tokio::test]
async fn no_cache_compiles_without_touching_a_cache() {
    let config = two_apps();
    let host = Host::start(Some(&config.path()), &["--no-cache"]);
    host.wait_for_log(&["compiled (no compile cache)", "hello.wasm"]);
    assert_eq!(get(&host.url("/hello")).await.status, 200);
}

#[test]
fn a_cache_folder_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let config = two_apps();
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = compile(&config.path(), cache.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod go-w"), "{stderr}");
}
