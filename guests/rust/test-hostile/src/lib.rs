//! Test-only handler: `ANY /hostile/:action` misbehaves as `action` says,
//! so that the tests can prove the host contains it. Never route it in
//! production.
//!
//! * `spin`: loops forever without calling the host.
//! * `spin-host`: loops forever calling the host.
//! * `wait-host` (`addr`): waits forever in a host call (reading a socket
//!   that never answers).
//! * `memory`: allocates and keeps memory until stopped.
//! * `recurse`: recurses without end.
//! * `panic`: panics.
//! * `huge`: appends to the response without end.
//! * `nothing`: returns without setting anything.
//! * `sleep`: sleeps for an hour.
//! * `connect` (`addr`): opens connections in a loop, keeping them.
//! * `resources`: creates host resources in a loop, keeping them.
//! * `ok`: answers `fine`, to show the host still works.
//! * `busy` (`ms`): computes for `ms` milliseconds, then answers: long
//!   but legitimate.
//! * `headers-flood` (`count`): appends `count` headers (30,000 unless
//!   given), logging the first refusal, and answers `flooded`.
//! * `header-bytes` (`body`, `count`, `size`): sets a body of `body` bytes,
//!   then `count` headers with values of `size` bytes, logging the first
//!   refusal.
//! * `log-huge` (`mb`): logs one message of `mb` million bytes (100 unless
//!   given), then a short one.
//! * `output-flood` (`lines`, `width`): writes `lines` lines of `width`
//!   bytes, every other one through `log` and the others to stdout.
//! * `stdout-pieces`: writes one line in five pieces, each through a
//!   stdout handle of its own, then a blank line and one more line.
//! * `secret-split` (`name`, `via`): writes a line through `via` (`stdout`,
//!   `stderr` or `log`) in which the value of the variable `name` straddles
//!   the host's 16 KiB line split.
//! * `symlink` (`dir`, `target`, `link`): creates the symlink `link` to
//!   `target` in the mounted folder `dir`, answers `linked` or the error.

use std::hint::black_box;

use serverless_wasm_sdk::{Handler, log, outbound_tcp, request, response};

/// Where the host cuts a long output line.
const HOST_LINE_SPLIT: usize = 16 * 1024;

struct Hostile;

fn query(name: &str) -> String {
    request::query_param(name).unwrap_or_default()
}

#[allow(unconditional_recursion, reason = "the point of the action")]
fn recurse(depth: u64, padding: [u64; 16]) -> u64 {
    black_box(padding);
    recurse(depth + 1, black_box([depth; 16])) + 1
}

