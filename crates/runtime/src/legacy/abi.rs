//! The `env` functions of the serverless-wasm ABI, on the core linker.
//! Each one is the handler world's counterpart seen through raw pointers:
//! lines go through the request's output budget, the response through the
//! same checks and limits, connections through `outbound-tcp`'s policy,
//! timeouts and per-request limit, and `db_get` reads the app's `env`.

use http::header::{CONTENT_LENGTH, HeaderValue};
use tracing::Level;
use wasmtime::component::Resource;
use wasmtime::{Caller, Linker};

use super::code;
use super::memory;
use crate::bindings::outbound_tcp::{Error as TcpError, Host as _, HostConnection as _};
use crate::bindings::response::ResponseError;
use crate::host::outbound_tcp::Connection;
use crate::host::response::{header_name, status, valid_reason};
use crate::state::{HandlerCall, InstanceState};

/// The most one `tcp_read` returns, as `outbound-tcp`'s `read`.
const MAX_READ_BYTES: u64 = 64 * 1024;

/// A call that breaks the ABI's rules: it traps the instance, and the
/// failure line names the function and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{function}: {why}")]
pub(crate) struct AbiMisuse {
    pub(crate) function: &'static str,
    pub(crate) why: String,
}

/// The trap for `function`'s misuse.
pub(super) fn refused(function: &'static str, why: String) -> wasmtime::Error {
    wasmtime::Error::new(AbiMisuse { function, why })
}

/// What a response error means, for the trap.
fn explain(error: &ResponseError) -> String {
    match error {
        ResponseError::InvalidStatus(code) => {
            format!("{code} is not a final HTTP status (200 to 999)")
        }
        ResponseError::InvalidHeaderName(name) => {
            format!("`{}` is not a valid header name", name.escape_debug())
        }
        ResponseError::InvalidHeaderValue(value) => format!(
            "`{}` holds a control character or a byte a header cannot hold",
            value.escape_debug()
        ),
        ResponseError::ReservedHeader(name) => {
            format!("the host manages the `{name}` header; a module cannot set it")
        }
        ResponseError::HeadersTooLarge => {
            "more response headers, or larger ones, than the host sends".to_owned()
        }
        ResponseError::TooLarge(limit) => {
            format!("the response would pass the app's max_response_body of {limit} bytes")
        }
    }
}

/// The request's response being built.
fn call<'a>(
    caller: &'a mut Caller<'_, InstanceState>,
    function: &'static str,
) -> wasmtime::Result<&'a mut HandlerCall> {
    caller
        .data_mut()
        .call
        .as_mut()
        .ok_or_else(|| refused(function, "there is no request to answer".to_owned()))
}

