//! `ResponseParser` (from `ClientRequest::encode` with a fixed seed, so the corpus can hold the
//! matching `Sec-WebSocket-Accept`) over arbitrary bytes in arbitrary chunks: the result,
//! including the end-of-stream error and a refusal's body, does not depend on the chunking; an
//! error is a response error; an accepted response only names what was offered; and the parser
//! refuses to be used again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::Rng;
use wsio::proto::handshake::{
    ClientRequest, HandshakeError, HandshakeLimits, Response, ResponseParser,
};
use wsio_fuzz::Split;

/// The seed behind the corpus's `Sec-WebSocket-Accept: Zd2/Oq/gFIbu0WYhRHCuve8RI2M=`.
const SEED: [u8; 32] = [0; 32];

fuzz_target!(|input: &[u8]| {
    let Some(split) = Split::new(input) else {
        return;
    };
    let offers_protocols = split.flags & 0b01 != 0;
    let offers_deflate = split.flags & 0b10 != 0;
    let limits = if split.flags & 0b100 == 0 {
        HandshakeLimits::default()
    } else {
        HandshakeLimits {
            max_request_line: 20,
            max_headers: 6,
            max_header_bytes: 200,
            max_body: 8,
        }
    };
    let new_parser = || {
        let mut request = ClientRequest::new("ws://a/")
            .unwrap()
            .limits(limits.clone());
        if offers_protocols {
            request = request
                .subprotocol("chat")
                .unwrap()
                .subprotocol("superchat")
                .unwrap();
        }
        if offers_deflate {
            request = request
                .extension("permessage-deflate; client_max_window_bits")
                .unwrap();
        }
        request.encode(&mut Rng::from_seed(SEED)).1
    };
    let data = split.data;

    let mut parser = new_parser();
    let whole = parser.receive(data);
    let whole = finish(&mut parser, whole);

    let mut parser = new_parser();
    let mut fed = 0;
    let mut chunked = Ok(None);
    for chunk in split.chunks() {
        fed += chunk.len();
        chunked = parser.receive(chunk);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }
    let chunked = finish(&mut parser, chunked);

    match (&whole, &chunked) {
        (Err(error), Err(other)) => {
            assert_eq!(error, other, "chunking changed the error");
            check_error(error, limits.max_body);
        }
        (Ok(response), Ok(other)) => {
            let head_len = data.len() - response.leftover().len();
            assert_eq!(
                &other.leftover()[..],
                &data[head_len..fed],
                "leftover in chunks"
            );
            assert_eq!(other.headers(), response.headers());
            assert_eq!(other.subprotocol(), response.subprotocol());
            assert_eq!(other.extensions(), response.extensions());
            check_response(response, offers_protocols, offers_deflate);
        }
        _ => panic!("whole: {whole:?}, in chunks: {chunked:?}"),
    }
});

/// Ends the stream if the response is still incomplete, then checks the parser is spent.
fn finish(
    parser: &mut ResponseParser,
    result: Result<Option<Response>, HandshakeError>,
) -> Result<Response, HandshakeError> {
    let result = match result {
        Ok(None) => Err(parser.receive_eof()),
        Ok(Some(response)) => Ok(response),
        Err(error) => Err(error),
    };
    assert_eq!(
        parser.receive(b"x"),
        Err(HandshakeError::Finished),
        "parser reused"
    );
    assert_eq!(
        parser.receive_eof(),
        HandshakeError::Finished,
        "parser reused"
    );
    result
}

fn check_error(error: &HandshakeError, max_body: usize) {
    let possible = match error {
        HandshakeError::Rejected { status, body, .. } => {
            (100..=999).contains(status) && *status != 101 && body.len() <= max_body
        }
        HandshakeError::MalformedStatusLine
        | HandshakeError::StatusLineTooLong
        | HandshakeError::InvalidLineEnding
        | HandshakeError::ObsoleteLineFolding
        | HandshakeError::MissingColon
        | HandshakeError::WhitespaceBeforeColon
        | HandshakeError::InvalidHeaderName
        | HandshakeError::InvalidHeaderValue { .. }
        | HandshakeError::TooManyHeaders
        | HandshakeError::HeadersTooLarge
        | HandshakeError::MissingUpgrade
        | HandshakeError::MissingConnectionUpgrade
        | HandshakeError::MalformedExtensions
        | HandshakeError::InvalidAccept
        | HandshakeError::UnexpectedSubprotocol { .. }
        | HandshakeError::MultipleSubprotocols
        | HandshakeError::UnexpectedExtension { .. }
        | HandshakeError::UnexpectedEof => true,
        _ => false,
    };
    assert!(possible, "{error:?} is not a response error");
}

fn check_response(response: &Response, offers_protocols: bool, offers_deflate: bool) {
    assert_eq!(response.status(), 101);
    if let Some(name) = response.subprotocol() {
        assert!(
            offers_protocols && ["chat", "superchat"].contains(&name),
            "chose {name}"
        );
    }
    for extension in response.extensions() {
        assert!(offers_deflate, "chose {extension}");
        assert!(
            extension.name().eq_ignore_ascii_case("permessage-deflate"),
            "chose {extension}"
        );
    }
}
