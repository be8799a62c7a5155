//! The kinds of request failure, one name each for the log's `kind=` field
//! and the `serverless_guest_failures_total{kind}` metric.

use std::fmt;

/// Why a request failed: how the guest was stopped, or what else went
/// wrong around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// It ran past the app's timeout.
    Deadline,
    /// It grew a memory past the app's `max_memory`.
    Memory,
    /// It used up its fuel.
    Fuel,
    /// It executed `unreachable` (a Rust panic ends so).
    Unreachable,
    /// It accessed memory or a table out of bounds.
    OutOfBounds,
    /// It overflowed its stack.
    StackOverflow,
    /// Division by zero, integer overflow, or a bad conversion.
    Arithmetic,
    /// A call through a null or mistyped function reference.
    BadCall,
    /// Another WebAssembly trap.
    Trap,
    /// A host function failed in a way that stops the guest.
    HostError,
    /// A core module called the serverless-wasm ABI against its rules (a
    /// status or header no response can have, a bad `Content-Length`).
    AbiMisuse,
    /// No instance could be created.
    Instantiate,
    /// A wasi:http guest answered with an error code.
    ErrorCode,
    /// A wasi:http guest returned without setting a response.
    NoResponse,
    /// The request went to an app of the other world.
    WrongWorld,
    /// The response (body or headers) was larger than the app allows.
    ResponseTooLarge,
    /// A wasi:http guest gave an informational (1xx) final status.
    InformationalStatus,
    /// The request's mounted folders did not fit the OS handle budgets.
    Handles,
    /// The host was shutting down.
    Cancelled,
    /// A subscription handler returned a `wasi:messaging` error.
    MessageError,
}

impl FailureKind {
    /// The name in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Fuel => "fuel",
            FailureKind::Unreachable => "unreachable",
            FailureKind::OutOfBounds => "out of bounds",
            FailureKind::StackOverflow => "stack overflow",
            FailureKind::Arithmetic => "arithmetic",
            FailureKind::BadCall => "bad call",
            FailureKind::Trap => "trap",
            FailureKind::HostError => "host error",
            FailureKind::AbiMisuse => "bad ABI call",
            FailureKind::Instantiate => "instantiate",
            FailureKind::ErrorCode => "error code",
            FailureKind::NoResponse => "no response",
            FailureKind::WrongWorld => "wrong world",
            FailureKind::ResponseTooLarge => "response too large",
            FailureKind::InformationalStatus => "informational status",
            FailureKind::Handles => "handles",
            FailureKind::Cancelled => "cancelled",
            FailureKind::MessageError => "message error",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
