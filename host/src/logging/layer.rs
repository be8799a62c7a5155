//! The `tracing` layer that feeds the log writer: for each event the
//! output's filter lets through, it copies the event into a [`Record`] and
//! queues it. It keeps the fields of the spans the output shows, so that
//! their lines can name them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::record::{Fields, Record, SpanRecord};
use super::writer::Queue;

/// Queues every event it sees for the writer thread.
pub(crate) struct OutputLayer {
    queue: Arc<Queue>,
    /// Whether the output has shown any span yet. Until it has (by default
    /// it never does), an event's spans are not looked up at all.
    spans_shown: AtomicBool,
}

impl OutputLayer {
    pub(crate) fn new(queue: Arc<Queue>) -> OutputLayer {
        OutputLayer {
            queue,
            spans_shown: AtomicBool::new(false),
        }
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Fields);

impl<S> tracing_subscriber::Layer<S> for OutputLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else {
            return;
        };
        let mut fields = Fields::with_capacity(attributes.fields().len());
        attributes.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields));
        self.spans_shown.store(true, Ordering::Relaxed);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, context: Context<'_, S>) {
        let Some(span) = context.span(id) else {
            return;
        };
        let mut added = Fields::default();
        values.record(&mut added);
        if let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>() {
            fields.extend(added);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let time = SystemTime::now();
        let metadata = event.metadata();
        let (level, target) = match event.normalized_metadata() {
            // A record of the `log` crate: its own level and target.
            Some(normalized) => (*normalized.level(), normalized.target().to_owned().into()),
            None => (*metadata.level(), metadata.target().into()),
        };
        let mut fields = Fields::with_capacity(metadata.fields().len());
        event.record(&mut fields);
        let scope = if self.spans_shown.load(Ordering::Relaxed) {
            context.event_scope(event)
        } else {
            None
        };
        let spans = match scope {
            Some(scope) => scope
                .from_root()
                .map(|span| SpanRecord {
                    name: span.name(),
                    fields: span
                        .extensions()
                        .get::<SpanFields>()
                        .map(|SpanFields(fields)| fields.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            None => Vec::new(),
        };
        self.queue.push(Record {
            time,
            level,
            target,
            fields,
            spans,
        });
    }
}
