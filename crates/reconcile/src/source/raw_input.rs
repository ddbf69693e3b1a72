//! A pass-through reader that observes the raw bytes of a CSV file as the parser pulls them:
//! it hashes them (the source's SHA-256) and tracks CSV quoting, because the csv crate silently
//! accepts a quote that is never closed (the field just runs to the end of the file), and
//! records the line each record starts on, because the csv crate's own record positions lag
//! one line behind after a CRLF terminator.

use std::collections::VecDeque;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Quoting state of an RFC 4180 scanner, in the csv crate's lenient dialect: a quote only opens
/// a quoted field at the start of a field; a doubled quote inside is an escaped quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    /// Inside a quoted field opened on this 1-based line.
    Quoted {
        opened_on: u64,
    },
    /// Just saw a quote inside a quoted field: either its end or the first half of `""`.
    QuoteInQuoted {
        opened_on: u64,
    },
}

pub(crate) struct RawInput<R> {
    inner: R,
    hasher: Sha256,
    state: QuoteState,
    line: u64,
    at_start: bool,
    in_record: bool,
    /// Start lines of records scanned but not yet taken by the parser (bounded by its read-ahead).
    record_lines: VecDeque<u64>,
}

impl<R: Read> RawInput<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            state: QuoteState::FieldStart,
            line: 1,
            at_start: true,
            in_record: false,
            record_lines: VecDeque::new(),
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) {
        self.hasher.update(bytes);
        if self.at_start && !bytes.is_empty() {
            self.at_start = false;
            // The parser strips a UTF-8 BOM; so does the scanner (a quote right after it opens a field).
            if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
                bytes = rest;
            }
        }
        for &b in bytes {
            let quoted = matches!(self.state, QuoteState::Quoted { .. });
            let terminator = !quoted && (b == b'\n' || b == b'\r');
            if terminator {
                // Empty lines between records are skipped by the parser, and so here.
                self.in_record = false;
            } else if !self.in_record {
                self.in_record = true;
                self.record_lines.push_back(self.line);
            }
            self.state = match (self.state, b) {
                (_, b'\n') if !matches!(self.state, QuoteState::Quoted { .. }) => {
                    self.line += 1;
                    QuoteState::FieldStart
                }
                (QuoteState::Quoted { opened_on }, b'\n') => {
                    self.line += 1;
                    QuoteState::Quoted { opened_on }
                }
                (QuoteState::FieldStart, b'"') => QuoteState::Quoted {
                    opened_on: self.line,
                },
                (QuoteState::FieldStart | QuoteState::Unquoted, b',' | b'\r') => {
                    QuoteState::FieldStart
                }
                (QuoteState::FieldStart | QuoteState::Unquoted, _) => QuoteState::Unquoted,
                (QuoteState::Quoted { opened_on }, b'"') => QuoteState::QuoteInQuoted { opened_on },
                (state @ QuoteState::Quoted { .. }, _) => state,
                (QuoteState::QuoteInQuoted { opened_on }, b'"') => QuoteState::Quoted { opened_on },
                (QuoteState::QuoteInQuoted { .. }, b',' | b'\r') => QuoteState::FieldStart,
                (QuoteState::QuoteInQuoted { .. }, _) => QuoteState::Unquoted,
            };
        }
    }

    /// The 1-based line the next record handed out by the parser starts on.
    pub fn next_record_line(&mut self) -> u64 {
        self.record_lines.pop_front().unwrap_or(self.line)
    }

    /// After the whole input was read: the line of a quote that was never closed, if any.
    pub fn unterminated_quote_line(&self) -> Option<u64> {
        match self.state {
            QuoteState::Quoted { opened_on } => Some(opened_on),
            _ => None,
        }
    }

    /// Reads whatever the parser left unread, then returns the lowercase hex SHA-256 of all bytes.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

impl<R: Read> Read for RawInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n]);
        Ok(n)
    }
}

/// Lowercase hex SHA-256 of everything `reader` yields.
#[cfg(test)]
pub(crate) fn sha256_hex<R: Read>(reader: R) -> io::Result<String> {
    RawInput::new(reader).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> RawInput<&[u8]> {
        let mut raw = RawInput::new(input);
        io::copy(&mut raw, &mut io::sink()).unwrap();
        raw
    }

    #[test]
    fn closed_and_escaped_quotes_are_terminated() {
        for input in [
            &b"a,\"b\"\n"[..],
            b"a,\"multi\nline\",c\n",
            b"a,\"say \"\"hi\"\"\"\r\n",
            b"\xef\xbb\xbf\"conversation_id\",x\n",
            b"a,lit\"eral,c\n",
        ] {
            assert_eq!(scan(input).unterminated_quote_line(), None, "{input:?}");
        }
    }

    #[test]
    fn unterminated_quote_reports_the_line_it_opened_on() {
        assert_eq!(
            scan(b"h\nx,y\nz,\"open\nmore\n").unterminated_quote_line(),
            Some(3)
        );
        assert_eq!(scan(b"a,\"b\"\"").unterminated_quote_line(), Some(1));
    }

    #[test]
    fn record_lines_skip_blank_lines_and_multiline_fields() {
        let mut raw = scan(b"h\r\n\r\na,\"x\ny\"\r\nb\n");
        assert_eq!(
            [
                raw.next_record_line(),
                raw.next_record_line(),
                raw.next_record_line()
            ],
            [1, 3, 5]
        );
    }

    #[test]
    fn hash_covers_all_bytes() {
        assert_eq!(
            sha256_hex(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
