//! An incremental, bounded HTTP/1.1 head parser for both roles (RFC 6455 §4.1, §4.2.1).

use std::mem;

use super::error::HandshakeError;
use super::headers::{Headers, is_control, is_tchar, trim_ows};

/// Bounds on what the handshake parsers accept before giving up on the peer.
///
/// Each bound is checked as soon as it is passed, not when the line ends, so a parser holds at
/// most about this much of the peer's data however it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Longest request line, or status line on the client, without its CRLF (default 8 KiB).
    /// A longer request line fails with 414.
    pub max_request_line: usize,
    /// Most header fields (default 100); one more fails with 431.
    pub max_headers: usize,
    /// Longest header section, counting line endings (default 16 KiB); more fails with 431.
    pub max_header_bytes: usize,
    /// Most body bytes kept from a non-101 response on the client (default 64 KiB).
    pub max_body: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_header_bytes: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// A complete head: the parsed start line and the header fields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head<T> {
    pub(crate) start: T,
    pub(crate) headers: Headers,
}

/// Reads a message head line by line from arbitrary chunks.
///
/// Only the current, unfinished line is buffered; each byte is looked at once, so the work is
/// linear in the input however it is split. The start line is checked as soon as it ends, so a
/// request with the wrong method fails before its headers arrive.
#[derive(Debug)]
pub(crate) struct HeadParser<T> {
    limits: HandshakeLimits,
    parse_start: fn(&[u8]) -> Result<T, HandshakeError>,
    start_too_long: HandshakeError,
    line: Vec<u8>,
    /// The last byte seen was a CR, so the next one must be LF.
    pending_cr: bool,
    start: Option<T>,
    headers: Headers,
    /// Bytes of the complete header lines so far, with their CRLFs.
    header_bytes: usize,
}

impl HeadParser<String> {
    /// Returns a parser for a handshake request; the start line yields the request target.
    pub(crate) fn request(limits: HandshakeLimits) -> Self {
        Self::new(
            limits,
            parse_request_line,
            HandshakeError::RequestLineTooLong,
        )
    }
}

impl HeadParser<u16> {
    /// Returns a parser for a handshake response; the start line yields the status code.
    pub(crate) fn response(limits: HandshakeLimits) -> Self {
        Self::new(limits, parse_status_line, HandshakeError::StatusLineTooLong)
    }
}

impl<T> HeadParser<T> {
    fn new(
        limits: HandshakeLimits,
        parse_start: fn(&[u8]) -> Result<T, HandshakeError>,
        start_too_long: HandshakeError,
    ) -> Self {
        Self {
            limits,
            parse_start,
            start_too_long,
            line: Vec::new(),
            pending_cr: false,
            start: None,
            headers: Headers::default(),
            header_bytes: 0,
        }
    }

