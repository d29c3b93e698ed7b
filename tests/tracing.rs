//! The `tracing` feature: connection lifecycle events (handshake, close both ways, protocol
//! errors, timeouts) at debug level, and none per message.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Level, Metadata, Subscriber};
use wsio::proto::handshake::{Accept, ClientRequest, Reject};
use wsio::{CloseCode, CloseFrame, Error, Message, Options};

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// One event the crate emitted: its level, message and other fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Logged {
    target: String,
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Logged {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn role(&self) -> Option<&str> {
        self.field("role")
    }
}

/// A subscriber that records every event of the crate; shared by the threads of one test.
#[derive(Clone, Default)]
struct Collector {
    events: Arc<Mutex<Vec<Logged>>>,
}

impl Collector {
    fn dispatch(&self) -> Dispatch {
        Dispatch::new(self.clone())
    }

    fn events(&self) -> Vec<Logged> {
        self.events.lock().unwrap().clone()
    }

    /// The events with `message` emitted by `role`.
    fn find(&self, role: &str, message: &str) -> Vec<Logged> {
        self.events()
            .into_iter()
            .filter(|event| event.message == message && event.role() == Some(role))
            .collect()
    }

    /// The one event with `message` emitted by `role`.
    fn one(&self, role: &str, message: &str) -> Logged {
        let found = self.find(role, message);
        assert_eq!(
            found.len(),
            1,
            "one {role} {message:?} expected in {:#?}",
            self.events()
        );
        found.into_iter().next().unwrap()
    }
}

impl Subscriber for Collector {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if !event.metadata().target().starts_with("wsio") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut logged = Logged {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            message: fields.0.remove("message").unwrap_or_default(),
            fields: fields.0,
        };
        logged.fields.remove("message");
        self.events.lock().unwrap().push(logged);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

/// Runs `test` on a current-thread runtime (so every task reports to `collector`), bounded
/// in time.
fn on_runtime<F: Future<Output = ()>>(collector: &Collector, test: impl FnOnce() -> F) {
    tracing::dispatcher::with_default(&collector.dispatch(), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), test())
                .await
                .expect("the test finished in time");
        });
    });
}

