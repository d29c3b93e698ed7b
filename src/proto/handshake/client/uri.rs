//! WebSocket URIs (RFC 6455 §3): `ws://host[:port][/path][?query]` and `wss://…`.

use crate::proto::handshake::error::UriError;

/// Splits a WebSocket URI into (secure, host, port, resource name).
pub(super) fn parse_uri(uri: &str) -> Result<(bool, String, u16, String), UriError> {
    if uri.contains('#') {
        return Err(UriError::Fragment);
    }
    let (scheme, rest) = uri.split_once(':').ok_or(UriError::UnsupportedScheme)?;
    let secure = if scheme.eq_ignore_ascii_case("ws") {
        false
    } else if scheme.eq_ignore_ascii_case("wss") {
        true
    } else {
        return Err(UriError::UnsupportedScheme);
    };
    let rest = rest.strip_prefix("//").ok_or(UriError::MissingHost)?;
    let (authority, resource) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let resource = if resource.starts_with('/') {
        resource.to_owned()
    } else {
        format!("/{resource}")
    };
    if !resource.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(UriError::InvalidResource);
    }
    if authority.contains('@') {
        return Err(UriError::InvalidHost);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(UriError::InvalidHost)?;
        let port = if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix(':').ok_or(UriError::InvalidHost)?)
        };
        let is_ipv6 = host.contains(':')
            && host
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || b":.".contains(&byte));
        if !host.is_empty() && !is_ipv6 {
            return Err(UriError::InvalidHost);
        }
        (host, port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if !host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
        {
            return Err(UriError::InvalidHost);
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(UriError::MissingHost);
    }
    let port = match port {
        None => default_port(secure),
        Some(port) if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) => port
            .parse()
            .ok()
            .filter(|&port| port != 0)
            .ok_or(UriError::InvalidPort)?,
        Some(_) => return Err(UriError::InvalidPort),
    };
    Ok((secure, host.to_owned(), port, resource))
}

/// Returns the port a URI without one means: 80 for `ws`, 443 for `wss`.
pub(super) fn default_port(secure: bool) -> u16 {
    if secure { 443 } else { 80 }
}

#[cfg(test)]
mod tests {
    use crate::proto::handshake::{ClientRequest, HandshakeError, UriError};

    #[test]
    fn uri_table() {
        for (uri, secure, host, port, resource) in [
            ("ws://example.com", false, "example.com", 80, "/"),
            ("ws://example.com/", false, "example.com", 80, "/"),
            ("wss://example.com", true, "example.com", 443, "/"),
            (
                "WSS://Example.com:8443/chat?room=1&x",
                true,
                "Example.com",
                8443,
                "/chat?room=1&x",
            ),
            (
                "ws://example.com?token=abc",
                false,
                "example.com",
                80,
                "/?token=abc",
            ),
            ("ws://example.com:443/", false, "example.com", 443, "/"),
            ("ws://127.0.0.1:9002/a/b", false, "127.0.0.1", 9002, "/a/b"),
            ("ws://[::1]/", false, "::1", 80, "/"),
            (
                "wss://[2001:db8::1]:8443/x",
                true,
                "2001:db8::1",
                8443,
                "/x",
            ),
            (
                "ws://[::ffff:192.0.2.1]",
                false,
                "::ffff:192.0.2.1",
                80,
                "/",
            ),
            ("ws://host/%20path", false, "host", 80, "/%20path"),
        ] {
            let request = ClientRequest::new(uri).unwrap();
            assert_eq!(
                (
                    request.is_secure(),
                    request.host(),
                    request.port(),
                    request.resource()
                ),
                (secure, host, port, resource),
                "{uri}"
            );
        }
        for (uri, expected) in [
            ("http://example.com", UriError::UnsupportedScheme),
            ("example.com", UriError::UnsupportedScheme),
            ("wsx://example.com", UriError::UnsupportedScheme),
            ("ws:example.com", UriError::MissingHost),
            ("ws://", UriError::MissingHost),
            ("ws:///chat", UriError::MissingHost),
            ("ws://:80/", UriError::MissingHost),
            ("ws://[]/", UriError::MissingHost),
            ("ws://example.com/#top", UriError::Fragment),
            ("ws://example.com#", UriError::Fragment),
            ("ws://user@example.com/", UriError::InvalidHost),
            ("ws://exa mple.com/", UriError::InvalidHost),
            ("ws://a:b:c/", UriError::InvalidHost),
            ("ws://[::1/", UriError::InvalidHost),
            ("ws://[::1]x/", UriError::InvalidHost),
            ("ws://[example]/", UriError::InvalidHost),
            ("ws://example.com:/", UriError::InvalidPort),
            ("ws://example.com:0/", UriError::InvalidPort),
            ("ws://example.com:65536/", UriError::InvalidPort),
            ("ws://example.com:8o/", UriError::InvalidPort),
            ("ws://example.com:+80/", UriError::InvalidPort),
            ("ws://[::1]:x/", UriError::InvalidPort),
            ("ws://example.com/a b", UriError::InvalidResource),
            ("ws://example.com/caf\u{e9}", UriError::InvalidResource),
        ] {
            assert_eq!(
                ClientRequest::new(uri),
                Err(HandshakeError::InvalidUri(expected)),
                "{uri}"
            );
        }
    }
}
