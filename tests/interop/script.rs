//! The exchange every agent goes through, driven from the wsio side through either adapter.

use std::fmt;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use wsio::proto::deflate::DeflateParams;
use wsio::proto::{Event, Role};
use wsio::{CloseCode, CloseFrame, Message};

use super::peer::Peer;
use super::traffic::{Counted, Traffic};

/// The blocking adapter's stream.
pub type SyncStream = Counted<TcpStream>;
/// The tokio adapter's stream.
pub type TokioStream = Counted<tokio::net::TcpStream>;

/// How long wsio waits for one event through the tokio adapter. (The blocking adapter needs no
/// such bound: a peer gives up by itself, and its exit ends the connection.)
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Similar JSON messages, sent back to back: with context takeover each refers to the last.
const JSON_MESSAGES: usize = 300;

/// permessage-deflate parameters in force, as wsio and the peers report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
}

impl From<&DeflateParams> for Agreed {
    fn from(params: &DeflateParams) -> Self {
        Self {
            server_no_context_takeover: params.server_no_context_takeover(),
            client_no_context_takeover: params.client_no_context_takeover(),
            server_max_window_bits: params.server_max_window_bits(),
            client_max_window_bits: params.client_max_window_bits(),
        }
    }
}

impl fmt::Display for Agreed {
    /// The form of the peers' `deflate` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server_no_context_takeover={} client_no_context_takeover={} \
             server_max_window_bits={} client_max_window_bits={}",
            u8::from(self.server_no_context_takeover),
            u8::from(self.client_no_context_takeover),
            self.server_max_window_bits,
            self.client_max_window_bits,
        )
    }
}

/// A wsio connection through one of the adapters, with every failure a panic.
pub trait Ws {
    fn send(&mut self, message: Message);
    /// Queues every message, then writes them out together.
    fn send_all(&mut self, messages: &[Message]);
    fn ping(&mut self, data: Bytes);
    fn close(&mut self, frame: CloseFrame);
    fn next_event(&mut self) -> Event;
    fn deflate(&self) -> Option<DeflateParams>;
    fn role(&self) -> Role;
    fn traffic(&self) -> Traffic;
}

/// The blocking adapter.
pub struct SyncWs(wsio::sync::WebSocket<SyncStream>);

impl SyncWs {
    pub fn new(ws: wsio::sync::WebSocket<SyncStream>) -> Self {
        Self(ws)
    }
}

impl Ws for SyncWs {
    fn send(&mut self, message: Message) {
        self.0.send(message).expect("sync send");
    }

    fn send_all(&mut self, messages: &[Message]) {
        for message in messages {
            self.0.write(message.clone()).expect("sync write");
        }
        self.0.flush().expect("sync flush");
    }

    fn ping(&mut self, data: Bytes) {
        self.0.ping(data).expect("sync ping");
    }

    fn close(&mut self, frame: CloseFrame) {
        self.0.close(Some(frame)).expect("sync close");
    }

    fn next_event(&mut self) -> Event {
        self.0
            .read_event()
            .expect("sync read")
            .expect("an event before the end")
    }

    fn deflate(&self) -> Option<DeflateParams> {
        self.0.connection().deflate_params().copied()
    }

    fn role(&self) -> Role {
        self.0.connection().role()
    }

    fn traffic(&self) -> Traffic {
        self.0.get_ref().traffic()
    }
}

/// A current-thread runtime for one tokio connection.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The tokio adapter (or a framework's socket built on it, over any transport), each call run
/// to completion on its own runtime.
pub struct TokioWs<S> {
    runtime: tokio::runtime::Runtime,
    ws: wsio::tokio::WebSocketStream<S>,
    /// What crossed the transport so far.
    traffic: Box<dyn Fn(&S) -> Traffic>,
}

impl TokioWs<TokioStream> {
    pub fn new(
        runtime: tokio::runtime::Runtime,
        ws: wsio::tokio::WebSocketStream<TokioStream>,
    ) -> Self {
        Self::counted_by(runtime, ws, Counted::traffic)
    }
}

