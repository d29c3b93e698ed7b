//! Reading and checking the server's reply to the client's handshake (RFC 6455 §4.1).

use std::mem;

use bytes::{Bytes, BytesMut};

use crate::proto::handshake::error::HandshakeError;
use crate::proto::handshake::headers::{ExtensionOffer, Headers, first_two, parse_extensions};
use crate::proto::handshake::http::{HandshakeLimits, Head, HeadParser};

/// Reads the server's reply to a [`ClientRequest`](super::ClientRequest), which made it with the
/// key and offers to check the reply against.
///
/// Incremental and bounded like [`RequestParser`](crate::proto::handshake::RequestParser). A
/// reply other than 101 is read with its body and reported as [`HandshakeError::Rejected`].
#[derive(Debug)]
pub struct ResponseParser {
    accept: String,
    subprotocols: Vec<String>,
    extension_names: Vec<String>,
    max_body: usize,
    state: State,
}

/// How far the reply has got.
#[derive(Debug)]
enum State {
    Head(HeadParser<u16>),
    Body(RejectedBody),
    Finished,
}

impl ResponseParser {
    /// Returns the parser for the reply to a request that sent the key whose `Sec-WebSocket-Accept`
    /// is `accept` and offered `subprotocols` and the extensions named `extension_names`.
    pub(super) fn new(
        accept: String,
        subprotocols: Vec<String>,
        extension_names: Vec<String>,
        limits: HandshakeLimits,
    ) -> Self {
        Self {
            accept,
            subprotocols,
            extension_names,
            max_body: limits.max_body,
            state: State::Head(HeadParser::response(limits)),
        }
    }

    /// Feeds the next bytes read from the connection.
    ///
    /// Returns `Ok(None)` while the reply is incomplete and the checked [`Response`] once its
    /// head has arrived. A refusal comes back as [`HandshakeError::Rejected`] once its body is
    /// complete: `Content-Length` bytes, or without one, [`max_body`](HandshakeLimits::max_body)
    /// bytes or the end of the stream (see [`receive_eof`](Self::receive_eof)). Bytes after a
    /// refusal's body are dropped. Call it again after a result or an error, and it fails with
    /// [`HandshakeError::Finished`].
    pub fn receive(&mut self, data: &[u8]) -> Result<Option<Response>, HandshakeError> {
        match mem::replace(&mut self.state, State::Finished) {
            State::Head(mut parser) => match parser.receive(data)? {
                None => {
                    self.state = State::Head(parser);
                    Ok(None)
                }
                Some((head, consumed)) if head.start == 101 => self
                    .validate(head, Bytes::copy_from_slice(&data[consumed..]))
                    .map(Some),
                Some((head, consumed)) => {
                    self.receive_body(RejectedBody::new(head, self.max_body), &data[consumed..])
                }
            },
            State::Body(body) => self.receive_body(body, data),
            State::Finished => Err(HandshakeError::Finished),
        }
    }

    /// Reports that the stream ended, and returns why the handshake cannot complete.
    ///
    /// While a refusal's body is being read this is [`HandshakeError::Rejected`] with the body
    /// received so far; before the head is complete it is [`HandshakeError::UnexpectedEof`].
    pub fn receive_eof(&mut self) -> HandshakeError {
        match mem::replace(&mut self.state, State::Finished) {
            State::Head(_) => HandshakeError::UnexpectedEof,
            State::Body(body) => body.into_error(),
            State::Finished => HandshakeError::Finished,
        }
    }

    fn receive_body(
        &mut self,
        mut body: RejectedBody,
        data: &[u8],
    ) -> Result<Option<Response>, HandshakeError> {
        let take = data.len().min(body.wanted - body.body.len());
        body.body.extend_from_slice(&data[..take]);
        if body.body.len() == body.wanted {
            return Err(body.into_error());
        }
        self.state = State::Body(body);
        Ok(None)
    }

