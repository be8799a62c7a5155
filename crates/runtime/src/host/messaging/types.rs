//! `wasi:messaging/types`: clients and messages.
//!
//! Our choices where the draft leaves them open: `connect` takes any name
//! (it is logged, and every client reaches the host's one exchange);
//! metadata keys are NATS header names (printable ASCII without `:` or
//! spaces, at most 256 bytes) and values carry no line breaks, so that a
//! message means the same on the embedded broker and on NATS;
//! `add-metadata` replaces a key's value, keeping its place.

use wasmtime::component::Resource;

use super::{Client, GuestMessage, MessagingView};
use crate::bindings::types::{Error, Host, HostClient, HostMessage, Metadata, MetadataError};

/// The longest metadata key, in bytes.
const MAX_KEY: usize = 256;

/// Why `key` and `value` cannot travel as a NATS header, if they cannot.
fn invalid_metadata(key: &str, value: &str) -> Option<String> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Some(format!("a metadata key is 1 to {MAX_KEY} bytes"));
    }
    if let Some(bad) = key.chars().find(|c| !c.is_ascii_graphic() || *c == ':') {
        return Some(format!(
            "metadata key `{}` holds {bad:?}; a key is printable ASCII without `:` or spaces",
            key.escape_debug()
        ));
    }
    if key.eq_ignore_ascii_case("content-type") {
        return Some("the content type is set with set-content-type, not as metadata".to_owned());
    }
    // NATS reads headers of its own (`Nats-Msg-Id`, `Nats-Rollup`, ...).
    if key.len() >= 5 && key[..5].eq_ignore_ascii_case("nats-") {
        return Some(format!(
            "metadata key `{key}` starts with `Nats-`, which NATS reads itself; name it otherwise"
        ));
    }
    if value.contains(['\r', '\n']) {
        return Some(format!(
            "the value of metadata key `{key}` holds a line break"
        ));
    }
    None
}

impl Host for MessagingView<'_> {}

impl HostClient for MessagingView<'_> {
    async fn connect(&mut self, name: String) -> wasmtime::Result<Result<Resource<Client>, Error>> {
        if let Err(error) = self.broker() {
            return Ok(Err(error));
        }
        Ok(Ok(self.table.push(Client { name, open: true })?))
    }

    async fn disconnect(
        &mut self,
        client: Resource<Client>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get_mut(&client)?.open = false;
        Ok(Ok(()))
    }

    async fn drop(&mut self, client: Resource<Client>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl HostMessage for MessagingView<'_> {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<GuestMessage>> {
        self.hold(0, data.len())?;
        Ok(self.table.push(GuestMessage {
            topic: None,
            data,
            content_type: None,
            metadata: Vec::new(),
            reply_to: None,
        })?)
    }

    async fn topic(&mut self, message: Resource<GuestMessage>) -> wasmtime::Result<Option<String>> {
        Ok(self
            .table
            .get(&message)?
            .topic
            .as_ref()
            .map(|topic| topic.as_str().to_owned()))
    }

    async fn content_type(
        &mut self,
        message: Resource<GuestMessage>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&message)?.content_type.clone())
    }

    async fn set_content_type(
        &mut self,
        message: Resource<GuestMessage>,
        content_type: String,
    ) -> wasmtime::Result<Result<(), ()>> {
        if content_type.is_empty() || content_type.contains(|c: char| c.is_ascii_control()) {
            return Ok(Err(()));
        }
        let before = self.table.get(&message)?.held();
        let entry = self.table.get_mut(&message)?;
        entry.content_type = Some(content_type);
        let after = entry.held();
        self.hold(before, after)?;
        Ok(Ok(()))
    }

    async fn data(&mut self, message: Resource<GuestMessage>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&message)?.data.clone())
    }

    async fn set_data(
        &mut self,
        message: Resource<GuestMessage>,
        data: Vec<u8>,
    ) -> wasmtime::Result<()> {
        let entry = self.table.get(&message)?;
        let (before, after) = (entry.held(), entry.held() - entry.data.len() + data.len());
        self.hold(before, after)?;
        self.table.get_mut(&message)?.data = data;
        Ok(())
    }

    async fn metadata(
        &mut self,
        message: Resource<GuestMessage>,
    ) -> wasmtime::Result<Option<Metadata>> {
        let metadata = &self.table.get(&message)?.metadata;
        Ok((!metadata.is_empty()).then(|| metadata.clone()))
    }

    async fn add_metadata(
        &mut self,
        message: Resource<GuestMessage>,
        key: String,
        value: String,
    ) -> wasmtime::Result<Result<(), MetadataError>> {
        if let Some(why) = invalid_metadata(&key, &value) {
            return Ok(Err(MetadataError::Invalid(Some(why))));
        }
        let before = self.table.get(&message)?.held();
        let entry = self.table.get_mut(&message)?;
        match entry.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = value,
            None => entry.metadata.push((key, value)),
        }
        let after = entry.held();
        self.hold(before, after)?;
        Ok(Ok(()))
    }

    async fn set_metadata(
        &mut self,
        message: Resource<GuestMessage>,
        meta: Metadata,
    ) -> wasmtime::Result<Result<(), MetadataError>> {
        if let Some(why) = meta.iter().find_map(|(k, v)| invalid_metadata(k, v)) {
            return Ok(Err(MetadataError::Invalid(Some(why))));
        }
        let before = self.table.get(&message)?.held();
        let entry = self.table.get_mut(&message)?;
        entry.metadata = meta;
        let after = entry.held();
        self.hold(before, after)?;
        Ok(Ok(()))
    }

    async fn remove_metadata(
        &mut self,
        message: Resource<GuestMessage>,
        key: String,
    ) -> wasmtime::Result<()> {
        let before = self.table.get(&message)?.held();
        let entry = self.table.get_mut(&message)?;
        entry.metadata.retain(|(k, _)| *k != key);
        let after = entry.held();
        self.hold(before, after)?;
        Ok(())
    }

    async fn drop(&mut self, message: Resource<GuestMessage>) -> wasmtime::Result<()> {
        let message = self.table.delete(message)?;
        self.hold(message.held(), 0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::invalid_metadata;

    #[test]
    fn metadata_must_travel_as_a_nats_header() {
        assert_eq!(invalid_metadata("trace-id", "abc"), None);
        assert_eq!(
            invalid_metadata("a key", "v").as_deref(),
            Some("metadata key `a key` holds ' '; a key is printable ASCII without `:` or spaces")
        );
        assert_eq!(
            invalid_metadata("k", "two\nlines").as_deref(),
            Some("the value of metadata key `k` holds a line break")
        );
        assert_eq!(
            invalid_metadata("Nats-Rollup", "all").as_deref(),
            Some(
                "metadata key `Nats-Rollup` starts with `Nats-`, which NATS reads itself; name it otherwise"
            )
        );
        assert_eq!(
            invalid_metadata("Content-Type", "text/plain").as_deref(),
            Some("the content type is set with set-content-type, not as metadata")
        );
    }
}
