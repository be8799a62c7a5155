//! The log writer: a thread of its own that formats queued records and
//! writes them to stderr in batches, so that a request pays only for
//! copying its fields into a [`Record`], never for a formatter or a
//! `write` system call.
//!
//! The queue is bounded (by the memory its records hold, the batch being
//! written included): when the writer cannot keep up, a new record is
//! dropped and counted rather than making requests wait or the host grow
//! without bound. Guests' own lines may take only part of it, so that
//! chatty guests cannot crowd out the access lines and the host's lines. The count is the
//! `serverless_log_lines_dropped_total` metric, and the writer says in a
//! line of its own how many it had to drop. Records queued when the host
//! exits are written before it does ([`LogWriter`]'s drop).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::record::{Fields, Record};
use super::{json, text};

/// How much record memory may wait for the writer or be in its hands
/// before records are dropped: about 100,000 typical lines.
const MAX_QUEUED_BYTES: usize = 32 << 20;

/// How much of it guests' own lines may take, so that a flood of guest
/// output cannot crowd out the access lines and the host's own lines.
const MAX_GUEST_BYTES: usize = 24 << 20;

/// The target of guests' own lines (`crates/runtime/src/guest_log.rs`).
const GUEST_TARGET: &str = "guest";

/// The writer writes out what it has formatted once it holds this much,
/// so that its text buffer stays small whatever the batch.
const WRITE_AT: usize = 1 << 20;

/// How often at most the writer wakes: a busy host then has one wake-up
/// and one `write` for all the lines of this long (waking the writer for
/// every few lines cost more than formatting them), and lines reach
/// stderr at most this late.
const GATHER: Duration = Duration::from_millis(10);

/// Records dropped because the queue was full, since the host started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many log records were dropped because the writer could not keep up.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// How lines are written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Format {
    /// `tracing-subscriber`'s text format; `ansi` colours it.
    Text { ansi: bool },
    /// One JSON object a line.
    Json,
}

impl Format {
    fn write(self, out: &mut String, record: &Record) {
        match self {
            Format::Text { ansi } => text::write(out, record, ansi),
            Format::Json => json::write(out, record),
        }
    }
}

/// Where the lines go: stderr, or a test's buffer.
pub(crate) type Sink = Box<dyn Write + Send>;

/// What the logging layer and the writer thread share.
pub(crate) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    format: Format,
    /// Used by the writer thread, and by the layer itself once the writer
    /// has stopped.
    sink: Mutex<Sink>,
    /// Where the count of dropped records is kept (the host's static one,
    /// or a test's).
    dropped: &'static AtomicU64,
}

