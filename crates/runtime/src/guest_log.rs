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

    /// Where to cut `bytes` at or before `limit` so that no secret is cut
    /// in two, which would let each half reach the log unredacted: `limit`
    /// itself, or the start of a secret that spans it. When more bytes may
    /// follow (`open`), the beginning of a secret at the end of `bytes`
    /// counts as one. `0` means the bytes before `limit` all belong to a
    /// secret that starts at `0`.
    pub(crate) fn cut_before(&self, bytes: &[u8], limit: usize, open: bool) -> usize {
        let mut cut = limit.min(bytes.len());
        // Moving the cut to a secret's start may cut another secret that
        // overlaps it: repeat until no secret spans the cut.
        loop {
            let spanning = self.values.iter().find_map(|secret| {
                let secret = secret.as_bytes();
                (cut.saturating_sub(secret.len() - 1)..cut).find(|&start| {
                    let here = &bytes[start..bytes.len().min(start + secret.len())];
                    if here.len() == secret.len() {
                        here == secret
                    } else {
                        open && secret.starts_with(here)
                    }
                })
            });
            match spanning {
                Some(start) => cut = start,
                None => return cut,
            }
        }
    }

    /// The length of the longest secret at the start of `bytes`, if one is.
    pub(crate) fn at_start(&self, bytes: &[u8]) -> Option<usize> {
        self.values
            .iter()
            .find(|secret| bytes.starts_with(secret.as_bytes()))
            .map(String::len)
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
    fn a_cut_never_falls_inside_a_secret() {
        let secrets = Secrets::new(&["s3cret-value".into(), "cret-v".into()]);
        let text = b"0123456789s3cret-value tail";
        // No secret spans position 5 or 22.
        assert_eq!(secrets.cut_before(text, 5, false), 5);
        assert_eq!(secrets.cut_before(text, 22, false), 22);
        // Inside the secret, the cut moves to its start; inside the
        // shorter one it contains as well.
        assert_eq!(secrets.cut_before(text, 15, false), 10);
        assert_eq!(secrets.cut_before(text, 19, false), 10);
        // A secret's beginning at the end counts only while more may come.
        let open = b"0123456789s3cr";
        assert_eq!(secrets.cut_before(open, 14, true), 10);
        assert_eq!(secrets.cut_before(open, 14, false), 14);
        assert_eq!(secrets.cut_before(b"s3cret-value", 6, false), 0);
        assert_eq!(secrets.at_start(b"s3cret-value and more"), Some(12));
        assert_eq!(Secrets::default().cut_before(text, 15, true), 15);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(escape_controls("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(escape_controls("\u{1b}[31mred"), "\\u{1b}[31mred");
    }
}
