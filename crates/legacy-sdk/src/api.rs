//! Safe wrappers over [`crate::raw`].

use crate::{TcpError, raw};

/// A slice's length as the ABI's `u64` size; lossless, since `usize` is
/// 32 bits on wasm32.
fn size(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

/// Writes `message` to the host log.
pub fn log(message: &str) {
    // SAFETY: the pointer and size describe `message`, borrowed for the
    // call; the host only reads them.
    unsafe { raw::log(message.as_ptr(), size(message.as_bytes())) }
}

/// Sets the status line, for example `set_status(404, "Not Found")`.
pub fn set_status(status: u16, reason: &str) {
    // SAFETY: the pointer and size describe `reason`, borrowed for the
    // call; the host only reads them.
    unsafe {
        raw::response_set_status_line(u32::from(status), reason.as_ptr(), size(reason.as_bytes()))
    }
}

/// Sets a header, replacing an earlier one of the same name.
pub fn set_header(name: &str, value: &str) {
    // SAFETY: both pointer and size pairs describe borrowed strings that
    // live through the call; the host only reads them.
    unsafe {
        raw::response_set_header(
            name.as_ptr(),
            size(name.as_bytes()),
            value.as_ptr(),
            size(value.as_bytes()),
        )
    }
}

/// Sets the response body; a later call replaces it.
pub fn set_body(body: &[u8]) {
    // SAFETY: the pointer and size describe `body`, borrowed for the call;
    // the host only reads them.
    unsafe { raw::response_set_body(body.as_ptr(), size(body)) }
}

/// The value of `key` in the app's `env` table, or `None` when it is
/// absent. The host gives no length up front, so this asks with an empty
/// buffer first, then fetches (again if the value grew in between).
pub fn db_get(key: &str) -> Option<Vec<u8>> {
    crate::fetch_value(|buffer| {
        // SAFETY: the key is borrowed for the call and only read; the value
        // pointer and size describe `buffer`, which the host may fill up to
        // its length and no further.
        unsafe {
            raw::db_get(
                key.as_ptr(),
                size(key.as_bytes()),
                buffer.as_mut_ptr(),
                size(buffer),
            )
        }
    })
}

/// An outbound TCP connection.
///
/// The ABI has no way to close a descriptor: the host closes every
/// connection when the request ends, so dropping a stream does nothing.
#[derive(Debug)]
pub struct TcpStream {
    fd: i32,
}

impl TcpStream {
    /// Connects to `host:port`, if the app's outbound policy allows it.
    pub fn connect(address: &str) -> Result<TcpStream, TcpError> {
        // SAFETY: the pointer and size describe `address`, borrowed for the
        // call; the host only reads them.
        let fd = unsafe { raw::tcp_connect(address.as_ptr(), size(address.as_bytes())) };
        match TcpError::from_code(i64::from(fd)) {
            Some(error) => Err(error),
            None => Ok(TcpStream { fd }),
        }
    }

    /// The host's descriptor for this connection.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Reads into `buffer`; `Ok(0)` is the end of the stream (or an empty
    /// buffer).
    pub fn read(&mut self, buffer: &mut [u8]) -> Result<usize, TcpError> {
        // SAFETY: the pointer and size describe `buffer`, exclusively
        // borrowed for the call; the host writes at most its length.
        let read = unsafe { raw::tcp_read(self.fd, buffer.as_mut_ptr(), size(buffer)) };
        count(read, buffer.len())
    }

    /// Writes some of `bytes`, returning how many the host took.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, TcpError> {
        // SAFETY: the pointer and size describe `bytes`, borrowed for the
        // call; the host only reads them.
        let written = unsafe { raw::tcp_write(self.fd, bytes.as_ptr(), size(bytes)) };
        count(written, bytes.len())
    }

    /// Writes all of `bytes`, calling [`write`](Self::write) until done. A
    /// write that takes nothing is [`TcpError::Io`], so that this cannot
    /// loop forever.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), TcpError> {
        while !bytes.is_empty() {
            match self.write(bytes)? {
                0 => return Err(TcpError::Io),
                written => bytes = &bytes[written..],
            }
        }
        Ok(())
    }
}

/// A read or write's byte count, or its error. A count larger than the
/// buffer would be a host bug; it is cut to the buffer so that slicing
/// with it cannot panic.
fn count(returned: i64, limit: usize) -> Result<usize, TcpError> {
    if let Some(error) = TcpError::from_code(returned) {
        return Err(error);
    }
    Ok(usize::try_from(returned).map_or(limit, |n| n.min(limit)))
}
