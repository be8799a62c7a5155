//! Builds every guest under `guests/rust/` for wasm32-wasip2 with a nested cargo,
//! and writes `guests.rs` with a path and a byte constant for each.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let guests_dir = manifest_dir.join("../../guests/rust");
    println!("cargo:rerun-if-changed={}", guests_dir.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../../wit").display()
    );
    // The workspace's release profile (LTO, for one) and its locked
    // dependency versions decide how the guests are built; without these,
    // a checkout keeps guests built under the old settings.
    for file in ["../../Cargo.toml", "../../Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest_dir.join(file).display()
        );
    }

    let guests = guest_packages(&guests_dir)?;
    ensure_target()?;

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg(format!("--target={TARGET}"))
        .arg("--manifest-path")
        .arg(manifest_dir.join("../../Cargo.toml"))
        .env("CARGO_TARGET_DIR", &out_dir)
        // The outer build's flags are for the host, not for WebAssembly, and
        // clippy's wrapper must not lint the guests as host code.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    for guest in &guests {
        command.arg("--package").arg(guest);
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo to build the guests: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the guests for {TARGET} failed; see the cargo output above"
        ));
    }

    let release_dir = out_dir.join(TARGET).join("release");
    let mut code = String::new();
    for guest in &guests {
        let file_stem = guest.replace('-', "_");
        let wasm = release_dir.join(format!("{file_stem}.wasm"));
        if !wasm.is_file() {
            return Err(format!(
                "cargo built guest `{guest}` but {} is missing",
                wasm.display()
            ));
        }
        watch_dependencies(&release_dir.join(format!("{file_stem}.d")))?;
        let constant = guest.to_uppercase().replace('-', "_");
        let path = wasm.display().to_string();
        writeln!(code, "/// The `guests/rust/{guest}` component's file.").ok();
        writeln!(code, "pub const {constant}_PATH: &str = {path:?};").ok();
        writeln!(code, "/// The `guests/rust/{guest}` component's bytes.").ok();
        writeln!(
            code,
            "pub const {constant}: &[u8] = include_bytes!({path:?});"
        )
        .ok();
    }
    fs::write(out_dir.join("guests.rs"), code).map_err(|e| format!("cannot write guests.rs: {e}"))
}

/// The package names of the guests: every folder under `guests/rust/` with a
/// `Cargo.toml`, whose folder name must be its package name.
fn guest_packages(guests_dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(guests_dir)
        .map_err(|e| format!("cannot list {}: {e}", guests_dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", guests_dir.display()))?;
        if entry.path().join("Cargo.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Makes sure the standard library for the target is installed, adding it
/// with rustup when it is missing.
fn ensure_target() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Ok(());
    }
    println!(
        "cargo:warning=the {TARGET} target is missing; installing it with `rustup target add {TARGET}`"
    );
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => Err(format!(
            "`rustup target add {TARGET}` failed; run it by hand and build again"
        )),
        Err(_) => Err(format!(
            "the guests need the {TARGET} target, which is not installed, and rustup was not found; \
             install Rust through rustup (https://rustup.rs) or add the {TARGET} standard library to your toolchain"
        )),
    }
}

/// Reruns this script when any source file of a guest changes, using the
/// dep-info file cargo writes next to the artifact.
fn watch_dependencies(dep_info: &Path) -> Result<(), String> {
    let contents = fs::read_to_string(dep_info)
        .map_err(|e| format!("cannot read {}: {e}", dep_info.display()))?;
    for line in contents.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut pending = String::new();
        for part in deps.split(' ') {
            if let Some(escaped) = part.strip_suffix('\\') {
                pending.push_str(escaped);
                pending.push(' ');
                continue;
            }
            pending.push_str(part);
            if !pending.is_empty() {
                println!("cargo:rerun-if-changed={pending}");
            }
            pending.clear();
        }
    }
    Ok(())
}
