//! `wsio::http::check_request` on an `http::Request` agrees with the sans-IO `RequestParser`
//! reading the same request as bytes; the `http` conversions never panic and round trip.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, Method, Uri, Version};
use libfuzzer_sys::fuzz_target;
use wsio::proto::Rng;
use wsio::proto::handshake::{
    ClientRequest, HandshakeError, HandshakeLimits, Headers, Request, RequestParser,
};

/// A request as a peer would send it; the `http` crate may refuse parts of it.
#[derive(Debug, Arbitrary)]
struct Input {
    method: Choice,
    uri: Choice,
    version: u8,
    /// Starts the fields with a valid handshake's, so that most inputs get past the basics.
    valid_handshake: bool,
    fields: Vec<(Choice, Choice)>,
    /// Tiny limits: request line, field count, field bytes.
    limits: Option<(u8, u8, u16)>,
}

/// A word from a list of likely ones, each in some letter case, or any bytes.
#[derive(Debug, Arbitrary)]
enum Choice {
    Known(u8, bool),
    Raw(Vec<u8>),
}

const WORDS: &[&str] = &[
    "GET",
    "POST",
    "/",
    "/chat?room=1",
    "*",
    "ws://a.example/x",
    "http://a:80",
    "a.example:443",
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
    "origin",
    "a.example",
    "websocket",
    "Upgrade",
    "keep-alive, Upgrade",
    "13",
    "8",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "AAAAAAAAAAAAAAAAAAAAAA==",
    "chat, superchat",
    "chat,,",
    "permessage-deflate; client_max_window_bits",
    "x; y=\"1\", z",
    "0",
    "5",
    "chunked",
    " \t",
    "\u{e9}",
];

impl Choice {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Choice::Known(index, upper) => {
                let word = WORDS[usize::from(*index) % WORDS.len()];
                if *upper {
                    word.to_ascii_uppercase().into_bytes()
                } else {
                    word.as_bytes().to_vec()
                }
            }
            Choice::Raw(bytes) => bytes.clone(),
        }
    }
}