impl Handler for Hostile {
    fn handle() {
        match request::param("action").unwrap_or_default().as_str() {
            "spin" => {
                let mut counter = 0u64;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            "spin-host" => loop {
                black_box(request::method());
            },
            "wait-host" => {
                let connection =
                    outbound_tcp::connect(&query("addr")).expect("the backend is allowed");
                let _ = connection.read(1);
                response::text(200, "the read returned");
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                black_box(recurse(0, [0; 16]));
            }
            "panic" => panic!("hostile guest panicked on purpose"),
            "huge" => {
                let chunk = vec![b'x'; 1 << 20];
                let mut sent = 0usize;
                while response::append_body(&chunk).is_ok() {
                    sent += chunk.len();
                }
                log::log(
                    log::Level::Warn,
                    &format!("the host stopped the body after {sent} bytes"),
                );
            }
            "nothing" => {}
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "connect" => {
                let mut kept = Vec::new();
                loop {
                    match outbound_tcp::connect(&query("addr")) {
                        Ok(connection) => kept.push(connection),
                        Err(error) => {
                            response::text(200, &format!("opened {} then {error:?}", kept.len()));
                            return;
                        }
                    }
                }
            }
            "resources" => {
                // Every clock subscription is a host resource; keep them all.
                let mut kept = Vec::new();
                loop {
                    kept.push(wasip2::clocks::monotonic_clock::subscribe_duration(1 << 40));
                }
            }
            "ok" => response::text(200, "fine"),
            // Legitimately long: computes for `ms` milliseconds, then answers.
            "busy" => {
                let ms: u64 = query("ms").parse().unwrap_or(100);
                let started = std::time::Instant::now();
                let mut counter = 0u64;
                while started.elapsed() < std::time::Duration::from_millis(ms) {
                    counter = black_box(counter.wrapping_add(1));
                }
                response::text(200, &format!("done after {ms} ms"));
            }
            "headers-flood" => {
                let count: usize = query("count").parse().unwrap_or(30_000);
                for index in 0..count {
                    if let Err(error) = response::append_header("x-flood", "v") {
                        log::log(
                            log::Level::Warn,
                            &format!("header {} refused: {error:?}", index + 1),
                        );
                        break;
                    }
                }
                let _ = response::set_body(b"flooded");
            }
            "header-bytes" => {
                let body: usize = query("body").parse().unwrap_or(0);
                let count: usize = query("count").parse().unwrap_or(1);
                let size: usize = query("size").parse().unwrap_or(1024);
                let _ = response::set_body(&vec![b'b'; body]);
                let value = "v".repeat(size);
                for index in 0..count {
                    if let Err(error) = response::append_header(&format!("x-big-{index}"), &value) {
                        log::log(
                            log::Level::Warn,
                            &format!("header {} refused: {error:?}", index + 1),
                        );
                        break;
                    }
                }
            }
            "log-huge" => {
                let mb: usize = query("mb").parse().unwrap_or(100);
                let huge = "x".repeat(mb * 1_000_000);
                log::log(log::Level::Info, &huge);
                drop(huge);
                log::log(log::Level::Info, "after the huge message");
                response::text(200, "logged");
            }
            "output-flood" => {
                let lines: usize = query("lines").parse().unwrap_or(2000);
                let width: usize = query("width").parse().unwrap_or(1000);
                let line = "o".repeat(width);
                for index in 0..lines {
                    if index % 2 == 0 {
                        log::log(log::Level::Info, &line);
                    } else {
                        println!("{line}");
                    }
                }
                response::text(200, "flooded");
            }
            "stdout-pieces" => {
                for piece in ["one ", "line ", "in ", "five ", "pieces\n"] {
                    let stdout = wasip2::cli::stdout::get_stdout();
                    stdout
                        .blocking_write_and_flush(piece.as_bytes())
                        .expect("stdout takes the piece");
                }
                let stdout = wasip2::cli::stdout::get_stdout();
                stdout
                    .blocking_write_and_flush(b"\nafter the blank line\n")
                    .expect("stdout takes the lines");
                response::text(200, "written");
            }
            "secret-split" => {
                let secret = std::env::var(query("name")).unwrap_or_default();
                // The secret starts five bytes before the host's split.
                let line = format!("{}{secret}", "x".repeat(HOST_LINE_SPLIT - 5));
                match query("via").as_str() {
                    "log" => log::log(log::Level::Info, &line),
                    "stderr" => eprintln!("{line}"),
                    _ => println!("{line}"),
                }
                response::text(200, "written");
            }
            "symlink" => {
                let dir = query("dir");
                let preopens = wasip2::filesystem::preopens::get_directories();
                let Some((folder, _)) = preopens.iter().find(|(_, path)| *path == dir) else {
                    response::text(404, &format!("no mounted folder {dir}"));
                    return;
                };
                match folder.symlink_at(&query("target"), &query("link")) {
                    Ok(()) => response::text(200, "linked"),
                    Err(error) => response::text(200, &format!("error: {}", error.name())),
                }
            }
            other => response::text(400, &format!("unknown action `{other}`")),
        }
    }
}

serverless_wasm_sdk::export_handler!(Hostile);
