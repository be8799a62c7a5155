//! `loadgen startup`: how long a host with many routes takes from start to
//! its first response, with an empty and with a filled compile cache, how
//! much memory it holds idle, and how much each in-flight instance adds.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::host::RunningHost;
use crate::report::{machine, write};

/// How many requests are held in flight to measure memory per instance.
const IN_FLIGHT: usize = 100;

/// `wasm` with a custom section naming `variant` appended: a different
/// file (so a separate compile and cache entry) with the same behaviour.
fn variant(wasm: &[u8], variant: usize) -> Vec<u8> {
    let name = b"serverless-wasm-bench-variant";
    let payload = variant.to_le_bytes();
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u64);
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len() as u64);
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A configuration of `routes` apps, each with its own hello variant, and
/// one app whose requests wait until their deadline.
fn config(dir: &Path, routes: usize) -> anyhow::Result<String> {
    let hello = std::fs::read(guest_artifacts::HELLO_PATH)?;
    let mut text = String::new();
    for index in 0..routes {
        let file = dir.join(format!("hello-{index}.wasm"));
        std::fs::write(&file, variant(&hello, index))?;
        writeln!(
            text,
            "[[applications]]\nname = \"hello-{index}\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/r{index}/hello\"\n",
            file.display().to_string()
        )?;
    }
    writeln!(
        text,
        "[[applications]]\nname = \"waits\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/waits/:action\"\ntimeout = \"20s\"\n",
        guest_artifacts::TEST_HOSTILE_PATH
    )?;
    Ok(text)
}

/// Starts a host with `cache` and times until `GET /r0/hello` answers.
async fn time_to_first_response(
    binary: &Path,
    config: &str,
    cache: &Path,
) -> anyhow::Result<(Duration, RunningHost)> {
    let flag = format!("--cache-dir={}", cache.display());
    let started = Instant::now();
    let host = RunningHost::start(binary, config, &[&flag])?;
    crate::load::once(host.address, "/r0/hello").await?;
    Ok((started.elapsed(), host))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs the startup and memory measurements and writes them to `out`.
pub async fn startup(binary: &Path, routes: usize, out: &Path) -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let config = config(files.path(), routes)?;
    let cache = tempfile::tempdir()?;

    eprintln!("cold start: {routes} routes, empty compile cache");
    let (cold, host) = time_to_first_response(binary, &config, cache.path()).await?;
    drop(host);
    let entries = std::fs::read_dir(cache.path())?.count();
    if entries < routes {
        bail!("the cold start left {entries} cache entries for {routes} routes");
    }
    eprintln!("warm start");
    let mut warm = Vec::new();
    for _ in 0..3 {
        let (took, host) = time_to_first_response(binary, &config, cache.path()).await?;
        warm.push(took);
        drop(host);
    }
    warm.sort();
    let warm = warm[warm.len() / 2];

    eprintln!("memory");
    let (_, host) = time_to_first_response(binary, &config, cache.path()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = host.rss();
    // Hold IN_FLIGHT requests inside guests until their 20 s deadline.
    let url = format!("http://{}/waits/sleep", host.address);
    let mut waiting = Vec::new();
    for _ in 0..IN_FLIGHT {
        waiting.push(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", &url])
                .stdout(Stdio::null())
                .spawn()
                .context("cannot run curl")?,
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let busy = host.rss();
    for mut child in waiting {
        let _ = child.kill();
        let _ = child.wait();
    }
    let per_instance = busy.saturating_sub(idle) / IN_FLIGHT as u64;

    let mut text = String::new();
    writeln!(text, "# Startup and memory\n")?;
    text.push_str(&machine());
    writeln!(
        text,
        "- command: `just bench-startup` (= `loadgen startup --host target/release/host --routes {routes} --out {}`)\n- {routes} routes, each a distinct file (the hello sample with a custom section naming its number, so each is compiled and cached on its own), plus one app whose requests wait in the guest until their deadline\n",
        out.display()
    )?;
    writeln!(text, "| measurement | value |")?;
    writeln!(text, "|---|---|")?;
    writeln!(
        text,
        "| start to first response, empty compile cache | {:.0} ms |",
        cold.as_secs_f64() * 1e3
    )?;
    writeln!(
        text,
        "| start to first response, filled cache (median of 3) | {:.0} ms |",
        warm.as_secs_f64() * 1e3
    )?;
    writeln!(text, "| RSS idle with {routes} routes | {} |", mib(idle))?;
    writeln!(
        text,
        "| RSS with {IN_FLIGHT} requests in flight | {} |",
        mib(busy)
    )?;
    writeln!(
        text,
        "| RSS per in-flight instance | {:.0} KiB |",
        per_instance as f64 / 1024.0
    )?;
    write(out, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_the_spec_examples() {
        let mut out = Vec::new();
        leb128(&mut out, 624_485);
        assert_eq!(out, [0xe5, 0x8e, 0x26]);
        let mut small = Vec::new();
        leb128(&mut small, 5);
        assert_eq!(small, [5]);
    }

    #[test]
    fn variants_differ_and_keep_the_original_bytes_first() {
        let original = b"\0asm\x0d\0\x01\0".to_vec();
        let one = variant(&original, 1);
        let two = variant(&original, 2);
        assert_ne!(one, two);
        assert!(one.starts_with(&original));
        assert_eq!(one[original.len()], 0, "a custom section");
    }
}
