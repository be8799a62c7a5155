//! The WASI functions that open an OS handle, wrapped so that each handle
//! counts against the request's and the host's budgets
//! ([`crate::handles`]): `create-tcp-socket`, `create-udp-socket`, a
//! listener's `accept` (a service's), `open-at`, and a file's `read-via-stream`, `write-via-stream` and
//! `append-via-stream` (a stream keeps its file open after the descriptor
//! is dropped). Each is defined over wasmtime-wasi's own in the linker (a
//! later definition shadows an earlier one) and calls wasmtime-wasi's
//! implementation once the budget has room.

use tracing::Level;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode as FsErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode as SocketErrorCode, IpAddressFamily,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp, tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use crate::handles::{HandleKind, HandleRefusal};
use crate::state::InstanceState;

/// The interfaces in the version wasmtime-wasi defines its functions under
/// (components importing older 0.2 versions are linked to it).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const TCP_CREATE_SOCKET: &str = "wasi:sockets/tcp-create-socket@0.2.12";
const TCP: &str = "wasi:sockets/tcp@0.2.12";

/// What `accept` gives: the connection and its two streams.
type Accepted = (
    Resource<TcpSocket>,
    Resource<DynInputStream>,
    Resource<DynOutputStream>,
);
const UDP_CREATE_SOCKET: &str = "wasi:sockets/udp-create-socket@0.2.12";

impl InstanceState {
    /// Takes one handle from the budgets, or logs why not.
    fn reserve_handle(&mut self, what: &str) -> Result<(), HandleRefusal> {
        let reserved = self.handles.reserve(&self.table);
        if let Err(refusal) = &reserved {
            self.output.host_note(
                Level::WARN,
                "os-handles",
                &format!("refused to open {what}: {refusal}"),
            );
        }
        reserved
    }

    /// Records a handle opened (or returns the reservation of one that was
    /// not).
    fn opened<T, E>(&mut self, result: &Result<Resource<T>, E>, kind: HandleKind) {
        match result {
            Ok(resource) => self.handles.record(resource.rep(), kind),
            Err(_) => self.handles.unreserve(),
        }
    }
}

/// Replaces the three functions in `linker`, which must already hold
/// wasmtime-wasi's interfaces.
pub(crate) fn add_handle_budget(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    super::shadowing(linker, define)
}

fn define(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.instance(TCP_CREATE_SOCKET)?.func_wrap(
        "create-tcp-socket",
        |mut store, (family,): (IpAddressFamily,)| {
            let state = store.data_mut();
            if state.reserve_handle("a TCP socket").is_err() {
                return Ok((Err(SocketErrorCode::NewSocketLimit),));
            }
            let created = tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family);
            let created: Result<Resource<TcpSocket>, SocketErrorCode> = match created {
                Ok(socket) => Ok(socket),
                Err(error) => Err(error.downcast()?),
            };
            state.opened(&created, HandleKind::TcpSocket);
            Ok((created,))
        },
    )?;
    // Each connection a listening service accepts is an OS handle too; past
    // the budget it stays in the kernel's backlog.
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.accept",
        |mut store, (listener,): (Resource<TcpSocket>,)| {
            let state = store.data_mut();
            if state.reserve_handle("an accepted TCP connection").is_err() {
                return Ok((Err(SocketErrorCode::NewSocketLimit),));
            }
            let accepted = tcp::HostTcpSocket::accept(&mut state.sockets(), listener);
            let accepted: Result<Accepted, SocketErrorCode> = match accepted {
                Ok(accepted) => Ok(accepted),
                Err(error) => Err(error.downcast()?),
            };
            match &accepted {
                Ok((socket, _, _)) => state.handles.record(socket.rep(), HandleKind::TcpSocket),
                Err(_) => state.handles.unreserve(),
            }
            Ok((accepted,))
        },
    )?;
    linker.instance(UDP_CREATE_SOCKET)?.func_wrap_async(
        "create-udp-socket",
        |mut store, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                let state = store.data_mut();
                if state.reserve_handle("a UDP socket").is_err() {
                    return Ok((Err(SocketErrorCode::NewSocketLimit),));
                }
                let created =
                    udp_create_socket::Host::create_udp_socket(&mut state.sockets(), family).await;
                let created: Result<Resource<UdpSocket>, SocketErrorCode> = match created {
                    Ok(socket) => Ok(socket),
                    Err(error) => Err(error.downcast()?),
                };
                state.opened(&created, HandleKind::UdpSocket);
                Ok((created,))
            })
        },
    )?;
    linker.instance(FILESYSTEM_TYPES)?.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (descriptor, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if state.reserve_handle(&format!("{path:?}")).is_err() {
                    return Ok((Err(FsErrorCode::Io),));
                }
                let opened = HostDescriptor::open_at(
                    &mut state.filesystem(),
                    descriptor,
                    path_flags,
                    path,
                    open_flags,
                    flags,
                )
                .await;
                let opened: Result<Resource<Descriptor>, FsErrorCode> = match opened {
                    Ok(file) => Ok(file),
                    Err(error) => Err(error.downcast()?),
                };
                state.opened(&opened, HandleKind::File);
                Ok((opened,))
            })
        },
    )?;
    // A file's streams keep the file open after its descriptor is
    // dropped, so each counts as a handle of its own.
    linker.instance(FILESYSTEM_TYPES)?.func_wrap(
        "[method]descriptor.read-via-stream",
        |mut store, (descriptor, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            if state.reserve_handle("a file stream").is_err() {
                return Ok((Err(FsErrorCode::Io),));
            }
            let opened =
                HostDescriptor::read_via_stream(&mut state.filesystem(), descriptor, offset);
            let opened: Result<Resource<DynInputStream>, FsErrorCode> = match opened {
                Ok(stream) => Ok(stream),
                Err(error) => Err(error.downcast()?),
            };
            state.opened(&opened, HandleKind::FileReadStream);
            Ok((opened,))
        },
    )?;
    linker.instance(FILESYSTEM_TYPES)?.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store, (descriptor, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            if state.reserve_handle("a file stream").is_err() {
                return Ok((Err(FsErrorCode::Io),));
            }
            let opened =
                HostDescriptor::write_via_stream(&mut state.filesystem(), descriptor, offset);
            write_stream_opened(state, opened)
        },
    )?;
    linker.instance(FILESYSTEM_TYPES)?.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store, (descriptor,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            if state.reserve_handle("a file stream").is_err() {
                return Ok((Err(FsErrorCode::Io),));
            }
            let opened = HostDescriptor::append_via_stream(&mut state.filesystem(), descriptor);
            write_stream_opened(state, opened)
        },
    )?;
    Ok(())
}

/// Records a file's write or append stream, or returns its reservation.
fn write_stream_opened(
    state: &mut InstanceState,
    opened: wasmtime_wasi::p2::FsResult<Resource<DynOutputStream>>,
) -> wasmtime::Result<(Result<Resource<DynOutputStream>, FsErrorCode>,)> {
    let opened: Result<Resource<DynOutputStream>, FsErrorCode> = match opened {
        Ok(stream) => Ok(stream),
        Err(error) => Err(error.downcast()?),
    };
    state.opened(&opened, HandleKind::FileWriteStream);
    Ok((opened,))
}
