//! `serverless-wasm:platform/request`: the incoming request, read-only.

use crate::bindings::request::Host;
use crate::state::PlatformView;

/// Header bytes as a string, one code point per byte (ISO-8859-1), so that
/// no byte is lost and ASCII reads as itself.
pub(crate) fn latin1_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

impl Host for PlatformView<'_> {
    fn method(&mut self) -> wasmtime::Result<String> {
        Ok(self.call()?.request.method.as_str().to_owned())
    }

    fn path(&mut self) -> wasmtime::Result<String> {
        Ok(self.call()?.request.path.clone())
    }

    fn query(&mut self) -> wasmtime::Result<String> {
        Ok(self.call()?.request.query.clone())
    }

    fn query_params(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(
            form_urlencoded::parse(self.call()?.request.query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    fn headers(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .call()?
            .request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), latin1_to_string(value.as_bytes())))
            .collect())
    }

    fn header(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        // `HeaderMap::get` would panic-free reject invalid names by
        // returning `None`, which is the right answer for them too.
        Ok(self
            .call()?
            .request
            .headers
            .get(name.to_ascii_lowercase().as_str())
            .map(|value| latin1_to_string(value.as_bytes())))
    }

    fn body(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.call()?.request.body.to_vec())
    }

    fn route(&mut self) -> wasmtime::Result<String> {
        Ok(self.call()?.request.route.to_string())
    }

    fn params(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.call()?.request.params.clone())
    }

    fn param(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .call()?
            .request
            .params
            .iter()
            .find(|(param, _)| *param == name)
            .map(|(_, value)| value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_keeps_every_byte() {
        assert_eq!(latin1_to_string(b"text/plain"), "text/plain");
        let decoded = latin1_to_string(&[0x63, 0xE9, 0xFF]);
        assert_eq!(decoded, "c\u{e9}\u{ff}");
        let round_trip: Vec<u8> = decoded.chars().map(|c| c as u8).collect();
        assert_eq!(round_trip, [0x63, 0xE9, 0xFF]);
    }
}
