//! Test-only handler: `ANY /probe/:action` does what `action` says, so that
//! the host's tests can provoke each kind of guest behaviour. Never route
//! it in production.
//!
//! Actions (query parameters in brackets):
//! * `trap`: executes `unreachable`.
//! * `panic`: panics with a known message.
//! * `sleep` (`ms`): prints `sleeping`, sleeps, then answers `slept`.
//! * `output`: writes a line to stdout and one to stderr.
//! * `tcp` (`addr`): connects through `outbound-tcp`, answers with the result.
//! * `tcp-hold` (`addr`, `count`): opens `count` connections and never
//!   closes them; answers `opened N` and the error that stopped it, if any.
//! * `tcp-again` (`addr`, `count`): tries `outbound-tcp.connect` `count`
//!   times, whatever each answer; answers `tried N`.
//! * `tcp-read` (`addr`): connects and reads once, answers with the result.
//! * `std-tcp` (`addr`): connects through `std::net` (`wasi:sockets`).
//! * `std-bind` (`addr`): tries to listen through `std::net` (`wasi:sockets`).
//! * `files`: lists `/` through `std::fs` (`wasi:filesystem`).
//! * `sockets` (`count`): creates `count` TCP sockets through
//!   `wasi:sockets` without connecting them and keeps them; answers
//!   `created N` and the error that stopped it, if any.
//! * `file-streams` (`name`, `count`): opens the file `name` of the first
//!   mounted folder, takes a read stream and drops the descriptor, `count`
//!   times, keeping the streams; answers `kept N streams` and the error
//!   that stopped it, if any.
//! * `open-files` (`path`, `count`): opens the file `count` times through
//!   `std::fs` and keeps every handle; answers `opened N` and the error
//!   that stopped it, if any.
//! * `print-env` (`name`): prints `NAME is VALUE` on stdout.
//! * `panic-env` (`name`): panics with the variable's value in the message.
//! * `read` (`path`): reads a file through `std::fs`, answers its text.
//! * `write` (`path`): writes `written` to a file through `std::fs`.
//! * `status` (`code`, `reason`): sets the status line, answers with the result.
//! * `header` (`name`, `value`): sets a header, answers with the result.
//! * `params`: answers with the route parameters, one `name=value` per line.
//! * `nothing`: returns without touching the response.
//! * `counter`: increments a global counter and answers with its value, which
//!   is `1` when every request gets a fresh instance.
//! * `clock-random`: answers `seconds-since-epoch random-number` from the
//!   WASI wall clock and random source.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use serverless_wasm_sdk::{Handler, outbound_tcp, request, response};

struct Probe;

/// Survives between requests only if an instance were reused.
static REQUESTS_SEEN: AtomicU32 = AtomicU32::new(0);

fn query(name: &str) -> String {
    request::query_param(name).unwrap_or_default()
}

fn answer(text: &str) {
    // A body past the limit makes the host answer 500 anyway.
    let _ = response::set_body(text.as_bytes());
}

