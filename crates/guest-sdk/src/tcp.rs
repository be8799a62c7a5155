//! `std::io` adapters for outbound TCP connections.

use std::io;

use crate::outbound_tcp::{Connection, Error};

/// The largest read asked of the host at once.
const READ_CHUNK: usize = 64 * 1024;

fn to_io(error: Error) -> io::Error {
    let kind = match &error {
        Error::NotAllowed(_) => io::ErrorKind::PermissionDenied,
        Error::InvalidAddress(_) => io::ErrorKind::InvalidInput,
        Error::ConnectionRefused => io::ErrorKind::ConnectionRefused,
        Error::TimedOut => io::ErrorKind::TimedOut,
        Error::Closed => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

impl io::Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len().min(READ_CHUNK) as u32;
        let data = Connection::read(self, max).map_err(to_io)?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

impl io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Connection::write(self, buf).map_err(to_io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
