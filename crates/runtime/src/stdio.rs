//! Guest stdout and stderr, written to the host log line by line.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tracing::Level;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::guest_log::LogTags;

/// A line longer than this is logged in pieces, so that a guest that never
/// writes a newline cannot make the host buffer without bound.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// One of the guest's output streams (`wasi:cli/stdout` or `stderr`).
pub(crate) struct GuestOutput {
    tags: LogTags,
    source: &'static str,
    level: Level,
}

impl GuestOutput {
    /// The guest's stdout, logged at `info`.
    pub(crate) fn stdout(tags: LogTags) -> GuestOutput {
        GuestOutput {
            tags,
            source: "stdout",
            level: Level::INFO,
        }
    }

    /// The guest's stderr (where panics go), logged at `warn`.
    pub(crate) fn stderr(tags: LogTags) -> GuestOutput {
        GuestOutput {
            tags,
            source: "stderr",
            level: Level::WARN,
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            tags: self.tags.clone(),
            source: self.source,
            level: self.level,
            pending: Vec::new(),
        })
    }
}

/// Collects bytes until a newline and logs each complete line; the rest is
/// logged when the stream is closed or dropped with the instance.
struct LineWriter {
    tags: LogTags,
    source: &'static str,
    level: Level,
    pending: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|b| *b == b'\n') {
            self.pending.extend_from_slice(&bytes[..newline]);
            self.emit_pending();
            bytes = &bytes[newline + 1..];
        }
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= MAX_LINE_BYTES {
            let rest = self.pending.split_off(MAX_LINE_BYTES);
            self.emit_pending();
            self.pending = rest;
        }
    }

    fn emit_pending(&mut self) {
        let line = String::from_utf8_lossy(&self.pending);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        // Blank lines carry nothing but noise in a tagged log.
        if !line.trim().is_empty() {
            self.tags.emit(self.level, self.source, line);
        }
        self.pending.clear();
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            this.emit_pending();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit_pending();
        }
    }
}
