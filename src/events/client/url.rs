//! From the URL a user gives (`http://host:port/namespace?query`) to the Engine.IO WebSocket
//! endpoint (`ws://host:port/socket.io/?query&EIO=4&transport=websocket`; `https://` and
//! `wss://` map to `wss://` with the feature `rustls`).

use super::ClientError;
use crate::events::DEFAULT_NAMESPACE;

/// Where to connect, split from the user's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The `ws://` or `wss://` URL of the Engine.IO endpoint.
    pub ws_url: String,
    /// The namespace the URL's path names (`/` when it has none).
    pub namespace: String,
}

/// Maps `url` to the endpoint under `path`, with the extra `query` pairs (percent-encoded
/// here) before Engine.IO's own.
pub(crate) fn endpoint(
    url: &str,
    path: &str,
    query: &[(String, String)],
) -> Result<Endpoint, ClientError> {
    let invalid = |why: &str| ClientError::InvalidUrl(format!("{url}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("missing scheme"))?;
    let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        #[cfg(feature = "rustls-manual-roots")]
        "https" | "wss" => "wss",
        #[cfg(not(feature = "rustls-manual-roots"))]
        "https" | "wss" => return Err(ClientError::UnsupportedUrl(url.to_owned())),
        _ => return Err(invalid("the scheme must be http(s) or ws(s)")),
    };
    if rest.contains('#') {
        return Err(invalid("fragments are not allowed"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    if authority.is_empty() {
        return Err(invalid("missing host"));
    }
    let (url_path, url_query) = rest.split_once('?').unwrap_or((rest, ""));
    let namespace = match url_path.trim_end_matches('/') {
        "" => DEFAULT_NAMESPACE.to_owned(),
        named => named.to_owned(),
    };
    let mut pairs: Vec<String> = url_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(str::to_owned)
        .collect();
    pairs.extend(
        query
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value))),
    );
    pairs.push("EIO=4".into());
    pairs.push("transport=websocket".into());
    let path = path.trim_matches('/');
    let path = match path.is_empty() {
        true => "/".to_owned(),
        false => format!("/{path}/"),
    };
    Ok(Endpoint {
        ws_url: format!("{ws_scheme}://{authority}{path}?{}", pairs.join("&")),
        namespace,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(url: &str) -> Result<Endpoint, ClientError> {
        endpoint(url, "/socket.io", &[])
    }

    #[test]
    fn http_and_ws_urls_map_to_the_engine_endpoint() {
        let expected = "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket";
        for url in [
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3000/",
            "ws://127.0.0.1:3000",
            "HTTP://127.0.0.1:3000",
        ] {
            let endpoint = map(url).unwrap();
            assert_eq!(endpoint.ws_url, expected, "{url}");
            assert_eq!(endpoint.namespace, "/");
        }
    }

    #[test]
    fn the_path_names_the_namespace_and_the_query_is_kept() {
        let endpoint = endpoint(
            "http://localhost/admin?token=1",
            "/custom/",
            &[("user name".into(), "a&b".into())],
        )
        .unwrap();
        assert_eq!(endpoint.namespace, "/admin");
        assert_eq!(
            endpoint.ws_url,
            "ws://localhost/custom/?token=1&user%20name=a%26b&EIO=4&transport=websocket"
        );
    }

    #[cfg(feature = "rustls-manual-roots")]
    #[test]
    fn https_and_wss_urls_map_to_a_wss_endpoint() {
        let expected = "wss://example.com:8443/socket.io/?EIO=4&transport=websocket";
        for url in [
            "https://example.com:8443",
            "wss://example.com:8443/",
            "HTTPS://example.com:8443",
        ] {
            assert_eq!(map(url).unwrap().ws_url, expected, "{url}");
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in ["example.com", "ftp://example.com", "http://", "http://a/#x"] {
            assert!(matches!(map(bad), Err(ClientError::InvalidUrl(_))), "{bad}");
        }
    }

    #[cfg(not(feature = "rustls-manual-roots"))]
    #[test]
    fn tls_urls_are_refused_without_tls() {
        assert!(matches!(
            map("https://example.com"),
            Err(ClientError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            map("wss://example.com"),
            Err(ClientError::UnsupportedUrl(_))
        ));
    }
}
