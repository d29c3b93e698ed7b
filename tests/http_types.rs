//! Conversions between the handshake types and the `http` crate's (RFC 6455 §4): round trips,
//! and the sans-IO checks and errors for requests another server parsed.
#![cfg(feature = "http")]

use http::header::HeaderMap;
use http::{HeaderValue, Method, Version};
use wsio::http::{ConversionError, check_request, encode_request, encode_response_head};
use wsio::proto::Rng;
use wsio::proto::handshake::{
    Accept, ClientRequest, HandshakeError, HandshakeLimits, Headers, Request, RequestParser,
    accept_key,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The §1.3 sample request as an `http::Request`, with `edit` applied to its builder.
fn sample(
    edit: impl FnOnce(http::request::Builder) -> http::request::Builder,
) -> http::Request<()> {
    let builder = http::Request::get("/chat?room=1")
        .header("Host", "server.example.com")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", KEY)
        .header("Sec-WebSocket-Version", "13");
    edit(builder).body(()).unwrap()
}

fn check(request: &http::Request<()>) -> Result<Request, HandshakeError> {
    check_request(request, &HandshakeLimits::default())
}

#[test]
fn client_request_from_http_request_keeps_uri_offers_and_headers() {
    let request = http::Request::get("ws://example.com:8080/chat?room=1")
        .header("Sec-WebSocket-Protocol", "chat, superchat")
        .header("Sec-WebSocket-Extensions", "x-test; a=1")
        .header("Authorization", "Bearer abc")
        .header("X-Repeated", "1")
        .header("X-Repeated", "2")
        // Written by the handshake itself: left out, with a fresh key per connection.
        .header("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")
        .header("Upgrade", "websocket")
        .header("Host", "example.com:8080")
        .body(())
        .unwrap();
    let client = ClientRequest::try_from(&request).unwrap();
    assert_eq!(
        (client.host(), client.port(), client.resource()),
        ("example.com", 8080, "/chat?room=1")
    );
    let (bytes, _) = client.encode(&mut Rng::from_seed([1; 32]));
    let sent = RequestParser::default().receive(&bytes).unwrap().unwrap();
    assert_eq!(sent.subprotocols(), ["chat", "superchat"]);
    assert_eq!(sent.extensions()[0].to_string(), "x-test; a=1");
    assert_eq!(sent.headers().get("authorization"), Some("Bearer abc"));
    assert_eq!(
        sent.headers().get_all("x-repeated").collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(
        sent.headers().get_all("host").collect::<Vec<_>>(),
        ["example.com:8080"]
    );
    assert_eq!(sent.headers().get_all("upgrade").count(), 1);
    assert_ne!(sent.key(), "AAAAAAAAAAAAAAAAAAAAAA==");
}

#[test]
fn client_request_refusals_are_typed() {
    let post = http::Request::post("ws://example.com/").body(()).unwrap();
    assert!(matches!(
        ClientRequest::try_from(&post),
        Err(ConversionError::Method(method)) if method == Method::POST
    ));
    let other_host = http::Request::get("ws://example.com/")
        .header("Host", "elsewhere.example")
        .body(())
        .unwrap();
    assert!(matches!(
        ClientRequest::try_from(&other_host),
        Err(ConversionError::Host { host }) if host == "elsewhere.example"
    ));
    let http_scheme = http::Request::get("http://example.com/").body(()).unwrap();
    assert!(matches!(
        ClientRequest::try_from(&http_scheme),
        Err(ConversionError::Handshake(HandshakeError::InvalidUri(_)))
    ));
    let mut latin1 = http::Request::get("ws://example.com/").body(()).unwrap();
    latin1
        .headers_mut()
        .insert("x-latin1", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    // obs-text (RFC 9110 §5.5) is a legal field value: it goes out byte for byte.
    let latin1 = ClientRequest::try_from(&latin1).unwrap();
    let (encoded, _) = latin1.encode(&mut Rng::from_seed([7; 32]));
    assert!(
        encoded
            .windows(b"x-latin1: caf\xe9\r\n".len())
            .any(|line| line == b"x-latin1: caf\xe9\r\n")
    );
}

#[test]
fn client_request_from_uri_and_default_ports() {
    let uri: http::Uri = "wss://[::1]/feed".parse().unwrap();
    let client = ClientRequest::try_from(uri).unwrap();
    assert_eq!(
        (
            client.host(),
            client.port(),
            client.is_secure(),
            client.resource()
        ),
        ("::1", 443, true, "/feed")
    );
    let client = ClientRequest::new("ws://example.com/").unwrap();
    let (request, _) = encode_request(&client, &mut Rng::from_os()).unwrap();
    assert_eq!(request.uri(), "ws://example.com/");
    assert_eq!(request.headers()["host"], "example.com");
    assert_eq!(ClientRequest::try_from(&request).unwrap(), client);
    let explicit = http::Request::get("ws://example.com:80/")
        .header("Host", "example.com")
        .body(())
        .unwrap();
    assert_eq!(ClientRequest::try_from(&explicit).unwrap(), client);
}

/// ClientRequest → http::Request → ClientRequest sends the same bytes with the same key.
#[test]
fn client_request_round_trip_through_http() {
    let client = ClientRequest::new("ws://127.0.0.1:9002/a?b=c")
        .unwrap()
        .subprotocol("chat")
        .unwrap()
        .extension("permessage-deflate; client_max_window_bits")
        .unwrap()
        // The http crate writes names in lower case.
        .header("origin", "http://127.0.0.1")
        .unwrap()
        .header("cookie", "a=b")
        .unwrap();
    let (http_request, _) = encode_request(&client, &mut Rng::from_seed([9; 32])).unwrap();
    assert_eq!(http_request.method(), Method::GET);
    assert_eq!(http_request.version(), Version::HTTP_11);
    assert_eq!(http_request.uri(), "ws://127.0.0.1:9002/a?b=c");
    assert_eq!(http_request.headers()["upgrade"], "websocket");
    assert_eq!(http_request.headers()["origin"], "http://127.0.0.1");

    let again = ClientRequest::try_from(&http_request).unwrap();
    assert_eq!(again, client);
    let (first, _) = client.encode(&mut Rng::from_seed([9; 32]));
    let (second, _) = again.encode(&mut Rng::from_seed([9; 32]));
    assert_eq!(first, second);
}

/// A client whose HTTP is another library's: request out as `http`, reply in as `http`.
#[test]
fn client_handshake_through_http_types() {
    let client = ClientRequest::new("ws://127.0.0.1/")
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let (request, mut parser) = encode_request(&client, &mut Rng::from_os()).unwrap();
    let key = request.headers()["sec-websocket-key"].to_str().unwrap();
    let response = http::Response::builder()
        .status(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key(key.as_bytes()))
        .header("Sec-WebSocket-Protocol", "chat")
        .body(())
        .unwrap();
    let checked = parser
        .receive(&encode_response_head(&response))
        .unwrap()
        .expect("a complete response");
    assert_eq!(checked.subprotocol(), Some("chat"));

    // And back: the checked response as an http::Response.
    let http_response = http::Response::<()>::try_from(&checked).unwrap();
    assert_eq!(http_response.status(), 101);
    assert_eq!(http_response.headers()["sec-websocket-protocol"], "chat");
}

#[test]
fn server_request_round_trip_through_http() {
    let request = sample(|b| {
        b.header("Sec-WebSocket-Protocol", "chat, superchat")
            .header(
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            )
            .header("Origin", "http://example.com")
    });
    let checked = check(&request).unwrap();
    assert_eq!(checked.target(), "/chat?room=1");
    assert_eq!(checked.key(), KEY);
    assert_eq!(checked.subprotocols(), ["chat", "superchat"]);
    assert_eq!(checked.origin(), Some("http://example.com"));

    let back = http::Request::<()>::try_from(&checked).unwrap();
    assert_eq!(back.method(), Method::GET);
    assert_eq!(back.uri(), "/chat?room=1");
    assert_eq!(back.headers(), request.headers());
    assert_eq!(check(&back).unwrap(), checked);
    assert_eq!(Request::try_from(&back).unwrap(), checked);
}

/// The same refusals, with the same statuses, as the sans-IO parser.
#[test]
fn server_checks_are_the_sans_io_ones() {
    let cases: Vec<(http::Request<()>, HandshakeError, u16)> = vec![
        (
            http::Request::get("/")
                .header("Host", "a")
                .body(())
                .unwrap(),
            HandshakeError::MissingUpgrade,
            400,
        ),
        (
            sample(|b| b.method(Method::POST)),
            HandshakeError::MethodNotAllowed,
            405,
        ),
        (
            sample(|b| b.version(Version::HTTP_10)),
            HandshakeError::UnsupportedHttpVersion,
            400,
        ),
        (
            sample(|b| b.version(Version::HTTP_2)),
            HandshakeError::UnsupportedHttpVersion,
            400,
        ),
        (
            sample(|b| b.header("Host", "b")),
            HandshakeError::DuplicateHost,
            400,
        ),
        (
            sample(|b| b.header("Sec-WebSocket-Version", "8")),
            HandshakeError::UnsupportedVersion,
            426,
        ),
        (
            sample(|b| b.header("Sec-WebSocket-Key", KEY)),
            HandshakeError::DuplicateKey,
            400,
        ),
        (
            sample(|b| b.header("Content-Length", "5")),
            HandshakeError::UnexpectedBody,
            400,
        ),
        (
            sample(|b| b.header("Sec-WebSocket-Protocol", "a b")),
            HandshakeError::MalformedSubprotocols,
            400,
        ),
    ];
    for (request, expected, status) in cases {
        let error = check(&request).unwrap_err();
        assert_eq!(error, expected, "{request:?}");
        assert_eq!(error.status(), status, "{request:?}");
    }

    let mut no_key = sample(|b| b);
    no_key.headers_mut().remove("sec-websocket-key");
    assert_eq!(check(&no_key), Err(HandshakeError::MissingKey));
    let mut bad_version = sample(|b| b);
    bad_version
        .headers_mut()
        .insert("sec-websocket-version", HeaderValue::from_static("8"));
    let error = check(&bad_version).unwrap_err();
    assert_eq!(error, HandshakeError::UnsupportedVersion);
    let reply = error.response().encode();
    assert!(
        String::from_utf8_lossy(&reply).contains("\r\nSec-WebSocket-Version: 13\r\n"),
        "{reply:?}"
    );
}

#[test]
fn server_checks_apply_the_handshake_limits() {
    let request = sample(|mut b| {
        for n in 0..10 {
            b = b.header(format!("x-field-{n}"), "v");
        }
        b
    });
    let limits = HandshakeLimits {
        max_headers: 12,
        ..HandshakeLimits::default()
    };
    assert_eq!(
        check_request(&request, &limits),
        Err(HandshakeError::TooManyHeaders)
    );
    let limits = HandshakeLimits {
        max_request_line: 8,
        ..HandshakeLimits::default()
    };
    assert_eq!(
        check_request(&request, &limits),
        Err(HandshakeError::RequestLineTooLong)
    );
    assert!(check(&request).is_ok());
}

#[test]
fn server_accepts_an_absolute_form_target() {
    let request = sample(|b| b.uri("http://server.example.com/chat"));
    let checked = check(&request).unwrap();
    assert_eq!(checked.target(), "http://server.example.com/chat");
    let reply = checked.accept(&Accept::new()).unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 101 "));
}

#[test]
fn headers_round_trip_through_header_map() {
    let request = sample(|b| b.header("X-Repeated", "1").header("x-repeated", "2, 3"));
    let checked = check(&request).unwrap();
    let map = HeaderMap::try_from(checked.headers()).unwrap();
    assert_eq!(&map, request.headers());
    let headers = Headers::try_from(&map).unwrap();
    assert_eq!(&headers, checked.headers());
    assert_eq!(
        headers.get_all("x-repeated").collect::<Vec<_>>(),
        ["1", "2, 3"]
    );
}
