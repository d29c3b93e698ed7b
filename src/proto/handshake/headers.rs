//! Header fields and the list syntax of the handshake headers (RFC 6455 §4.3, §9.1).

use std::fmt;

use super::error::HandshakeError;

/// The header fields of a handshake request or response, in the order they arrived.
///
/// Names keep the case they were sent in and compare ignoring ASCII case. A name sent several
/// times keeps every occurrence: [`get_all`](Self::get_all) and [`list`](Self::list) see them all.
///
/// Values are bytes. RFC 9110 §5.5 keeps obs-text (bytes 0x80 to 0xFF) legal in field values,
/// and peers send them (a cookie set in Latin-1 comes back byte for byte), so a value need not
/// be UTF-8. The `*_bytes` methods see every value as it arrived; [`get`](Self::get),
/// [`get_all`](Self::get_all), [`iter`](Self::iter) and [`list`](Self::list) are a `&str` view
/// that leaves out what is not valid UTF-8. No value holds a control character other than
/// horizontal tab (so no CR, LF, NUL or DEL), and none starts or ends with a space or tab when
/// it was parsed from the wire.
///
/// ```
/// use wsio::proto::handshake::RequestParser;
///
/// let request = RequestParser::default().receive(
///     b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
///       Cookie: name=caf\xe9\r\n\r\n",
/// )?.expect("a complete request");
/// let headers = request.headers();
/// assert_eq!(headers.get_bytes("cookie"), Some(&b"name=caf\xe9"[..])); // Latin-1, as sent
/// assert_eq!(headers.get("cookie"), None); // not UTF-8
/// assert_eq!(headers.get("host"), Some("a"));
/// assert_eq!(headers.iter_bytes().count(), 6);
/// assert_eq!(headers.iter().count(), 5);
/// # Ok::<(), wsio::proto::handshake::HandshakeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, Vec<u8>)>,
}

impl Headers {
    /// Returns the value of the first field called `name`, ignoring ASCII case, if it is UTF-8.
    ///
    /// Returns `None` when there is no such field, and also when the first one is not valid
    /// UTF-8 (it never skips to a later field); [`get_bytes`](Self::get_bytes) returns it then.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Returns the value of the first field called `name`, ignoring ASCII case, as it arrived.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.get_all_bytes(name).next()
    }

    /// Returns the values of every field called `name`, ignoring ASCII case, in arrival order,
    /// leaving out values that are not valid UTF-8 (see [`get_all_bytes`](Self::get_all_bytes)).
    pub fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.get_all_bytes(name)
            .filter_map(|value| std::str::from_utf8(value).ok())
    }

    /// Returns the values of every field called `name`, ignoring ASCII case, in arrival order.
    pub fn get_all_bytes(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.fields
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// Returns every `(name, value)` pair in arrival order, leaving out fields whose value is
    /// not valid UTF-8 (see [`iter_bytes`](Self::iter_bytes)).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter_bytes()
            .filter_map(|(name, value)| std::str::from_utf8(value).ok().map(|value| (name, value)))
    }

    /// Returns every `(name, value)` pair in arrival order, values as they arrived.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// Returns the number of fields, counting repeated names and values that are not UTF-8.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Returns whether there are no fields at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Adds a field after the others.
    ///
    /// Fails with [`InvalidOutgoingHeader`](HandshakeError::InvalidOutgoingHeader) unless `name`
    /// is a token and `value` holds no control character other than horizontal tab: the same
    /// rules as header values read from the wire, except that leading or trailing whitespace is
    /// kept. Bytes 0x80 to 0xFF are allowed, and need not be UTF-8.
    pub fn append(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), HandshakeError> {
        let value = value.as_ref();
        check_field(name, value)?;
        self.fields.push((name.to_owned(), value.to_vec()));
        Ok(())
    }

    /// Returns the elements of a comma-separated list header, across every field called `name`.
    ///
    /// Elements are trimmed of spaces and tabs, and empty elements are skipped, as RFC 9110 §5.6.1
    /// asks of recipients; so are elements that are not valid UTF-8. Meant for lists of tokens
    /// (`Connection`, `Upgrade`, `Sec-WebSocket-Protocol`): commas inside quoted strings are not
    /// special here.
    pub fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        self.list_bytes(name)
            .filter_map(|element| std::str::from_utf8(element).ok())
    }

    /// Returns whether the list header `name` has an element equal to `token`, ignoring ASCII
    /// case (`Connection: keep-alive, Upgrade` contains `upgrade`).
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.list_bytes(name)
            .any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Returns the elements of a list header as bytes, like [`list`](Self::list) but keeping
    /// elements that are not UTF-8, for checks that must see every element.
    pub(crate) fn list_bytes(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.get_all_bytes(name)
            .flat_map(|value| value.split(|&byte| byte == b','))
            .map(trim_ows)
            .filter(|element| !element.is_empty())
    }

    /// Adds a field already checked, by the parser or by a builder.
    pub(crate) fn push(&mut self, name: String, value: Vec<u8>) {
        self.fields.push((name, value));
    }
}

