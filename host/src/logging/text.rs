//! `--log-format text`: the line `tracing-subscriber`'s default format
//! writes, byte for byte (the tests compare the two), so that moving the
//! formatting to the writer thread changed nothing anyone reads or parses:
//!
//! ```text
//! 2026-12-01T23:34:06.892516Z  INFO access: request request_id="abc" app="hello-name" status=200
//! ```
//!
//! Timestamp, level padded to five, the spans the output shows
//! (`name{fields}:`), the target and `:`, then the message and the
//! fields: text values quoted, numbers bare.

use std::fmt::Write as _;

use nu_ansi_term::{Color, Style};
use tracing::Level;

use super::record::{FieldValue, Fields, Record};
use super::timestamp;

/// Appends `record`'s line, with its newline, to `out`; `ansi` colours it
/// for a terminal.
pub(crate) fn write(out: &mut String, record: &Record, ansi: bool) {
    let styles = Styles::new(ansi);
    if ansi {
        out.push_str(&styles.dimmed.prefix().to_string());
        timestamp::write(out, record.time);
        let _ = write!(out, "{} ", styles.dimmed.suffix());
    } else {
        timestamp::write(out, record.time);
        out.push(' ');
    }
    let level = match record.level {
        Level::TRACE => ("TRACE", Color::Purple),
        Level::DEBUG => ("DEBUG", Color::Blue),
        Level::INFO => (" INFO", Color::Green),
        Level::WARN => (" WARN", Color::Yellow),
        Level::ERROR => ("ERROR", Color::Red),
    };
    if ansi {
        let _ = write!(out, "{} ", level.1.paint(level.0));
    } else {
        out.push_str(level.0);
        out.push(' ');
    }
    for span in &record.spans {
        styles.paint(out, styles.bold, span.name);
        if !span.fields.is_empty() {
            styles.paint(out, styles.bold, "{");
            write_fields(out, &span.fields, &styles);
            styles.paint(out, styles.bold, "}");
        }
        styles.paint(out, styles.dimmed, ":");
    }
    if !record.spans.is_empty() {
        out.push(' ');
    }
    styles.paint(out, styles.dimmed, &record.target);
    styles.paint(out, styles.dimmed, ":");
    out.push(' ');
    write_fields(out, &record.fields, &styles);
    out.push('\n');
}

/// The styles of one line: plain ones when not colouring.
#[derive(Clone, Copy)]
struct Styles {
    ansi: bool,
    bold: Style,
    dimmed: Style,
    italic: Style,
}

impl Styles {
    /// Appends `text` in `style` (plainly when not colouring).
    fn paint(&self, out: &mut String, style: Style, text: &str) {
        if self.ansi {
            let _ = write!(out, "{}", style.paint(text));
        } else {
            out.push_str(text);
        }
    }

    fn new(ansi: bool) -> Styles {
        let style = |make: fn(&Style) -> Style| {
            if ansi {
                make(&Style::new())
            } else {
                Style::new()
            }
        };
        Styles {
            ansi,
            bold: style(Style::bold),
            dimmed: style(Style::dimmed),
            italic: style(Style::italic),
        }
    }
}

/// The fields, space-separated; `log.*` fields (the `log` crate's
/// metadata, shown as the target already) are left out.
fn write_fields(out: &mut String, fields: &Fields, styles: &Styles) {
    let mut first = true;
    for (name, value) in fields.iter() {
        if name.starts_with("log.") {
            continue;
        }
        if !first {
            out.push(' ');
        }
        first = false;
        if name == "message" {
            match value {
                FieldValue::Str(text) | FieldValue::Formatted(text) => escape_terminal(out, text),
                other => write_value(out, name, other, styles),
            }
            continue;
        }
        let shown = name.strip_prefix("r#").unwrap_or(name);
        styles.paint(out, styles.italic, shown);
        styles.paint(out, styles.dimmed, "=");
        write_value(out, name, value, styles);
    }
}

fn write_value(out: &mut String, name: &str, value: FieldValue<'_>, styles: &Styles) {
    let _ = match value {
        FieldValue::Str(text) => {
            quoted(out, text);
            Ok(())
        }
        FieldValue::Formatted(text) => {
            out.push_str(text);
            Ok(())
        }
        FieldValue::I64(value) => {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        }
        FieldValue::U64(value) => {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        }
        FieldValue::F64(value) => write!(out, "{value:?}"),
        FieldValue::Bool(value) => write!(out, "{value}"),
        FieldValue::Error { message, sources } => {
            escape_terminal(out, message);
            if let Some(sources) = sources {
                out.push(' ');
                styles.paint(out, styles.italic, name);
                styles.paint(out, styles.italic, ".sources");
                styles.paint(out, styles.dimmed, "=");
                escape_terminal(out, sources);
            }
            Ok(())
        }
    };
}

/// `text` as `{:?}` writes it, without the formatting machinery for the
/// usual text that needs no escape.
fn quoted(out: &mut String, text: &str) {
    let plain = text
        .bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\');
    if plain {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        let _ = write!(out, "{text:?}");
    }
}

/// Writes `text` with the characters that could drive a terminal escaped,
/// as `tracing-subscriber` does for messages and errors.
fn escape_terminal(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\x1b' => out.push_str("\\x1b"),
            '\x07' => out.push_str("\\x07"),
            '\x08' => out.push_str("\\x08"),
            '\x0c' => out.push_str("\\x0c"),
            '\x7f' => out.push_str("\\x7f"),
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}
