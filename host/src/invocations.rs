//! The last invocations of every app, each with its log lines, status and
//! timing, kept in memory for `host logs` (through the admin endpoint
//! `/logs/APP`). Bounded per app by count and bytes, per invocation by
//! lines and bytes, so a chatty guest cannot grow the host, and across the
//! host by count and bytes, so ten thousand apps that each served a request
//! cannot either: past those, the invocations that finished first go.
//!
//! Lines are captured by a `tracing` layer from every event of a request
//! in progress: the guest's `log` calls, its stdout and stderr, and the
//! host's own lines about the request (failures, refused outbound
//! connections). A wasi:http invocation is kept open until its guest has
//! finished streaming the body.
//!
//! Each invocation is keyed by a sequence number of its own, carried by the
//! span ([`INVOCATION_TARGET`]) the request runs in; the `request_id`
//! comes from the client and is only a tag, since two requests may bring
//! the same one. An event outside every invocation span is attributed by
//! its `request_id` field, when exactly one running invocation has it.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The target of the span each request runs in; its field `invocation`
/// is the invocation's sequence number.
pub(crate) const INVOCATION_TARGET: &str = "serverless_invocation";

/// Invocations kept per app.
const KEEP_PER_APP: usize = 50;
/// Bytes of log text kept per app, across its invocations.
const BYTES_PER_APP: usize = 1 << 20;
/// Log lines kept per invocation; later ones are counted, not kept.
const LINES_PER_INVOCATION: usize = 200;
/// Bytes of log text kept per invocation.
const BYTES_PER_INVOCATION: usize = 64 << 10;
/// Invocations kept across all apps: about 4 MiB of records.
const KEEP_PER_HOST: usize = 10_000;
/// Bytes of log text kept across all apps.
const BYTES_PER_HOST: usize = 32 << 20;
/// Finished invocations a `--follow` client may fall behind by before it
/// is told it missed some.
const FOLLOWERS_BACKLOG: usize = 256;

/// One captured log line. Kept small: an app that has served requests
/// holds up to [`KEEP_PER_APP`] invocations of these.
#[derive(Debug, Clone)]
struct Line {
    level: tracing::Level,
    target: &'static str,
    message: Box<str>,
}

/// A request in progress: the lines so far.
struct Running {
    /// The request id, as the client gave it or as the host made it.
    request_id: String,
    lines: Vec<Line>,
    bytes: usize,
    dropped: usize,
}

/// One finished invocation, as `/logs/APP` serves it.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    /// The invocation's own sequence number.
    seq: u64,
    request_id: Box<str>,
    /// Shared by the app's kept invocations.
    app: Arc<str>,
    method: Box<str>,
    path: Box<str>,
    status: u16,
    duration: Duration,
    finished_unix_ms: u64,
    lines: Box<[Line]>,
    dropped: usize,
    bytes: usize,
}

impl Invocation {
    /// The app the invocation belongs to.
    pub(crate) fn app(&self) -> &str {
        &self.app
    }