const HANDSHAKE: &[(&str, &str)] = &[
    ("Host", "a.example"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let version = match input.version % 5 {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_2,
        3 => Version::HTTP_3,
        _ => Version::HTTP_11,
    };
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if input.valid_handshake {
        for (name, value) in HANDSHAKE {
            fields.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
    }
    fields.extend(
        input
            .fields
            .iter()
            .map(|(name, value)| (name.bytes(), value.bytes())),
    );
    // What the `http` crate refuses never reaches `check_request`.
    let mut builder = http::Request::builder()
        .method(input.method.bytes().as_slice())
        .uri(input.uri.bytes())
        .version(version);
    for (name, value) in &fields {
        builder = builder.header(name.as_slice(), value.as_slice());
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let limits = match input.limits {
        Some((line, count, bytes)) => HandshakeLimits {
            max_request_line: line.into(),
            max_headers: count.into(),
            max_header_bytes: bytes.into(),
            ..HandshakeLimits::default()
        },
        None => HandshakeLimits::default(),
    };

    // The same request as the peer sent it: fields in their order and letter case (the
    // `HeaderMap` groups repeated names and lowers the case), written independently here.
    let mut head = request.method().as_str().as_bytes().to_vec();
    head.push(b' ');
    head.extend_from_slice(target(request.uri()).as_bytes());
    head.push(b' ');
    head.extend_from_slice(match version {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    });
    head.extend_from_slice(b"\r\n");
    for (name, value) in &fields {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");

    let checked = wsio::http::check_request(&request, &limits);
    let (parts, ()) = request.clone().into_parts();
    assert_eq!(
        wsio::http::check_parts(&parts, &limits),
        checked,
        "check_parts differs from check_request"
    );
    let parsed = RequestParser::new(limits.clone()).receive(&head);
    match (&checked, &parsed) {
        (Ok(checked), Ok(Some(parsed))) => same_request(checked, parsed),
        (Err(checked), Err(parsed)) => {
            assert_eq!(
                checked.status(),
                parsed.status(),
                "statuses differ: {checked:?} and {parsed:?}"
            );
            // Which of the two 431 limits trips first depends on the order of the fields.
            if checked.status() != 431 {
                assert_eq!(normal(checked), normal(parsed), "errors differ");
            }
        }
        _ => panic!("check_request gave {checked:?}, RequestParser {parsed:?} on {head:?}"),
    }

    // The `http` crate's values hold no control byte but tab, so the fields convert, and back.
    let headers = Headers::try_from(request.headers()).expect("HeaderMap to Headers");
    assert_eq!(headers.len(), request.headers().len(), "fields lost");
    let map = HeaderMap::try_from(&headers).expect("Headers to HeaderMap");
    assert_eq!(&map, request.headers(), "HeaderMap does not round trip");

    // A checked request converts to an `http::Request` with the same fields.
    if let Ok(checked) = &checked
        && let Ok(back) = http::Request::<()>::try_from(checked)
    {
        assert_eq!(back.method(), Method::GET);
        // The parser drops the optional whitespace around values (RFC 9110 §5.5).
        let mut trimmed = HeaderMap::new();
        for (name, value) in request.headers() {
            let value = value.as_bytes();
            let value = value
                .iter()
                .position(|&byte| byte != b' ' && byte != b'\t')
                .map_or(&value[value.len()..], |start| &value[start..]);
            let end = value
                .iter()
                .rposition(|&byte| byte != b' ' && byte != b'\t')
                .map_or(0, |end| end + 1);
            let value = http::HeaderValue::from_bytes(&value[..end]).expect("a trimmed value");
            trimmed.append(name, value);
        }
        assert_eq!(back.headers(), &trimmed, "fields changed");
    }

    // Read as what a client should send: whatever converts encodes a request our own server
    // parser takes (forwarded fields may announce a body, which it refuses).
    if let Ok(client) = ClientRequest::try_from(&request) {
        let (bytes, _) = client.encode(&mut Rng::from_seed([0; 32]));
        let unlimited = HandshakeLimits {
            max_request_line: usize::MAX,
            max_headers: usize::MAX,
            max_header_bytes: usize::MAX,
            ..HandshakeLimits::default()
        };
        match RequestParser::new(unlimited).receive(&bytes) {
            Ok(Some(sent)) => {
                assert_eq!(sent.target(), client.resource(), "resource changed");
                assert_eq!(
                    sent.subprotocols(),
                    client_subprotocols(&request).as_slice(),
                    "subprotocols changed"
                );
            }
            Err(HandshakeError::UnexpectedBody) => {}
            other => panic!("our own client request parsed as {other:?}: {bytes:?}"),
        }
    }
});

/// The request target a client writes for `uri`: the origin form, or the whole URI.
fn target(uri: &Uri) -> String {
    if uri.scheme().is_none() && uri.authority().is_none() {
        uri.path_and_query()
            .map_or("/", |target| target.as_str())
            .to_owned()
    } else {
        uri.to_string()
    }
}

/// The subprotocols offered by the request's `Sec-WebSocket-Protocol` fields, in order.
fn client_subprotocols(request: &http::Request<()>) -> Vec<String> {
    request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(|protocol| protocol.trim_matches([' ', '\t']).to_owned())
        .filter(|protocol| !protocol.is_empty())
        .collect()
}

/// The error with field names in lower case (the `HeaderMap` lowers them).
fn normal(error: &HandshakeError) -> HandshakeError {
    match error {
        HandshakeError::InvalidHeaderValue { name } => HandshakeError::InvalidHeaderValue {
            name: name.to_ascii_lowercase(),
        },
        other => other.clone(),
    }
}

/// Two accepted requests carry the same target, key, offers and fields (as multisets: the
/// `HeaderMap` groups repeated names).
fn same_request(checked: &Request, parsed: &Request) {
    assert_eq!(checked.target(), parsed.target(), "targets differ");
    assert_eq!(checked.key(), parsed.key(), "keys differ");
    assert_eq!(
        checked.subprotocols(),
        parsed.subprotocols(),
        "subprotocols"
    );
    assert_eq!(
        checked.extensions(),
        parsed.extensions(),
        "extensions differ"
    );
    assert_eq!(checked.origin(), parsed.origin(), "origins differ");
    let fields = |request: &Request| {
        let mut fields: Vec<(String, Vec<u8>)> = request
            .headers()
            .iter_bytes()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_vec()))
            .collect();
        fields.sort();
        fields
    };
    assert_eq!(fields(checked), fields(parsed), "fields differ");
    assert!(checked.leftover().is_empty() && parsed.leftover().is_empty());
}