impl<S> TokioWs<S> {
    /// Over a transport whose traffic `traffic` reads.
    pub fn counted_by(
        runtime: tokio::runtime::Runtime,
        ws: wsio::tokio::WebSocketStream<S>,
        traffic: impl Fn(&S) -> Traffic + 'static,
    ) -> Self {
        Self {
            runtime,
            ws,
            traffic: Box::new(traffic),
        }
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Ws for TokioWs<S> {
    fn send(&mut self, message: Message) {
        self.runtime
            .block_on(self.ws.send(message))
            .expect("tokio send");
    }

    fn send_all(&mut self, messages: &[Message]) {
        self.runtime.block_on(async {
            for message in messages {
                self.ws.write(message.clone()).await.expect("tokio write");
            }
            self.ws.flush().await.expect("tokio flush");
        });
    }

    fn ping(&mut self, data: Bytes) {
        self.runtime
            .block_on(self.ws.ping(data))
            .expect("tokio ping");
    }

    fn close(&mut self, frame: CloseFrame) {
        self.runtime
            .block_on(self.ws.close(Some(frame)))
            .expect("tokio close");
    }

    fn next_event(&mut self) -> Event {
        // The timer is made inside the runtime, whose clock it needs.
        self.runtime
            .block_on(async { tokio::time::timeout(EVENT_TIMEOUT, self.ws.read_event()).await })
            .expect("an event in time")
            .expect("tokio read")
            .expect("an event before the end")
    }

    fn deflate(&self) -> Option<DeflateParams> {
        self.ws.connection().deflate_params().copied()
    }

    fn role(&self) -> Role {
        self.ws.connection().role()
    }

    fn traffic(&self) -> Traffic {
        (self.traffic)(self.ws.get_ref())
    }
}

/// Checks the agreement on both sides, runs the whole exchange and the closing handshake, and
/// returns how many data messages wsio sent.
///
/// `answer` is the `Sec-WebSocket-Extensions` response header as wsio sent or received it.
pub fn check_exchange(
    ws: &mut dyn Ws,
    peer: &mut Peer,
    agreed: Option<Agreed>,
    answer: Option<String>,
    wsio_closes: bool,
) -> usize {
    let peer_header = peer.line("extensions");
    let peer_view = peer.line("deflate");
    assert_eq!(
        ws.deflate().as_ref().map(Agreed::from),
        agreed,
        "wsio's agreement"
    );
    let expected_view = agreed.map_or_else(|| "none".to_owned(), |agreed| agreed.to_string());
    assert_eq!(peer_view, expected_view, "the peer's agreement");
    assert_eq!(
        peer_header,
        answer.as_deref().unwrap_or("none"),
        "the response header as the peer and wsio saw it"
    );
    assert_eq!(
        answer.is_some(),
        agreed.is_some(),
        "an extension answered: {answer:?}"
    );

    let mut exchange = Exchange {
        ws,
        sent: 0,
        sent_payload: 0,
        received_payload: 0,
    };
    for message in single_messages() {
        exchange.send(message.clone());
        exchange.expect_message(&message);
    }

    let batch = json_messages();
    exchange.send_all(&batch);
    for message in &batch {
        exchange.expect_message(message);
    }

    // The peer sends the last message it echoed again, as fragments; text is split at bytes by
    // Node (inside code points) and at characters by Python.
    for (message, fragments) in [
        (fragmented_text(), 4),
        (Message::binary(random(10 << 10, 7)), 3),
    ] {
        exchange.send(message.clone());
        exchange.expect_message(&message);
        exchange.send(Message::text(format!("interop:fragment {fragments}")));
        exchange.expect_message(&message);
    }

    exchange.ws.ping(Bytes::from_static(b"wsio ping"));
    assert_eq!(
        exchange.ws.next_event(),
        Event::Pong(Bytes::from_static(b"wsio ping"))
    );
    exchange.send(Message::text("interop:ping peer ping"));
    assert_eq!(
        exchange.ws.next_event(),
        Event::Ping(Bytes::from_static(b"peer ping"))
    );
    exchange.expect_message(&Message::text("interop:pong peer ping"));

    let reason = if wsio_closes {
        exchange
            .ws
            .close(CloseFrame::new(CloseCode::NORMAL, "bye from wsio ✓"));
        "bye from wsio ✓"
    } else {
        exchange.send(Message::text("interop:close bye from the peer ✓"));
        "bye from the peer ✓"
    };
    // Node and Python echo the reason with the code; wsio echoes the code alone.
    match exchange.ws.next_event() {
        Event::Closed(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::NORMAL);
            assert_eq!(frame.reason, reason);
        }
        other => panic!("expected the close, got {}", describe_event(&other)),
    }
    exchange.check_compression();
    exchange.sent
}

/// The wsio side of one exchange, counting what goes each way.
struct Exchange<'a> {
    ws: &'a mut dyn Ws,
    /// Data messages sent.
    sent: usize,
    /// Their payload bytes.
    sent_payload: u64,
    /// Payload bytes of the data messages received.
    received_payload: u64,
}