/// One extension named in a `Sec-WebSocket-Extensions` header, with its parameters (§9.1).
///
/// Parameter values are given unquoted: `x; bits="10"` and `x; bits=10` read the same. The
/// `Display` form is the header syntax, ready to echo back in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    name: String,
    params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// Returns the extension's name, such as `permessage-deflate`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the parameters in the order they were sent; a parameter without `=` has no value.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
    }
}

impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// Parses one `Sec-WebSocket-Extensions` field value, or returns `None` if it is malformed.
///
/// Empty list elements are skipped. A quoted parameter value must still be a token once
/// unquoted, as §9.1 requires, so every value this returns is a token.
pub(crate) fn parse_extensions(value: &[u8]) -> Option<Vec<ExtensionOffer>> {
    let mut cursor = Cursor {
        bytes: value,
        pos: 0,
    };
    let mut offers = Vec::new();
    loop {
        cursor.skip_ows();
        if cursor.eat(b',') {
            continue;
        }
        if cursor.peek().is_none() {
            return Some(offers);
        }
        let name = cursor.token()?;
        let mut params = Vec::new();
        cursor.skip_ows();
        while cursor.eat(b';') {
            cursor.skip_ows();
            let param = cursor.token()?;
            cursor.skip_ows();
            let value = if cursor.eat(b'=') {
                cursor.skip_ows();
                let value = if cursor.peek() == Some(b'"') {
                    cursor.quoted()?
                } else {
                    cursor.token()?
                };
                Some(value)
            } else {
                None
            };
            params.push((param, value));
            cursor.skip_ows();
        }
        offers.push(ExtensionOffer { name, params });
        if cursor.peek().is_some() && !cursor.eat(b',') {
            return None;
        }
    }
}

/// Returns the first two items, to tell "none", "exactly one" and "more than one" apart.
pub(crate) fn first_two<T>(mut values: impl Iterator<Item = T>) -> (Option<T>, Option<T>) {
    (values.next(), values.next())
}

/// Returns whether `byte` may appear in a token (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Returns whether `text` is a non-empty token (RFC 9110 §5.6.2).
pub(crate) fn is_token(text: impl AsRef<[u8]>) -> bool {
    let text = text.as_ref();
    !text.is_empty() && text.iter().all(|&byte| is_tchar(byte))
}

/// Returns whether `byte` is a control character other than HTAB, which no field value or reason
/// phrase may hold (RFC 9110 §5.5: CR, LF and NUL never, other controls are not field-content).
pub(crate) fn is_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

/// Trims optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim_ows(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&byte| byte != b' ' && byte != b'\t')
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&byte| byte != b' ' && byte != b'\t')
        .map_or(start, |last| last + 1);
    &text[start..end]
}