impl Handler for Probe {
    fn handle() {
        let action = request::param("action").unwrap_or_default();
        match action.as_str() {
            "trap" => core::arch::wasm32::unreachable(),
            "panic" => panic!("the probe panicked on purpose"),
            "sleep" => {
                let ms: u64 = query("ms").parse().unwrap_or(0);
                println!("sleeping {ms} ms");
                std::thread::sleep(std::time::Duration::from_millis(ms));
                answer("slept");
            }
            "output" => {
                println!("probe line on stdout");
                let mut stderr = std::io::stderr();
                let _ = stderr.write_all(b"probe line on stderr\n");
                answer("written");
            }
            "tcp" => match outbound_tcp::connect(&query("addr")) {
                Ok(_) => answer("connected"),
                Err(error) => answer(&format!("{error:?}")),
            },
            "tcp-hold" => {
                let count: u32 = query("count").parse().unwrap_or(1);
                let mut opened = 0;
                let mut stopped = String::new();
                for _ in 0..count {
                    match outbound_tcp::connect(&query("addr")) {
                        Ok(connection) => {
                            // Leak it: the host must close it anyway.
                            std::mem::forget(connection);
                            opened += 1;
                        }
                        Err(error) => {
                            stopped = format!(" then {error:?}");
                            break;
                        }
                    }
                }
                answer(&format!("opened {opened}{stopped}"));
            }
            "tcp-read" => match outbound_tcp::connect(&query("addr")) {
                Ok(connection) => answer(&format!("{:?}", connection.read(16))),
                Err(error) => answer(&format!("connect: {error:?}")),
            },
            "std-bind" => match std::net::TcpListener::bind(query("addr")) {
                Ok(_) => answer("bound"),
                Err(error) => answer(&format!("error: {:?}", error.kind())),
            },
            "tcp-again" => {
                let count: u32 = query("count").parse().unwrap_or(1);
                for _ in 0..count {
                    drop(outbound_tcp::connect(&query("addr")));
                }
                answer(&format!("tried {count}"));
            }
            "std-tcp" => match std::net::TcpStream::connect(query("addr")) {
                Ok(_) => answer("connected"),
                Err(error) => answer(&format!("error: {:?}", error.kind())),
            },
            "sockets" => {
                use wasip2::sockets::network::IpAddressFamily;
                let count: u32 = query("count").parse().unwrap_or(1);
                let mut kept = Vec::new();
                let mut stopped = String::new();
                for _ in 0..count {
                    match wasip2::sockets::tcp_create_socket::create_tcp_socket(
                        IpAddressFamily::Ipv4,
                    ) {
                        Ok(socket) => kept.push(socket),
                        Err(error) => {
                            stopped = format!(" then {}", error.name());
                            break;
                        }
                    }
                }
                answer(&format!("created {}{stopped}", kept.len()));
            }
            "file-streams" => {
                // Opens the file in the first mounted folder, takes a read
                // stream, drops the descriptor and keeps the stream.
                use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
                let count: u32 = query("count").parse().unwrap_or(1);
                let name = query("name");
                let directories = wasip2::filesystem::preopens::get_directories();
                let mut kept = Vec::new();
                let mut stopped = String::new();
                if let Some((root, _)) = directories.first() {
                    for _ in 0..count {
                        let file = root.open_at(
                            PathFlags::empty(),
                            &name,
                            OpenFlags::empty(),
                            DescriptorFlags::READ,
                        );
                        let stream = file.and_then(|file| file.read_via_stream(0));
                        match stream {
                            Ok(stream) => kept.push(stream),
                            Err(error) => {
                                stopped = format!(" then {}", error.name());
                                break;
                            }
                        }
                    }
                }
                answer(&format!("kept {} streams{stopped}", kept.len()));
            }
            "open-files" => {
                let count: u32 = query("count").parse().unwrap_or(1);
                let path = query("path");
                let mut kept = Vec::new();
                let mut stopped = String::new();
                for _ in 0..count {
                    match std::fs::File::open(&path) {
                        Ok(file) => kept.push(file),
                        Err(error) => {
                            stopped = format!(" then {:?}", error.kind());
                            break;
                        }
                    }
                }
                answer(&format!("opened {}{stopped}", kept.len()));
            }
            "files" => match std::fs::read_dir("/") {
                Ok(entries) => answer(&format!("listed {} entries", entries.count())),
                Err(error) => answer(&format!("error: {:?}", error.kind())),
            },
            "print-env" => {
                let name = query("name");
                println!("{name} is {}", std::env::var(&name).unwrap_or_default());
                answer("printed");
            }
            "panic-env" => {
                let name = query("name");
                panic!("failed with {}", std::env::var(&name).unwrap_or_default());
            }
            "read" => match std::fs::read_to_string(query("path")) {
                Ok(text) => answer(&text),
                Err(error) => answer(&format!("error: {:?}", error.kind())),
            },
            "write" => match std::fs::write(query("path"), "written") {
                Ok(()) => answer("written"),
                Err(error) => answer(&format!("error: {:?}", error.kind())),
            },
            "status" => {
                let code: u16 = query("code").parse().unwrap_or(0);
                let reason = Some(query("reason")).filter(|r| !r.is_empty());
                let result = response::set_status_line(code, reason.as_deref());
                answer(&format!("{result:?}"));
            }
            "header" => {
                let result = response::set_header(&query("name"), &query("value"));
                answer(&format!("{result:?}"));
            }
            "params" => {
                let lines: String = request::params()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                answer(&lines);
            }
            "nothing" => {}
            "counter" => {
                let seen = REQUESTS_SEEN.fetch_add(1, Ordering::SeqCst) + 1;
                answer(&seen.to_string());
            }
            "clock-random" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                // `RandomState` seeds itself from the WASI random source.
                let random = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish();
                answer(&format!("{now} {random}"));
            }
            other => {
                response::text(400, &format!("unknown probe action `{other}`\n"));
            }
        }
    }
}

serverless_wasm_sdk::export_handler!(Probe);
