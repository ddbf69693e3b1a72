//! Facts about the raw bytes of a text source that the csv crate does not give: physical line
//! numbers and unterminated quotes.
//!
//! Lines: a line ends at `\r\n`, `\n` or a lone `\r` (Unix, Windows and classic Mac/Excel
//! "CSV (Macintosh)" files), inside a quoted field as well as outside, so a record's line is
//! the physical line it starts on and a quoted cell spanning two lines counts as two lines.
//!
//! Quotes: the csv crate silently accepts a quote that is never closed (the field just runs to
//! the end of the file); [`unterminated_quote`] finds it.

use sha2::{Digest, Sha256};

/// Byte offsets where each physical line starts, for turning offsets into 1-based lines.
pub(crate) struct LineIndex<'a> {
    bytes: &'a [u8],
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    i += 2;
                    starts.push(i);
                }
                b'\r' | b'\n' => {
                    i += 1;
                    starts.push(i);
                }
                _ => i += 1,
            }
        }
        Self { bytes, starts }
    }

    /// How many physical lines there are.
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// The 1-based line of the byte at `offset`.
    pub fn line_of(&self, offset: usize) -> u64 {
        self.starts.partition_point(|&start| start <= offset) as u64
    }

    /// The line of the record whose parsing started at byte `offset` (the csv crate's record
    /// position): the parser skips empty lines, and after a `\r\n` its position still points at
    /// the `\n`, so the record starts at the first byte that is not a line terminator.
    pub fn record_line(&self, offset: u64) -> u64 {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let skipped = self.bytes[offset..]
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.line_of(offset + skipped)
    }
}

/// Quoting state of an RFC 4180 scanner, in the csv crate's lenient dialect: a quote only opens
/// a quoted field at the start of a field; a doubled quote inside is an escaped quote.
#[derive(Clone, Copy)]
enum QuoteState {
    FieldStart,
    Unquoted,
    /// Inside a quoted field opened at this byte offset.
    Quoted(usize),
    /// Just saw a quote inside a quoted field: either its end or the first half of `""`.
    QuoteInQuoted(usize),
}

/// The byte offset of a quote that is never closed, if any.
pub(crate) fn unterminated_quote(bytes: &[u8]) -> Option<usize> {
    // The parser strips a UTF-8 BOM; so does the scanner (a quote right after it opens a field).
    let start = if bytes.starts_with(b"\xef\xbb\xbf") {
        3
    } else {
        0
    };
    let mut state = QuoteState::FieldStart;
    for (offset, &b) in bytes.iter().enumerate().skip(start) {
        state = match (state, b) {
            (QuoteState::FieldStart, b'"') => QuoteState::Quoted(offset),
            (QuoteState::FieldStart | QuoteState::Unquoted, b',' | b'\r' | b'\n') => {
                QuoteState::FieldStart
            }
            (QuoteState::FieldStart | QuoteState::Unquoted, _) => QuoteState::Unquoted,
            (QuoteState::Quoted(opened), b'"') => QuoteState::QuoteInQuoted(opened),
            (state @ QuoteState::Quoted(_), _) => state,
            (QuoteState::QuoteInQuoted(opened), b'"') => QuoteState::Quoted(opened),
            (QuoteState::QuoteInQuoted(_), b',' | b'\r' | b'\n') => QuoteState::FieldStart,
            (QuoteState::QuoteInQuoted(_), _) => QuoteState::Unquoted,
        };
    }
    match state {
        QuoteState::Quoted(opened) => Some(opened),
        _ => None,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_and_escaped_quotes_are_terminated() {
        for input in [
            &b"a,\"b\"\n"[..],
            b"a,\"multi\nline\",c\n",
            b"a,\"say \"\"hi\"\"\"\r\n",
            b"\xef\xbb\xbf\"conversation_id\",x\n",
            b"a,lit\"eral,c\n",
            b"a,\"b\"\rc,\"d\"\r",
        ] {
            assert_eq!(unterminated_quote(input), None, "{input:?}");
        }
    }

    #[test]
    fn unterminated_quote_reports_where_it_opened() {
        let input = b"h\nx,y\nz,\"open\nmore\n";
        let opened = unterminated_quote(input).unwrap();
        assert_eq!(LineIndex::new(input).line_of(opened), 3);
        assert_eq!(unterminated_quote(b"a,\"b\"\""), Some(2));
    }

    #[test]
    fn lf_crlf_and_lone_cr_each_end_one_line() {
        for input in [
            &b"a\nb\n\nc\"x\ny\"\nd"[..],
            b"a\r\nb\r\n\r\nc\"x\r\ny\"\r\nd",
            b"a\rb\r\rc\"x\ry\"\rd",
        ] {
            let lines = LineIndex::new(input);
            let d = input.iter().position(|&b| b == b'd').unwrap();
            let c = input.iter().position(|&b| b == b'c').unwrap();
            assert_eq!((lines.line_of(c), lines.line_of(d)), (4, 6), "{input:?}");
            // A record position pointing at the preceding terminator(s) skips them.
            assert_eq!(lines.record_line(c as u64 - 1), 4, "{input:?}");
        }
    }

    #[test]
    fn hash_covers_all_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