impl Exchange<'_> {
    fn send(&mut self, message: Message) {
        self.sent += 1;
        self.sent_payload += message.len() as u64;
        self.ws.send(message);
    }

    fn send_all(&mut self, messages: &[Message]) {
        self.sent += messages.len();
        self.sent_payload += messages.iter().map(|m| m.len() as u64).sum::<u64>();
        self.ws.send_all(messages);
    }

    fn expect_message(&mut self, expected: &Message) {
        match self.ws.next_event() {
            Event::Message(message) => {
                let first_difference = message
                    .as_bytes()
                    .iter()
                    .zip(expected.as_bytes())
                    .position(|(got, wanted)| got != wanted);
                assert!(
                    message == *expected,
                    "expected {}, got {} (first difference at {first_difference:?})",
                    describe(expected),
                    describe(&message)
                );
                self.received_payload += message.len() as u64;
            }
            other => panic!(
                "expected {}, got {}",
                describe(expected),
                describe_event(&other)
            ),
        }
    }

    /// Checks from the bytes on the wire that each side compressed when deflate was agreed,
    /// and that nothing was otherwise: the 256 KiB of text alone deflate by more than `SAVED`,
    /// and uncompressed, framing and the handshake only add bytes. A wsio held to an 8-bit
    /// window sends stored blocks, which do not compress (see `wsio::proto::deflate`).
    fn check_compression(&self) {
        let params = self.ws.deflate();
        let peer_compresses = params.is_some();
        let wsio_compresses =
            params.is_some_and(|params| params.compressor_window_bits(self.ws.role()) > 8);
        const SAVED: u64 = 128 << 10;
        let traffic = self.ws.traffic();
        eprintln!(
            "wsio wrote {} bytes for {} of payload, read {} for {}",
            traffic.written, self.sent_payload, traffic.read, self.received_payload
        );
        if wsio_compresses {
            assert!(
                traffic.written + SAVED < self.sent_payload,
                "wsio did not compress: {traffic:?}"
            );
        } else {
            assert!(traffic.written > self.sent_payload, "{traffic:?}");
        }
        if peer_compresses {
            assert!(
                traffic.read + SAVED < self.received_payload,
                "the peer did not compress: {traffic:?}"
            );
        } else {
            assert!(traffic.read > self.received_payload, "{traffic:?}");
        }
    }
}

/// Checks what the peer received and how it saw the close, then that it exits by itself with
/// success. The peer reports once the transport is closed: drop the wsio side first.
pub fn check_peer_end(mut peer: Peer, sent: usize, wsio_closes: bool) {
    assert_eq!(
        peer.line("received"),
        sent.to_string(),
        "messages the peer received"
    );
    let expected = if wsio_closes {
        "1000 bye from wsio ✓"
    } else {
        "1000 bye from the peer ✓" // wsio's echo: the peer's code and reason
    };
    assert_eq!(
        peer.line("closed"),
        expected,
        "the close as the peer saw it"
    );
    peer.wait_success();
}

/// A message's kind, length and first bytes, instead of up to 256 KiB of them.
fn describe(message: &Message) -> String {
    let bytes = message.as_bytes();
    let head = &bytes[..bytes.len().min(24)];
    match message.as_text() {
        Some(text) => format!(
            "text of {} bytes starting {:?}",
            bytes.len(),
            text.chars().take(24).collect::<String>()
        ),
        None => format!("binary of {} bytes starting {head:02x?}", bytes.len()),
    }
}

fn describe_event(event: &Event) -> String {
    match event {
        Event::Message(message) => describe(message),
        other => format!("{other:?}"),
    }
}

/// The messages echoed one at a time.
fn single_messages() -> Vec<Message> {
    vec![
        // Below wsio's 32-byte threshold: sent plain, echoed compressed by the peers.
        Message::text("héllo wörld ✓ 🚀"),
        Message::text("Grüße aus Köln — ünïcödé über alles ✓ 🚀, and some ASCII to pass 32 bytes"),
        Message::text(""),
        Message::binary(Bytes::new()),
        Message::text(compressible_text(256 << 10)),
        Message::binary(random(100 << 10, 1)),
    ]
}

/// Text that deflates to a small fraction of its length.
fn compressible_text(len: usize) -> String {
    let mut text = String::with_capacity(len + 64);
    let mut line = 0;
    while text.len() < len {
        text.push_str(&format!(
            "line {line}: the quick brown fox jumps over the lazy dog\n"
        ));
        line += 1;
    }
    text.truncate(len); // ASCII, so any length is a character boundary
    text
}

/// Bytes that do not deflate: xorshift64* output from a fixed seed.
fn random(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(len);
    bytes.into()
}

fn json_messages() -> Vec<Message> {
    (0..JSON_MESSAGES)
        .map(|id| {
            Message::text(format!(
                r#"{{"id":{id},"user":"user-{}","event":"price-update","symbol":"WSIO","price":{}.{:02},"tags":["interop","deflate"]}}"#,
                id % 7,
                100 + id * 37 % 50,
                id * 13 % 100
            ))
        })
        .collect()
}

/// About 3 KiB of text with multi-byte characters throughout.
fn fragmented_text() -> Message {
    let text: String = (0..120)
        .map(|i| format!("fragment ünïcödé ✓ {i}; "))
        .collect();
    Message::text(text)
}