/// Checks a header we are about to send: a token name, a value without CR, LF or another control
/// character but tab (which could smuggle in further lines), and not one of the names the
/// handshake writes itself.
pub(crate) fn check_outgoing(
    name: &str,
    value: &[u8],
    reserved: &[&str],
) -> Result<(), HandshakeError> {
    check_field(name, value)?;
    if reserved
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
    {
        return Err(HandshakeError::ReservedHeader {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a field's name and value against the rules the parser enforces on the wire.
fn check_field(name: &str, value: &[u8]) -> Result<(), HandshakeError> {
    if !is_token(name) || value.iter().any(|&byte| is_control(byte)) {
        return Err(HandshakeError::InvalidOutgoingHeader {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Appends `name: value\r\n`.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: impl AsRef<[u8]>) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_ref());
    out.extend_from_slice(b"\r\n");
}

/// A read position in a header value, for the extension grammar.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.pos += usize::from(found);
        found
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| {
            self.bytes[start..self.pos]
                .iter()
                .map(|&b| char::from(b))
                .collect()
        })
    }

    /// Reads a quoted string whose unescaped content is a token; the cursor is on the `"`.
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1;
        let mut value = String::new();
        loop {
            let mut byte = self.peek()?;
            self.pos += 1;
            match byte {
                b'"' => return is_token(&value).then_some(value),
                b'\\' => {
                    byte = self.peek()?;
                    self.pos += 1;
                }
                _ => {}
            }
            // Anything that is not a tchar would fail the token rule once unquoted anyway.
            if !is_tchar(byte) {
                return None;
            }
            value.push(char::from(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in fields {
            headers.append(name, value).unwrap();
        }
        headers
    }

    #[test]
    fn lookup_ignores_case_and_keeps_order() {
        let headers = headers(&[("Host", "a"), ("X-Tag", "1"), ("x-tag", "2")]);
        assert_eq!(headers.get("HOST"), Some("a"));
        assert_eq!(headers.get("missing"), None);
        assert_eq!(headers.get_all("X-TAG").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(
            headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            ["Host", "X-Tag", "x-tag"]
        );
        assert_eq!(headers.len(), 3);
        assert!(!headers.is_empty());
    }

    #[test]
    fn list_elements_span_fields_and_skip_empties() {
        let headers = headers(&[("Upgrade", " h2c ,, WebSocket"), ("upgrade", "\tfoo/1\t,")]);
        assert_eq!(
            headers.list("upgrade").collect::<Vec<_>>(),
            ["h2c", "WebSocket", "foo/1"]
        );
        assert!(headers.contains_token("Upgrade", "websocket"));
        assert!(!headers.contains_token("Upgrade", "web"));
        assert!(!headers.contains_token("Connection", "upgrade"));
    }

    #[test]
    fn obs_text_values_are_bytes_with_a_utf8_view() {
        let mut headers = headers(&[("Cookie", "a=1"), ("X-Utf8", "caf\u{e9}")]);
        headers.append("cookie", b"name=caf\xe9").unwrap();
        headers.append("Upgrade", b"h2c, \xff, websocket").unwrap();

        assert_eq!(
            headers.get_all_bytes("COOKIE").collect::<Vec<_>>(),
            [&b"a=1"[..], b"name=caf\xe9"]
        );
        assert_eq!(headers.get_all("cookie").collect::<Vec<_>>(), ["a=1"]);
        assert_eq!(headers.get_bytes("x-utf8"), Some("caf\u{e9}".as_bytes()));
        assert_eq!(headers.get("x-utf8"), Some("caf\u{e9}"));
        assert_eq!(
            headers.get_bytes("upgrade"),
            Some(&b"h2c, \xff, websocket"[..])
        );
        // The first field decides: `get` does not skip to a later, UTF-8 field.
        assert_eq!(headers.get("upgrade"), None);
        assert_eq!(headers.len(), 4);
        assert_eq!(
            headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            ["Cookie", "X-Utf8"]
        );
        assert_eq!(
            headers
                .iter_bytes()
                .map(|(name, _)| name)
                .collect::<Vec<_>>(),
            ["Cookie", "X-Utf8", "cookie", "Upgrade"]
        );
        // List elements are split before decoding, so an ASCII element survives a bad neighbour.
        assert_eq!(
            headers.list("upgrade").collect::<Vec<_>>(),
            ["h2c", "websocket"]
        );
        assert_eq!(headers.list_bytes("upgrade").count(), 3);
        assert!(headers.contains_token("upgrade", "WebSocket"));
    }

    #[test]
    fn appended_fields_follow_the_wire_rules() {
        let mut headers = Headers::default();
        assert_eq!(headers.append("X-A", " b\tc "), Ok(()));
        assert_eq!(headers.append("X-B", [0x80, 0xff]), Ok(()));
        for (name, value) in [
            ("X A", &b"b"[..]),
            ("", b"b"),
            ("X\u{e9}", b"b"),
            ("X", b"a\rb"),
            ("X", b"a\nb"),
            ("X", b"a\0b"),
            ("X", b"a\x01b"),
            ("X", b"a\x7fb"),
        ] {
            assert_eq!(
                headers.append(name, value),
                Err(HandshakeError::InvalidOutgoingHeader {
                    name: name.to_owned()
                }),
                "{name:?}: {value:?}"
            );
        }
        assert_eq!(headers.get_bytes("x-a"), Some(&b" b\tc "[..]));
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn extension_lists() {
        let offers = parse_extensions(
            b"permessage-deflate; client_max_window_bits, permessage-deflate;server_max_window_bits=\"10\" , , x-foo",
        )
        .unwrap();
        let names: Vec<&str> = offers.iter().map(ExtensionOffer::name).collect();
        assert_eq!(names, ["permessage-deflate", "permessage-deflate", "x-foo"]);
        let params: Vec<Vec<(&str, Option<&str>)>> = offers
            .iter()
            .map(|offer| offer.params().collect())
            .collect();
        assert_eq!(
            params,
            [
                vec![("client_max_window_bits", None)],
                vec![("server_max_window_bits", Some("10"))],
                vec![],
            ]
        );
        assert_eq!(
            offers[1].to_string(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(parse_extensions(b""), Some(vec![]));
        assert_eq!(
            parse_extensions(b"a; b = \"c\\d\"").unwrap()[0].to_string(),
            "a; b=cd"
        );
    }

    #[test]
    fn malformed_extension_lists() {
        for value in [
            "; a",
            "a;",
            "a; =1",
            "a; b=",
            "a b",
            "a; b=\"c d\"",
            "a; b=\"unterminated",
            "a; b=\"\"",
            "a; b=c d",
            "a; b=\"\\",
            "a=1",
            "é",
        ] {
            assert_eq!(parse_extensions(value.as_bytes()), None, "{value:?}");
        }
        for value in [&b"caf\xe9"[..], b"a; b=\xff", b"a; b=\"\xff\""] {
            assert_eq!(parse_extensions(value), None, "{value:?}");
        }
    }

    #[test]
    fn outgoing_headers_are_checked() {
        assert_eq!(check_outgoing("X-A", b"b c", &["Host"]), Ok(()));
        assert_eq!(check_outgoing("Cookie", b"caf\xe9", &["Host"]), Ok(()));
        assert!(matches!(
            check_outgoing("X A", b"b", &[]),
            Err(HandshakeError::InvalidOutgoingHeader { .. })
        ));
        assert!(matches!(
            check_outgoing("", b"b", &[]),
            Err(HandshakeError::InvalidOutgoingHeader { .. })
        ));
        for value in ["a\r\nX: y", "a\nb", "a\0", "a\x1b", "a\x7f"] {
            assert!(matches!(
                check_outgoing("X", value.as_bytes(), &[]),
                Err(HandshakeError::InvalidOutgoingHeader { .. })
            ));
        }
        assert!(matches!(
            check_outgoing("host", b"b", &["Host"]),
            Err(HandshakeError::ReservedHeader { .. })
        ));
    }
}
