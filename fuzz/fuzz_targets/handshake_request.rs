//! `RequestParser` over arbitrary bytes in arbitrary chunks: the result does not depend on the
//! chunking (the leftover is what followed the head in the chunk that completed it); an error is
//! a request error whose `response()` encodes; an accepted request's `accept` gives a complete
//! 101 that `httparse` reads, with the §4.2.2 `Sec-WebSocket-Accept` for its key. When the
//! request carries the key `ClientRequest` makes from a fixed seed (as a corpus file does), our
//! own `ResponseParser` must accept that 101 too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::Rng;
use wsio::proto::handshake::{
    Accept, ClientRequest, HandshakeError, HandshakeLimits, Request, RequestParser, accept_key,
};
use wsio_fuzz::Split;

fuzz_target!(|input: &[u8]| {
    let Some(split) = Split::new(input) else {
        return;
    };
    let limits = if split.flags & 1 == 0 {
        HandshakeLimits::default()
    } else {
        HandshakeLimits {
            max_request_line: 24,
            max_headers: 6,
            max_header_bytes: 160,
            max_body: 0,
        }
    };
    let data = split.data;

    let mut parser = RequestParser::new(limits.clone());
    let whole = parser.receive(data);
    if whole != Ok(None) {
        assert_eq!(
            parser.receive(b"x"),
            Err(HandshakeError::Finished),
            "parser reused"
        );
    }

    let mut parser = RequestParser::new(limits);
    let mut fed = 0;
    let mut chunked = Ok(None);
    for chunk in split.chunks() {
        fed += chunk.len();
        chunked = parser.receive(chunk);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }

    match (&whole, &chunked) {
        (Ok(None), Ok(None)) => {}
        (Err(error), Err(other)) => {
            assert_eq!(error, other, "chunking changed the error");
            check_error(error);
        }
        (Ok(Some(request)), Ok(Some(other))) => {
            let head_len = data.len() - request.leftover().len();
            assert_eq!(
                &other.leftover()[..],
                &data[head_len..fed],
                "leftover in chunks"
            );
            assert_eq!(other.target(), request.target());
            assert_eq!(other.headers(), request.headers());
            assert_eq!(other.key(), request.key());
            assert_eq!(other.subprotocols(), request.subprotocols());
            assert_eq!(other.extensions(), request.extensions());
            check_accept(request);
        }
        _ => panic!("whole: {whole:?}, in chunks: {chunked:?}"),
    }
});

fn check_error(error: &HandshakeError) {
    let status = error.status();
    assert!(
        matches!(status, 400 | 405 | 414 | 426 | 431),
        "{error:?} is not a request error"
    );
    let reply = error.response().encode();
    assert!(reply.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
}

fn check_accept(request: &Request) {
    assert_eq!(request.method(), "GET");
    let reply = request
        .accept(&Accept::new())
        .expect("accept without a subprotocol");
    check_101(request, &reply, None);
    if let Some(name) = request.subprotocols().first() {
        let reply = request
            .accept(&Accept::new().subprotocol(name.as_str()))
            .expect("offered");
        check_101(request, &reply, Some(name));
    }
    round_trip(request, None);
    if let Some(name) = request.subprotocols().first() {
        round_trip(request, Some(name));
    }
    let unoffered = "not-offered-\u{1}";
    assert_eq!(
        request.accept(&Accept::new().subprotocol(unoffered)),
        Err(HandshakeError::SubprotocolNotOffered {
            name: unoffered.into()
        })
    );
}

/// The seed whose `ClientRequest` key, `m/SaagdV+VOBH84SXyaD1Q==`, the corpus requests carry.
const SEED: [u8; 32] = [0; 32];

/// Accepts with `subprotocol` and feeds the 101 to the `ResponseParser` of a client that sent
/// the same key and offered that subprotocol, if the request's key is the seed's.
fn round_trip(request: &Request, subprotocol: Option<&str>) {
    let mut client = ClientRequest::new("ws://a/").unwrap();
    let mut accept = Accept::new();
    if let Some(name) = subprotocol {
        client = client
            .subprotocol(name)
            .expect("an offered subprotocol is a token");
        accept = accept.subprotocol(name);
    }
    let mut rng = Rng::from_seed(SEED);
    let (offer, mut parser) = client.encode(&mut rng);
    let offer = RequestParser::default().receive(&offer).unwrap().unwrap();
    if offer.key() != request.key() {
        return;
    }
    let reply = request.accept(&accept).unwrap();
    let response = parser
        .receive(&reply)
        .expect("our client refuses our 101")
        .unwrap();
    assert_eq!(response.subprotocol(), subprotocol);
    assert!(response.extensions().is_empty() && response.leftover().is_empty());
}

/// Reads the 101 with httparse and checks its WebSocket headers.
fn check_101(request: &Request, reply: &[u8], subprotocol: Option<&str>) {
    let mut fields = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut fields);
    assert_eq!(
        response.parse(reply),
        Ok(httparse::Status::Complete(reply.len()))
    );
    assert_eq!(response.code, Some(101));
    let value = |name: &str| {
        let mut values = response
            .headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case(name));
        let value = values.next().map(|field| field.value);
        assert!(values.next().is_none(), "{name} twice");
        value
    };
    assert_eq!(value("upgrade"), Some(&b"websocket"[..]));
    assert_eq!(value("connection"), Some(&b"Upgrade"[..]));
    assert_eq!(
        value("sec-websocket-accept"),
        Some(accept_key(request.key().as_bytes()).as_bytes())
    );
    assert_eq!(
        value("sec-websocket-protocol"),
        subprotocol.map(str::as_bytes)
    );
}
