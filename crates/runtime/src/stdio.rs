//! Guest output: `log` calls, stdout and stderr, written to the host log
//! line by line under one budget per request.
//!
//! * Each stream (stdout, stderr) has one line buffer per request, shared by
//!   every handle the guest opens on it, so that a line written in pieces,
//!   through several handles or several writes, is one log line. Blank lines
//!   are kept.
//! * A line longer than [`MAX_LINE_BYTES`], and a `log` message longer than
//!   that, is written in pieces of at most that size, cut where no secret
//!   spans the cut (a secret whose beginning may still be on its way is
//!   waited for): every piece is redacted whole.
//! * Together, a request's log lines, stdout and stderr may take
//!   [`BUDGET_BYTES`] and [`BUDGET_LINES`]; past either, output is counted
//!   and dropped, and one line at the end of the request says how much.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tracing::Level;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::guest_log::{LogTags, Secrets};

/// A line longer than this is logged in pieces, so that a guest that never
/// writes a newline cannot make the host buffer without bound, and one
/// `log` call cannot make one huge record.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

/// How many bytes of output (log messages and stdout and stderr lines, not
/// counting line ends) one request may write to the host log.
pub(crate) const BUDGET_BYTES: u64 = 1 << 20;

/// How many log records (`log` calls or their pieces, stdout and stderr
/// lines) one request may write to the host log: every record costs the
/// log its timestamp and tags, so a million blank lines must not pass.
pub(crate) const BUDGET_LINES: u64 = 10_000;

/// How many bytes one `write` to stdout or stderr may carry.
const WRITE_PERMIT: usize = 64 * 1024;

/// How many of the last stderr lines are kept to explain a trap.
const STDERR_TAIL_LINES: usize = 8;

/// How a language's runtime starts the message it prints on stderr before
/// the guest dies, so that the log line of the trap can quote it.
enum PanicMarker {
    /// The text appears in the line.
    Contains(&'static str),
    /// The line starts with the text.
    StartsWith(&'static str),
}

impl PanicMarker {
    fn starts(&self, line: &str) -> bool {
        match self {
            PanicMarker::Contains(text) => line.contains(text),
            PanicMarker::StartsWith(text) => line.starts_with(text),
        }
    }
}

/// Rust (`thread 'main' panicked at src/lib.rs:3:5:`), Python's traceback,
/// Go's and Zig's `panic: `, and C's and C++'s failed `assert`.
const PANIC_MARKERS: [PanicMarker; 4] = [
    PanicMarker::Contains("panicked at"),
    PanicMarker::StartsWith("Traceback (most recent call last):"),
    PanicMarker::StartsWith("panic: "),
    PanicMarker::Contains("Assertion failed"),
];

/// The last lines a guest wrote to stderr, where a panic message lands,
/// so that the log line of a trap can quote it. Kept also when the output
/// budget is spent.
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

    /// The guest's panic message, if its stderr shows one: the first line
    /// that starts one of the [`PANIC_MARKERS`] and what follows it.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let lines = self.0.lock().ok()?;
        let start = lines
            .iter()
            .position(|line| PANIC_MARKERS.iter().any(|marker| marker.starts(line)))?;
        let message: Vec<&str> = lines
            .iter()
            .skip(start)
            .map(String::as_str)
            .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        Some(message.join(" "))
    }
}

/// Where a piece of output came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Log,
    Stdout,
    Stderr,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Log => "log",
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
        }
    }
}

/// One request's guest output. Cheap to clone; every clone writes to the
/// same buffers and budget.
#[derive(Clone)]
pub(crate) struct GuestOutput(Arc<Mutex<Output>>);

struct Output {
    tags: LogTags,
    tail: StderrTail,
    stdout: LineBuffer,
    stderr: LineBuffer,
    budget: Budget,
}

