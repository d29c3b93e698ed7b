//! Header fields and the list syntax of the handshake headers (RFC 6455 §4.3, §9.1).

use std::fmt;

use super::error::HandshakeError;

/// The header fields of a handshake request or response, in the order they arrived.
///
/// Names keep the case they were sent in and compare ignoring ASCII case. A name sent several
/// times keeps every occurrence: [`get_all`](Self::get_all) and [`list`](Self::list) see them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// Returns the value of the first field called `name`, ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Returns the values of every field called `name`, ignoring ASCII case, in arrival order.
    pub fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns every `(name, value)` pair in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Returns the number of fields, counting repeated names.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Returns whether there are no fields at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Returns the elements of a comma-separated list header, across every field called `name`.
    ///
    /// Elements are trimmed of spaces and tabs, and empty elements are skipped, as RFC 9110 §5.6.1
    /// asks of recipients. Meant for lists of tokens (`Connection`, `Upgrade`,
    /// `Sec-WebSocket-Protocol`): commas inside quoted strings are not special here.
    pub fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        self.get_all(name)
            .flat_map(|value| value.split(','))
            .map(trim_ows)
            .filter(|element| !element.is_empty())
    }

    /// Returns whether the list header `name` has an element equal to `token`, ignoring ASCII
    /// case (`Connection: keep-alive, Upgrade` contains `upgrade`).
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .any(|element| element.eq_ignore_ascii_case(token))
    }

    pub(crate) fn push(&mut self, name: String, value: String) {
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
pub(crate) fn parse_extensions(value: &str) -> Option<Vec<ExtensionOffer>> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
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
pub(crate) fn first_two<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> (Option<&'a str>, Option<&'a str>) {
    (values.next(), values.next())
}

/// Returns whether `byte` may appear in a token (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Returns whether `text` is a non-empty token (RFC 9110 §5.6.2).
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// Trims optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// Checks a header we are about to send: a token name, a value without CR, LF or NUL (which
/// would let it smuggle in further lines), and not one of the names the handshake writes itself.
pub(crate) fn check_outgoing(
    name: &str,
    value: &str,
    reserved: &[&str],
) -> Result<(), HandshakeError> {
    if !is_token(name) || value.bytes().any(|byte| matches!(byte, b'\r' | b'\n' | 0)) {
        return Err(HandshakeError::InvalidOutgoingHeader {
            name: name.to_owned(),
        });
    }
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

/// Appends `name: value\r\n`.
pub(crate) fn write_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
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
            headers.push((*name).to_owned(), (*value).to_owned());
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
    fn extension_lists() {
        let offers = parse_extensions(
            "permessage-deflate; client_max_window_bits, permessage-deflate;server_max_window_bits=\"10\" , , x-foo",
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
        assert_eq!(parse_extensions(""), Some(vec![]));
        assert_eq!(
            parse_extensions("a; b = \"c\\d\"").unwrap()[0].to_string(),
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
            assert_eq!(parse_extensions(value), None, "{value:?}");
        }
    }

    #[test]
    fn outgoing_headers_are_checked() {
        assert_eq!(check_outgoing("X-A", "b c", &["Host"]), Ok(()));
        assert!(matches!(
            check_outgoing("X A", "b", &[]),
            Err(HandshakeError::InvalidOutgoingHeader { .. })
        ));
        assert!(matches!(
            check_outgoing("", "b", &[]),
            Err(HandshakeError::InvalidOutgoingHeader { .. })
        ));
        for value in ["a\r\nX: y", "a\nb", "a\0"] {
            assert!(matches!(
                check_outgoing("X", value, &[]),
                Err(HandshakeError::InvalidOutgoingHeader { .. })
            ));
        }
        assert!(matches!(
            check_outgoing("host", "b", &["Host"]),
            Err(HandshakeError::ReservedHeader { .. })
        ));
    }
}
