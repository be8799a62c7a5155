//! Why a request could not produce a response, and how a trap is told in
//! one log line.

use std::time::Duration;

use wasmtime::WasmBacktrace;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

use crate::failure::FailureKind;
use crate::handles::HandleRefusal;
use crate::host::response::{MAX_HEAD_BYTES, MAX_HEADERS};
use crate::lanes::LaneError;
use crate::limits::trap_kind;
use crate::stdio::StderrTail;

/// Why a request could not produce a response. The details are for the
/// server log; the client only sees a generic error.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// No instance could be created (for example the pool is exhausted).
    #[error("cannot instantiate the component: {0:#}")]
    Instantiate(wasmtime::Error),
    /// The guest trapped while handling the request; with the guest's
    /// panic message when its stderr shows one.
    #[error("the handler trapped ({kind}): {}{}", describe_trap(.error), panic.as_ref().map(|p| format!("; guest stderr: {p}")).unwrap_or_default(), kind = trap_kind(.error))]
    Trap {
        /// The trap, with the guest's backtrace.
        error: wasmtime::Error,
        /// What the guest wrote to stderr about its panic.
        panic: Option<String>,
    },
    /// The guest tried to send a larger response than the app allows.
    #[error("response too large: the handler tried to send more than the app's limit of {0} bytes")]
    ResponseTooLarge(u64),
    /// The guest tried to set more response headers, or larger ones, than
    /// the host sends.
    #[error(
        "response headers too large: the handler tried to set more than {headers} headers or more than {bytes} bytes of reason phrase and headers",
        headers = MAX_HEADERS,
        bytes = MAX_HEAD_BYTES
    )]
    ResponseHeadersTooLarge,
    /// The request ran past the app's timeout, in a host call or waiting.
    #[error("deadline: the request ran longer than the app's timeout of {0:?}")]
    Deadline(Duration),
    /// A wasi:http guest answered with an error code instead of a response.
    #[error("the handler answered with the error {0:?}")]
    ErrorCode(ErrorCode),
    /// A wasi:http guest returned without setting its response.
    #[error("the handler returned without setting a response")]
    NoResponse,
    /// The request was handed to an app of another kind.
    #[error("the app serves the {0} kind of request, not this one")]
    WrongWorld(super::AppKind),
    /// The request's mounted folders would take more OS handles than its
    /// budget or the host's allow.
    #[error("cannot open the mounted folders: {0}")]
    Handles(HandleRefusal),
    /// The request was stopped by the host, which is shutting down.
    #[error("the request was cancelled: the host is shutting down")]
    Cancelled,
    /// A subscription handler returned an error for its message.
    #[error("the handler returned the error {0}")]
    MessageError(String),
}

impl HandleError {
    /// Whether the request ran out of time, which the client sees as `504`.
    pub fn is_deadline(&self) -> bool {
        match self {
            HandleError::Deadline(_) => true,
            HandleError::Trap { error, .. } => trap_kind(error) == FailureKind::Deadline,
            _ => false,
        }
    }

    /// What kind of failure it is, for logs and metrics: the trap kind,
    /// or what else went wrong.
    pub fn kind(&self) -> FailureKind {
        match self {
            HandleError::Instantiate(_) => FailureKind::Instantiate,
            HandleError::Trap { error, .. } => trap_kind(error),
            HandleError::Deadline(_) => FailureKind::Deadline,
            HandleError::ErrorCode(_) => FailureKind::ErrorCode,
            HandleError::NoResponse => FailureKind::NoResponse,
            HandleError::WrongWorld(_) => FailureKind::WrongWorld,
            HandleError::ResponseTooLarge(_) | HandleError::ResponseHeadersTooLarge => {
                FailureKind::ResponseTooLarge
            }
            HandleError::Handles(_) => FailureKind::Handles,
            HandleError::Cancelled => FailureKind::Cancelled,
            HandleError::MessageError(_) => FailureKind::MessageError,
        }
    }
}

/// The error for a request that did not finish on the slow lane.
pub(super) fn lane_failed(error: LaneError, timeout: Duration) -> HandleError {
    match error {
        LaneError::Deadline => HandleError::Deadline(timeout),
        LaneError::Cancelled => HandleError::Cancelled,
    }
}

/// A trap, with the guest's panic message when its stderr shows one.
pub(super) fn trapped(error: wasmtime::Error, stderr: &StderrTail) -> HandleError {
    HandleError::Trap {
        error,
        panic: stderr.panic_message(),
    }
}

/// A one-line description of a trap: its cause chain and, when available,
/// the guest's backtrace as `frame <- frame <- ...`.
pub(crate) fn describe_trap(error: &wasmtime::Error) -> String {
    // The backtrace is attached as context; it is rendered below, one
    // line, instead of in its multi-line form.
    // A host function's trap says which call failed and why before the
    // trap itself (the serverless-wasm ABI's bad pointers, for one).
    let skip = usize::from(error.downcast_ref::<WasmBacktrace>().is_some());
    let mut text = error
        .chain()
        .skip(skip)
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        let frames: Vec<String> = backtrace
            .frames()
            .iter()
            .map(|frame| {
                let module = frame.module().name().unwrap_or("<module>");
                match frame.func_name() {
                    Some(name) => format!("{module}!{:#}", rustc_demangle::demangle(name)),
                    None => format!("{module}!<unnamed>"),
                }
            })
            .collect();
        if !frames.is_empty() {
            text.push_str("; backtrace: ");
            text.push_str(&frames.join(" <- "));
        }
    }
    text
}
