//! The last invocations of every app, each with its log lines, status and
//! timing, kept in memory for `host logs` (through the admin endpoint
//! `/logs/APP`). Bounded per app by count and bytes, and per invocation by
//! lines and bytes, so a chatty guest cannot grow the host.
//!
//! Lines are captured by a `tracing` layer from every event that carries
//! the `request_id` of a request in progress: the guest's `log` calls, its
//! stdout and stderr, and the host's own lines about the request (failures,
//! refused outbound connections). A wasi:http invocation is kept open
//! until its guest has finished streaming the body.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Invocations kept per app.
const KEEP_PER_APP: usize = 50;
/// Bytes of log text kept per app, across its invocations.
const BYTES_PER_APP: usize = 1 << 20;
/// Log lines kept per invocation; later ones are counted, not kept.
const LINES_PER_INVOCATION: usize = 200;
/// Bytes of log text kept per invocation.
const BYTES_PER_INVOCATION: usize = 64 << 10;

/// One captured log line.
#[derive(Debug, Clone)]
struct Line {
    level: String,
    target: String,
    message: String,
}

/// A request in progress: the lines so far.
#[derive(Default)]
struct Running {
    lines: Vec<Line>,
    bytes: usize,
    dropped: usize,
}

/// One finished invocation, as `/logs/APP` serves it.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    request_id: String,
    app: String,
    method: String,
    path: String,
    status: u16,
    duration: Duration,
    finished_unix_ms: u128,
    lines: Vec<Line>,
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
            "request_id": self.request_id,
            "app": self.app,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "micros": self.duration.as_micros() as u64,
            "finished_unix_ms": self.finished_unix_ms as u64,
            "dropped_lines": self.dropped,
            "lines": self.lines.iter().map(|line| serde_json::json!({
                "level": line.level,
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

/// One app's kept invocations and the log bytes they hold.
#[derive(Default)]
struct Kept {
    invocations: VecDeque<Arc<Invocation>>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Running>,
    finished: HashMap<String, Kept>,
}

/// The store; one per process, shared by the capture layer, the
/// dispatcher and the admin endpoint.
pub(crate) struct Invocations {
    inner: Mutex<Inner>,
    finished: tokio::sync::broadcast::Sender<Arc<Invocation>>,
}

impl Invocations {
    /// The process's store.
    pub(crate) fn global() -> &'static Invocations {
        static STORE: OnceLock<Invocations> = OnceLock::new();
        STORE.get_or_init(|| Invocations {
            inner: Mutex::new(Inner::default()),
            finished: tokio::sync::broadcast::channel(256).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts collecting lines tagged with `request_id`, until `finish`
    /// or until the returned guard drops (a request whose client went away
    /// mid-way never reaches `finish`).
    pub(crate) fn begin(&'static self, request_id: &str) -> Collecting {
        self.lock()
            .running
            .insert(request_id.to_owned(), Running::default());
        Collecting {
            store: self,
            request_id: request_id.to_owned(),
        }
    }

    fn capture(&self, request_id: &str, line: Line) {
        let mut inner = self.lock();
        let Some(running) = inner.running.get_mut(request_id) else {
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

    /// Ends collection for `request_id` and keeps the invocation under its
    /// app (requests that reached no app are not kept).
    pub(crate) fn finish(
        &self,
        request_id: &str,
        app: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
        duration: Duration,
    ) {
        let mut inner = self.lock();
        let Some(running) = inner.running.remove(request_id) else {
            return;
        };
        let Some(app) = app else {
            return;
        };
        let invocation = Arc::new(Invocation {
            request_id: request_id.to_owned(),
            app: app.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            duration,
            finished_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            bytes: running.bytes,
            lines: running.lines,
            dropped: running.dropped,
        });
        let kept = inner.finished.entry(app.to_owned()).or_default();
        kept.bytes += invocation.bytes;
        kept.invocations.push_back(invocation.clone());
        while kept.invocations.len() > KEEP_PER_APP
            || (kept.bytes > BYTES_PER_APP && kept.invocations.len() > 1)
        {
            if let Some(oldest) = kept.invocations.pop_front() {
                kept.bytes -= oldest.bytes;
            }
        }
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
    store: &'static Invocations,
    request_id: String,
}

impl Drop for Collecting {
    fn drop(&mut self) {
        self.store.lock().running.remove(&self.request_id);
    }
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

/// The `tracing` layer that feeds [`Invocations`].
pub(crate) struct CaptureLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(request_id) = fields.request_id else {
            return;
        };
        let metadata = event.metadata();
        Invocations::global().capture(
            &request_id,
            Line {
                level: metadata.level().to_string(),
                target: metadata.target().to_owned(),
                message: format!("{}{}", fields.message, fields.extra),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_keeps_its_last_invocations_and_a_chatty_one_is_cut() {
        let store: &'static Invocations = Box::leak(Box::new(Invocations {
            inner: Mutex::new(Inner::default()),
            finished: tokio::sync::broadcast::channel(4).0,
        }));
        for index in 0..(KEEP_PER_APP + 5) {
            let id = format!("r{index}");
            let _collecting = store.begin(&id);
            store.capture(
                &id,
                Line {
                    level: "INFO".into(),
                    target: "guest".into(),
                    message: format!("line of {id}"),
                },
            );
            store.finish(&id, Some("a"), "GET", "/", 200, Duration::from_millis(1));
        }
        let kept = store.recent("a");
        assert_eq!(kept.len(), KEEP_PER_APP);
        assert_eq!(kept[0].request_id, "r5", "the oldest went first");

        let _chatty = store.begin("chatty");
        for _ in 0..(LINES_PER_INVOCATION + 7) {
            store.capture(
                "chatty",
                Line {
                    level: "INFO".into(),
                    target: "guest".into(),
                    message: "x".into(),
                },
            );
        }
        store.finish("chatty", Some("b"), "GET", "/", 200, Duration::ZERO);
        let chatty = &store.recent("b")[0];
        assert_eq!(chatty.lines.len(), LINES_PER_INVOCATION);
        assert_eq!(chatty.dropped, 7);
        let text = format_invocation(&chatty.to_json());
        assert!(text.contains("7 more lines not kept"), "{text}");

        // Lines of unknown requests and requests without an app are not kept.
        store.capture(
            "unknown",
            Line {
                level: "INFO".into(),
                target: "guest".into(),
                message: "stray".into(),
            },
        );
        let no_app = store.begin("no-app");
        store.finish("no-app", None, "GET", "/", 404, Duration::ZERO);
        drop(no_app);
        // A request dropped before it finished leaves nothing behind.
        drop(store.begin("abandoned"));
        assert!(store.lock().running.is_empty());
        assert!(store.recent("-").is_empty());
    }
}
