//! Test-only legacy-ABI module (exported memory): each export provokes one
//! behaviour the host must handle. Never route it in production.
//!
//! * `trap`: executes `unreachable`.
//! * `bad_pointer`: logs 100 bytes from 0xFFFF_FFF0, past the memory's end.
//! * `bad_size`: sets a body of `u64::MAX` bytes at address 0.
//! * `spin`: loops forever.
//! * `last_wins`: sets the status, a header and the body twice each.
//! * `content_length_wrong`: declares `Content-Length: 3` for a 5-byte body.
//! * `db_get_probe`: reports raw `db_get` results for `present` (whole and
//!   truncated) and `absent`.
//! * `grow`: grows the memory by 256 MiB and reports the result.
//! * `tcp_bad_fd`: reads from descriptor 99, never opened.
//! * `teapot`: answers 418.
//! * `quiet`: returns without setting anything.
//! * `bad_content_length`: declares `Content-Length: abc`.
//! * `reserved_header`: sets `Transfer-Encoding`, which the host manages.
//! * `bad_status`: sets status 99.
//! * `big_body`: sets a 2 MiB body.
//! * `tcp_limit`: connects twice to `db_get("/env/backend")` and answers
//!   `first=<fd> second=<fd or code>`.
//! * `handle`: answers `probe`.
#![cfg(target_arch = "wasm32")]

use core::arch::wasm32;
use core::hint::black_box;
use core::ptr;

use serverless_wasm_legacy::{db_get, raw, set_body, set_header, set_status};

/// Answers 200 with `body`.
fn ok(body: &str) {
    set_status(200, "OK");
    set_body(body.as_bytes());
}

/// Executes `unreachable`, trapping the instance.
#[unsafe(no_mangle)]
pub extern "C" fn trap() {
    wasm32::unreachable();
}

/// Hands the host a log message that runs past the end of memory.
#[unsafe(no_mangle)]
pub extern "C" fn bad_pointer() {
    // SAFETY: the range is deliberately outside the memory; the host
    // checks it before reading, and this module never touches it.
    unsafe { raw::log(ptr::without_provenance(0xFFFF_FFF0), 100) }
}

/// Hands the host a body whose size no memory can hold.
#[unsafe(no_mangle)]
pub extern "C" fn bad_size() {
    // SAFETY: as for `bad_pointer`: the host must refuse the range, and
    // no Rust code dereferences it.
    unsafe { raw::response_set_body(ptr::null(), u64::MAX) }
}

/// Never returns, so that the host's time limit must stop it.
#[unsafe(no_mangle)]
pub extern "C" fn spin() {
    let mut turns: u64 = 0;
    loop {
        // `black_box` keeps the optimiser from proving the loop useless.
        turns = black_box(turns.wrapping_add(1));
    }
}

/// Sets everything twice: the host must keep the last status, the last
/// `X-A` and the last body.
#[unsafe(no_mangle)]
pub extern "C" fn last_wins() {
    set_status(201, "Created");
    set_status(202, "Accepted");
    set_header("X-A", "1");
    set_header("X-A", "2");
    set_header("X-B", "b");
    set_body(b"first");
    set_body(b"second");
}

/// Declares a body length that disagrees with the body.
#[unsafe(no_mangle)]
pub extern "C" fn content_length_wrong() {
    set_status(200, "OK");
    set_header("Content-Length", "3");
    set_body(b"hello");
}

/// Calls the raw `db_get` for `key` with `buffer`, returning the host's
/// number and the bytes it copied.
fn raw_db_get<'a>(key: &str, buffer: &'a mut [u8]) -> (i64, &'a [u8]) {
    // SAFETY: the key is borrowed for the call and only read; the value
    // pointer and size describe `buffer`, which the host fills up to its
    // length at most.
    let returned = unsafe {
        raw::db_get(
            key.as_ptr(),
            key.len() as u64,
            buffer.as_mut_ptr(),
            buffer.len() as u64,
        )
    };
    let copied = usize::try_from(returned).map_or(0, |n| n.min(buffer.len()));
    (returned, &buffer[..copied])
}

/// Answers `full=<n>:<value> truncated=<n>:<3 bytes> absent=<n>`: the
/// host's raw `db_get` returns for key `present` into 64 bytes and into 3,
/// and for key `absent`.
#[unsafe(no_mangle)]
pub extern "C" fn db_get_probe() {
    let mut full = [0u8; 64];
    let (full_n, full_value) = raw_db_get("present", &mut full);
    let mut short = [0u8; 3];
    let (short_n, short_value) = raw_db_get("present", &mut short);
    let mut none = [0u8; 64];
    let (absent_n, _) = raw_db_get("absent", &mut none);
    ok(&format!(
        "full={full_n}:{} truncated={short_n}:{} absent={absent_n}\n",
        String::from_utf8_lossy(full_value),
        String::from_utf8_lossy(short_value),
    ));
}

/// Asks for 4096 more pages (256 MiB) and answers `grow=<old pages>`, or
/// `grow=-1` when the host refused.
#[unsafe(no_mangle)]
pub extern "C" fn grow() {
    let result = wasm32::memory_grow::<0>(4096);
    let shown = if result == usize::MAX {
        "-1".to_owned()
    } else {
        result.to_string()
    };
    ok(&format!("grow={shown}\n"));
}

/// Reads from a descriptor that was never opened; answers `read=<n>`.
#[unsafe(no_mangle)]
pub extern "C" fn tcp_bad_fd() {
    let mut buffer = [0u8; 16];
    // SAFETY: the pointer and size describe `buffer`, which the host may
    // fill up to its length.
    let read = unsafe { raw::tcp_read(99, buffer.as_mut_ptr(), buffer.len() as u64) };
    ok(&format!("read={read}\n"));
}

/// Answers 418 with its reason phrase.
#[unsafe(no_mangle)]
pub extern "C" fn teapot() {
    set_status(418, "I'm a teapot");
    set_body(b"short and stout\n");
}

/// Does nothing: the host must answer without any response call.
#[unsafe(no_mangle)]
pub extern "C" fn quiet() {}

/// The default entry point: answers `probe`.
#[unsafe(no_mangle)]
pub extern "C" fn handle() {
    ok("probe\n");
}

/// Declares a `Content-Length` that is not a number: the call traps.
#[unsafe(no_mangle)]
pub extern "C" fn bad_content_length() {
    set_header("Content-Length", "abc");
    ok("unreachable\n");
}

/// Sets a header the host manages: the call traps.
#[unsafe(no_mangle)]
pub extern "C" fn reserved_header() {
    set_header("Transfer-Encoding", "chunked");
    ok("unreachable\n");
}

/// Sets a status no response can have: the call traps.
#[unsafe(no_mangle)]
pub extern "C" fn bad_status() {
    set_status(99, "Too Early");
    ok("unreachable\n");
}

/// Sets a 2 MiB body, past a 1 MiB `max_response_body`: the call traps.
#[unsafe(no_mangle)]
pub extern "C" fn big_body() {
    set_body(&vec![b'x'; 2 << 20]);
}

/// Opens two connections to the app's `/env/backend`: with
/// `max_tcp_connections = 1` the second gets the limit's code.
#[unsafe(no_mangle)]
pub extern "C" fn tcp_limit() {
    let address = db_get("/env/backend").unwrap_or_default();
    let connect = || {
        // SAFETY: the pointer and size describe `address`, only read.
        unsafe { raw::tcp_connect(address.as_ptr(), address.len() as u64) }
    };
    let first = connect();
    let second = connect();
    ok(&format!("first={first} second={second}\n"));
}