#[derive(Default)]
struct State {
    records: Vec<Record>,
    /// The memory of the queued records and of the batch the writer is
    /// writing.
    bytes: usize,
    /// The part of `bytes` that guests' own lines hold.
    guest_bytes: usize,
    /// The writer sleeps on `wake` and must be woken.
    writer_waiting: bool,
    /// The writer has been asked to finish: it writes what is queued.
    closed: bool,
    /// The writer has finished: a record is written at once.
    stopped: bool,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `record` for the writer; drops and counts it when the queue
    /// is full (for a guest's line, when guests' share is). Once the
    /// writer has finished (the host is exiting), writes it at once.
    pub(crate) fn push(&self, record: Record) {
        let size = record.size();
        let guest = record.target == GUEST_TARGET;
        let mut state = self.state();
        if state.stopped {
            drop(state);
            self.write_now(&[record]);
            return;
        }
        if state.bytes + size > MAX_QUEUED_BYTES
            || (guest && state.guest_bytes + size > MAX_GUEST_BYTES)
        {
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.bytes += size;
        if guest {
            state.guest_bytes += size;
        }
        state.records.push(record);
        if std::mem::take(&mut state.writer_waiting) {
            drop(state);
            self.wake.notify_one();
        }
    }

    fn write_now(&self, records: &[Record]) {
        let mut out = String::new();
        for record in records {
            self.format_one(&mut out, record);
        }
        self.write_out(&out);
    }

    /// Formats `record` into `out`. A formatter that panics (it should
    /// not) costs that line, counted as dropped, and not the writer.
    fn format_one(&self, out: &mut String, record: &Record) {
        let mark = out.len();
        let formatted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.format.write(out, record);
        }));
        if formatted.is_err() {
            out.truncate(mark);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn write_out(&self, out: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        // A closed or full stderr cannot be reported anywhere else.
        let _ = sink.write_all(out.as_bytes());
        let _ = sink.flush();
    }

    /// The writer thread's loop: waits for records, lets more gather,
    /// formats and writes them all at once; returns once closed and
    /// drained.
    fn run(&self) {
        let mut batch = Vec::new();
        let mut out = String::new();
        let mut dropped_before = self.dropped.load(Ordering::Relaxed);
        let mut last_batch = Instant::now()
            .checked_sub(GATHER)
            .unwrap_or_else(Instant::now);
        loop {
            let closed = {
                let mut state = self.state();
                while state.records.is_empty() && !state.closed {
                    state.writer_waiting = true;
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.closed
            };
            if !closed {
                // Not before `GATHER` has passed since the last batch.
                let since = last_batch.elapsed();
                if since < GATHER {
                    std::thread::sleep(GATHER - since);
                }
            }
            last_batch = Instant::now();
            let closed = {
                let mut state = self.state();
                std::mem::swap(&mut batch, &mut state.records);
                state.closed
            };
            // The batch's memory stays counted until it is written.
            let (mut held, mut guest_held) = (0, 0);
            for record in batch.drain(..) {
                let size = record.size();
                held += size;
                if record.target == GUEST_TARGET {
                    guest_held += size;
                }
                self.format_one(&mut out, &record);
                if out.len() >= WRITE_AT {
                    self.write_out(&out);
                    out.clear();
                }
            }
            let dropped_now = self.dropped.load(Ordering::Relaxed);
            if dropped_now > dropped_before {
                self.format_one(&mut out, &dropped_note(dropped_now - dropped_before));
                dropped_before = dropped_now;
            }
            if !out.is_empty() {
                self.write_out(&out);
            }
            out.clear();
            // A burst of huge lines should not pin its memory for good.
            out.shrink_to(2 * WRITE_AT);
            batch.shrink_to(4096);
            let mut state = self.state();
            state.bytes -= held;
            state.guest_bytes -= guest_held;
            if closed && state.records.is_empty() {
                // From now on a record is written by whoever logs it, after
                // everything queued before it.
                state.stopped = true;
                return;
            }
        }
    }
}

/// Puts the writer thread under `SCHED_BATCH` on Linux: the kernel then
/// never lets it preempt a running thread when it wakes, so formatting a
/// 10 ms batch of lines does not delay the request a worker is serving by
/// as long; it runs in the worker's gaps and at the scheduler's ticks,
/// with the same share of the CPU as before.
fn never_preempt_the_workers() {
    #[cfg(target_os = "linux")]
    {
        let parameters = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` on the calling thread (pid 0) with a
        // valid parameter block; SCHED_BATCH needs no privilege. Failing
        // leaves the thread as it was, which is fine.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &parameters) };
    }
}

/// The line that reports dropped records.
fn dropped_note(count: u64) -> Record {
    struct Note(u64);
    impl std::fmt::Display for Note {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "{} log lines were dropped: the log writer could not keep up \
                 (serverless_log_lines_dropped_total counts them)",
                self.0
            )
        }
    }
    Record {
        time: SystemTime::now(),
        level: tracing::Level::WARN,
        target: "host::logging".into(),
        fields: Fields::message(&Note(count)),
        spans: Vec::new(),
    }
}

/// The running writer thread. Dropping it writes what is queued and stops
/// the thread; records that arrive later are written at once.
pub(crate) struct LogWriter {
    queue: Arc<Queue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer thread, writing `format` lines to `sink`.
    pub(crate) fn start(format: Format, sink: Sink) -> std::io::Result<LogWriter> {
        LogWriter::start_counting(format, sink, &DROPPED)
    }

    /// [`LogWriter::start`], counting drops in `dropped`.
    pub(crate) fn start_counting(
        format: Format,
        sink: Sink,
        dropped: &'static AtomicU64,
    ) -> std::io::Result<LogWriter> {
        let queue = Arc::new(Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            format,
            sink: Mutex::new(sink),
            dropped,
        });
        let running = queue.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || {
                never_preempt_the_workers();
                running.run()
            })?;
        Ok(LogWriter {
            queue,
            thread: Some(thread),
        })
    }

    /// The queue, for the logging layer.
    pub(crate) fn queue(&self) -> Arc<Queue> {
        self.queue.clone()
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.queue.state().closed = true;
        self.queue.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A sink that tests can read, for this module's tests and the logging
/// tests.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Shared {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str) -> Record {
        Record {
            time: std::time::UNIX_EPOCH,
            level: tracing::Level::INFO,
            target: "test".into(),
            fields: Fields::message(&message),
            spans: Vec::new(),
        }
    }

    /// A sink that blocks until told to go on, so that the queue fills.
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        inner: Shared,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = changed.wait(open).unwrap();
            }
            self.inner.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_queued_line_is_written_in_order_before_the_writer_stops() {
        static DROPS: AtomicU64 = AtomicU64::new(0);
        let sink = Shared::default();
        let writer =
            LogWriter::start_counting(Format::Text { ansi: false }, Box::new(sink.clone()), &DROPS)
                .unwrap();
        let queue = writer.queue();
        for n in 0..10_000 {
            queue.push(record(&format!("line {n}")));
        }
        drop(writer);
        // Once stopped, a late line is written at once.
        queue.push(record("late"));
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_001);
        for (n, line) in lines[..10_000].iter().enumerate() {
            assert_eq!(
                *line,
                format!("1970-01-01T00:00:00.000000Z  INFO test: line {n}")
            );
        }
        assert_eq!(
            lines[10_000],
            "1970-01-01T00:00:00.000000Z  INFO test: late"
        );
        assert_eq!(DROPS.load(Ordering::Relaxed), 0);
    }

    type GateState = Arc<(Mutex<bool>, Condvar)>;

    /// A writer whose sink blocks until [`open_gate`].
    fn gated_writer(drops: &'static AtomicU64) -> (LogWriter, GateState, Shared) {
        let open: GateState = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Shared::default();
        let writer = LogWriter::start_counting(
            Format::Text { ansi: false },
            Box::new(Gate {
                open: open.clone(),
                inner: sink.clone(),
            }),
            drops,
        )
        .unwrap();
        (writer, open, sink)
    }

    fn open_gate(open: &GateState) {
        let (gate, changed) = &**open;
        *gate.lock().unwrap() = true;
        changed.notify_all();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_thread_never_preempts_the_workers() {
        static DROPS: AtomicU64 = AtomicU64::new(0);
        let writer =
            LogWriter::start_counting(Format::Json, Box::new(Shared::default()), &DROPS).unwrap();
        // The thread sets its policy first thing; wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let policy = loop {
            let policies: Vec<i32> = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| {
                    let task = task.ok()?;
                    let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                    let tid: i32 = task.file_name().to_str()?.parse().ok()?;
                    // SAFETY: reads a thread's scheduling policy.
                    (comm.trim() == "log-writer").then(|| unsafe { libc::sched_getscheduler(tid) })
                })
                .collect();
            if policies.contains(&libc::SCHED_BATCH) || Instant::now() > deadline {
                break policies;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        drop(writer);
        assert!(policy.contains(&libc::SCHED_BATCH), "{policy:?}");
    }

    #[test]
    fn guests_lines_cannot_crowd_out_the_hosts() {
        static DROPS: AtomicU64 = AtomicU64::new(0);
        let (writer, open, sink) = gated_writer(&DROPS);
        let queue = writer.queue();
        let guest = |message: &str| Record {
            target: GUEST_TARGET.into(),
            ..record(message)
        };
        let size = guest("g").size();
        let fit = MAX_GUEST_BYTES / size;
        for _ in 0..fit + 10 {
            queue.push(guest("g"));
        }
        let guest_drops = DROPS.load(Ordering::Relaxed);
        // The host's own lines still fit.
        for _ in 0..100 {
            queue.push(record("access"));
        }
        let all_drops = DROPS.load(Ordering::Relaxed);
        // Open the gate before asserting: a failed assertion would
        // otherwise wait for the blocked writer for ever.
        open_gate(&open);
        drop(writer);
        assert_eq!(guest_drops, 10);
        assert_eq!(all_drops, 10, "no line of the host's was dropped");
        let text = sink.text();
        assert_eq!(
            text.lines()
                .filter(|line| line.ends_with("guest: g"))
                .count(),
            fit
        );
        assert_eq!(
            text.lines()
                .filter(|line| line.ends_with("test: access"))
                .count(),
            100
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_the_writer_says_so() {
        static DROPS: AtomicU64 = AtomicU64::new(0);
        let (writer, open, sink) = gated_writer(&DROPS);
        let queue = writer.queue();
        // The first line reaches the writer, which then blocks writing it.
        queue.push(record("first"));
        while !queue.state().records.is_empty() {
            std::thread::yield_now();
        }
        let line = record("x");
        // The first line, in the writer's hands, still counts.
        let fit = (MAX_QUEUED_BYTES - line.size()) / line.size();
        for _ in 0..fit + 25 {
            queue.push(record("x"));
        }
        let drops = DROPS.load(Ordering::Relaxed);
        open_gate(&open);
        drop(writer);
        assert_eq!(drops, 25);
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + fit + 1, "the kept lines and the note");
        assert_eq!(
            *lines.last().unwrap(),
            format!(
                "{}  WARN host::logging: 25 log lines were dropped: the log writer could not \
                 keep up (serverless_log_lines_dropped_total counts them)",
                &lines.last().unwrap()[..27]
            )
        );
    }
}