/// The guest's text: UTF-8 as the ABI's Rust strings are, lossily (a
/// copy only when it is not).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// Adds the eight `env` functions to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "log",
        |mut caller: Caller<'_, InstanceState>, ptr: i32, size: i64| -> wasmtime::Result<()> {
            // Read in place: the line is cut into pieces and counted
            // against the request's output budget, as the handler world's
            // `log`, so a huge message costs no copy of itself.
            let memory = memory::of(&mut caller)?;
            let data = memory.data(&caller);
            let range = memory::range(data.len(), ptr, size, "log", "message")?;
            let message = String::from_utf8_lossy(&data[range]);
            caller.data().output.log(Level::INFO, &message);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "env",
        "response_set_status_line",
        |mut caller: Caller<'_, InstanceState>,
         code: i32,
         ptr: i32,
         size: i64|
         -> wasmtime::Result<()> {
            const NAME: &str = "response_set_status_line";
            let reason = text(memory::read(&mut caller, ptr, size, NAME, "reason")?);
            let parsed = u16::try_from(code)
                .map_err(|_| ResponseError::InvalidStatus(0))
                .and_then(status)
                .map_err(|_| {
                    refused(
                        NAME,
                        format!("{code} is not a final HTTP status (200 to 999)"),
                    )
                })?;
            if !valid_reason(&reason) {
                return Err(refused(
                    NAME,
                    format!(
                        "the reason phrase `{}` holds a control character or a character outside Latin-1",
                        reason.escape_debug()
                    ),
                ));
            }
            // An empty reason means the status's standard one.
            let reason = (!reason.is_empty()).then_some(reason);
            call(&mut caller, NAME)?
                .set_status_line(parsed, reason)
                .map_err(|error| refused(NAME, explain(&error)))
        },
    )?;
    linker.func_wrap(
        "env",
        "response_set_header",
        |mut caller: Caller<'_, InstanceState>,
         name_ptr: i32,
         name_size: i64,
         value_ptr: i32,
         value_size: i64|
         -> wasmtime::Result<()> {
            const NAME: &str = "response_set_header";
            let name = text(memory::read(
                &mut caller,
                name_ptr,
                name_size,
                NAME,
                "name",
            )?);
            let value = memory::read(&mut caller, value_ptr, value_size, NAME, "value")?;
            if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
                // The original samples set it themselves; the host checks it
                // against the body when the module returns, and frames the
                // response itself.
                let declared = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        refused(
                            NAME,
                            format!(
                                "Content-Length `{}` is not a number of bytes",
                                String::from_utf8_lossy(&value).escape_debug()
                            ),
                        )
                    })?;
                caller.data_mut().legacy.declared_length = Some(declared);
                return Ok(());
            }
            let name = header_name(&name).map_err(|error| refused(NAME, explain(&error)))?;
            // The value's bytes go out as they are (a component's string
            // is sent as Latin-1 code points instead).
            let value = HeaderValue::from_bytes(&value).map_err(|_| {
                refused(
                    NAME,
                    explain(&ResponseError::InvalidHeaderValue(
                        String::from_utf8_lossy(&value).into_owned(),
                    )),
                )
            })?;
            call(&mut caller, NAME)?
                .replace_header(name, value)
                .map_err(|error| refused(NAME, explain(&error)))
        },
    )?;
    linker.func_wrap(
        "env",
        "response_set_body",
        |mut caller: Caller<'_, InstanceState>, ptr: i32, size: i64| -> wasmtime::Result<()> {
            const NAME: &str = "response_set_body";
            // The range and the app's limit are checked before the body is
            // copied out of the guest's memory.
            let memory = memory::of(&mut caller)?;
            let range = memory::range(memory.data(&caller).len(), ptr, size, NAME, "body")?;
            let limit = call(&mut caller, NAME)?.max_response_body;
            if range.len() as u64 > limit {
                call(&mut caller, NAME)?.response_too_large = true;
                return Err(refused(NAME, explain(&ResponseError::TooLarge(limit))));
            }
            let body = memory.data(&caller)[range].to_vec();
            call(&mut caller, NAME)?
                .set_body(body)
                .map_err(|error| refused(NAME, explain(&error)))
        },
    )?;
    linker.func_wrap(
        "env",
        "db_get",
        |mut caller: Caller<'_, InstanceState>,
         key_ptr: i32,
         key_size: i64,
         value_ptr: i32,
         value_size: i64|
         -> wasmtime::Result<i64> {
            const NAME: &str = "db_get";
            let key = memory::read(&mut caller, key_ptr, key_size, NAME, "key")?;
            // The buffer must lie in memory even when the key is absent.
            let memory = memory::of(&mut caller)?;
            let len = memory.data(&caller).len();
            let buffer = memory::range(len, value_ptr, value_size, NAME, "value buffer")?;
            let env = &caller.data().wasi_recipe.env;
            let Some(value) = env
                .iter()
                .find(|(name, _)| name.as_bytes() == key)
                .map(|(_, value)| value.as_bytes().to_vec())
            else {
                return Ok(code::ABSENT);
            };
            let copied = value.len().min(buffer.len());
            memory.data_mut(&mut caller)[buffer.start..buffer.start + copied]
                .copy_from_slice(&value[..copied]);
            Ok(value.len() as i64)
        },
    )?;
    add_tcp(linker)
}

/// The code for a failed `outbound-tcp` call.
fn tcp_code(error: &TcpError) -> i64 {
    match error {
        TcpError::NotAllowed(_) => code::DENIED,
        TcpError::ConnectionRefused | TcpError::DnsFailure(_) => code::CONNECT_FAILED,
        TcpError::TimedOut => code::TIMED_OUT,
        TcpError::Closed => code::BAD_DESCRIPTOR,
        TcpError::LimitReached => code::TOO_MANY_CONNECTIONS,
        TcpError::InvalidAddress(_) => code::BAD_ADDRESS,
        TcpError::Other(_) => code::IO_ERROR,
    }
}

/// The open connection `fd` names, if it is one.
fn connection(caller: &Caller<'_, InstanceState>, fd: i32) -> Option<Resource<Connection>> {
    let fd = u32::try_from(fd).ok()?;
    let connection = Resource::new_borrow(fd);
    caller.data().table.get(&connection).ok()?;
    Some(connection)
}

