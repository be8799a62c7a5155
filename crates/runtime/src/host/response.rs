//! `serverless-wasm:platform/response`: the response the handler builds.

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};

use crate::bindings::response::{Host, ResponseError};
use crate::state::InstanceState;

/// Headers that the host computes itself; letting a handler set them would
/// corrupt the framing of the connection or the request id.
const RESERVED_HEADERS: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "x-request-id",
];

fn status(code: u16) -> Result<StatusCode, ResponseError> {
    // 1xx answers cannot be the final response to a request.
    if code < 200 {
        return Err(ResponseError::InvalidStatus(code));
    }
    StatusCode::from_u16(code).map_err(|_| ResponseError::InvalidStatus(code))
}

fn header_name(name: &str) -> Result<HeaderName, ResponseError> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ResponseError::InvalidHeaderName(name.to_owned()))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(ResponseError::ReservedHeader(parsed.as_str().to_owned()));
    }
    Ok(parsed)
}

/// Encodes a header value one byte per code point (ISO-8859-1), the
/// inverse of how request headers are presented.
fn header_value(value: &str) -> Result<HeaderValue, ResponseError> {
    let invalid = || ResponseError::InvalidHeaderValue(value.to_owned());
    let bytes = value
        .chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| invalid()))
        .collect::<Result<Vec<u8>, _>>()?;
    HeaderValue::from_bytes(&bytes).map_err(|_| invalid())
}

/// A reason phrase may hold tabs, spaces, visible ASCII and obs-text.
fn valid_reason(reason: &str) -> bool {
    reason.chars().all(|c| {
        c == '\t' || c == ' ' || (c.is_ascii_graphic()) || ('\u{80}'..='\u{ff}').contains(&c)
    })
}

/// Whether a new header value replaces the ones already set.
enum Replace {
    All,
    Nothing,
}

impl InstanceState {
    fn add_header(
        &mut self,
        name: &str,
        value: &str,
        replace: Replace,
    ) -> wasmtime::Result<Result<(), ResponseError>> {
        let headers = &mut self.call()?.response.headers;
        Ok(header_name(name).and_then(|name| {
            let value = header_value(value)?;
            match replace {
                Replace::All => {
                    headers.insert(name, value);
                }
                Replace::Nothing => {
                    headers.append(name, value);
                }
            }
            Ok(())
        }))
    }
}

impl Host for InstanceState {
    fn set_status_line(
        &mut self,
        code: u16,
        reason: Option<String>,
    ) -> wasmtime::Result<Result<(), ResponseError>> {
        let parsed = match status(code) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Err(error)),
        };
        if let Some(reason) = &reason
            && !valid_reason(reason)
        {
            return Ok(Err(ResponseError::InvalidHeaderValue(reason.clone())));
        }
        let response = &mut self.call()?.response;
        response.status = parsed;
        response.reason = reason;
        Ok(Ok(()))
    }

    fn set_status(&mut self, code: u16) -> wasmtime::Result<Result<(), ResponseError>> {
        self.set_status_line(code, None)
    }

    fn set_header(
        &mut self,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), ResponseError>> {
        self.add_header(&name, &value, Replace::All)
    }

    fn append_header(
        &mut self,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), ResponseError>> {
        self.add_header(&name, &value, Replace::Nothing)
    }

    fn set_body(&mut self, body: Vec<u8>) -> wasmtime::Result<Result<(), ResponseError>> {
        let call = self.call()?;
        if body.len() as u64 > call.max_response_body {
            call.response_too_large = true;
            return Ok(Err(ResponseError::TooLarge(call.max_response_body)));
        }
        call.response.body = body;
        Ok(Ok(()))
    }

    fn append_body(&mut self, chunk: Vec<u8>) -> wasmtime::Result<Result<(), ResponseError>> {
        let call = self.call()?;
        if (call.response.body.len() + chunk.len()) as u64 > call.max_response_body {
            call.response_too_large = true;
            return Ok(Err(ResponseError::TooLarge(call.max_response_body)));
        }
        call.response.body.extend_from_slice(&chunk);
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_outside_the_final_range_are_refused() {
        assert!(status(200).is_ok());
        assert!(status(599).is_ok());
        assert!(status(999).is_ok());
        assert!(matches!(
            status(101),
            Err(ResponseError::InvalidStatus(101))
        ));
        assert!(matches!(
            status(1000),
            Err(ResponseError::InvalidStatus(1000))
        ));
    }

    #[test]
    fn header_names_are_checked_and_reserved_ones_refused() {
        assert_eq!(
            header_name("Content-Type").unwrap().as_str(),
            "content-type"
        );
        assert!(matches!(
            header_name("bad name"),
            Err(ResponseError::InvalidHeaderName(_))
        ));
        assert!(
            matches!(header_name("Content-Length"), Err(ResponseError::ReservedHeader(n)) if n == "content-length")
        );
        assert!(matches!(
            header_name("x-request-id"),
            Err(ResponseError::ReservedHeader(_))
        ));
    }

    #[test]
    fn header_values_are_latin1() {
        assert_eq!(header_value("caf\u{e9}").unwrap().as_bytes(), b"caf\xe9");
        assert!(matches!(
            header_value("snow \u{2603}"),
            Err(ResponseError::InvalidHeaderValue(_))
        ));
        assert!(matches!(
            header_value("split\r\nheader"),
            Err(ResponseError::InvalidHeaderValue(_))
        ));
    }

    #[test]
    fn reason_phrases_refuse_control_characters() {
        assert!(valid_reason("Not Quite OK"));
        assert!(!valid_reason("bad\r\nreason"));
    }
}
