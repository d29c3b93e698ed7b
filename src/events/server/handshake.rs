//! What the client's HTTP request said, captured once when its Engine.IO session opens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

/// What the server knows of a connection that its HTTP request does not say: the peer's
/// address and whether the connection is encrypted. Given to
/// [`Server::handle_with`](super::Server::handle_with), or, for the server mounted as a
/// service (`Server::service`, feature `hyper`), inserted into each request's extensions by
/// the app that accepted the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remote {
    pub(crate) address: Option<SocketAddr>,
    pub(crate) secure: bool,
}

impl Remote {
    /// A plain (unencrypted) connection from `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address: Some(address),
            secure: false,
        }
    }

    /// Marks the connection as encrypted (TLS) or not.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }
}

/// The handshake of a socket (socket.io's `socket.handshake`): the HTTP request that opened
/// its connection and the auth payload of its namespace CONNECT. A cheap handle: the request
/// part is shared by every socket of the connection.
#[derive(Debug, Clone)]
pub struct Handshake {
    request: Arc<RequestInfo>,
    auth: Value,
}

/// The request part of a [`Handshake`], one per Engine.IO session.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    /// Names in lower case, in the order sent.
    headers: Vec<(String, String)>,
    /// Percent-decoded, in the order sent.
    query: Vec<(String, String)>,
    url: String,
    remote: Remote,
    time: SystemTime,
}

impl RequestInfo {
    /// The request that opened a session, from a parsed request: its target as sent (path and
    /// query) and its headers (names in lower case, in order).
    pub(crate) fn new(url: String, mut headers: Vec<(String, String)>, remote: Remote) -> Self {
        // Kept as long as the session: no spare capacity.
        headers.shrink_to_fit();
        let mut query: Vec<_> = url
            .split_once('?')
            .map(|(_, query)| parse_query(query))
            .unwrap_or_default();
        query.shrink_to_fit();
        Self {
            headers,
            query,
            url,
            remote,
            time: SystemTime::now(),
        }
    }

    /// Reads the request head (`bytes` up to the blank line) of the request that opened a
    /// session.
    pub(crate) fn parse(head: &[u8], remote: Remote) -> Self {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let url = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or_default()
            .to_owned();
        let headers = lines
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Self::new(url, headers, remote)
    }
}

impl Handshake {
    pub(crate) fn new(request: Arc<RequestInfo>, auth: Value) -> Self {
        Self { request, auth }
    }

    /// The request's headers, names in lower case, in the order sent (repeated names repeat).
    pub fn headers(&self) -> &[(String, String)] {
        &self.request.headers
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The query parameters of the request URL, percent-decoded (`+` is a space), in order.
    /// Engine.IO's own (`EIO`, `transport`, `sid`, `t`) are included, as in socket.io.
    pub fn query(&self) -> &[(String, String)] {
        &self.request.query
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.request
            .query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The request target: path and query, as sent.
    pub fn url(&self) -> &str {
        &self.request.url
    }

    /// The peer's address, when the server was told it (see [`Remote`]).
    pub fn address(&self) -> Option<SocketAddr> {
        self.request.remote.address
    }

    /// Whether the connection is encrypted, as the server was told (see [`Remote`]).
    pub fn secure(&self) -> bool {
        self.request.remote.secure
    }

    /// When the Engine.IO session opened.
    pub fn time(&self) -> SystemTime {
        self.request.time
    }

    /// The auth payload of the namespace CONNECT: always an object, `{}` when the client sent
    /// none.
    pub fn auth(&self) -> &Value {
        &self.auth
    }
}

/// Splits and decodes `a=1&b=x%20y`.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// Percent-decodes `text`, `+` as a space; malformed escapes stay as they are, and invalid
/// UTF-8 becomes U+FFFD.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let escaped = match (byte, bytes.get(index + 1..index + 3)) {
            (b'%', Some(&[high, low])) => hex(high).zip(hex(low)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (byte, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                index += 1;
            }
            (other, None) => {
                out.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_headers_and_query() {
        let head =
            b"GET /socket.io/?EIO=4&transport=websocket&room=a%20b&x=1+2&bad=%zz&flag HTTP/1.1\r\n\
            Host: 127.0.0.1:3000\r\nX-Token:  abc \r\nCookie: a=1\r\ncookie: b=2\r\n\r\n";
        let address: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let info = RequestInfo::parse(head, Remote::new(address).with_secure(true));
        let handshake = Handshake::new(Arc::new(info), Value::Object(Default::default()));
        assert_eq!(
            handshake.url(),
            "/socket.io/?EIO=4&transport=websocket&room=a%20b&x=1+2&bad=%zz&flag"
        );
        assert_eq!(handshake.header("x-token"), Some("abc"));
        assert_eq!(handshake.header("HOST"), Some("127.0.0.1:3000"));
        let cookies: Vec<&str> = handshake
            .headers()
            .iter()
            .filter(|(name, _)| name == "cookie")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(handshake.query_param("EIO"), Some("4"));
        assert_eq!(handshake.query_param("room"), Some("a b"));
        assert_eq!(handshake.query_param("x"), Some("1 2"));
        assert_eq!(handshake.query_param("bad"), Some("%zz"));
        assert_eq!(handshake.query_param("flag"), Some(""));
        assert_eq!(handshake.query().len(), 6);
        assert_eq!(handshake.address(), Some(address));
        assert!(handshake.secure());
        assert_eq!(handshake.auth(), &serde_json::json!({}));
    }

    #[test]
    fn percent_decoding_of_utf8_and_truncated_escapes() {
        assert_eq!(decode("%C3%A9t%C3%A9"), "été");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }
}