    /// Consumes `data` up to the end of the head.
    ///
    /// Returns the head and how many bytes of `data` it used once the blank line has arrived; the
    /// rest of `data` is not the head's. After an error or a complete head, drop the parser.
    pub(crate) fn receive(
        &mut self,
        data: &[u8],
    ) -> Result<Option<(Head<T>, usize)>, HandshakeError> {
        let mut pos = 0;
        while pos < data.len() {
            if self.pending_cr {
                if data[pos] != b'\n' {
                    return Err(HandshakeError::InvalidLineEnding);
                }
                pos += 1;
                self.pending_cr = false;
                if let Some(head) = self.finish_line()? {
                    return Ok(Some((head, pos)));
                }
                continue;
            }
            let rest = &data[pos..];
            let end = rest
                .iter()
                .position(|&byte| byte == b'\r' || byte == b'\n')
                .unwrap_or(rest.len());
            self.extend_line(&rest[..end])?;
            pos += end;
            match rest.get(end) {
                Some(b'\r') => {
                    self.pending_cr = true;
                    pos += 1;
                }
                Some(_) => return Err(HandshakeError::InvalidLineEnding),
                None => {}
            }
        }
        Ok(None)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        let Some(&first) = bytes.first() else {
            return Ok(());
        };
        if self.start.is_none() {
            if self.line.len() + bytes.len() > self.limits.max_request_line {
                return Err(self.start_too_long.clone());
            }
        } else {
            if self.line.is_empty() {
                // RFC 9112 §5.2: obsolete line folding, or whitespace before the first field.
                if first == b' ' || first == b'\t' {
                    return Err(HandshakeError::ObsoleteLineFolding);
                }
                if self.headers.len() >= self.limits.max_headers {
                    return Err(HandshakeError::TooManyHeaders);
                }
            }
            if self.header_bytes + self.line.len() + bytes.len() > self.limits.max_header_bytes {
                return Err(HandshakeError::HeadersTooLarge);
            }
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Handles the line that just ended; returns the head when that line was the blank one.
    fn finish_line(&mut self) -> Result<Option<Head<T>>, HandshakeError> {
        let head = match self.start.take() {
            None => {
                self.start = Some((self.parse_start)(&self.line)?);
                None
            }
            Some(start) if self.line.is_empty() => Some(Head {
                start,
                headers: mem::take(&mut self.headers),
            }),
            Some(start) => {
                self.start = Some(start);
                let (name, value) = parse_header_line(&self.line)?;
                self.headers.push(name, value);
                self.header_bytes += self.line.len() + 2;
                None
            }
        };
        self.line.clear();
        Ok(head)
    }
}

/// Parses `GET <target> HTTP/1.1`, returning the target.
fn parse_request_line(line: &[u8]) -> Result<String, HandshakeError> {
    let mut parts = line.splitn(3, |&byte| byte == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HandshakeError::MalformedRequestLine);
    };
    if method.is_empty()
        || !method.iter().all(|&byte| is_tchar(byte))
        || target.is_empty()
        || !target.iter().all(u8::is_ascii_graphic)
    {
        return Err(HandshakeError::MalformedRequestLine);
    }
    if version != b"HTTP/1.1" {
        let looks_like_http = matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit());
        return Err(if looks_like_http {
            HandshakeError::UnsupportedHttpVersion
        } else {
            HandshakeError::MalformedRequestLine
        });
    }
    if method != b"GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    Ok(ascii_string(target))
}

/// Parses `HTTP/1.x <3 digits> [<reason>]`, returning the status code.
///
/// A missing space after the code is tolerated: some servers send `HTTP/1.1 101\r\n`.
fn parse_status_line(line: &[u8]) -> Result<u16, HandshakeError> {
    let [
        b'H',
        b'T',
        b'T',
        b'P',
        b'/',
        b'1',
        b'.',
        b'0' | b'1',
        b' ',
        hundreds,
        tens,
        units,
        reason @ ..,
    ] = line
    else {
        return Err(HandshakeError::MalformedStatusLine);
    };
    let digits = [*hundreds, *tens, *units];
    if !digits.iter().all(u8::is_ascii_digit)
        || *hundreds == b'0'
        || reason.first().is_some_and(|&byte| byte != b' ')
        || reason.iter().any(|&byte| is_control(byte))
    {
        return Err(HandshakeError::MalformedStatusLine);
    }
    Ok(digits
        .iter()
        .fold(0, |status, digit| status * 10 + u16::from(digit - b'0')))
}

/// Parses `name: value`, trimming optional whitespace around the value.
///
/// The value may hold obs-text (bytes 0x80 to 0xFF, RFC 9110 §5.5), which need not be UTF-8.
fn parse_header_line(line: &[u8]) -> Result<(String, Vec<u8>), HandshakeError> {
    let colon = line
        .iter()
        .position(|&byte| byte == b':')
        .ok_or(HandshakeError::MissingColon)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // RFC 9112 §5.1: a server must reject whitespace between the field name and the colon.
    if name
        .last()
        .is_some_and(|&byte| byte == b' ' || byte == b'\t')
    {
        return Err(HandshakeError::WhitespaceBeforeColon);
    }
    if name.is_empty() || !name.iter().all(|&byte| is_tchar(byte)) {
        return Err(HandshakeError::InvalidHeaderName);
    }
    let name = ascii_string(name);
    let value = trim_ows(value);
    if value.iter().any(|&byte| is_control(byte)) {
        return Err(HandshakeError::InvalidHeaderValue { name });
    }
    Ok((name, value.to_vec()))
}