    /// The invocation as a JSON object.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "invocation": self.seq,
            "request_id": self.request_id,
            "app": &*self.app,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "micros": self.duration.as_micros() as u64,
            "finished_unix_ms": self.finished_unix_ms,
            "dropped_lines": self.dropped,
            "lines": self.lines.iter().map(|line| serde_json::json!({
                "level": line.level.as_str(),
                "target": line.target,
                "message": line.message,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Formats an invocation from `/logs/APP` JSON for a terminal.
pub(crate) fn format_invocation(value: &serde_json::Value) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "== {} {} {} -> {} in {:.3} ms (request {})",
        value["app"].as_str().unwrap_or("?"),
        value["method"].as_str().unwrap_or("?"),
        value["path"].as_str().unwrap_or("?"),
        value["status"],
        value["micros"].as_f64().unwrap_or(0.0) / 1000.0,
        value["request_id"].as_str().unwrap_or("?"),
    );
    for line in value["lines"].as_array().into_iter().flatten() {
        let _ = writeln!(
            text,
            "   {:<5} {:<8} {}",
            line["level"].as_str().unwrap_or(""),
            line["target"].as_str().unwrap_or(""),
            line["message"].as_str().unwrap_or("")
        );
    }
    if let Some(dropped) = value["dropped_lines"].as_u64().filter(|d| *d > 0) {
        let _ = writeln!(text, "   ... {dropped} more lines not kept");
    }
    text
}

/// One app's kept invocations and the log bytes they hold; made when the
/// app's first invocation finishes, so an app that only is configured
/// costs nothing here.
struct Kept {
    /// The app's name, shared with its invocations.
    app: Arc<str>,
    invocations: VecDeque<Arc<Invocation>>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    running: HashMap<u64, Running>,
    /// The running invocations of each request id (usually one).
    by_request_id: HashMap<String, Vec<u64>>,
    finished: HashMap<String, Kept>,
    /// Every kept invocation by app, in the order they finished, and
    /// entries already dropped by their app's own bounds (found stale
    /// when they come to the front).
    order: VecDeque<(u64, Arc<str>)>,
    /// How many invocations are kept, all apps together.
    live: usize,
    /// Log bytes of every kept invocation.
    bytes: usize,
}

impl Inner {
    /// Stops collecting invocation `seq`, returning what it collected.
    fn end(&mut self, seq: u64) -> Option<Running> {
        let running = self.running.remove(&seq)?;
        if let Some(seqs) = self.by_request_id.get_mut(&running.request_id) {
            seqs.retain(|other| *other != seq);
            if seqs.is_empty() {
                self.by_request_id.remove(&running.request_id);
            }
        }
        Some(running)
    }

    /// Drops the invocations that finished first while the host keeps
    /// more than its bounds, always keeping the newest.
    fn trim_host(&mut self) {
        while self.live > KEEP_PER_HOST || (self.bytes > BYTES_PER_HOST && self.live > 1) {
            let Some((seq, app)) = self.order.pop_front() else {
                return;
            };
            let Some(kept) = self.finished.get_mut(&*app) else {
                continue;
            };
            // The oldest of all that is still kept is its app's oldest.
            if kept.invocations.front().map(|oldest| oldest.seq) != Some(seq) {
                continue;
            }
            if let Some(oldest) = kept.invocations.pop_front() {
                kept.bytes -= oldest.bytes;
                self.bytes -= oldest.bytes;
                self.live -= 1;
            }
            if kept.invocations.is_empty() {
                self.finished.remove(&*app);
            }
        }
        // Entries of invocations their app's own bounds dropped pile up
        // behind a quiet app's old ones: forget them now and then, so the
        // record stays within twice the bound.
        if self.order.len() > 2 * KEEP_PER_HOST {
            let finished = &self.finished;
            self.order.retain(|(seq, app)| {
                finished.get(&**app).is_some_and(|kept| {
                    kept.invocations
                        .binary_search_by_key(seq, |invocation| invocation.seq)
                        .is_ok()
                })
            });
        }
    }
}

/// Which invocation an event belongs to.
#[derive(Clone, Copy)]
enum Key<'a> {
    /// The invocation span it was emitted in.
    Seq(u64),
    /// Only its `request_id` field, outside every invocation span.
    RequestId(&'a str),
}

/// The store; one per server, created with it and shared (as an `Arc`) by
/// the capture layer, the dispatcher and the admin endpoint.
pub(crate) struct Invocations {
    inner: Mutex<Inner>,
    next_seq: AtomicU64,
    finished: tokio::sync::broadcast::Sender<Arc<Invocation>>,
}

impl Invocations {
    /// An empty store.
    pub(crate) fn new() -> Invocations {
        Invocations::with_backlog(FOLLOWERS_BACKLOG)
    }

    /// An empty store whose followers may fall `followers` invocations
    /// behind.
    fn with_backlog(followers: usize) -> Invocations {
        Invocations {
            inner: Mutex::new(Inner::default()),
            next_seq: AtomicU64::new(1),
            finished: tokio::sync::broadcast::channel(followers).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new invocation tagged `request_id` and collects its lines
    /// until `finish` or until the returned guard drops (a request whose
    /// client went away mid-way never reaches `finish`). Run the request in
    /// the guard's [`Collecting::span`].
    pub(crate) fn begin(self: &Arc<Self>, request_id: &str) -> Collecting {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.running.insert(
            seq,
            Running {
                request_id: request_id.to_owned(),
                lines: Vec::new(),
                bytes: 0,
                dropped: 0,
            },
        );
        inner
            .by_request_id
            .entry(request_id.to_owned())
            .or_default()
            .push(seq);
        Collecting {
            store: self.clone(),
            seq,
        }
    }

    fn capture(&self, key: Key<'_>, line: Line) {
        let mut inner = self.lock();
        let seq = match key {
            Key::Seq(seq) => seq,
            // Ambiguous when several running requests share the id: the
            // line is not kept rather than kept with the wrong one.
            Key::RequestId(request_id) => {
                match inner.by_request_id.get(request_id).map(Vec::as_slice) {
                    Some([only]) => *only,
                    _ => return,
                }
            }
        };
        let Some(running) = inner.running.get_mut(&seq) else {
            return;
        };
        let size = line.message.len();
        if running.lines.len() >= LINES_PER_INVOCATION
            || running.bytes + size > BYTES_PER_INVOCATION
        {
            running.dropped += 1;
            return;
        }
        running.bytes += size;
        running.lines.push(line);
    }

    /// Ends collection for invocation `seq` and keeps it under its app
    /// (requests that reached no app are not kept).
    pub(crate) fn finish(
        &self,
        seq: u64,
        app: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
        duration: Duration,
    ) {
        let mut inner = self.lock();
        let Some(running) = inner.end(seq) else {
            return;
        };
        let Some(app) = app else {
            return;
        };
        let kept = inner
            .finished
            .entry(app.to_owned())
            .or_insert_with(|| Kept {
                app: app.into(),
                invocations: VecDeque::new(),
                bytes: 0,
            });
        let invocation = Arc::new(Invocation {
            seq,
            request_id: running.request_id.into(),
            app: kept.app.clone(),
            method: method.into(),
            path: path.into(),
            status,
            duration,
            finished_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            bytes: running.bytes,
            lines: running.lines.into_boxed_slice(),
            dropped: running.dropped,
        });
        kept.bytes += invocation.bytes;
        kept.invocations.push_back(invocation.clone());
        let mut dropped = 0;
        let mut dropped_count = 0;
        while kept.invocations.len() > KEEP_PER_APP
            || (kept.bytes > BYTES_PER_APP && kept.invocations.len() > 1)
        {
            if let Some(oldest) = kept.invocations.pop_front() {
                kept.bytes -= oldest.bytes;
                dropped += oldest.bytes;
                dropped_count += 1;
            }
        }
        let app = kept.app.clone();
        inner.bytes = inner.bytes + invocation.bytes - dropped;
        inner.live = inner.live + 1 - dropped_count;
        inner.order.push_back((seq, app));
        inner.trim_host();
        drop(inner);
        // Nobody following is fine.
        let _ = self.finished.send(invocation);
    }

    /// The kept invocations of `app`, oldest first.
    pub(crate) fn recent(&self, app: &str) -> Vec<Arc<Invocation>> {
        self.lock()
            .finished
            .get(app)
            .map(|kept| kept.invocations.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Invocations as they finish, for `--follow`.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Invocation>> {
        self.finished.subscribe()
    }
}

/// Stops collecting a request's lines when dropped, if `finish` did not.
pub(crate) struct Collecting {
    store: Arc<Invocations>,
    seq: u64,
}

impl Collecting {
    /// The invocation's sequence number.
    #[cfg(test)]
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Ends the invocation and keeps it under its app; see
    /// [`Invocations::finish`].
    pub(crate) fn finish(
        self,
        app: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
        duration: Duration,
    ) {
        self.store
            .finish(self.seq, app, method, path, status, duration);
    }

    /// The span to run the request in: its events are the invocation's.
    /// At `TRACE`, so that the log output does not show it under the
    /// default filter; the capture layer enables its target.
    pub(crate) fn span(&self) -> tracing::Span {
        tracing::trace_span!(target: INVOCATION_TARGET, "invocation", invocation = self.seq)
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        self.store.lock().end(self.seq);
    }
}

/// The sequence number an invocation span carries, kept in its
/// extensions.
struct Seq(u64);

/// Reads the `invocation` field of an invocation span.
#[derive(Default)]
struct SeqField(Option<u64>);

impl Visit for SeqField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "invocation" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// Reads the fields of one event.
#[derive(Default)]
struct Fields {
    request_id: Option<String>,
    message: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "request_id" => self.request_id = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            "app" | "source" => {}
            name => {
                let _ = write!(self.extra, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "request_id" => self.request_id = Some(format!("{value:?}")),
            "app" | "source" => {}
            name => {
                let _ = write!(self.extra, " {name}={value:?}");
            }
        }
    }
}

/// The `tracing` layer that feeds [`Invocations`]; it holds the store
/// given to it when logging is set up.
pub(crate) struct CaptureLayer {
    store: Arc<Invocations>,
}

impl CaptureLayer {
    /// A layer that keeps lines in `store`.
    pub(crate) fn new(store: Arc<Invocations>) -> CaptureLayer {
        CaptureLayer { store }
    }
}

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, context: Context<'_, S>) {
        if attrs.metadata().target() != INVOCATION_TARGET {
            return;
        }
        let mut seq = SeqField::default();
        attrs.record(&mut seq);
        if let (Some(seq), Some(span)) = (seq.0, context.span(id)) {
            span.extensions_mut().insert(Seq(seq));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        if event.metadata().target() == INVOCATION_TARGET {
            return;
        }
        let seq = context.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<Seq>().map(|seq| seq.0))
        });
        let mut fields = Fields::default();
        event.record(&mut fields);
        let key = match (seq, &fields.request_id) {
            (Some(seq), _) => Key::Seq(seq),
            (None, Some(request_id)) => Key::RequestId(request_id),
            (None, None) => return,
        };
        let metadata = event.metadata();
        self.store.capture(
            key,
            Line {
                level: *metadata.level(),
                target: metadata.target(),
                message: if fields.extra.is_empty() {
                    fields.message.into_boxed_str()
                } else {
                    format!("{}{}", fields.message, fields.extra).into_boxed_str()
                },
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> Line {
        Line {
            level: tracing::Level::INFO,
            target: "guest",
            message: message.into(),
        }
    }

    fn store() -> Arc<Invocations> {
        Arc::new(Invocations::with_backlog(4))
    }

    #[test]
    fn an_app_keeps_its_last_invocations_and_a_chatty_one_is_cut() {
        let store = store();
        for index in 0..(KEEP_PER_APP + 5) {
            let id = format!("r{index}");
            let collecting = store.begin(&id);
            store.capture(Key::Seq(collecting.seq()), line(&format!("line of {id}")));
            store.finish(
                collecting.seq(),
                Some("a"),
                "GET",
                "/",
                200,
                Duration::from_millis(1),
            );
        }
        let kept = store.recent("a");
        assert_eq!(kept.len(), KEEP_PER_APP);
        assert_eq!(&*kept[0].request_id, "r5", "the oldest went first");
        assert!(
            kept.iter().all(|i| Arc::ptr_eq(&i.app, &kept[0].app)),
            "an app's invocations share its name"
        );

        let chatty = store.begin("chatty");
        for _ in 0..(LINES_PER_INVOCATION + 7) {
            store.capture(Key::Seq(chatty.seq()), line("x"));
        }
        store.finish(chatty.seq(), Some("b"), "GET", "/", 200, Duration::ZERO);
        let chatty = &store.recent("b")[0];
        assert_eq!(chatty.lines.len(), LINES_PER_INVOCATION);
        assert_eq!(chatty.dropped, 7);
        let text = format_invocation(&chatty.to_json());
        assert!(text.contains("7 more lines not kept"), "{text}");

        // Lines of unknown requests and requests without an app are not kept.
        store.capture(Key::RequestId("unknown"), line("stray"));
        store.capture(Key::Seq(u64::MAX), line("stray"));
        let no_app = store.begin("no-app");
        store.finish(no_app.seq(), None, "GET", "/", 404, Duration::ZERO);
        drop(no_app);
        // A request dropped before it finished leaves nothing behind.
        drop(store.begin("abandoned"));
        let inner = store.lock();
        assert!(inner.running.is_empty());
        assert!(inner.by_request_id.is_empty());
        // Only apps that finished an invocation have a place in the store.
        let mut apps: Vec<&str> = inner.finished.keys().map(String::as_str).collect();
        apps.sort_unstable();
        assert_eq!(apps, ["a", "b"]);
        drop(inner);
        assert!(store.recent("-").is_empty());
    }

    #[test]
    fn the_host_keeps_the_last_invocations_across_apps() {
        let store = store();
        let apps = 250;
        for app in 0..apps {
            for _ in 0..KEEP_PER_APP {
                let collecting = store.begin("r");
                store.capture(Key::Seq(collecting.seq()), line("x"));
                store.finish(
                    collecting.seq(),
                    Some(&format!("app{app}")),
                    "GET",
                    "/",
                    200,
                    Duration::ZERO,
                );
            }
        }
        // 12,500 finished; the first 2,500 (the first 50 apps') went, and
        // those apps have no place left in the store.
        let first_kept = apps - KEEP_PER_HOST / KEEP_PER_APP;
        assert!(store.recent("app49").is_empty());
        assert_eq!(
            store.recent(&format!("app{first_kept}")).len(),
            KEEP_PER_APP
        );
        assert_eq!(store.recent("app249").len(), KEEP_PER_APP);
        let inner = store.lock();
        assert_eq!(inner.finished.len(), KEEP_PER_HOST / KEEP_PER_APP);
        let kept: usize = inner.finished.values().map(|k| k.invocations.len()).sum();
        assert_eq!(kept, KEEP_PER_HOST);
        assert_eq!(inner.bytes, KEEP_PER_HOST);
        assert_eq!(inner.live, KEEP_PER_HOST);
        drop(inner);

        // A busy app's own bounds drop its old invocations long before the
        // host's: they do not count against the host's bound, so the quiet
        // apps lose only as many of their oldest as the busy app's 50 take,
        // and the host's record of them does not grow past twice its bound.
        for _ in 0..3 * KEEP_PER_HOST {
            let collecting = store.begin("busy");
            store.finish(
                collecting.seq(),
                Some("busy"),
                "GET",
                "/",
                200,
                Duration::ZERO,
            );
        }
        assert_eq!(store.recent("busy").len(), KEEP_PER_APP);
        assert!(store.recent(&format!("app{first_kept}")).is_empty());
        assert_eq!(
            store.recent(&format!("app{}", first_kept + 1)).len(),
            KEEP_PER_APP
        );
        let inner = store.lock();
        assert_eq!(inner.finished.len(), KEEP_PER_HOST / KEEP_PER_APP);
        assert_eq!(inner.live, KEEP_PER_HOST);
        let kept: usize = inner.finished.values().map(|k| k.invocations.len()).sum();
        assert_eq!(kept, KEEP_PER_HOST);
        assert_eq!(inner.bytes, KEEP_PER_HOST - KEEP_PER_APP);
        assert!(inner.order.len() <= 2 * KEEP_PER_HOST);
    }

    #[test]
    fn two_invocations_with_one_request_id_keep_their_own_lines() {
        let store = store();
        let first = store.begin("same");
        let second = store.begin("same");
        assert_ne!(first.seq(), second.seq());
        store.capture(Key::Seq(first.seq()), line("first's line"));
        store.capture(Key::Seq(second.seq()), line("second's line"));
        // Outside their spans the id alone cannot tell them apart.
        store.capture(Key::RequestId("same"), line("ambiguous"));
        store.finish(second.seq(), Some("a"), "GET", "/two", 200, Duration::ZERO);
        // With one left running, the id names it.
        store.capture(Key::RequestId("same"), line("first's late line"));
        store.finish(first.seq(), Some("a"), "GET", "/one", 200, Duration::ZERO);
        let kept = store.recent("a");
        let lines = |invocation: &Invocation| -> Vec<String> {
            invocation
                .lines
                .iter()
                .map(|l| l.message.to_string())
                .collect()
        };
        assert_eq!(kept.len(), 2);
        assert_eq!((&*kept[0].path, kept[0].seq), ("/two", second.seq()));
        assert_eq!(lines(&kept[0]), ["second's line"]);
        assert_eq!((&*kept[1].path, kept[1].seq), ("/one", first.seq()));
        assert_eq!(lines(&kept[1]), ["first's line", "first's late line"]);
        assert_eq!(&*kept[1].request_id, "same");
        assert_eq!(kept[1].to_json()["invocation"], first.seq());
    }
}