/// A blocking stream reading from a fixed input (then end of stream) and keeping what is
/// written to it.
struct Memory {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Memory {
    fn new(input: &[u8]) -> Self {
        Self {
            input: Cursor::new(input.to_vec()),
            output: Vec::new(),
        }
    }
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn request_then(frames: &[u8]) -> Vec<u8> {
    let mut input = REQUEST.to_vec();
    input.extend_from_slice(frames);
    input
}

#[test]
fn a_refused_handshake_logs_its_status() {
    let collector = Collector::default();
    tracing::dispatcher::with_default(&collector.dispatch(), || {
        let rejected = wsio::sync::accept_with(Memory::new(REQUEST), &Options::default(), |_| {
            Err(Reject::new(403))
        });
        assert!(matches!(rejected, Err(Error::Rejected(403))));
        let invalid = wsio::sync::accept(Memory::new(b"POST /chat HTTP/1.1\r\n\r\n"));
        assert!(matches!(invalid, Err(Error::Handshake(_))));
        let cut = wsio::sync::accept(Memory::new(&REQUEST[..20]));
        assert!(matches!(cut, Err(Error::Io(_))));
        let request = ClientRequest::new("ws://example.com/chat").unwrap();
        let refused = Memory::new(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        let refused = wsio::sync::client(refused, &request, &Options::default());
        assert!(matches!(refused, Err(Error::Handshake(_))));
    });

    let statuses: Vec<_> = collector
        .find("server", "handshake refused")
        .iter()
        .map(|event| event.field("status").unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["403", "405"]);
    let client = collector.one("client", "handshake refused");
    assert_eq!(client.field("status"), Some("401"));
    for event in collector.events() {
        assert_eq!((event.target.as_str(), event.level), ("wsio", Level::DEBUG));
    }
    assert!(collector.find("server", "handshake accepted").is_empty());
    let cut = collector.one("server", "handshake failed");
    assert!(cut.field("error").unwrap().contains("eof"));
}

#[test]
fn an_accepted_handshake_logs_its_status() {
    let collector = Collector::default();
    on_runtime(&collector, || async {
        let (client, server) = tokio::io::duplex(4096);
        let options = Options::default();
        let request = ClientRequest::new("ws://example.com/chat").unwrap();
        let (server, client) = tokio::join!(
            wsio::tokio::accept_with(server, &options, async |_: &_| Ok(Accept::new())),
            wsio::tokio::client_async(client, &request, &options),
        );
        server.unwrap();
        client.unwrap();
    });
    for role in ["server", "client"] {
        let accepted = collector.one(role, "handshake accepted");
        assert_eq!(accepted.field("status"), Some("101"));
        assert_eq!(
            (accepted.target.as_str(), accepted.level),
            ("wsio", Level::DEBUG)
        );
    }
}

#[test]
fn a_close_logs_its_code_both_ways_over_tokio() {
    let collector = Collector::default();
    on_runtime(&collector, || async {
        let (client, server) = tokio::io::duplex(4096);
        let options = Options::default();
        let request = ClientRequest::new("ws://example.com/chat").unwrap();
        let (server, client) = tokio::join!(
            wsio::tokio::accept_with(server, &options, async |_: &_| Ok(Accept::new())),
            wsio::tokio::client_async(client, &request, &options),
        );
        let (mut server, (mut client, _)) = (server.unwrap(), client.unwrap());
        for text in ["one", "two", "three"] {
            client.send(Message::text(text)).await.unwrap();
            let echo = server.read().await.unwrap().unwrap();
            server.send(echo).await.unwrap();
            assert!(client.read().await.unwrap().is_some());
        }
        client
            .close(Some(CloseFrame::new(CloseCode(4000), "bye")))
            .await
            .unwrap();
        let (server_end, client_end) = tokio::join!(server.read(), client.read());
        assert!(server_end.unwrap().is_none());
        assert!(client_end.unwrap().is_none());
    });
    assert_close_both_ways(&collector, 4000, "bye");
}

#[test]
fn a_sink_close_logs_the_peer_close_once() {
    let collector = Collector::default();
    on_runtime(&collector, || async {
        let (mut server, mut client) = pair(&Options::default(), &Options::default(), 4096).await;
        // `Sink::poll_close` reads the peer's close and holds it for the read side.
        let (closed, server_end) =
            tokio::join!(futures_util::SinkExt::close(&mut client), server.read());
        closed.unwrap();
        assert!(server_end.unwrap().is_none());
        // Logged as `poll_close` took it, and not again as the read side hands it out.
        collector.one("client", "close received");
        assert!(client.read().await.unwrap().is_none());
    });
    assert_close_both_ways(&collector, 1000, "");
}

#[test]
fn a_close_logs_its_code_both_ways_over_blocking_tcp() {
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/chat", listener.local_addr().unwrap());
    let dispatch = collector.dispatch();
    let server = thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            let (stream, _) = listener.accept().unwrap();
            wsio::sync::configure_tcp(&stream, &Options::default()).unwrap();
            let mut ws = wsio::sync::accept(stream).unwrap();
            while let Some(message) = ws.read().unwrap() {
                ws.send(message).unwrap();
            }
        });
    });
    tracing::dispatcher::with_default(&collector.dispatch(), || {
        let (mut ws, _) = wsio::sync::connect(&url).unwrap();
        for text in ["one", "two", "three"] {
            ws.send(Message::text(text)).unwrap();
            assert!(ws.read().unwrap().is_some());
        }
        ws.close(Some(CloseFrame::new(CloseCode(4001), "done")))
            .unwrap();
        assert!(ws.read().unwrap().is_none());
    });
    server.join().unwrap();
    assert_close_both_ways(&collector, 4001, "done");
}

/// The client sent a close with `code` and `reason`, the server received it, the client
/// received the server's echo; and the messages before the close logged nothing.
fn assert_close_both_ways(collector: &Collector, code: u16, reason: &str) {
    let code = code.to_string();
    let sent = collector.one("client", "close sent");
    assert_eq!(sent.field("code"), Some(code.as_str()));
    assert_eq!(sent.field("reason"), Some(reason));
    let received = collector.one("server", "close received");
    assert_eq!(received.field("code"), Some(code.as_str()));
    assert_eq!(received.field("reason"), Some(reason));
    let echo = collector.one("client", "close received");
    assert_eq!(echo.field("code"), Some(code.as_str()));
    let mut logged: Vec<_> = collector
        .events()
        .iter()
        .map(|event| format!("{} {}", event.role().unwrap_or("-"), event.message))
        .collect();
    logged.sort();
    assert_eq!(
        logged,
        [
            "client close received",
            "client close sent",
            "client handshake accepted",
            "server close received",
            "server handshake accepted",
        ],
        "lifecycle events only, none per message"
    );
}

