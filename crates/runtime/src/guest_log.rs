//! Log lines written on behalf of a guest, tagged with app and request id.

use std::borrow::Cow;
use std::sync::Arc;

use tracing::Level;

/// The tags every line from one request's guest carries.
#[derive(Debug, Clone)]
pub(crate) struct LogTags {
    pub(crate) app: Arc<str>,
    pub(crate) request_id: Arc<str>,
    /// Values that must never be written to the log.
    pub(crate) secrets: Arc<Secrets>,
}

/// Secret values (an app's `from_env` variables): every log line written
/// for the app has them replaced by `[redacted]`.
#[derive(Debug, Default)]
pub struct Secrets {
    values: Vec<String>,
}

/// Secrets shorter than this are not redacted: replacing every `a` or `1`
/// in the log would destroy it without hiding anything.
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    /// The secrets among `values` long enough to redact, longest first so
    /// that a secret containing another is replaced whole.
    pub fn new(values: &[String]) -> Secrets {
        let mut values: Vec<String> = values
            .iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .cloned()
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values }
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.values {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), "[redacted]"));
            }
        }
        text
    }
}

impl LogTags {
    /// Writes one guest line at `level`. `source` says where it came from:
    /// `log`, `stdout`, `stderr` or a host interface. Control characters
    /// are escaped so a guest cannot forge or split log records.
    pub(crate) fn emit(&self, level: Level, source: &'static str, message: &str) {
        let message = self.secrets.redact(message);
        let message = escape_controls(&message);
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
    fn secrets_are_redacted_longest_first_and_short_ones_left() {
        let secrets = Secrets::new(&["hunter2-long".into(), "hunter2".into(), "abc".into()]);
        assert_eq!(
            secrets.redact("pw=hunter2-long or hunter2, abc"),
            "pw=[redacted] or [redacted], abc"
        );
        assert!(matches!(secrets.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(escape_controls("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(escape_controls("\u{1b}[31mred"), "\\u{1b}[31mred");
    }
}