/// `tcp_connect`, `tcp_read` and `tcp_write`: a descriptor is the
/// connection's slot in the request's resource table, so it is closed
/// with everything else when the request ends.
fn add_tcp(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "env",
        "tcp_connect",
        |mut caller: Caller<'_, InstanceState>, (ptr, size): (i32, i64)| {
            Box::new(async move { tcp_connect(&mut caller, ptr, size).await })
        },
    )?;
    linker.func_wrap_async(
        "env",
        "tcp_read",
        |mut caller: Caller<'_, InstanceState>, (fd, ptr, size): (i32, i32, i64)| {
            Box::new(async move { tcp_read(&mut caller, fd, ptr, size).await })
        },
    )?;
    linker.func_wrap_async(
        "env",
        "tcp_write",
        |mut caller: Caller<'_, InstanceState>, (fd, ptr, size): (i32, i32, i64)| {
            Box::new(async move { tcp_write(&mut caller, fd, ptr, size).await })
        },
    )?;
    Ok(())
}

async fn tcp_connect(
    caller: &mut Caller<'_, InstanceState>,
    ptr: i32,
    size: i64,
) -> wasmtime::Result<i32> {
    let address = memory::read(caller, ptr, size, "tcp_connect", "address")?;
    let Ok(address) = String::from_utf8(address) else {
        return Ok(code::BAD_ADDRESS as i32);
    };
    let mut view = caller.data_mut().platform();
    match view.connect(address).await {
        // The table holds at most its capacity, far below `i32::MAX`.
        Ok(connection) => Ok(i32::try_from(connection.rep()).unwrap_or(i32::MAX)),
        Err(error) => Ok(tcp_code(&error.downcast()?) as i32),
    }
}

async fn tcp_read(
    caller: &mut Caller<'_, InstanceState>,
    fd: i32,
    ptr: i32,
    size: i64,
) -> wasmtime::Result<i64> {
    const NAME: &str = "tcp_read";
    // The buffer is checked before anything is read.
    let memory = memory::of(caller)?;
    let len = memory.data(&*caller).len();
    memory::range(len, ptr, size, NAME, "buffer")?;
    let Some(connection) = connection(caller, fd) else {
        return Ok(code::BAD_DESCRIPTOR);
    };
    let max = (size as u64).min(MAX_READ_BYTES) as u32;
    let read = caller.data_mut().platform().read(connection, max).await;
    match read {
        Ok(bytes) => {
            memory::write(caller, ptr, &bytes, NAME, "buffer")?;
            Ok(bytes.len() as i64)
        }
        Err(error) => Ok(tcp_code(&error.downcast()?)),
    }
}

async fn tcp_write(
    caller: &mut Caller<'_, InstanceState>,
    fd: i32,
    ptr: i32,
    size: i64,
) -> wasmtime::Result<i64> {
    let bytes = memory::read(caller, ptr, size, "tcp_write", "data")?;
    let Some(connection) = connection(caller, fd) else {
        return Ok(code::BAD_DESCRIPTOR);
    };
    let written = bytes.len() as i64;
    let outcome = caller.data_mut().platform().write(connection, bytes).await;
    match outcome {
        Ok(()) => Ok(written),
        Err(error) => Ok(tcp_code(&error.downcast()?)),
    }
}

/// When a module has returned: a `Content-Length` it set is checked
/// against its body, and a mismatch is logged; the host frames the
/// response with the body's real length either way.
pub(crate) fn check_declared_length(state: &InstanceState) {
    let (Some(declared), Some(call)) = (state.legacy.declared_length, state.call.as_ref()) else {
        return;
    };
    let actual = call.response.body.len() as u64;
    if declared != actual {
        state.output.host_note(
            Level::WARN,
            "response",
            &format!(
                "the module set Content-Length: {declared} but its body is {actual} bytes; the host sent Content-Length: {actual}"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tcp_error_has_its_code() {
        assert_eq!(tcp_code(&TcpError::NotAllowed("x".into())), -1);
        assert_eq!(tcp_code(&TcpError::ConnectionRefused), -2);
        assert_eq!(tcp_code(&TcpError::DnsFailure("x".into())), -2);
        assert_eq!(tcp_code(&TcpError::TimedOut), -3);
        assert_eq!(tcp_code(&TcpError::Closed), -4);
        assert_eq!(tcp_code(&TcpError::LimitReached), -5);
        assert_eq!(tcp_code(&TcpError::Other("x".into())), -6);
        assert_eq!(tcp_code(&TcpError::InvalidAddress("x".into())), -7);
    }
}
