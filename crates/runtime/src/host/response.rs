//! `serverless-wasm:platform/response`: the response the handler builds.

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};

use crate::bindings::response::{Host, ResponseError};
use crate::response::GuestResponse;
use crate::state::{HandlerCall, PlatformView};

/// A `response-error` for the guest, or a trap.
pub type ResponseFailure = wasmtime_wasi::TrappableError<ResponseError>;

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

/// How many header lines a handler may set: the 100 that hyper accepts on
/// a request, and that a hyper client reads by default, less room for the
/// ones the host adds (`x-request-id`, `content-length`, `date`).
pub(crate) const MAX_HEADERS: usize = 90;

/// How large the status line's reason phrase and the header lines may be
/// together (each line its name, its value and 4 bytes of `: ` and line
/// end): what the server accepts as a request's head.
pub(crate) const MAX_HEAD_BYTES: u64 = 64 * 1024;

/// The bytes one header line takes on the wire.
fn line_bytes(name: &HeaderName, value: &HeaderValue) -> u64 {
    (name.as_str().len() + value.len() + 4) as u64
}

/// The bytes of the reason phrase and every header line of `response`.
pub(crate) fn head_bytes(response: &GuestResponse) -> u64 {
    let reason = response.reason.as_ref().map_or(0, String::len) as u64;
    reason
        + response
            .headers
            .iter()
            .map(|(name, value)| line_bytes(name, value))
            .sum::<u64>()
}

pub(crate) fn status(code: u16) -> Result<StatusCode, ResponseError> {
    // 1xx answers cannot be the final response to a request.
    if code < 200 {
        return Err(ResponseError::InvalidStatus(code));
    }
    StatusCode::from_u16(code).map_err(|_| ResponseError::InvalidStatus(code))
}