/// Copies bytes already checked to be ASCII into a string.
fn ascii_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&byte| char::from(byte)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HandshakeLimits {
        HandshakeLimits {
            max_request_line: 20,
            max_headers: 2,
            max_header_bytes: 24,
            max_body: 0,
        }
    }

    #[test]
    fn limits_are_inclusive() {
        // "GET /123456 HTTP/1.1" is exactly 20 bytes.
        let mut parser = HeadParser::request(limits());
        assert_eq!(
            parser
                .receive(b"GET /123456 HTTP/1.1\r\n")
                .map(|head| head.is_none()),
            Ok(true)
        );
        // Two lines of 10 bytes plus CRLFs are 24 bytes.
        let (head, used) = parser
            .receive(b"A: 1234567\r\nB: 1234567\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.start.as_str(), head.headers.len(), used),
            ("/123456", 2, 26)
        );

        let mut parser = HeadParser::request(limits());
        assert_eq!(
            parser.receive(b"GET /1234567 HTTP/1.1"),
            Err(HandshakeError::RequestLineTooLong)
        );
        let mut parser = HeadParser::request(limits());
        parser.receive(b"GET / HTTP/1.1\r\nA: 1234567\r\n").unwrap();
        assert_eq!(
            parser.receive(b"B: 1234567890"),
            Err(HandshakeError::HeadersTooLarge)
        );
        let mut parser = HeadParser::request(limits());
        parser
            .receive(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n")
            .unwrap();
        assert_eq!(parser.receive(b"C"), Err(HandshakeError::TooManyHeaders));
    }

    #[test]
    fn status_lines() {
        for (line, status) in [
            (&b"HTTP/1.1 101 Switching Protocols"[..], Ok(101)),
            (b"HTTP/1.0 404 Not Found", Ok(404)),
            (b"HTTP/1.1 200", Ok(200)),
            (b"HTTP/1.1 200 ", Ok(200)),
            (b"HTTP/1.1 999 \xe9t\xe9", Ok(999)),
            (b"HTTP/1.1 20", Err(HandshakeError::MalformedStatusLine)),
            (b"HTTP/1.1 2000", Err(HandshakeError::MalformedStatusLine)),
            (b"HTTP/1.1 -01 x", Err(HandshakeError::MalformedStatusLine)),
            (
                b"HTTP/1.1 200 a\0b",
                Err(HandshakeError::MalformedStatusLine),
            ),
            (b"HTTP/1.2 200 OK", Err(HandshakeError::MalformedStatusLine)),
            (b"http/1.1 200 OK", Err(HandshakeError::MalformedStatusLine)),
        ] {
            assert_eq!(
                parse_status_line(line),
                status,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn header_lines() {
        let field = |name: &str, value: &str| Ok((name.to_owned(), value.as_bytes().to_vec()));
        assert_eq!(parse_header_line(b"Host: a"), field("Host", "a"));
        assert_eq!(parse_header_line(b"Host:a"), field("Host", "a"));
        assert_eq!(parse_header_line(b"X: \t a b \t "), field("X", "a b"));
        assert_eq!(parse_header_line(b"X:"), field("X", ""));
        assert_eq!(parse_header_line(b"X: a:b"), field("X", "a:b"));
        assert_eq!(
            parse_header_line("X: caf\u{e9}".as_bytes()),
            field("X", "caf\u{e9}")
        );
        assert_eq!(parse_header_line(b"X: a\tb"), field("X", "a\tb"));
        // obs-text, UTF-8 or not, is kept byte for byte (RFC 9110 §5.5).
        assert_eq!(
            parse_header_line(b"Cookie: name=caf\xe9"),
            Ok(("Cookie".to_owned(), b"name=caf\xe9".to_vec()))
        );
        assert_eq!(
            parse_header_line(b"X:\x80\xff \xa0"),
            Ok(("X".to_owned(), b"\x80\xff \xa0".to_vec()))
        );
        assert_eq!(parse_header_line(b"X a"), Err(HandshakeError::MissingColon));
        assert_eq!(
            parse_header_line(b"X : a"),
            Err(HandshakeError::WhitespaceBeforeColon)
        );
        assert_eq!(
            parse_header_line(b"X\"Y: a"),
            Err(HandshakeError::InvalidHeaderName)
        );
        for line in [&b"X: a\x01"[..], b"X: \xe9\x7f", b"X: a\0b", b"X: \x1b[0m"] {
            assert_eq!(
                parse_header_line(line),
                Err(HandshakeError::InvalidHeaderValue { name: "X".into() }),
                "{line:?}"
            );
        }
    }
}
