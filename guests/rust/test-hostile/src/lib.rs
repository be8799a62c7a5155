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

use std::hint::black_box;

use serverless_wasm_sdk::{Handler, log, outbound_tcp, request, response};

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
            other => response::text(400, &format!("unknown action `{other}`")),
        }
    }
}

serverless_wasm_sdk::export_handler!(Hostile);
