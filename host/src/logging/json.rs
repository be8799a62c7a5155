//! `--log-format json`: one object a line, the object `tracing-subscriber`'s
//! JSON format wrote with flattened events and no current span (the tests
//! compare the two), so log collectors see no change:
//!
//! ```text
//! {"timestamp":"2026-12-01T23:35:00.352539Z","level":"INFO","message":"request","request_id":"abc","status":200,"target":"access"}
//! ```
//!
//! The event's fields in their order, then `target`, then `spans` when the
//! output shows any span around the event.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::record::{FieldValue, Fields, Record};
use super::timestamp;

/// Appends `record`'s line, with its newline, to `out`.
pub(crate) fn write(out: &mut String, record: &Record) {
    out.push_str("{\"timestamp\":\"");
    timestamp::write(out, record.time);
    out.push_str("\",\"level\":\"");
    out.push_str(record.level.as_str());
    out.push('"');
    for (name, value) in record.fields.iter() {
        out.push(',');
        string(out, name);
        out.push(':');
        value_of(out, value);
    }
    out.push_str(",\"target\":");
    string(out, &record.target);
    if !record.spans.is_empty() {
        out.push_str(",\"spans\":[");
        for (index, span) in record.spans.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            span_object(out, span.name, &span.fields);
        }
        out.push(']');
    }
    out.push_str("}\n");
}

/// A span as the JSON format shows it: its fields sorted by name (a later
/// value of a name wins), then its `name`.
fn span_object(out: &mut String, name: &str, fields: &Fields) {
    let mut sorted = BTreeMap::new();
    for (field, value) in fields.iter() {
        let field = match value {
            FieldValue::Formatted(_) | FieldValue::Error { .. } if field.starts_with("log.") => {
                continue;
            }
            FieldValue::Formatted(_) | FieldValue::Error { .. } => {
                field.strip_prefix("r#").unwrap_or(field)
            }
            _ => field,
        };
        sorted.insert(field, value);
    }
    out.push('{');
    for (field, value) in sorted {
        string(out, field);
        out.push(':');
        value_of(out, value);
        out.push(',');
    }
    out.push_str("\"name\":");
    string(out, name);
    out.push('}');
}

/// A field's value: text as a string, numbers and booleans bare.
fn value_of(out: &mut String, value: FieldValue<'_>) {
    match value {
        FieldValue::Str(text) | FieldValue::Formatted(text) => string(out, text),
        FieldValue::Error { message, .. } => string(out, message),
        FieldValue::I64(value) => {
            let _ = write!(out, "{value}");
        }
        FieldValue::U64(value) => {
            let _ = write!(out, "{value}");
        }
        FieldValue::F64(value) => float(out, value),
        FieldValue::Bool(value) => {
            let _ = write!(out, "{value}");
        }
    }
}

/// A number as `serde_json` writes it (`null` when not finite).
fn float(out: &mut String, value: f64) {
    match serde_json::to_string(&value) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("null"),
    }
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
fn string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\x08' => "\\b",
            b'\x0c' => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain..index]);
        plain = index + 1;
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&text[plain..]);
    out.push('"');
}
