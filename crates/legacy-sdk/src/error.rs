//! The negative codes of the TCP imports.

use std::fmt;

/// Why a TCP import failed, from the negative number it returned.
///
/// | Code  | Variant                                          | Meaning                                           |
/// |-------|--------------------------------------------------|---------------------------------------------------|
/// | -1    | [`Denied`](Self::Denied)                         | denied by the outbound policy                     |
/// | -2    | [`ConnectFailed`](Self::ConnectFailed)           | refused, unreachable, or the name did not resolve |
/// | -3    | [`TimedOut`](Self::TimedOut)                     | timed out                                         |
/// | -4    | [`BadDescriptor`](Self::BadDescriptor)           | unknown or closed descriptor                      |
/// | -5    | [`TooManyConnections`](Self::TooManyConnections) | too many connections for this request             |
/// | -6    | [`Io`](Self::Io)                                 | other I/O error                                   |
/// | -7    | [`BadAddress`](Self::BadAddress)                 | the address text is not `host:port`               |
/// | other | [`Unknown`](Self::Unknown)                       | a code this SDK does not know                     |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// The app's outbound policy does not allow this address (-1).
    Denied,
    /// The connection was refused, the host is unreachable or its name did
    /// not resolve (-2).
    ConnectFailed,
    /// Connecting, reading or writing took too long (-3).
    TimedOut,
    /// The descriptor was never opened or is closed (-4).
    BadDescriptor,
    /// This request already holds as many connections as allowed (-5).
    TooManyConnections,
    /// Any other I/O failure (-6); also what `write_all` reports when the
    /// host accepts no bytes.
    Io,
    /// The address is not valid `host:port` text (-7).
    BadAddress,
    /// A negative code not listed here, kept as it came.
    Unknown(i64),
}

impl TcpError {
    /// The error of a negative return value; `None` for zero and positive
    /// values, which are successes.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0.. => return None,
            -1 => Self::Denied,
            -2 => Self::ConnectFailed,
            -3 => Self::TimedOut,
            -4 => Self::BadDescriptor,
            -5 => Self::TooManyConnections,
            -6 => Self::Io,
            -7 => Self::BadAddress,
            other => Self::Unknown(other),
        })
    }

    /// The host's number for this error, as the import returned it.
    pub fn code(self) -> i64 {
        match self {
            Self::Denied => -1,
            Self::ConnectFailed => -2,
            Self::TimedOut => -3,
            Self::BadDescriptor => -4,
            Self::TooManyConnections => -5,
            Self::Io => -6,
            Self::BadAddress => -7,
            Self::Unknown(code) => code,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Denied => "denied by the outbound policy",
            Self::ConnectFailed => "connection failed",
            Self::TimedOut => "timed out",
            Self::BadDescriptor => "unknown or closed descriptor",
            Self::TooManyConnections => "too many connections for this request",
            Self::Io => "other I/O error",
            Self::BadAddress => "bad address text",
            Self::Unknown(_) => "unknown error",
        };
        write!(f, "{text} ({})", self.code())
    }
}

impl std::error::Error for TcpError {}

#[cfg(test)]
mod tests {
    use super::TcpError;

    #[test]
    fn codes_round_trip() {
        for code in -9..0 {
            let error = TcpError::from_code(code).expect("negative is an error");
            assert_eq!(error.code(), code);
        }
        assert_eq!(TcpError::from_code(0), None);
        assert_eq!(TcpError::from_code(5), None);
    }

    #[test]
    fn display_names_the_code() {
        assert_eq!(
            TcpError::Denied.to_string(),
            "denied by the outbound policy (-1)"
        );
        assert_eq!(TcpError::Unknown(-42).to_string(), "unknown error (-42)");
    }
}
