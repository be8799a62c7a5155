//! The writer thread's lines against `tracing-subscriber`'s, for the same
//! events: they must be the same lines but for the clock reading.

use std::sync::atomic::AtomicU64;

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use super::layer::OutputLayer;
use super::writer::{Format, LogWriter, Shared};
use super::*;

#[derive(Debug)]
struct Failure {
    message: &'static str,
    source: Option<Box<Failure>>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Every kind of event and span the host logs, and the odd ones.
fn emit_everything() {
    tracing::info!("just a message");
    tracing::error!(message = "a message \"given\" as a str\u{1b}", extra = 1);
    tracing::info!(only = "fields");
    tracing::info!("");
    tracing::info!(
        target: "access",
        request_id = "abc",
        app = "hello-name",
        status = 200u16,
        micros = 21557u64,
        bytes_in = Some(0u64),
        bytes_out = None::<u64>,
        "request"
    );
    tracing::info!(target: "guest", app = "a", request_id = "r", source = "log", "{}", "greeting \"you\"\\ \u{1b}[31m\u{7}\u{85}");
    tracing::warn!(
        quoted = "line\nbreak\ttab \"q\" \u{1}",
        shown = %"display \"value\"",
        debugged = ?vec!["a", "b"],
        negative = -5i64,
        ratio = 0.5f64,
        huge = 1e300f64,
        not_a_number = f64::NAN,
        yes = true,
        wide = 1u128 << 100,
        r#type = "keyword",
        "warned"
    );
    let failure = Failure {
        message: "outer",
        source: Some(Box::new(Failure {
            message: "middle",
            source: Some(Box::new(Failure {
                message: "inner",
                source: None,
            })),
        })),
    };
    tracing::error!(
        error = &failure as &(dyn std::error::Error + 'static),
        "failed"
    );
    let alone = Failure {
        message: "alone \u{1b}",
        source: None,
    };
    tracing::error!(error = &alone as &(dyn std::error::Error + 'static));
    tracing::debug!(target: "host::server", "hidden by the filter");
    tracing::trace!(target: "levels", "trace");
    tracing::debug!(target: "levels", "debug");
    let outer = tracing::info_span!(
        "outer",
        invocation = 7u64,
        tag = "t",
        later = tracing::field::Empty
    );
    let _outer = outer.enter();
    tracing::info!("in one span");
    let inner = tracing::info_span!("inner");
    let _inner = inner.enter();
    tracing::info!(n = 1, "in two spans");
    outer.record("later", "recorded");
    tracing::info!("after a record");
    let hidden = tracing::trace_span!("hidden", secret = 1);
    let _hidden = hidden.enter();
    tracing::info!("a span the output does not show");
    drop(_hidden);
    drop(_inner);
    drop(_outer);
    tracing_log::format_trace(
        &tracing_log::log::Record::builder()
            .level(tracing_log::log::Level::Warn)
            .target("cranelift_codegen::thing")
            .module_path(Some("cranelift_codegen::thing"))
            .file(Some("thing.rs"))
            .line(Some(12))
            .args(format_args!("from the log crate"))
            .build(),
    )
    .unwrap();
}

/// What tracing-subscriber's fmt layer and ours write for
/// [`emit_everything`], in `format`.
fn both(format: Format) -> (String, String) {
    static DROPS: AtomicU64 = AtomicU64::new(0);
    let theirs = Shared::default();
    let ours = Shared::default();
    let writer = LogWriter::start_counting(format, Box::new(ours.clone()), &DROPS).unwrap();
    let filter = || tracing_subscriber::EnvFilter::new("info,levels=trace");
    let made = theirs.clone();
    let fmt = tracing_subscriber::fmt::layer().with_writer(move || made.clone());
    let fmt = match format {
        Format::Text { ansi } => fmt.with_ansi(ansi).with_filter(filter()).boxed(),
        Format::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter())
            .boxed(),
    };
    let subscriber = tracing_subscriber::registry()
        .with(fmt)
        .with(OutputLayer::new(writer.queue()).with_filter(filter()));
    tracing::subscriber::with_default(subscriber, emit_everything);
    drop(writer);
    (theirs.text(), ours.text())
}

/// `text` without the clock reading that starts each line (27 characters
/// after `skip`).
fn without_time(text: &str, skip: usize) -> Vec<String> {
    text.lines()
        .map(|line| format!("{}{}", &line[..skip], &line[skip + 27..]))
        .collect()
}

#[test]
fn text_lines_are_tracing_subscribers_lines() {
    let (theirs, ours) = both(Format::Text { ansi: false });
    assert_eq!(theirs.lines().count(), 16, "{theirs}");
    assert_eq!(without_time(&ours, 0), without_time(&theirs, 0));
    assert!(
        ours.contains(" WARN cranelift_codegen::thing: from the log crate\n"),
        "{ours}"
    );
}

#[test]
fn coloured_text_lines_are_tracing_subscribers_lines() {
    let (theirs, ours) = both(Format::Text { ansi: true });
    // The timestamp follows the escape that dims it.
    assert_eq!(without_time(&ours, 4), without_time(&theirs, 4));
}

#[test]
fn json_lines_are_tracing_subscribers_lines() {
    let (theirs, ours) = both(Format::Json);
    assert_eq!(theirs.lines().count(), 16, "{theirs}");
    // `{"timestamp":"` is 14 characters.
    assert_eq!(without_time(&ours, 14), without_time(&theirs, 14));
    for line in ours.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect(line);
    }
}

#[test]
fn log_records_are_built_only_up_to_the_output_level() {
    // Before the fix the bridge took the subscriber's maximum, TRACE,
    // and compiling built every trace record of Cranelift.
    let filter = tracing_subscriber::EnvFilter::new("info");
    assert_eq!(
        log_bridge_level(&filter),
        tracing_log::log::LevelFilter::Info
    );
    let filter = tracing_subscriber::EnvFilter::new("warn,host=debug");
    assert_eq!(
        log_bridge_level(&filter),
        tracing_log::log::LevelFilter::Debug
    );
}
