//! Where each line of a configuration file starts, found once per file so
//! that locating the place of every app (and of an error) does not count
//! lines from the top again: a file of 10,000 apps is read in linear time.

use std::ops::Range;
use std::path::Path;

use crate::error::Location;

/// A configuration file's text with the byte offset of each line's start.
pub(crate) struct LineIndex<'a> {
    file: &'a Path,
    source: &'a str,
    /// Byte offsets where lines start, ascending; the first is `0`.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `source`, the text of `file`.
    pub(crate) fn new(file: &'a Path, source: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        LineIndex {
            file,
            source,
            starts,
        }
    }

    /// The text of the file.
    pub(crate) fn source(&self) -> &'a str {
        self.source
    }

    /// The 1-based line number and the byte range of the line holding byte
    /// `offset` (clamped to the end of the text), without its `\n`.
    pub(crate) fn line_of(&self, offset: usize) -> (usize, Range<usize>) {
        let offset = offset.min(self.source.len());
        // The number of lines that start at or before `offset`, which is at
        // least one since the first starts at 0.
        let line = self.starts.partition_point(|start| *start <= offset);
        let start = self.starts[line - 1];
        let end = self
            .starts
            .get(line)
            .map_or(self.source.len(), |next| next - 1);
        (line, start..end)
    }

    /// The line and column (in characters) of byte `offset`.
    pub(crate) fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.source.len());
        let (line, range) = self.line_of(offset);
        let column = self.source[range.start..offset].chars().count() + 1;
        Location {
            file: self.file.to_owned(),
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locates the way the index replaced: counting from the top.
    fn counted(source: &str, offset: usize) -> (usize, usize) {
        let before = &source[..offset.min(source.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    #[test]
    fn every_offset_is_located_as_counting_from_the_top_would() {
        let sources = [
            "",
            "\n",
            "a",
            "ab\ncd\n",
            "\n\nx\n",
            "first\r\nsecond = \"é ü\"\n\tthird",
            "no newline at the end",
        ];
        for source in sources {
            let index = LineIndex::new(Path::new("f.toml"), source);
            for offset in
                (0..=source.len() + 2).filter(|o| source.is_char_boundary(*o.min(&source.len())))
            {
                let location = index.locate(offset);
                assert_eq!(
                    (location.line, location.column),
                    counted(source, offset),
                    "{source:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn a_line_range_excludes_its_newline() {
        let source = "one\ntwo\n\nfour";
        let index = LineIndex::new(Path::new("f.toml"), source);
        let text = |offset| {
            let (line, range) = index.line_of(offset);
            (line, &source[range])
        };
        assert_eq!(text(0), (1, "one"));
        assert_eq!(text(3), (1, "one"));
        assert_eq!(text(4), (2, "two"));
        assert_eq!(text(8), (3, ""));
        assert_eq!(text(9), (4, "four"));
        assert_eq!(text(100), (4, "four"));
    }
}
