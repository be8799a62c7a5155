//! Guest stdout and stderr, written to the host log line by line.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tracing::Level;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::guest_log::LogTags;

/// A line longer than this is logged in pieces, so that a guest that never
/// writes a newline cannot make the host buffer without bound.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// How many of the last stderr lines are kept to explain a trap.
const STDERR_TAIL_LINES: usize = 8;

/// The last lines a guest wrote to stderr, where a panic message lands,
/// so that the log line of a trap can quote it.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() == STDERR_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
        }
    }

    /// The guest's panic message, if its stderr shows one: the `panicked
    /// at` line and what follows it.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let lines = self.0.lock().ok()?;
        let start = lines.iter().position(|line| line.contains("panicked at"))?;
        let message: Vec<&str> = lines
            .iter()
            .skip(start)
            .map(String::as_str)
            .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        Some(message.join(" "))
    }
}

/// One of the guest's output streams (`wasi:cli/stdout` or `stderr`).
pub(crate) struct GuestOutput {
    tags: LogTags,
    source: &'static str,
    level: Level,
    tail: Option<StderrTail>,
}

impl GuestOutput {
    /// The guest's stdout, logged at `info`.
    pub(crate) fn stdout(tags: LogTags) -> GuestOutput {
        GuestOutput {
            tags,
            source: "stdout",
            level: Level::INFO,
            tail: None,
        }
    }

    /// The guest's stderr (where panics go), logged at `warn`; its last
    /// lines are also kept in `tail`.
    pub(crate) fn stderr(tags: LogTags, tail: StderrTail) -> GuestOutput {
        GuestOutput {
            tags,
            source: "stderr",
            level: Level::WARN,
            tail: Some(tail),
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
            tail: self.tail.clone(),
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
    tail: Option<StderrTail>,
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
            if let Some(tail) = &self.tail {
                tail.push(&self.tags.secrets.redact(line));
            }
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