    /// Checks a 101 reply against what we sent (§4.1, the client's checks 1 to 6).
    fn validate(&self, head: Head<u16>, leftover: Bytes) -> Result<Response, HandshakeError> {
        let headers = head.headers;
        if !headers.contains_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !headers.contains_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // Fields are read as bytes, so a value that is not UTF-8 cannot hide a second one.
        if first_two(headers.get_all_bytes("sec-websocket-accept"))
            != (Some(self.accept.as_bytes()), None)
        {
            return Err(HandshakeError::InvalidAccept);
        }
        let subprotocol = match first_two(headers.list_bytes("sec-websocket-protocol")) {
            (None, _) => None,
            (Some(name), None) => {
                match self
                    .subprotocols
                    .iter()
                    .find(|offered| offered.as_bytes() == name)
                {
                    Some(offered) => Some(offered.clone()),
                    None => {
                        return Err(HandshakeError::UnexpectedSubprotocol {
                            name: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                }
            }
            (Some(_), Some(_)) => return Err(HandshakeError::MultipleSubprotocols),
        };
        let mut extensions = Vec::new();
        for value in headers.get_all_bytes("sec-websocket-extensions") {
            extensions.extend(parse_extensions(value).ok_or(HandshakeError::MalformedExtensions)?);
        }
        if let Some(unexpected) = extensions.iter().find(|extension| {
            !self
                .extension_names
                .iter()
                .any(|name| name.eq_ignore_ascii_case(extension.name()))
        }) {
            return Err(HandshakeError::UnexpectedExtension {
                name: unexpected.name().to_owned(),
            });
        }
        Ok(Response {
            headers,
            subprotocol,
            extensions,
            leftover,
        })
    }
}

/// The server's acceptance of the handshake (a checked `101 Switching Protocols`).
///
/// It owns the bytes that followed the head, which are the server's first WebSocket frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    headers: Headers,
    subprotocol: Option<String>,
    extensions: Vec<ExtensionOffer>,
    leftover: Bytes,
}

impl Response {
    /// Returns the status code: always 101, since any other comes back as
    /// [`HandshakeError::Rejected`].
    pub fn status(&self) -> u16 {
        101
    }

    /// Returns every header field of the response.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Returns the subprotocol the server chose, always one we offered.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Returns the extensions the server accepted, with the parameters it chose, in its order.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Returns the bytes that arrived after the head: the first WebSocket frames, if any.
    pub fn leftover(&self) -> &Bytes {
        &self.leftover
    }

    /// Returns the bytes that arrived after the head, to hand to the connection.
    pub fn into_leftover(self) -> Bytes {
        self.leftover
    }
}

/// A refusal whose body is still arriving.
#[derive(Debug)]
struct RejectedBody {
    status: u16,
    headers: Headers,
    body: BytesMut,
    /// How many body bytes make it complete.
    wanted: usize,
}

impl RejectedBody {
    fn new(head: Head<u16>, max_body: usize) -> Self {
        let Head {
            start: status,
            headers,
        } = head;
        // RFC 9112 §6.3: these never have a body; with Transfer-Encoding, or without a valid
        // Content-Length, the body runs to the end of the stream.
        let wanted = if status < 200 || status == 204 || status == 304 {
            0
        } else if headers.get_bytes("transfer-encoding").is_some() {
            max_body
        } else {
            content_length(&headers).unwrap_or(max_body).min(max_body)
        };
        Self {
            status,
            headers,
            body: BytesMut::new(),
            wanted,
        }
    }

    fn into_error(self) -> HandshakeError {
        HandshakeError::Rejected {
            status: self.status,
            headers: self.headers,
            body: self.body.freeze(),
        }
    }
}

/// Returns the `Content-Length`, if every value given is the same number.
fn content_length(headers: &Headers) -> Option<usize> {
    let mut lengths = headers.list_bytes("content-length");
    let first = lengths.next()?;
    if !first.iter().all(u8::is_ascii_digit) || lengths.any(|other| other != first) {
        return None;
    }
    // All digits, so the only failure is overflow: a length too big to keep anyway.
    Some(
        std::str::from_utf8(first)
            .ok()
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(usize::MAX),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::Rng;
    use crate::proto::handshake::{Accept, ClientRequest, RequestParser, accept_key};

    const SEED: [u8; 32] = [7; 32];

    fn offer() -> ClientRequest {
        ClientRequest::new("ws://example.com/chat")
            .unwrap()
            .subprotocol("chat")
            .unwrap()
            .subprotocol("superchat")
            .unwrap()
            .extension("permessage-deflate; client_max_window_bits")
            .unwrap()
    }

    /// Returns the parser for `offer` and the accept value a correct server sends.
    fn start(offer: &ClientRequest) -> (ResponseParser, String) {
        let (bytes, parser) = offer.encode(&mut Rng::from_seed(SEED));
        let request = RequestParser::default().receive(&bytes).unwrap().unwrap();
        (parser, accept_key(request.key().as_bytes()))
    }

    /// A 101 response with the correct accept value, without the fields named in `drop`, plus
    /// the raw `extra` lines.
    fn switching(accept: &str, drop: &[&str], extra: &[&str]) -> Vec<u8> {
        let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        let standard = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept),
        ];
        for (name, value) in standard {
            if !drop.contains(&name) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    fn complete(parser: &mut ResponseParser, data: &[u8]) -> Result<Response, HandshakeError> {
        parser
            .receive(data)
            .map(|response| response.expect("a complete response"))
    }

    #[test]
    fn round_trip_through_the_server_parser() {
        let (bytes, mut parser) = offer().encode(&mut Rng::from_seed(SEED));
        let request = RequestParser::default().receive(&bytes).unwrap().unwrap();
        assert_eq!(request.target(), "/chat");
        assert_eq!(request.subprotocols(), ["chat", "superchat"]);
        assert_eq!(
            request.extensions()[0].to_string(),
            "permessage-deflate; client_max_window_bits"
        );
        let accept = Accept::new()
            .subprotocol("superchat")
            .header(
                "Sec-WebSocket-Extensions",
                &request.extensions()[0].to_string(),
            )
            .unwrap();
        let reply = request.accept(&accept).unwrap();
        let frames = [0x81, 0x02, b'h', b'i'];
        let data = [&reply[..], &frames].concat();

        let response = complete(&mut parser, &data).unwrap();
        assert_eq!(response.status(), 101);
        assert_eq!(response.subprotocol(), Some("superchat"));
        assert_eq!(response.extensions().len(), 1);
        assert_eq!(response.extensions()[0].name(), "permessage-deflate");
        assert_eq!(response.headers().get("upgrade"), Some("websocket"));
        assert_eq!(response.leftover()[..], frames);
        assert_eq!(parser.receive(b"more"), Err(HandshakeError::Finished));

        // One byte at a time the head ends on a chunk boundary; a cut inside the frames keeps
        // the start of them.
        let (_, mut parser) = offer().encode(&mut Rng::from_seed(SEED));
        let (last, head) = reply.split_last().unwrap();
        for byte in head {
            assert_eq!(parser.receive(&[*byte]), Ok(None));
        }
        let response = complete(&mut parser, &[*last, frames[0], frames[1]]).unwrap();
        assert_eq!(response.into_leftover()[..], frames[..2]);
    }

    #[test]
    fn bad_acceptances_are_refused() {
        let (_, accept) = start(&offer());
        let wrong = accept_key(b"x3JJHMbDL1EzLkh9GBhXDw==");
        let cases = [
            (switching(&wrong, &[], &[]), HandshakeError::InvalidAccept),
            (
                switching(&accept, &["Sec-WebSocket-Accept"], &[]),
                HandshakeError::InvalidAccept,
            ),
            (
                switching(&accept, &[], &[&format!("Sec-WebSocket-Accept: {accept}")]),
                HandshakeError::InvalidAccept,
            ),
            (
                switching(&accept, &["Upgrade"], &[]),
                HandshakeError::MissingUpgrade,
            ),
            (
                switching(&accept, &["Upgrade"], &["Upgrade: h2c"]),
                HandshakeError::MissingUpgrade,
            ),
            (
                switching(&accept, &["Connection"], &[]),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                switching(&accept, &[], &["Sec-WebSocket-Protocol: superduperchat"]),
                HandshakeError::UnexpectedSubprotocol {
                    name: "superduperchat".into(),
                },
            ),
            (
                switching(&accept, &[], &["Sec-WebSocket-Protocol: chat, superchat"]),
                HandshakeError::MultipleSubprotocols,
            ),
            (
                switching(
                    &accept,
                    &[],
                    &[
                        "Sec-WebSocket-Protocol: chat",
                        "Sec-WebSocket-Protocol: chat",
                    ],
                ),
                HandshakeError::MultipleSubprotocols,
            ),
            (
                switching(
                    &accept,
                    &[],
                    &["Sec-WebSocket-Extensions: permessage-deflate, x-webkit-deflate-frame"],
                ),
                HandshakeError::UnexpectedExtension {
                    name: "x-webkit-deflate-frame".into(),
                },
            ),
            (
                switching(
                    &accept,
                    &[],
                    &["Sec-WebSocket-Extensions: permessage-deflate;"],
                ),
                HandshakeError::MalformedExtensions,
            ),
            (
                b"HTTP/1.1 10 Switching Protocols\r\n\r\n".to_vec(),
                HandshakeError::MalformedStatusLine,
            ),
            (
                b"HTTP/2 101\r\n\r\n".to_vec(),
                HandshakeError::MalformedStatusLine,
            ),
            (
                b"HTTP/1.1 101x\r\n\r\n".to_vec(),
                HandshakeError::MalformedStatusLine,
            ),
            (
                b"HTTP/1.1 099 Odd\r\n\r\n".to_vec(),
                HandshakeError::MalformedStatusLine,
            ),
            (
                b"ICY 200 OK\r\n\r\n".to_vec(),
                HandshakeError::MalformedStatusLine,
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\n\n".to_vec(),
                HandshakeError::InvalidLineEnding,
            ),
        ];
        for (data, expected) in cases {
            let shown = String::from_utf8_lossy(&data).into_owned();
            let (mut parser, _) = start(&offer());
            assert_eq!(parser.receive(&data), Err(expected), "{shown}");
        }
        let mut long = vec![b'x'; 9000];
        long.splice(..0, *b"HTTP/1.1 101 ");
        let (mut parser, _) = start(&offer());
        assert_eq!(
            parser.receive(&long),
            Err(HandshakeError::StatusLineTooLong)
        );
    }

    #[test]
    fn good_acceptances_are_taken() {
        let (_, accept) = start(&offer());
        for extra in [
            &[
                "Sec-WebSocket-Protocol: chat",
                "Sec-WebSocket-Extensions: Permessage-Deflate",
            ][..],
            &["Sec-WebSocket-Protocol:", "Connection: keep-alive"],
            &["Upgrade: WebSocket", "Connection: keep-alive, UPGRADE"],
        ] {
            let (mut parser, _) = start(&offer());
            let data = switching(&accept, &[], extra);
            assert!(
                complete(&mut parser, &data).is_ok(),
                "{}",
                String::from_utf8_lossy(&data)
            );
        }
        let (mut parser, _) = start(&offer());
        let bare = format!(
            "HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        assert_eq!(
            complete(&mut parser, bare.as_bytes())
                .unwrap()
                .subprotocol(),
            None
        );
    }

    /// A 101 with the correct accept value and the raw `extra` line, which may hold any bytes.
    fn switching_with_bytes(accept: &str, extra: &[u8]) -> Vec<u8> {
        let mut head = switching(accept, &[], &[]);
        head.truncate(head.len() - 2);
        head.extend_from_slice(extra);
        head.extend_from_slice(b"\r\n\r\n");
        head
    }

    #[test]
    fn obs_text_in_responses() {
        let (_, accept) = start(&offer());
        let (mut parser, _) = start(&offer());
        let data = switching_with_bytes(&accept, b"Set-Cookie: name=caf\xe9");
        let response = complete(&mut parser, &data).unwrap();
        assert_eq!(
            response.headers().get_bytes("set-cookie"),
            Some(&b"name=caf\xe9"[..])
        );
        assert_eq!(response.headers().get("set-cookie"), None);

        // Not in the handshake's own headers, and a field that is not UTF-8 still counts.
        for (extra, expected) in [
            (
                &b"Sec-WebSocket-Accept: \xe9"[..],
                HandshakeError::InvalidAccept,
            ),
            (
                b"Sec-WebSocket-Protocol: chat, \xe9",
                HandshakeError::MultipleSubprotocols,
            ),
            (
                b"Sec-WebSocket-Protocol: caf\xe9",
                HandshakeError::UnexpectedSubprotocol {
                    name: "caf\u{fffd}".into(),
                },
            ),
            (
                b"Sec-WebSocket-Extensions: permessage-deflate; x=\xe9",
                HandshakeError::MalformedExtensions,
            ),
            (
                b"Set-Cookie: caf\xe9\x7f",
                HandshakeError::InvalidHeaderValue {
                    name: "Set-Cookie".into(),
                },
            ),
        ] {
            let (mut parser, _) = start(&offer());
            let data = switching_with_bytes(&accept, extra);
            assert_eq!(
                parser.receive(&data),
                Err(expected),
                "{}",
                String::from_utf8_lossy(extra)
            );
        }

        let (mut parser, _) = start(&offer());
        let refusal =
            b"HTTP/1.1 403 Forbidden\r\nX-Reason: \xabnon\xbb\r\nContent-Length: 0\r\n\r\n";
        let Err(HandshakeError::Rejected { headers, .. }) = parser.receive(refusal) else {
            panic!("a refusal");
        };
        assert_eq!(headers.get_bytes("x-reason"), Some(&b"\xabnon\xbb"[..]));
    }

    #[test]
    fn redirect_is_returned_with_its_headers_and_body() {
        let reply = b"HTTP/1.1 302 Found\r\nLocation: ws://elsewhere.example/\r\nContent-Length: 11\r\n\r\nmoved away!ignored";
        for size in [1, 5, reply.len()] {
            let (mut parser, _) = start(&offer());
            let error = reply
                .chunks(size)
                .find_map(|chunk| parser.receive(chunk).err())
                .unwrap();
            let HandshakeError::Rejected {
                status,
                headers,
                body,
            } = error
            else {
                panic!("not a refusal: {error:?}");
            };
            assert_eq!(status, 302);
            assert_eq!(headers.get("location"), Some("ws://elsewhere.example/"));
            assert_eq!(&body[..], b"moved away!");
        }
    }

    #[test]
    fn refusal_bodies_without_a_length_end_with_the_stream() {
        let (mut parser, _) = start(&offer());
        assert_eq!(
            parser.receive(b"HTTP/1.1 403 Forbidden\r\n\r\nno "),
            Ok(None)
        );
        assert_eq!(parser.receive(b"entry"), Ok(None));
        let HandshakeError::Rejected { status, body, .. } = parser.receive_eof() else {
            panic!()
        };
        assert_eq!((status, &body[..]), (403, &b"no entry"[..]));
        assert_eq!(parser.receive_eof(), HandshakeError::Finished);

        // Cut short by the stream: what arrived is kept.
        let (mut parser, _) = start(&offer());
        assert_eq!(
            parser.receive(b"HTTP/1.1 500 Oops\r\nContent-Length: 10\r\n\r\nab"),
            Ok(None)
        );
        let HandshakeError::Rejected { body, .. } = parser.receive_eof() else {
            panic!()
        };
        assert_eq!(&body[..], b"ab");

        // No body at all.
        let (mut parser, _) = start(&offer());
        let error = parser
            .receive(b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n")
            .unwrap_err();
        assert!(
            matches!(error, HandshakeError::Rejected { status: 204, ref body, .. } if body.is_empty())
        );
    }

    #[test]
    fn refusal_bodies_are_bounded() {
        let limits = HandshakeLimits {
            max_body: 4,
            ..HandshakeLimits::default()
        };
        for head in [
            &b"HTTP/1.1 400 Bad\r\nContent-Length: 100\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad\r\n\r\n",
        ] {
            let (_, mut parser) = offer()
                .limits(limits.clone())
                .encode(&mut Rng::from_seed(SEED));
            assert_eq!(parser.receive(head), Ok(None));
            let error = parser.receive(b"0123456789").unwrap_err();
            assert!(
                matches!(error, HandshakeError::Rejected { ref body, .. } if &body[..] == b"0123")
            );
        }
    }

    #[test]
    fn eof_before_the_head_is_an_error() {
        let (mut parser, _) = start(&offer());
        assert_eq!(parser.receive(b"HTTP/1.1 101 Switching"), Ok(None));
        assert_eq!(parser.receive_eof(), HandshakeError::UnexpectedEof);
        assert_eq!(parser.receive(b"\r\n"), Err(HandshakeError::Finished));
    }

    /// A valid response to `offer()` and the bytes after it.
    /// Extra fields' values may hold obs-text, UTF-8 or not.
    fn valid_response() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let value_byte = prop_oneof![3 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff];
        (
            proptest::collection::vec(
                (
                    "X-[A-Za-z0-9-]{1,12}",
                    proptest::collection::vec(value_byte, 0..20),
                ),
                0..6,
            ),
            proptest::option::of(prop::sample::select(vec!["chat", "superchat"])),
            proptest::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(|(fields, subprotocol, tail)| {
                let (_, accept) = start(&offer());
                let protocol: Vec<String> = subprotocol
                    .map(|name| format!("Sec-WebSocket-Protocol: {name}"))
                    .into_iter()
                    .collect();
                let protocol: Vec<&str> = protocol.iter().map(String::as_str).collect();
                let mut head = switching(&accept, &[], &protocol);
                head.truncate(head.len() - 2);
                for (name, value) in fields {
                    head.extend_from_slice(format!("{name}: ").as_bytes());
                    head.extend_from_slice(&value);
                    head.extend_from_slice(b"\r\n");
                }
                head.extend_from_slice(b"\r\n");
                (head, tail)
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            size in 1..64usize,
            prefix in any::<bool>(),
        ) {
            let (mut parser, _) = start(&offer());
            let data = if prefix { [&b"HTTP/1.1 "[..], &data].concat() } else { data };
            for chunk in data.chunks(size) {
                if !matches!(parser.receive(chunk), Ok(None)) {
                    break;
                }
            }
            let _ = parser.receive_eof();
        }

        #[test]
        fn splitting_does_not_change_the_response((head, tail) in valid_response(), size in 1..40usize) {
            let data = [head.as_slice(), &tail].concat();
            let (mut parser, _) = start(&offer());
            let whole = complete(&mut parser, &data).unwrap();
            prop_assert_eq!(&whole.leftover()[..], &tail[..]);
            let (mut parser, _) = start(&offer());
            let mut chunks = data.chunks(size);
            let chunked = chunks.by_ref().find_map(|chunk| parser.receive(chunk).unwrap()).unwrap();
            let rest: Vec<u8> = chunked.leftover().iter().copied().chain(chunks.flatten().copied()).collect();
            prop_assert_eq!(rest, tail);
            prop_assert_eq!(chunked.headers(), whole.headers());
            prop_assert_eq!(chunked.subprotocol(), whole.subprotocol());
        }
    }
}
