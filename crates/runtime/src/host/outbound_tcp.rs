//! `serverless-wasm:platform/outbound-tcp`: connections to backends,
//! denied unless the operator's allowlist covers the destination.
//!
//! The host parses and normalises the destination, resolves names itself,
//! checks every resolved address against the app's allowlist, and connects
//! only to allowed addresses. Reads, writes and connects are async on the
//! host and bounded by the app's timeouts; every socket lives in the
//! request's resource table and is closed when the request ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serverless_outbound::{Destination, TcpAllowlist};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Level;
use wasmtime::component::Resource;

use crate::bindings::outbound_tcp::{Error, Host, HostConnection};
use crate::denials::{Denials, DeniedVia};
use crate::handles::HandleKind;
use crate::resolve::{self, Refusal};
use crate::state::PlatformView;

/// An `outbound-tcp` error for the guest, or a trap.
pub type TcpError = wasmtime_wasi::TrappableError<Error>;

/// The most a single `read` returns, whatever the guest asks for, so that
/// a guest cannot make the host allocate without bound.
const MAX_READ_BYTES: u32 = 64 * 1024;

/// One app's outbound TCP policy and limits, shared by its requests.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// The destinations the app may reach.
    pub allowlist: Arc<TcpAllowlist>,
    /// Limit on resolving plus connecting.
    pub connect_timeout: Duration,
    /// Limit on each read or write.
    pub io_timeout: Duration,
    /// How many connections one request may open.
    pub max_connections: u32,
}

/// One request's outbound TCP state.
#[derive(Debug)]
pub(crate) struct OutboundTcp {
    pub(crate) settings: TcpSettings,
    /// Connections opened so far during this request.
    pub(crate) opened: u32,
    /// Connections the policy refused during this request.
    pub(crate) denied: u32,
    /// Where refusals are counted for the host's metrics.
    pub(crate) denials: Arc<Denials>,
}

impl OutboundTcp {
    pub(crate) fn new(settings: TcpSettings, denials: Arc<Denials>) -> OutboundTcp {
        OutboundTcp {
            settings,
            opened: 0,
            denied: 0,
            denials,
        }
    }
}

/// An open connection, owned by the guest through the resource table.
pub struct Connection {
    stream: TcpStream,
    io_timeout: Duration,
}

fn io_error(error: &std::io::Error) -> Error {
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

impl PlatformView<'_> {
    /// Logs and counts a refusal, returning the error for the guest.
    fn refuse(&mut self, destination: &str, why: &str) -> Error {
        self.tcp.denials.count(DeniedVia::OutboundTcp);
        self.tcp.denied += 1;
        self.output.host_note(
            Level::WARN,
            "outbound-tcp",
            &format!("refused outbound TCP connection to {destination}: {why}"),
        );
        Error::NotAllowed(destination.to_owned())
    }

    /// The addresses a destination may be reached at, or the error for the
    /// guest (refusals are logged).
    async fn allowed_addresses(
        &mut self,
        destination: &Destination,
    ) -> Result<Vec<SocketAddr>, Error> {
        let allowlist = self.tcp.settings.allowlist.clone();
        match resolve::allowed_addresses(&allowlist, destination).await {
            Ok(addresses) => Ok(addresses),
            Err(Refusal::Dns(message)) => Err(Error::DnsFailure(message)),
            Err(Refusal::NotAllowed(why)) => Err(self.refuse(&destination.to_string(), &why)),
        }
    }

    async fn open(&mut self, address: &str) -> Result<Connection, Error> {
        let destination: Destination =
            address
                .parse()
                .map_err(|e: serverless_outbound::DestinationError| {
                    Error::InvalidAddress(e.to_string())
                })?;
        if self.tcp.opened >= self.tcp.settings.max_connections {
            self.output.host_note(
                Level::WARN,
                "outbound-tcp",
                &format!(
                    "refused outbound TCP connection to {destination}: this request already opened {} connections, the app's limit",
                    self.tcp.opened
                ),
            );
            return Err(Error::LimitReached);
        }
        let settings = self.tcp.settings.clone();
        let attempt = async {
            let addresses = self.allowed_addresses(&destination).await?;
            let mut last_error = Error::ConnectionRefused;
            for address in addresses {
                match TcpStream::connect(address).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last_error = io_error(&error),
                }
            }
            Err(last_error)
        };
        let stream = match tokio::time::timeout(settings.connect_timeout, attempt).await {
            Ok(result) => result?,
            Err(_) => return Err(Error::TimedOut),
        };
        self.tcp.opened += 1;
        // Small writes from handlers are usually whole protocol messages.
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            io_timeout: settings.io_timeout,
        })
    }
}

impl Host for PlatformView<'_> {
    fn convert_error(&mut self, error: TcpError) -> wasmtime::Result<Error> {
        error.downcast()
    }

    async fn connect(&mut self, address: String) -> Result<Resource<Connection>, TcpError> {
        // A connection is an OS handle: it counts against the request's
        // and the host's budgets while it is open.
        if let Err(refusal) = self.handles.reserve(self.table) {
            self.output.host_note(
                Level::WARN,
                "outbound-tcp",
                &format!("refused outbound TCP connection to {address}: {refusal}"),
            );
            return Err(Error::LimitReached.into());
        }
        let connection = match self.open(&address).await {
            Ok(connection) => connection,
            Err(error) => {
                self.handles.unreserve();
                return Err(error.into());
            }
        };
        match self.table.push(connection) {
            Ok(resource) => {
                self.handles
                    .record(resource.rep(), HandleKind::TcpConnection);
                Ok(resource)
            }
            Err(error) => {
                self.handles.unreserve();
                Err(TcpError::trap(error))
            }
        }
    }
}

impl HostConnection for PlatformView<'_> {
    async fn read(
        &mut self,
        connection: Resource<Connection>,
        max: u32,
    ) -> Result<Vec<u8>, TcpError> {
        let connection = self.table.get_mut(&connection).map_err(TcpError::trap)?;
        let mut buffer = vec![0; max.min(MAX_READ_BYTES) as usize];
        match tokio::time::timeout(connection.io_timeout, connection.stream.read(&mut buffer)).await
        {
            Ok(Ok(read)) => {
                buffer.truncate(read);
                Ok(buffer)
            }
            Ok(Err(error)) => Err(io_error(&error).into()),
            Err(_) => Err(Error::TimedOut.into()),
        }
    }

    async fn write(
        &mut self,
        connection: Resource<Connection>,
        data: Vec<u8>,
    ) -> Result<(), TcpError> {
        let connection = self.table.get_mut(&connection).map_err(TcpError::trap)?;
        match tokio::time::timeout(connection.io_timeout, connection.stream.write_all(&data)).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(io_error(&error).into()),
            Err(_) => Err(Error::TimedOut.into()),
        }
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        // Dropping the stream closes the socket; the handle budget notices
        // the empty slot at its next reservation.
        self.table.delete(connection)?;
        Ok(())
    }
}
