//! The host's imports exactly as it declares them, for callers that need
//! what the safe wrappers hide (the return values of `db_get`, or probing
//! how the host treats bad pointers).
//!
//! Pointers are offsets into the module's memory (`i32` in the module) and
//! sizes are `u64` (`i64`). The host reads or writes only the bytes a
//! pointer and size describe, and only during the call. Calling any of
//! these is `unsafe` because the host writes through `*mut u8` pointers
//! and, for the others, because a pointer and size that do not describe
//! one live allocation are a bug the compiler cannot see.

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// Writes `size` bytes of UTF-8 at `ptr` to the host log.
    pub fn log(ptr: *const u8, size: u64);

    /// Sets the response's status code and reason phrase; the last call
    /// wins.
    pub fn response_set_status_line(status: u32, reason_ptr: *const u8, reason_size: u64);

    /// Sets a response header, replacing an earlier one of the same name.
    pub fn response_set_header(
        name_ptr: *const u8,
        name_size: u64,
        value_ptr: *const u8,
        value_size: u64,
    );

    /// Sets the response body; the last call wins.
    pub fn response_set_body(ptr: *const u8, size: u64);

    /// Opens a TCP connection to `host:port` text, if the app's outbound
    /// policy allows it. Returns a descriptor (`>= 0`) or a negative code
    /// (see [`TcpError`](crate::TcpError)).
    pub fn tcp_connect(addr_ptr: *const u8, addr_size: u64) -> i32;

    /// Reads up to `size` bytes into `ptr`. Returns the number read, `0` at
    /// the end of the stream, or a negative code.
    pub fn tcp_read(fd: i32, ptr: *mut u8, size: u64) -> i64;

    /// Writes up to `size` bytes from `ptr`. Returns the number written or
    /// a negative code.
    pub fn tcp_write(fd: i32, ptr: *const u8, size: u64) -> i64;

    /// Looks `key` up in the app's `env` table: copies as much of the value
    /// as fits into `value_ptr`/`value_size` and returns its full length,
    /// or a negative number when the key is absent.
    pub fn db_get(key_ptr: *const u8, key_size: u64, value_ptr: *mut u8, value_size: u64) -> i64;
}
