//! Configuration errors that point at the file, line and column.

use std::fmt;
use std::path::PathBuf;

use crate::lines::LineIndex;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {error}", path.display())]
    Read {
        /// The file as named on the command line.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

/// A position in a configuration file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as named on the command line.
    pub file: PathBuf,
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Something the configuration does that works but deserves the
/// operator's attention, at the place it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where it is.
    pub location: Location,
    /// What the host did and how to make the warning go away.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// An error at a place in the file, rendered like a compiler message:
/// `file:line:column: message`, then the line with the place underlined.
#[derive(Debug)]
pub struct Diagnostic {
    /// Where the error is.
    pub location: Location,
    /// What is wrong and how to fix it.
    pub message: String,
    source_line: String,
    underline: usize,
}

impl Diagnostic {
    /// Builds a diagnostic for the byte range `span` of the indexed file.
    pub(crate) fn at(
        lines: &LineIndex<'_>,
        span: std::ops::Range<usize>,
        message: String,
    ) -> Diagnostic {
        let source = lines.source();
        let start = span.start.min(source.len());
        let location = lines.locate(start);
        let (_, line) = lines.line_of(start);
        let source_line = source[line.clone()].trim_end_matches('\r').to_owned();
        let end = span.end.clamp(start, line.end);
        let underline = source[start..end].chars().count().max(1);
        Diagnostic {
            location,
            message,
            source_line,
            underline,
        }
    }
}

impl From<Diagnostic> for ConfigError {
    fn from(diagnostic: Diagnostic) -> Self {
        ConfigError::Invalid(Box::new(diagnostic))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line_number = self.location.line.to_string();
        let gutter = " ".repeat(line_number.len());
        writeln!(f, "{}: {}", self.location, self.message)?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{line_number} | {}", self.source_line)?;
        let indent: String = self
            .source_line
            .chars()
            .take(self.location.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{gutter} | {indent}{}", "^".repeat(self.underline))
    }
}

impl std::error::Error for Diagnostic {}