/// What is left of a request's output budget, and what was dropped.
struct Budget {
    bytes: u64,
    lines: u64,
    /// Set by the first record that did not fit: output is cut there, not
    /// thinned, so nothing after it is written either.
    cut: bool,
    dropped_bytes: u64,
    dropped_lines: u64,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            bytes: BUDGET_BYTES,
            lines: BUDGET_LINES,
            cut: false,
            dropped_bytes: 0,
            dropped_lines: 0,
        }
    }

    /// Whether a record of `bytes` may still be written.
    fn take(&mut self, bytes: usize) -> bool {
        let bytes = bytes as u64;
        if !self.cut && self.lines > 0 && bytes <= self.bytes {
            self.bytes -= bytes;
            self.lines -= 1;
            true
        } else {
            self.drop_records(bytes, 1);
            false
        }
    }

    fn drop_records(&mut self, bytes: u64, lines: u64) {
        self.cut = true;
        self.dropped_bytes += bytes;
        self.dropped_lines += lines;
    }
}

impl GuestOutput {
    /// The output of the request tagged `tags`; the last stderr lines also
    /// go to `tail`.
    pub(crate) fn new(tags: LogTags, tail: StderrTail) -> GuestOutput {
        GuestOutput(Arc::new(Mutex::new(Output {
            tags,
            tail,
            stdout: LineBuffer::default(),
            stderr: LineBuffer::default(),
            budget: Budget::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Output> {
        // A panic while logging leaves nothing half-done that matters.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The guest's stdout, logged at `info`.
    pub(crate) fn stdout(&self) -> GuestStream {
        GuestStream {
            output: self.clone(),
            source: Source::Stdout,
        }
    }

    /// The guest's stderr (where panics go), logged at `warn`.
    pub(crate) fn stderr(&self) -> GuestStream {
        GuestStream {
            output: self.clone(),
            source: Source::Stderr,
        }
    }

    /// One `log` call: one record, or several of at most [`MAX_LINE_BYTES`]
    /// for a longer message.
    pub(crate) fn log(&self, level: Level, message: &str) {
        self.lock().log(level, message.as_bytes());
    }

    /// A line the host writes about something the guest did (a refused
    /// connection, symlink or handle): counted against the same budget as
    /// the guest's own output, so that a guest repeating a refused call in
    /// a loop cannot flood the log through the host either.
    pub(crate) fn host_note(&self, level: Level, source: &'static str, message: &str) {
        let mut output = self.lock();
        if output
            .budget
            .take(crate::guest_log::escape_controls(message).len())
        {
            output.tags.emit(level, source, message);
        }
    }

    /// Writes what the streams hold without a line end yet, and one line
    /// saying how much output was dropped, if any was. Called when the
    /// guest has finished; a guest cannot write after it, but if one did,
    /// the next call (or the end of the store) would write that.
    pub(crate) fn finish(&self) {
        self.lock().finish();
    }

    /// Starts a new budget: a service, which has no request to end, gets
    /// one per period instead of one for its whole life. What the old one
    /// dropped is reported first.
    pub(crate) fn renew_budget(&self) {
        let mut output = self.lock();
        output.report_dropped();
        output.budget = Budget::new();
    }
}

impl Output {
    fn log(&mut self, level: Level, mut message: &[u8]) {
        loop {
            if self.budget.cut {
                // The rest would be dropped piece by piece: count it
                // without cutting it.
                let pieces = message.len().div_ceil(MAX_LINE_BYTES).max(1) as u64;
                self.budget.drop_records(message.len() as u64, pieces);
                return;
            }
            if message.len() <= MAX_LINE_BYTES {
                self.emit(Source::Log, level, message);
                return;
            }
            let cut = piece_end(&self.tags.secrets, message, MAX_LINE_BYTES, false);
            self.emit(Source::Log, level, &message[..cut]);
            message = &message[cut..];
        }
    }

    fn write(&mut self, source: Source, bytes: &[u8]) {
        for chunk in bytes.chunks(MAX_LINE_BYTES) {
            self.buffer(source).pending.extend_from_slice(chunk);
            self.drain(source, true);
        }
    }

    /// Writes every complete line of `source`'s buffer; with `open` false,
    /// the rest too.
    fn drain(&mut self, source: Source, open: bool) {
        let level = if source == Source::Stderr {
            Level::WARN
        } else {
            Level::INFO
        };
        let secrets = self.tags.secrets.clone();
        loop {
            let buffer = self.buffer(source);
            let Some((line, consumed)) = buffer.next_line(&secrets, open) else {
                break;
            };
            let line = buffer.take(line, consumed);
            self.emit(source, level, &line);
        }
        self.buffer(source).compact();
    }

    fn buffer(&mut self, source: Source) -> &mut LineBuffer {
        match source {
            Source::Stderr => &mut self.stderr,
            Source::Stdout | Source::Log => &mut self.stdout,
        }
    }

    /// One record, if the budget allows it.
    fn emit(&mut self, source: Source, level: Level, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        if source == Source::Stderr {
            self.tail.push(&self.tags.secrets.redact(&line));
        }
        // Charged for what reaches the log: escaping a control character
        // makes it up to 10 bytes.
        if self
            .budget
            .take(crate::guest_log::escape_controls(&line).len())
        {
            self.tags.emit(level, source.name(), &line);
        }
    }

    fn finish(&mut self) {
        self.drain(Source::Stdout, false);
        self.drain(Source::Stderr, false);
        self.report_dropped();
    }

    /// Says how much output was dropped, if any was.
    fn report_dropped(&mut self) {
        let budget = &mut self.budget;
        if budget.dropped_lines > 0 {
            tracing::warn!(
                app = &*self.tags.app,
                request_id = &*self.tags.request_id,
                "dropped {} bytes in {} lines of guest output (log, stdout and stderr) \
                 past the budget of {BUDGET_BYTES} bytes or {BUDGET_LINES} lines per request",
                budget.dropped_bytes,
                budget.dropped_lines,
            );
            budget.dropped_bytes = 0;
            budget.dropped_lines = 0;
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Where to end a piece of at most `limit` bytes of `bytes`: no secret is
/// cut (see [`Secrets::cut_before`]) and, when the text is UTF-8, no
/// character either. `0` when the piece must wait for more bytes.
fn piece_end(secrets: &Secrets, bytes: &[u8], limit: usize, open: bool) -> usize {
    let mut cut = limit.min(bytes.len());
    loop {
        let mut next = secrets.cut_before(bytes, cut, open);
        // Back over at most three continuation bytes to a character's start.
        let mut back = 0;
        while next > 0 && next < bytes.len() && bytes[next] & 0xC0 == 0x80 && back < 3 {
            next -= 1;
            back += 1;
        }
        if next == cut {
            break;
        }
        cut = next;
    }
    if cut == 0 {
        if let Some(secret) = secrets.at_start(bytes) {
            // A secret longer than a piece: it is its own piece.
            return secret;
        }
        if !open {
            return limit.min(bytes.len());
        }
    }
    cut
}

/// The bytes of one stream not yet written to the log.
#[derive(Default)]
struct LineBuffer {
    pending: Vec<u8>,
    /// Where the unwritten bytes start in `pending`.
    start: usize,
    /// How far past `start` a newline has been looked for in vain (or
    /// found inside a secret, where it does not end the line).
    scanned: usize,
}

impl LineBuffer {
    /// The next line to write, as a range of the unwritten bytes, and how
    /// many bytes it consumes (its line end included): the bytes up to a
    /// newline that no secret spans, or a piece of at most
    /// [`MAX_LINE_BYTES`]; with `open` false, also what is left.
    fn next_line(&mut self, secrets: &Secrets, open: bool) -> Option<(Range<usize>, usize)> {
        let bytes = &self.pending[self.start..];
        loop {
            let Some(found) = bytes[self.scanned..].iter().position(|b| *b == b'\n') else {
                self.scanned = bytes.len();
                break;
            };
            let newline = self.scanned + found;
            if newline > MAX_LINE_BYTES {
                break;
            }
            let spans = |open| {
                secrets.cut_before(bytes, newline, open) != newline
                    || secrets.cut_before(bytes, newline + 1, open) != newline + 1
            };
            if spans(false) {
                // A secret that holds a newline keeps the line whole.
                self.scanned = newline + 1;
                continue;
            }
            if open && spans(true) {
                // It may be such a secret: wait for the rest.
                return None;
            }
            let end = if newline > 0 && bytes[newline - 1] == b'\r' {
                newline - 1
            } else {
                newline
            };
            self.scanned = 0;
            return Some((0..end, newline + 1));
        }
        if bytes.len() > MAX_LINE_BYTES || (!open && !bytes.is_empty()) {
            let cut = piece_end(secrets, bytes, MAX_LINE_BYTES, open);
            if cut > 0 {
                self.scanned = 0;
                return Some((0..cut, cut));
            }
        }
        None
    }

    /// The bytes of `line`, dropping the `consumed` bytes from the buffer.
    fn take(&mut self, line: Range<usize>, consumed: usize) -> Vec<u8> {
        let unwritten = &self.pending[self.start..];
        let line = unwritten[line].to_vec();
        self.start += consumed;
        line
    }

    /// Frees the space of what has been written.
    fn compact(&mut self) {
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
    }
}

/// A guest output stream (`wasi:cli/stdout` or `stderr`): every handle
/// the guest gets writes to the request's one buffer for that stream.
pub(crate) struct GuestStream {
    output: GuestOutput,
    source: Source,
}

impl GuestStream {
    fn write(&self, bytes: &[u8]) {
        self.output.lock().write(self.source, bytes);
    }
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(StreamHandle(GuestStream {
            output: self.output.clone(),
            source: self.source,
        }))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(StreamHandle(GuestStream {
            output: self.output.clone(),
            source: self.source,
        }))
    }
}

/// One handle on a guest output stream. Writes go straight to the buffer,
/// so a handle is always ready and never holds bytes of its own.
struct StreamHandle(GuestStream);

impl OutputStream for StreamHandle {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > WRITE_PERMIT {
            return Err(StreamError::trap("write larger than the permit"));
        }
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StreamHandle {
    async fn ready(&mut self) {}
}

impl AsyncWrite for StreamHandle {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(lines: &[&str]) -> StderrTail {
        let tail = StderrTail::default();
        for line in lines {
            tail.push(line);
        }
        tail
    }

    #[test]
    fn panic_messages_of_every_guest_language_are_recognised() {
        let rust = tail(&[
            "starting",
            "thread '<unnamed>' panicked at src/lib.rs:3:5:",
            "boom",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ]);
        assert_eq!(
            rust.panic_message().as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:3:5: boom")
        );
        let python = tail(&[
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in handle",
            "ValueError: boom",
        ]);
        assert_eq!(
            python.panic_message().as_deref(),
            Some(
                "Traceback (most recent call last):   File \"app.py\", line 3, in handle ValueError: boom"
            )
        );
        let go = tail(&["panic: boom", "", "goroutine 1 [running]:"]);
        assert_eq!(
            go.panic_message().as_deref(),
            Some("panic: boom  goroutine 1 [running]:")
        );
        let c = tail(&["hello.c:9: handle: Assertion failed: x > 0"]);
        assert_eq!(
            c.panic_message().as_deref(),
            Some("hello.c:9: handle: Assertion failed: x > 0")
        );
        assert_eq!(
            tail(&["an ordinary line", "panicking is fine"]).panic_message(),
            None
        );
    }

    /// The lines a stream's buffer gives for `writes`, then at its end.
    fn lines(secrets: &Secrets, writes: &[&[u8]]) -> Vec<String> {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        let mut drain = |buffer: &mut LineBuffer, open: bool| {
            while let Some((line, consumed)) = buffer.next_line(secrets, open) {
                let line = buffer.take(line, consumed);
                lines.push(String::from_utf8(line).unwrap());
            }
            buffer.compact();
        };
        for write in writes {
            for chunk in write.chunks(MAX_LINE_BYTES) {
                buffer.pending.extend_from_slice(chunk);
                drain(&mut buffer, true);
            }
        }
        drain(&mut buffer, false);
        lines
    }

    #[test]
    fn a_line_in_pieces_is_one_line_and_blank_lines_stay() {
        let none = Secrets::default();
        assert_eq!(
            lines(
                &none,
                &[b"one ", b"line", b" in pieces\r\n", b"\n", b"\n", b"last"]
            ),
            ["one line in pieces", "", "", "last"]
        );
    }

    #[test]
    fn long_lines_are_cut_into_pieces_of_the_limit() {
        let none = Secrets::default();
        let long = vec![b'x'; 2 * MAX_LINE_BYTES + 10];
        let pieces = lines(&none, &[&long, b"\n"]);
        let sizes: Vec<usize> = pieces.iter().map(String::len).collect();
        assert_eq!(sizes, [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
        // A line of exactly the limit is one line.
        let exact = [vec![b'y'; MAX_LINE_BYTES], b"\n".to_vec()].concat();
        assert_eq!(lines(&none, &[&exact]).len(), 1);
        // A character is not cut.
        let accented = ["a".repeat(MAX_LINE_BYTES - 1), "é tail".to_owned()].concat();
        let pieces = lines(&none, &[accented.as_bytes()]);
        assert_eq!(pieces[0].len(), MAX_LINE_BYTES - 1);
        assert_eq!(pieces[1], "é tail");
    }

    #[test]
    fn a_secret_is_never_cut_by_the_line_split() {
        let secrets = Secrets::new(&["tok-3f9a2c71".into()]);
        let filler = "x".repeat(MAX_LINE_BYTES - 5);
        let line = format!("{filler}tok-3f9a2c71 and more\n");
        let expected = [filler.clone(), "tok-3f9a2c71 and more".to_owned()];
        assert_eq!(lines(&secrets, &[line.as_bytes()]), expected);
        // Also when the secret arrives in two writes, the first one
        // ending exactly at the limit.
        let (first, second) = line.split_at(MAX_LINE_BYTES);
        assert_eq!(
            lines(&secrets, &[first.as_bytes(), second.as_bytes()]),
            expected
        );
        // What only looked like the secret's beginning is cut as usual.
        let near = format!("{filler}tok-3nothing\n");
        let (first, second) = near.split_at(MAX_LINE_BYTES);
        assert_eq!(
            lines(&secrets, &[first.as_bytes(), second.as_bytes()]),
            [format!("{filler}tok-3"), "nothing".to_owned()]
        );
    }

    #[test]
    fn a_secret_holding_a_newline_keeps_its_line_whole() {
        let secrets = Secrets::new(&["first\nsecond".into()]);
        assert_eq!(
            lines(&secrets, &[b"key first\nsecond end\nnext\n"]),
            ["key first\nsecond end", "next"]
        );
        // Its beginning waits for the rest, which may not be the secret.
        assert_eq!(
            lines(&secrets, &[b"key first\n", b"other\n"]),
            ["key first", "other"]
        );
        assert_eq!(lines(&secrets, &[b"key first\n"]), ["key first"]);
    }

    #[test]
    fn the_budget_cuts_output_and_counts_what_it_drops() {
        let mut budget = Budget::new();
        assert!(budget.take(BUDGET_BYTES as usize - 10));
        assert!(budget.take(10));
        assert!(!budget.take(1));
        assert!(!budget.take(0), "nothing after the cut");
        assert_eq!((budget.dropped_bytes, budget.dropped_lines), (1, 2));
        let mut budget = Budget::new();
        for _ in 0..BUDGET_LINES {
            assert!(budget.take(0));
        }
        assert!(!budget.take(0));
    }

    #[test]
    fn a_renewed_budget_lets_output_through_again() {
        let tags = LogTags {
            app: "service".into(),
            request_id: "run-1".into(),
            secrets: Arc::new(Secrets::new(&[])),
        };
        let output = GuestOutput::new(tags, StderrTail::default());
        for _ in 0..=BUDGET_LINES {
            output.lock().budget.take(0);
        }
        assert!(output.lock().budget.cut);
        output.renew_budget();
        let renewed = &output.lock().budget;
        assert!(!renewed.cut);
        assert_eq!(
            (renewed.bytes, renewed.lines, renewed.dropped_lines),
            (BUDGET_BYTES, BUDGET_LINES, 0)
        );
    }
}