#[test]
fn a_protocol_error_logs_its_close_code() {
    let collector = Collector::default();
    tracing::dispatcher::with_default(&collector.dispatch(), || {
        // A client frame without a mask: 1002.
        let input = request_then(&[0x81, 0x02, b'h', b'i']);
        let mut ws = wsio::sync::accept(Memory::new(&input)).unwrap();
        assert!(matches!(ws.read(), Err(Error::Protocol(_))));
        // The close frame with that code went out after the 101 response.
        let output = &ws.get_ref().output;
        assert!(output.ends_with(&[0x88, 0x02, 0x03, 0xea]), "{output:x?}");
    });
    let failed = collector.one("server", "protocol error");
    assert_eq!(failed.field("code"), Some("1002"));
    assert!(failed.field("error").unwrap().contains("unmasked"));

    let collector = Collector::default();
    on_runtime(&collector, || async {
        let (mut client, server) = tokio::io::duplex(4096);
        // Text that is not UTF-8, masked with a zero key: 1007.
        let input = request_then(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe]);
        tokio::io::AsyncWriteExt::write_all(&mut client, &input)
            .await
            .unwrap();
        let mut ws = wsio::tokio::accept(server).await.unwrap();
        assert!(matches!(ws.read_event().await, Err(Error::Protocol(_))));
    });
    let failed = collector.one("server", "protocol error");
    assert_eq!(failed.field("code"), Some("1007"));
}

#[test]
fn timeouts_are_logged() {
    let collector = Collector::default();
    let short = Duration::from_millis(30);
    on_runtime(&collector, || async {
        // Handshake: the client never sends its request.
        let mut options = Options::default();
        options.handshake_timeout = Some(short);
        let (_client, server) = tokio::io::duplex(4096);
        let result = wsio::tokio::accept_with(server, &options, async |_: &_| Ok(Accept::new()));
        assert!(matches!(result.await, Err(Error::HandshakeTimeout)));

        // Keepalive: the client never reads, so never answers the server's ping.
        let mut server_options = Options::default();
        server_options.connection.keepalive_interval = Some(short);
        server_options.connection.keepalive_timeout = Some(short);
        let (mut server, _client) = pair(&server_options, &Options::default(), 4096).await;
        assert!(matches!(
            server.read().await,
            Err(Error::Protocol(
                wsio::proto::ProtocolError::KeepaliveTimeout
            ))
        ));

        // Close: the server never reads, so never answers the client's close.
        let mut client_options = Options::default();
        client_options.connection.close_timeout = Some(short);
        let (_server, mut client) = pair(&Options::default(), &client_options, 4096).await;
        client.close(None).await.unwrap();
        assert!(matches!(
            client.read().await,
            Err(Error::Protocol(wsio::proto::ProtocolError::CloseTimeout))
        ));

        // Write: the client never reads, and the pipe holds less than the message.
        let mut server_options = Options::default();
        server_options.write_timeout = Some(short);
        let (mut server, _client) = pair(&server_options, &Options::default(), 1024).await;
        // Bytes that do not compress, in case permessage-deflate is on.
        let mut state = 1u32;
        let noise: Vec<u8> = (0..64 << 10)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 24) as u8
            })
            .collect();
        let sent = server.send(Message::binary(noise)).await;
        assert!(
            matches!(&sent, Err(Error::Io(error)) if error.kind() == io::ErrorKind::TimedOut),
            "{sent:?}"
        );
    });

    assert_eq!(
        collector
            .events()
            .iter()
            .filter(|e| e.message == "handshake timeout")
            .count(),
        1
    );
    let keepalive = collector.one("server", "keepalive timeout");
    assert_eq!(keepalive.field("code"), Some("1011"));
    collector.one("client", "close sent");
    let close = collector.one("client", "close timeout");
    assert_eq!(close.field("code"), Some("1006"));
    collector.one("server", "write timeout");
}

#[test]
fn a_blocking_handshake_timeout_is_logged() {
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Connected, and silent until the server gives up.
    let silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    tracing::dispatcher::with_default(&collector.dispatch(), || {
        let (stream, _) = listener.accept().unwrap();
        let mut options = Options::default();
        options.handshake_timeout = Some(Duration::from_millis(30));
        wsio::sync::configure_tcp(&stream, &options).unwrap();
        let result = wsio::sync::accept_with(stream, &options, |_| Ok(Accept::new()));
        assert!(matches!(result, Err(Error::HandshakeTimeout)));
    });
    drop(silent);
    let events = collector.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].message, "handshake timeout");
}

/// A server and a client over an in-memory pipe of `capacity` bytes each way.
async fn pair(
    server_options: &Options,
    client_options: &Options,
    capacity: usize,
) -> (
    wsio::tokio::WebSocketStream<tokio::io::DuplexStream>,
    wsio::tokio::WebSocketStream<tokio::io::DuplexStream>,
) {
    let (client, server) = tokio::io::duplex(capacity);
    let request = ClientRequest::new("ws://example.com/chat").unwrap();
    let (server, client) = tokio::join!(
        wsio::tokio::accept_with(server, server_options, async |_: &_| Ok(Accept::new())),
        wsio::tokio::client_async(client, &request, client_options),
    );
    (server.unwrap(), client.unwrap().0)
}