pub(crate) fn header_name(name: &str) -> Result<HeaderName, ResponseError> {
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
pub(crate) fn valid_reason(reason: &str) -> bool {
    reason.chars().all(|c| {
        c == '\t' || c == ' ' || (c.is_ascii_graphic()) || ('\u{80}'..='\u{ff}').contains(&c)
    })
}

/// Whether a new header value replaces the ones already set.
enum Replace {
    All,
    Nothing,
}

impl HandlerCall {
    /// Refuses a response whose head would pass the host's limits, or whose
    /// head and body together would pass the app's; a refused response
    /// makes the request fail.
    fn check_size(
        &mut self,
        headers: usize,
        head_bytes: u64,
        body_bytes: u64,
    ) -> Result<(), ResponseError> {
        if headers > MAX_HEADERS || head_bytes > MAX_HEAD_BYTES {
            self.headers_too_large = true;
            return Err(ResponseError::HeadersTooLarge);
        }
        if head_bytes.saturating_add(body_bytes) > self.max_response_body {
            self.response_too_large = true;
            return Err(ResponseError::TooLarge(self.max_response_body));
        }
        Ok(())
    }

    fn add_header(
        &mut self,
        name: &str,
        value: &str,
        replace: Replace,
    ) -> Result<(), ResponseError> {
        self.put_header(header_name(name)?, header_value(value)?, replace)
    }

    /// Sets `name` to `value` alone: the last value set wins.
    pub(crate) fn replace_header(
        &mut self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), ResponseError> {
        self.put_header(name, value, Replace::All)
    }

    fn put_header(
        &mut self,
        name: HeaderName,
        value: HeaderValue,
        replace: Replace,
    ) -> Result<(), ResponseError> {
        let response = &self.response;
        let (mut headers, mut head) = (response.headers.len(), head_bytes(response));
        if let Replace::All = replace {
            for old in response.headers.get_all(&name) {
                headers -= 1;
                head -= line_bytes(&name, old);
            }
        }
        let body = self.response.body.len() as u64;
        self.check_size(headers + 1, head + line_bytes(&name, &value), body)?;
        let headers = &mut self.response.headers;
        let added = match replace {
            Replace::All => headers.try_insert(name, value).map(drop),
            Replace::Nothing => headers.try_append(name, value).map(drop),
        };
        added.map_err(|_| {
            self.headers_too_large = true;
            ResponseError::HeadersTooLarge
        })
    }
}

impl HandlerCall {
    /// Sets the status and reason phrase (checked by the caller), within
    /// the response's limits.
    pub(crate) fn set_status_line(
        &mut self,
        status: StatusCode,
        reason: Option<String>,
    ) -> Result<(), ResponseError> {
        let response = &self.response;
        let old_reason = response.reason.as_ref().map_or(0, String::len);
        let head = head_bytes(response) - old_reason as u64
            + reason.as_ref().map_or(0, String::len) as u64;
        let (headers, body) = (response.headers.len(), response.body.len() as u64);
        self.check_size(headers, head, body)?;
        self.response.status = status;
        self.response.reason = reason;
        Ok(())
    }

    /// Replaces the body, within the response's limits.
    pub(crate) fn set_body(&mut self, body: Vec<u8>) -> Result<(), ResponseError> {
        let response = &self.response;
        let (headers, head) = (response.headers.len(), head_bytes(response));
        self.check_size(headers, head, body.len() as u64)?;
        self.response.body = body;
        Ok(())
    }
}

impl Host for PlatformView<'_> {
    fn convert_response_error(
        &mut self,
        error: ResponseFailure,
    ) -> wasmtime::Result<ResponseError> {
        error.downcast()
    }

    fn set_status_line(
        &mut self,
        code: u16,
        reason: Option<String>,
    ) -> Result<(), ResponseFailure> {
        let parsed = status(code)?;
        if let Some(reason) = &reason
            && !valid_reason(reason)
        {
            return Err(ResponseError::InvalidHeaderValue(reason.clone()).into());
        }
        let call = self.call().map_err(ResponseFailure::trap)?;
        Ok(call.set_status_line(parsed, reason)?)
    }

    fn set_status(&mut self, code: u16) -> Result<(), ResponseFailure> {
        self.set_status_line(code, None)
    }

    fn set_header(&mut self, name: String, value: String) -> Result<(), ResponseFailure> {
        let call = self.call().map_err(ResponseFailure::trap)?;
        Ok(call.add_header(&name, &value, Replace::All)?)
    }

    fn append_header(&mut self, name: String, value: String) -> Result<(), ResponseFailure> {
        let call = self.call().map_err(ResponseFailure::trap)?;
        Ok(call.add_header(&name, &value, Replace::Nothing)?)
    }

    fn set_body(&mut self, body: Vec<u8>) -> Result<(), ResponseFailure> {
        let call = self.call().map_err(ResponseFailure::trap)?;
        Ok(call.set_body(body)?)
    }

    fn append_body(&mut self, chunk: Vec<u8>) -> Result<(), ResponseFailure> {
        let call = self.call().map_err(ResponseFailure::trap)?;
        let response = &call.response;
        let (headers, head) = (response.headers.len(), head_bytes(response));
        let body = (response.body.len() + chunk.len()) as u64;
        call.check_size(headers, head, body)?;
        call.response.body.extend_from_slice(&chunk);
        Ok(())
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

    fn handler_call(max_response_body: u64) -> HandlerCall {
        HandlerCall {
            request: crate::request::IncomingRequest {
                request_id: "test".into(),
                method: http::Method::GET,
                path: "/".into(),
                query: String::new(),
                headers: http::HeaderMap::new(),
                body: bytes::Bytes::new(),
                route: "/".into(),
                params: Vec::new(),
            },
            response: GuestResponse::default(),
            max_response_body,
            response_too_large: false,
            headers_too_large: false,
        }
    }

    #[test]
    fn headers_are_capped_in_number() {
        let mut call = handler_call(u64::MAX);
        for _ in 0..MAX_HEADERS {
            call.add_header("x-many", "v", Replace::Nothing).unwrap();
        }
        assert!(matches!(
            call.add_header("x-many", "v", Replace::Nothing),
            Err(ResponseError::HeadersTooLarge)
        ));
        assert!(call.headers_too_large);
        assert_eq!(call.response.headers.len(), MAX_HEADERS);
        // Replacing them all leaves room again.
        call.add_header("x-many", "one", Replace::All).unwrap();
        assert_eq!(call.response.headers.len(), 1);
    }

    #[test]
    fn header_bytes_are_capped_and_count_into_the_response_limit() {
        let mut call = handler_call(u64::MAX);
        // Each line costs its name, value and 4 bytes.
        let value = "v".repeat(MAX_HEAD_BYTES as usize - "x-big".len() - 4);
        call.add_header("x-big", &value, Replace::All).unwrap();
        assert_eq!(head_bytes(&call.response), MAX_HEAD_BYTES);
        assert!(matches!(
            call.add_header("x", "", Replace::Nothing),
            Err(ResponseError::HeadersTooLarge)
        ));
        // Replacing the header frees its bytes.
        call.add_header("x-big", "small", Replace::All).unwrap();
        assert_eq!(head_bytes(&call.response), 14);

        let mut call = handler_call(100);
        call.add_header("x-a", "0123456789", Replace::All).unwrap();
        // 17 bytes of header leave 83 for the body.
        assert!(matches!(
            call.check_size(1, 17, 84),
            Err(ResponseError::TooLarge(100))
        ));
        assert!(call.response_too_large);
        call.response_too_large = false;
        assert!(call.check_size(1, 17, 83).is_ok());
    }

    #[test]
    fn reason_phrases_refuse_control_characters() {
        assert!(valid_reason("Not Quite OK"));
        assert!(!valid_reason("bad\r\nreason"));
    }
}
