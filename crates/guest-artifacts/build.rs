//! Builds the Rust guests with nested cargos and writes `guests.rs` with a
//! path and a byte constant for each: the components under `guests/rust/`
//! for wasm32-wasip2, the core modules under `guests/legacy/` for
//! wasm32-unknown-unknown, and the WAT files under `guests/legacy/wat/`,
//! converted to binary.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target of the components under `guests/rust/`.
const COMPONENT_TARGET: &str = "wasm32-wasip2";
/// The target of the core modules under `guests/legacy/`.
const LEGACY_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}

/// Where the build script works: the paths every step needs.
struct Dirs {
    /// The workspace's `Cargo.toml`.
    workspace_manifest: PathBuf,
    /// The target directory of the nested cargos, and where WAT output goes.
    out: PathBuf,
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let dirs = Dirs {
        workspace_manifest: manifest_dir.join("../../Cargo.toml"),
        out: PathBuf::from(var("OUT_DIR")?),
    };
    let components_dir = manifest_dir.join("../../guests/rust");
    let legacy_dir = manifest_dir.join("../../guests/legacy");
    for watched in [&components_dir, &legacy_dir] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
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

    let mut code = String::new();
    let components = guest_packages(&components_dir)?;
    build_packages(
        &dirs,
        COMPONENT_TARGET,
        "guests/rust",
        "component",
        &components,
        &mut code,
    )?;
    let legacy = guest_packages(&legacy_dir)?;
    build_packages(
        &dirs,
        LEGACY_TARGET,
        "guests/legacy",
        "core module",
        &legacy,
        &mut code,
    )?;
    convert_wat(
        &legacy_dir.join("wat"),
        &dirs.out.join("legacy-wat"),
        &mut code,
    )?;
    fs::write(dirs.out.join("guests.rs"), code).map_err(|e| format!("cannot write guests.rs: {e}"))
}

/// Builds `packages` (folders under `folder`) for `target` in release with
/// a nested cargo, and appends a `NAME_PATH` and a `NAME` constant for each
/// to `code`. `kind` names what they are in the constants' docs.
fn build_packages(
    dirs: &Dirs,
    target: &str,
    folder: &str,
    kind: &str,
    packages: &[String],
    code: &mut String,
) -> Result<(), String> {
    if packages.is_empty() {
        return Ok(());
    }
    ensure_target(target)?;

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg(format!("--target={target}"))
        .arg("--manifest-path")
        .arg(&dirs.workspace_manifest)
        .env("CARGO_TARGET_DIR", &dirs.out)
        // The outer build's flags are for the host, not for WebAssembly, and
        // clippy's wrapper must not lint the guests as host code.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    for package in packages {
        command.arg("--package").arg(package);
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo to build the guests: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the guests under {folder} for {target} failed; see the cargo output above"
        ));
    }

    let release_dir = dirs.out.join(target).join("release");
    for package in packages {
        let file_stem = package.replace('-', "_");
        let wasm = release_dir.join(format!("{file_stem}.wasm"));
        if !wasm.is_file() {
            return Err(format!(
                "cargo built guest `{package}` but {} is missing",
                wasm.display()
            ));
        }
        watch_dependencies(&release_dir.join(format!("{file_stem}.d")))?;
        let constant = package.to_uppercase().replace('-', "_");
        write_constants(
            code,
            &constant,
            &format!("`{folder}/{package}` {kind}"),
            &wasm,
        );
    }
    Ok(())
}

/// Converts every `*.wat` file in `wat_dir` to binary in `out_dir`, and
/// appends `LEGACY_WAT_STEM_PATH` and `LEGACY_WAT_STEM` constants for each.
fn convert_wat(wat_dir: &Path, out_dir: &Path, code: &mut String) -> Result<(), String> {
    let entries =
        fs::read_dir(wat_dir).map_err(|e| format!("cannot list {}: {e}", wat_dir.display()))?;
    let mut sources = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", wat_dir.display()))?
            .path();
        if path.extension().is_some_and(|extension| extension == "wat") {
            sources.push(path);
        }
    }
    sources.sort();
    fs::create_dir_all(out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
        let stem = source
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} has no file name", source.display()))?;
        // `wat`'s error already names the file, line and column.
        let binary = wat::parse_file(source).map_err(|e| e.to_string())?;
        let wasm = out_dir.join(format!("{stem}.wasm"));
        fs::write(&wasm, binary).map_err(|e| format!("cannot write {}: {e}", wasm.display()))?;
        let constant = format!("LEGACY_WAT_{}", stem.to_uppercase().replace('-', "_"));
        write_constants(
            code,
            &constant,
            &format!("`guests/legacy/wat/{stem}.wat` core module"),
            &wasm,
        );
    }
    Ok(())
}

/// Appends `CONSTANT_PATH`, the file, and `CONSTANT`, its bytes, to `code`.
fn write_constants(code: &mut String, constant: &str, what: &str, wasm: &Path) {
    let path = wasm.display().to_string();
    writeln!(code, "/// The {what}'s file.").ok();
    writeln!(code, "pub const {constant}_PATH: &str = {path:?};").ok();
    writeln!(code, "/// The {what}'s bytes.").ok();
    writeln!(
        code,
        "pub const {constant}: &[u8] = include_bytes!({path:?});"
    )
    .ok();
}

/// The package names of the guests in `guests_dir`: every folder with a
/// `Cargo.toml`, whose folder name must be its package name. Other folders
/// (`guests/legacy/wat`) are skipped.
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

/// Makes sure the standard library for `target` is installed, adding it
/// with rustup when it is missing.
fn ensure_target(target: &str) -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(target).is_dir() {
        return Ok(());
    }
    println!(
        "cargo:warning=the {target} target is missing; installing it with `rustup target add {target}`"
    );
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => Err(format!(
            "`rustup target add {target}` failed; run it by hand and build again"
        )),
        Err(_) => Err(format!(
            "the guests need the {target} target, which is not installed, and rustup was not found; \
             install Rust through rustup (https://rustup.rs) or add the {target} standard library to your toolchain"
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
