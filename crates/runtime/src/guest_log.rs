//! Log lines written on behalf of a guest, tagged with app and request id.

use std::borrow::Cow;
use std::sync::Arc;

use tracing::Level;

/// The tags every line from one request's guest carries.
#[derive(Debug, Clone)]
pub(crate) struct LogTags {
    pub(crate) app: Arc<str>,
    pub(crate) request_id: Arc<str>,
}

impl LogTags {
    /// Writes one guest line at `level`. `source` says where it came from:
    /// `log`, `stdout`, `stderr` or a host interface. Control characters
    /// are escaped so a guest cannot forge or split log records.
    pub(crate) fn emit(&self, level: Level, source: &'static str, message: &str) {
        let message = escape_controls(message);
        let (app, request_id) = (&*self.app, &*self.request_id);
        match level {
            Level::TRACE => tracing::trace!(target: "guest", app, request_id, source, "{message}"),
            Level::DEBUG => tracing::debug!(target: "guest", app, request_id, source, "{message}"),
            Level::INFO => tracing::info!(target: "guest", app, request_id, source, "{message}"),
            Level::WARN => tracing::warn!(target: "guest", app, request_id, source, "{message}"),
            Level::ERROR => tracing::error!(target: "guest", app, request_id, source, "{message}"),
        }
    }
}

/// Escapes newlines, escape sequences and other control characters; tabs
/// stay as they are.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(escape_controls("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(escape_controls("\u{1b}[31mred"), "\\u{1b}[31mred");
    }
}
