//! `serverless-wasm:platform/outbound-tcp`: connections to backends,
//! denied unless the operator allows the destination.
//!
//! No allowlist exists yet, so every well-formed destination is refused
//! with `not-allowed` and the refusal is logged. Reads and writes on a
//! connection are implemented for when a destination is allowed.

use std::net::{Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Level;
use wasmtime::component::Resource;

use crate::bindings::outbound_tcp::{Error, Host, HostConnection};
use crate::state::HandlerState;

/// The most a single `read` returns, whatever the guest asks for, so that
/// a guest cannot make the host allocate without bound.
const MAX_READ_BYTES: u32 = 64 * 1024;

/// Per-request outbound TCP bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct OutboundTcp {
    /// Connection attempts refused by policy during this request.
    pub(crate) denied: u32,
}

/// An open connection, owned by the guest through the resource table.
pub struct Connection {
    stream: TcpStream,
}

/// A destination as the guest wrote it: a host name or IP address, and a
/// port.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Parses `host:port`, `ipv4:port` or `[ipv6]:port`.
pub(crate) fn parse_target(address: &str) -> Result<Target, String> {
    let usage = || {
        format!(
            "`{address}` is not host:port; write for example `db.internal:5432`, `10.0.0.5:6379` or `[::1]:7000`"
        )
    };
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return Ok(Target {
            host: socket.ip().to_string(),
            port: socket.port(),
        });
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(usage)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(usage)?;
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = inner.parse().map_err(|_| usage())?;
        return Ok(Target {
            host: ip.to_string(),
            port,
        });
    }
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid_name {
        return Err(usage());
    }
    Ok(Target {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn io_error(error: std::io::Error) -> Error {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        ErrorKind::TimedOut => Error::TimedOut,
        ErrorKind::BrokenPipe
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::NotConnected => Error::Closed,
        _ => Error::Other(error.to_string()),
    }
}

impl Host for HandlerState {
    async fn connect(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        let target = match parse_target(&address) {
            Ok(target) => target,
            Err(message) => return Ok(Err(Error::InvalidAddress(message))),
        };
        self.tcp.denied += 1;
        self.tags.emit(
            Level::WARN,
            "outbound-tcp",
            &format!(
                "refused outbound TCP connection to {}:{}: outbound TCP is denied unless the operator allows the destination",
                target.host, target.port
            ),
        );
        Ok(Err(Error::NotAllowed(address)))
    }
}

impl HostConnection for HandlerState {
    async fn read(
        &mut self,
        connection: Resource<Connection>,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let connection = self.table.get_mut(&connection)?;
        let mut buffer = vec![0; max.min(MAX_READ_BYTES) as usize];
        Ok(match connection.stream.read(&mut buffer).await {
            Ok(read) => {
                buffer.truncate(read);
                Ok(buffer)
            }
            Err(error) => Err(io_error(error)),
        })
    }

    async fn write(
        &mut self,
        connection: Resource<Connection>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection.stream.write_all(&data).await.map_err(io_error))
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        // Dropping the stream closes the socket.
        self.table.delete(connection)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16) -> Target {
        Target {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn destinations_are_host_and_port() {
        assert_eq!(
            parse_target("db.internal:5432"),
            Ok(target("db.internal", 5432))
        );
        assert_eq!(parse_target("Redis:6379"), Ok(target("redis", 6379)));
        assert_eq!(parse_target("10.0.0.5:6379"), Ok(target("10.0.0.5", 6379)));
        assert_eq!(parse_target("[::1]:7000"), Ok(target("::1", 7000)));
    }

    #[test]
    fn malformed_destinations_explain_the_form() {
        for bad in [
            "db.internal",
            "db:0",
            "db:99999",
            ":80",
            "a..b:80",
            "[::1:80",
            "bad host:80",
            "::1:80",
        ] {
            let error = parse_target(bad).unwrap_err();
            assert!(error.contains("is not host:port"), "{bad}: {error}");
        }
    }
}
