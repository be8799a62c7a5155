//! What a log line says, taken from a `tracing` event as cheaply as the
//! request path allows: the values are copied into one text buffer and a
//! list of typed entries, and nothing is formatted but what only the event
//! can format (its message and `Debug` values). The writer thread turns a
//! record into text or JSON later.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use std::time::SystemTime;

use tracing::Level;
use tracing::field::{Field, Visit};

/// One event, owned, ready to be formatted on another thread.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) time: SystemTime,
    pub(crate) level: Level,
    /// The event's target, or the `log` crate's target for a bridged
    /// record.
    pub(crate) target: Cow<'static, str>,
    pub(crate) fields: Fields,
    /// The spans the event happened in that the output shows, outermost
    /// first. Usually none, and then nothing is allocated.
    pub(crate) spans: Vec<SpanRecord>,
}

impl Record {
    /// Roughly how much memory the record holds, for the queue's bound.
    pub(crate) fn size(&self) -> usize {
        std::mem::size_of::<Record>()
            + self.fields.size()
            + self
                .spans
                .iter()
                .map(|span| span.fields.size())
                .sum::<usize>()
    }
}

/// A span's name and fields, as the output shows them around its events.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub(crate) name: &'static str,
    pub(crate) fields: Fields,
}

/// Field values in the order the event gives them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    /// The text of every textual value, one after the other.
    text: String,
    entries: Vec<(&'static str, Value)>,
}

/// One field's value; text lives in [`Fields::text`].
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A `&str` value as given (text quotes it, but the message).
    Str(Range<usize>),
    /// What the value's `Debug` (or `Display`, for `%value`) wrote.
    Formatted(Range<usize>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// An error: its `Display`, and its sources' when it has any.
    Error {
        message: Range<usize>,
        sources: Option<Range<usize>>,
    },
}

/// A field as the formatters see it.
pub(crate) enum FieldValue<'a> {
    Str(&'a str),
    Formatted(&'a str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Error {
        message: &'a str,
        sources: Option<&'a str>,
    },
}

impl Fields {
    /// Room for `entries` fields.
    pub(crate) fn with_capacity(entries: usize) -> Fields {
        Fields {
            text: String::with_capacity(entries * 16),
            entries: Vec::with_capacity(entries),
        }
    }

    /// Just a message, for the lines the logging itself writes.
    pub(crate) fn message(message: &dyn std::fmt::Display) -> Fields {
        let mut fields = Fields::with_capacity(1);
        let range = fields.push_text(|text| {
            let _ = write!(text, "{message}");
        });
        fields.entries.push(("message", Value::Formatted(range)));
        fields
    }

    /// Whether there are no fields.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn size(&self) -> usize {
        self.text.capacity()
            + self.entries.capacity() * std::mem::size_of::<(&'static str, Value)>()
    }

    /// The fields, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, FieldValue<'_>)> {
        self.entries.iter().map(|(name, value)| {
            let text = |range: &Range<usize>| &self.text[range.clone()];
            let value = match value {
                Value::Str(range) => FieldValue::Str(text(range)),
                Value::Formatted(range) => FieldValue::Formatted(text(range)),
                Value::I64(value) => FieldValue::I64(*value),
                Value::U64(value) => FieldValue::U64(*value),
                Value::F64(value) => FieldValue::F64(*value),
                Value::Bool(value) => FieldValue::Bool(*value),
                Value::Error { message, sources } => FieldValue::Error {
                    message: text(message),
                    sources: sources.as_ref().map(text),
                },
            };
            (*name, value)
        })
    }

    /// Appends `value`'s text and returns where it is.
    fn push_text(&mut self, write: impl FnOnce(&mut String)) -> Range<usize> {
        let start = self.text.len();
        write(&mut self.text);
        start..self.text.len()
    }

    /// Appends all of `other`'s fields (a span's later `record` calls).
    pub(crate) fn extend(&mut self, other: Fields) {
        let offset = self.text.len();
        self.text.push_str(&other.text);
        let shift = |range: Range<usize>| range.start + offset..range.end + offset;
        self.entries
            .extend(other.entries.into_iter().map(|(name, value)| {
                let value = match value {
                    Value::Str(range) => Value::Str(shift(range)),
                    Value::Formatted(range) => Value::Formatted(shift(range)),
                    Value::Error { message, sources } => Value::Error {
                        message: shift(message),
                        sources: sources.map(shift),
                    },
                    other => other,
                };
                (name, value)
            }));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let range = self.push_text(|text| {
            let _ = write!(text, "{value:?}");
        });
        self.entries.push((field.name(), Value::Formatted(range)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let range = self.push_text(|text| text.push_str(value));
        self.entries.push((field.name(), Value::Str(range)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entries.push((field.name(), Value::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entries.push((field.name(), Value::U64(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entries.push((field.name(), Value::F64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entries.push((field.name(), Value::Bool(value)));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let message = self.push_text(|text| {
            let _ = write!(text, "{value}");
        });
        let sources = value.source().map(|first| {
            self.push_text(|text| {
                text.push('[');
                let mut next = Some(first);
                let mut separator = "";
                while let Some(source) = next {
                    let _ = write!(text, "{separator}{source}");
                    separator = ", ";
                    next = source.source();
                }
                text.push(']');
            })
        });
        self.entries
            .push((field.name(), Value::Error { message, sources }));
    }
}
