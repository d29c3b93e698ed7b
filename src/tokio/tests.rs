//! The tokio adapter over in-memory and loopback streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout};

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::read::SMALL_READ;
use super::{WebSocketStream, accept, accept_with, client_async, connect_async};
use crate::Options;
use crate::error::Error;
use crate::proto::handshake::HandshakeError;
use crate::proto::handshake::{Accept, ClientRequest, Reject, Request};
use crate::proto::{CloseCode, CloseFrame, Connection, Event, Message, ProtocolError};
use crate::proto::{Frame, OpCode};

const WAIT: Duration = Duration::from_secs(5);
const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: localhost\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\
    \r\n";

fn request() -> ClientRequest {
    ClientRequest::new("ws://localhost/chat").expect("valid url")
}

async fn pair_with<S>(
    client_io: S,
    server_io: S,
    client_options: &Options,
    server_options: &Options,
) -> (WebSocketStream<S>, WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = request();
    let (client, server) = tokio::join!(
        client_async(client_io, &request, client_options),
        accept_with(server_io, server_options, async |_: &Request| Ok(
            Accept::new()
        )),
    );
    (
        client.expect("client handshake").0,
        server.expect("server handshake"),
    )
}

async fn pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    pair_with(client_io, server_io, &plain_options(), &plain_options()).await
}

/// A server whose client is driven by hand: `raw` writes frames and reads what comes back.
async fn raw_client(options: &Options) -> (DuplexStream, WebSocketStream<DuplexStream>) {
    let (mut raw, server_io) = tokio::io::duplex(1 << 16);
    let accepting = accept_with(server_io, options, async |_: &Request| Ok(Accept::new()));
    let (server, ()) = tokio::join!(accepting, async {
        raw.write_all(UPGRADE).await.expect("write the request");
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    });
    (raw, server.expect("server handshake"))
}

/// Reads an HTTP head byte by byte, so no frame after it is consumed.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(_) => break,
        }
    }
    String::from_utf8(head).expect("ascii head")
}

async fn read_to_end<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut data = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut data))
        .await
        .expect("peer closes")
        .expect("read");
    data
}

/// A client text frame with an all-zero mask, so the payload goes out as it is.
fn masked_text(text: &str) -> Vec<u8> {
    let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).expect("short")];
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// Counts the writes that reach the transport, and records how much room every read that
/// returned data was offered.
struct Counting<S> {
    inner: S,
    writes: Arc<AtomicUsize>,
    vectored: bool,
    offered: Arc<Mutex<Vec<usize>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (room, before) = (buf.remaining(), buf.filled().len());
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.offered.lock().expect("not poisoned").push(room);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = polled {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = polled {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored && self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn counting<S>(inner: S, vectored: bool) -> (Counting<S>, Arc<AtomicUsize>) {
    let writes = Arc::new(AtomicUsize::new(0));
    (
        Counting {
            inner,
            writes: Arc::clone(&writes),
            vectored,
            offered: Arc::default(),
        },
        writes,
    )
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) -> WebSocketStream<S> {
    while let Some(message) = ws.next().await {
        SinkExt::send(&mut ws, message.expect("message"))
            .await
            .expect("echo");
    }
    ws
}

#[tokio::test]
async fn echo_text_and_binary_through_stream_and_sink() {
    let (mut client, server) = pair().await;
    let server = tokio::spawn(echo(server));
    for message in [
        Message::text("hello"),
        Message::binary(vec![0, 1, 2, 255]),
        Message::text(""),
    ] {
        SinkExt::send(&mut client, message.clone())
            .await
            .expect("send");
        let echoed = timeout(WAIT, client.next()).await.expect("in time");
        assert_eq!(echoed.expect("a message").expect("no error"), message);
    }
    SinkExt::close(&mut client).await.expect("close");
    assert!(client.next().await.is_none());
    let server = server.await.expect("server task");
    assert_eq!(
        server.close_frame().map(|frame| frame.code),
        Some(CloseCode::NORMAL)
    );
    assert_eq!(
        client.close_frame().map(|frame| frame.code),
        Some(CloseCode::NORMAL)
    );
}

#[tokio::test]
async fn echo_over_tcp_with_connect_async() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        echo(accept(stream).await.expect("handshake")).await
    });
    let (mut client, _response) = connect_async(&format!("ws://{addr}/echo"))
        .await
        .expect("connect");
    assert!(client.get_ref().nodelay().expect("nodelay"));
    client.send(Message::text("over tcp")).await.expect("send");
    client
        .send(Message::binary(vec![7; 100_000]))
        .await
        .expect("send");
    assert_eq!(
        client.read().await.expect("read"),
        Some(Message::text("over tcp"))
    );
    assert_eq!(
        client.read().await.expect("read"),
        Some(Message::binary(vec![7; 100_000]))
    );
    client
        .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye")))
        .await
        .expect("close");
    assert_eq!(client.read().await.expect("read"), None);
    let server = timeout(WAIT, server)
        .await
        .expect("in time")
        .expect("server task");
    assert_eq!(
        server.close_frame(),
        Some(&CloseFrame::new(CloseCode::GOING_AWAY, "bye"))
    );
}

#[cfg(not(feature = "rustls-manual-roots"))]
#[tokio::test]
async fn connect_async_refuses_wss() {
    let error = connect_async("wss://127.0.0.1:1/")
        .await
        .expect_err("no tls");
    assert!(matches!(error, Error::UnsupportedUrl(_)), "{error}");
}

#[tokio::test]
async fn fed_messages_leave_in_one_write_after_flush() {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let (client_io, writes) = counting(client_io, true);
    let (server_io, _) = counting(server_io, true);
    let (mut client, mut server) =
        pair_with(client_io, server_io, &plain_options(), &plain_options()).await;
    writes.store(0, Ordering::Relaxed);
    for i in 0..16 {
        client
            .feed(Message::text(format!("message {i}")))
            .await
            .expect("feed");
    }
    assert_eq!(writes.load(Ordering::Relaxed), 0, "feed only queues");
    client.flush().await.expect("flush");
    assert_eq!(
        writes.load(Ordering::Relaxed),
        1,
        "the client's frames share one chunk"
    );
    for i in 0..16 {
        let message = timeout(WAIT, server.read())
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(message, Some(Message::text(format!("message {i}"))));
    }
}

/// A server and its client, the server's writes counted; the client's handshake writes are
/// already done when this returns.
async fn counted_pair() -> (
    WebSocketStream<DuplexStream>,
    WebSocketStream<Counting<DuplexStream>>,
    Arc<AtomicUsize>,
) {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_io, writes) = counting(server_io, true);
    let (request, options) = (request(), plain_options());
    let (client, server) = tokio::join!(
        client_async(client_io, &request, &options),
        accept_with(server_io, &options, async |_: &Request| Ok(Accept::new())),
    );
    writes.store(0, Ordering::Relaxed);
    (
        client.expect("client handshake").0,
        server.expect("server handshake"),
        writes,
    )
}

#[tokio::test]
async fn replies_to_a_burst_leave_in_one_write() {
    for size in [20, 3000] {
        let (mut client, mut server, writes) = counted_pair().await;
        let sent: Vec<Message> = (0..16u8).map(|i| Message::binary(vec![i; size])).collect();
        for message in &sent {
            client.feed(message.clone()).await.expect("feed");
        }
        client.flush().await.expect("flush");
        for _ in 0..16 {
            let message = timeout(WAIT, server.read())
                .await
                .expect("in time")
                .expect("read")
                .expect("message");
            server.send(message).await.expect("send");
        }
        assert_eq!(
            writes.load(Ordering::Relaxed),
            1,
            "{size} B: one write for the burst"
        );
        for message in sent {
            let echoed = timeout(WAIT, client.read()).await.expect("in time");
            assert_eq!(echoed.expect("read"), Some(message));
        }
    }
}

#[tokio::test]
async fn a_reply_held_back_by_a_burst_leaves_with_flush() {
    let (mut client, mut server, writes) = counted_pair().await;
    client.feed(Message::text("one")).await.expect("feed");
    client.feed(Message::text("two")).await.expect("feed");
    client.flush().await.expect("flush");
    let first = server.read().await.expect("read").expect("message");
    server.send(first).await.expect("send");
    assert_eq!(
        writes.load(Ordering::Relaxed),
        0,
        "\"two\" is waiting to be answered"
    );
    server.flush().await.expect("flush");
    assert_eq!(writes.load(Ordering::Relaxed), 1, "flush writes it");
    let echoed = timeout(WAIT, client.read()).await.expect("in time");
    assert_eq!(echoed.expect("read"), Some(Message::text("one")));
    // The `Sink` flushes every time, burst or not.
    client.feed(Message::text("three")).await.expect("feed");
    client.flush().await.expect("flush");
    let second = server.read().await.expect("read").expect("message");
    let _third = timeout(WAIT, server.read()).await.expect("in time");
    SinkExt::send(&mut server, second).await.expect("send");
    assert_eq!(writes.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_reply_held_back_by_a_burst_leaves_with_the_next_read() {
    let (mut client, mut server, writes) = counted_pair().await;
    client.feed(Message::text("one")).await.expect("feed");
    client.feed(Message::text("two")).await.expect("feed");
    client.flush().await.expect("flush");
    let first = server.read().await.expect("read").expect("message");
    server.send(first).await.expect("send");
    let second = server.read().await.expect("read");
    assert_eq!(second, Some(Message::text("two")));
    assert_eq!(writes.load(Ordering::Relaxed), 0, "still in the burst");
    // No more input: the read writes the held reply before it waits.
    let pending = timeout(Duration::from_millis(50), server.read()).await;
    assert!(pending.is_err(), "nothing more to read");
    assert_eq!(writes.load(Ordering::Relaxed), 1);
    let echoed = timeout(WAIT, client.read()).await.expect("in time");
    assert_eq!(echoed.expect("read"), Some(Message::text("one")));
}

#[tokio::test]
async fn large_messages_are_gathered_into_vectored_writes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (client_io, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (server_io, writes) = counting(accepted.expect("accept").0, true);
    assert!(server_io.is_write_vectored());
    let (client_io, _) = counting(client_io.expect("connect"), true);
    let (mut client, mut server) =
        pair_with(client_io, server_io, &plain_options(), &plain_options()).await;
    writes.store(0, Ordering::Relaxed);
    for i in 0..16u8 {
        server
            .write(Message::binary(vec![i; 2048]))
            .await
            .expect("write");
    }
    server.flush().await.expect("flush");
    let count = writes.load(Ordering::Relaxed);
    assert!(count < 16, "{count} writes for 16 messages of 32 chunks");
    for i in 0..16u8 {
        let message = timeout(WAIT, client.read())
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(message, Some(Message::binary(vec![i; 2048])));
    }
}

#[tokio::test]
async fn chunks_are_coalesced_without_vectored_writes() {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_io, writes) = counting(server_io, false);
    let (client_io, _) = counting(client_io, false);
    let (mut client, mut server) =
        pair_with(client_io, server_io, &plain_options(), &plain_options()).await;
    writes.store(0, Ordering::Relaxed);
    for i in 0..16u8 {
        server
            .feed(Message::binary(vec![i; 2048]))
            .await
            .expect("feed");
    }
    server.flush().await.expect("flush");
    let count = writes.load(Ordering::Relaxed);
    assert!(count <= 3, "{count} writes for 32 KiB in 32 chunks");
    for i in 0..16u8 {
        let message = timeout(WAIT, client.next()).await.expect("in time");
        assert_eq!(
            message.expect("message").expect("read"),
            Message::binary(vec![i; 2048])
        );
    }
}

#[tokio::test]
async fn server_answers_ping_while_the_app_only_reads() {
    let (mut client, mut server) = pair().await;
    let reading = tokio::spawn(async move { server.read().await });
    client.ping(&b"are you there"[..]).await.expect("ping");
    let event = timeout(WAIT, client.read_event())
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(
        event,
        Some(Event::Pong(Bytes::from_static(b"are you there")))
    );
    assert!(!reading.is_finished());
    reading.abort();
}

#[tokio::test]
async fn peer_close_with_code_4000_ends_the_stream() {
    let (mut client, mut server) = pair().await;
    let closing = async {
        client
            .close(Some(CloseFrame::new(CloseCode(4000), "done")))
            .await
            .expect("close");
        client.read().await.expect("read")
    };
    let (client_end, server_end) = tokio::join!(closing, server.next());
    assert!(client_end.is_none() && server_end.is_none());
    assert_eq!(
        server.close_frame(),
        Some(&CloseFrame::new(CloseCode(4000), "done"))
    );
    assert_eq!(
        client.close_frame().map(|frame| frame.code),
        Some(CloseCode(4000))
    );
    assert!(server.next().await.is_none(), "the stream stays ended");
    assert!(matches!(
        server.send(Message::text("late")).await,
        Err(Error::AlreadyClosed)
    ));
    assert!(client.connection().is_terminated() && server.connection().is_terminated());
}

/// A client reports the server's close only once the server has ended the transport (RFC 6455
/// §7.1.1); meanwhile the close is taken, so nothing more may be sent.
#[tokio::test]
async fn client_reports_the_close_once_the_server_ends_the_transport() {
    let (client, server) = pair().await;
    let mut raw = server.into_inner();
    raw.write_all(&[0x88, 0x05, 0x0f, 0xa0, b'b', b'y', b'e'])
        .await
        .expect("write the close");
    let (mut reader, mut writer) = client.split();
    let reading = tokio::spawn(async move {
        let event = reader.read_event().await;
        (event, reader.read_event().await, reader.close_frame())
    });
    // The echo, masked: header, key and the 5 bytes of code and reason.
    let mut echo = [0u8; 11];
    timeout(WAIT, raw.read_exact(&mut echo))
        .await
        .expect("the echo in time")
        .expect("read the echo");
    assert_eq!(echo[..2], [0x88, 0x85]);
    // The reader task wrote the echo and is waiting for the end of the transport, on this
    // one-thread runtime: had it reported the close, it would have finished.
    assert!(
        !reading.is_finished(),
        "the close came before the server's end"
    );
    let sent = writer.send(Message::text("late")).await;
    assert!(matches!(sent, Err(Error::AlreadyClosed)), "{sent:?}");
    raw.shutdown().await.expect("end the transport");
    let (event, after, close_frame) = timeout(WAIT, reading)
        .await
        .expect("the close in time")
        .expect("reader task");
    let expected = CloseFrame::new(CloseCode(4000), "bye");
    assert_eq!(
        event.expect("read"),
        Some(Event::Closed(Some(expected.clone())))
    );
    assert_eq!(after.expect("read after the close"), None);
    assert_eq!(close_frame, Some(expected));
    assert!(
        read_to_end(&mut raw).await.is_empty(),
        "the client ends its side"
    );
}

#[tokio::test]
async fn unmasked_client_frame_fails_with_1002() {
    let (mut raw, mut server) = raw_client(&plain_options()).await;
    raw.write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .expect("write");
    let error = server
        .next()
        .await
        .expect("an item")
        .expect_err("a protocol error");
    assert!(
        matches!(error, Error::Protocol(ProtocolError::UnmaskedClientFrame)),
        "{error}"
    );
    assert_eq!(error.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    assert!(
        server.next().await.is_none(),
        "the stream ends after an error"
    );
    assert_eq!(read_to_end(&mut raw).await, [0x88, 0x02, 0x03, 0xea]);
}

#[tokio::test]
async fn read_is_cancel_safe_mid_frame() {
    let (mut raw, mut server) = raw_client(&plain_options()).await;
    let frame = masked_text("hello");
    raw.write_all(&frame[..4]).await.expect("write");
    let cancelled = timeout(Duration::from_millis(50), server.read()).await;
    assert!(cancelled.is_err(), "no message yet");
    raw.write_all(&frame[4..]).await.expect("write");
    let message = timeout(WAIT, server.read())
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(message, Some(Message::text("hello")));
}

#[tokio::test]
async fn handshake_times_out_with_a_silent_client() {
    let (_silent, server_io) = tokio::io::duplex(1024);
    let options = Options {
        handshake_timeout: Some(Duration::from_millis(200)),
        ..plain_options()
    };
    let started = Instant::now();
    let result = accept_with(server_io, &options, async |_: &Request| Ok(Accept::new())).await;
    assert!(matches!(result, Err(Error::HandshakeTimeout)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn malformed_request_gets_an_error_response() {
    let (mut raw, server_io) = tokio::io::duplex(1024);
    raw.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let result = accept(server_io).await;
    assert!(
        matches!(
            result,
            Err(Error::Handshake(HandshakeError::MethodNotAllowed))
        ),
        "{result:?}"
    );
    let reply = read_to_end(&mut raw).await;
    assert!(reply.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n"));
}

#[tokio::test]
async fn rejection_is_written_and_reported_on_both_sides() {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let options = plain_options();
    let deciding = accept_with(server_io, &options, async |request: &Request| {
        tokio::task::yield_now().await; // stands in for a database lookup
        match request.headers().get("authorization") {
            Some("Bearer letmein") => Ok(Accept::new()),
            _ => Err(Reject::new(403).body("no token")),
        }
    });
    let request = request();
    let (client, server) = tokio::join!(client_async(client_io, &request, &options), deciding);
    assert!(matches!(server, Err(Error::Rejected(403))), "{server:?}");
    let error = client.expect_err("rejected");
    assert!(
        matches!(&error, Error::Handshake(HandshakeError::Rejected { .. })),
        "{error}"
    );
}

#[tokio::test]
async fn decide_can_borrow_the_request_and_choose_a_subprotocol() {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let options = plain_options();
    let request = request().subprotocol("chat").expect("token");
    let server = tokio::spawn(async move {
        let options = plain_options();
        accept_with(server_io, &options, async |request: &Request| {
            tokio::task::yield_now().await;
            let offered = request.subprotocols().first().expect("an offer");
            Ok(Accept::new().subprotocol(offered.as_str()))
        })
        .await
    });
    let (_client, response) = client_async(client_io, &request, &options)
        .await
        .expect("client");
    assert_eq!(response.subprotocol(), Some("chat"));
    server.await.expect("server task").expect("accepted");
}

#[tokio::test]
async fn split_halves_work_from_two_tasks() {
    let (client, server) = pair().await;
    let server = tokio::spawn(echo(server));
    let (mut reader, mut writer) = client.split();
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        while let Some(message) = reader.next().await {
            received.push(message.expect("message"));
        }
        (received, reader.close_frame())
    });
    let writing = tokio::spawn(async move {
        for i in 0..100 {
            writer
                .feed(Message::text(format!("{i}")))
                .await
                .expect("feed");
            if i % 10 == 0 {
                writer.flush().await.expect("flush");
            }
        }
        SinkExt::close(&mut writer).await.expect("close");
    });
    let (received, close) = timeout(WAIT, reading)
        .await
        .expect("in time")
        .expect("reader");
    timeout(WAIT, writing)
        .await
        .expect("in time")
        .expect("writer");
    let expected: Vec<_> = (0..100).map(|i| Message::text(format!("{i}"))).collect();
    assert_eq!(received, expected);
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::NORMAL));
    server.await.expect("server task");
}

#[tokio::test]
async fn split_reader_sends_its_pongs_while_the_writer_is_idle() {
    let (mut client, server) = pair().await;
    let (mut reader, _writer) = server.split();
    let reading = tokio::spawn(async move { reader.read().await });
    client.ping(&b"ping"[..]).await.expect("ping");
    let event = timeout(WAIT, client.read_event())
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(event, Some(Event::Pong(Bytes::from_static(b"ping"))));
    client.send(Message::text("after")).await.expect("send");
    let message = timeout(WAIT, reading)
        .await
        .expect("in time")
        .expect("reader");
    assert_eq!(message.expect("read"), Some(Message::text("after")));
}

#[tokio::test]
async fn split_writer_close_completes_without_a_reader() {
    let (client, server) = pair().await;
    let server = tokio::spawn(echo(server));
    let (reader, mut writer) = client.split();
    drop(reader);
    writer.send(Message::text("unread")).await.expect("send");
    timeout(WAIT, SinkExt::close(&mut writer))
        .await
        .expect("in time")
        .expect("close");
    let server = server.await.expect("server task");
    assert_eq!(
        server.close_frame().map(|frame| frame.code),
        Some(CloseCode::NORMAL)
    );
}

#[tokio::test]
async fn keepalive_pings_an_idle_peer() {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let mut server_options = plain_options();
    server_options.connection.keepalive_interval = Some(Duration::from_millis(100));
    let (mut client, mut server) =
        pair_with(client_io, server_io, &plain_options(), &server_options).await;
    let reading = tokio::spawn(async move { server.read().await });
    let event = timeout(WAIT, client.read_event())
        .await
        .expect("a ping in time")
        .expect("read");
    assert_eq!(event, Some(Event::Ping(Bytes::new())));
    assert!(!reading.is_finished(), "the pong kept the connection alive");
    reading.abort();
}

#[tokio::test]
async fn keepalive_timeout_fails_a_silent_peer() {
    let mut options = plain_options();
    options.connection.keepalive_interval = Some(Duration::from_millis(50));
    options.connection.keepalive_timeout = Some(Duration::from_millis(50));
    let (mut raw, mut server) = raw_client(&options).await;
    let error = timeout(WAIT, server.read())
        .await
        .expect("in time")
        .expect_err("timeout");
    assert!(
        matches!(error, Error::Protocol(ProtocolError::KeepaliveTimeout)),
        "{error}"
    );
    assert_eq!(
        read_to_end(&mut raw).await,
        [0x89, 0x00, 0x88, 0x02, 0x03, 0xf3]
    );
}

#[tokio::test]
async fn sink_close_is_bounded_by_the_close_timeout() {
    let mut options = plain_options();
    options.connection.close_timeout = Some(Duration::from_millis(100));
    let (mut raw, mut server) = raw_client(&options).await;
    timeout(WAIT, SinkExt::close(&mut server))
        .await
        .expect("in time")
        .expect("close");
    let error = server.read().await.expect_err("the close timed out");
    assert!(
        matches!(error, Error::Protocol(ProtocolError::CloseTimeout)),
        "{error}"
    );
    assert_eq!(read_to_end(&mut raw).await, [0x88, 0x02, 0x03, 0xe8]);
}

#[tokio::test]
async fn messages_arriving_during_sink_close_stay_readable() {
    let (mut raw, mut server) = raw_client(&plain_options()).await;
    let mut input = masked_text("late");
    input.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
    raw.write_all(&input).await.expect("write");
    timeout(WAIT, SinkExt::close(&mut server))
        .await
        .expect("in time")
        .expect("close");
    assert_eq!(
        server.read().await.expect("read"),
        Some(Message::text("late"))
    );
    assert_eq!(server.read().await.expect("read"), None);
    assert_eq!(
        server.close_frame().map(|frame| frame.code),
        Some(CloseCode::NORMAL)
    );
}

#[tokio::test]
async fn poll_ready_waits_while_the_peer_does_not_read() {
    let (client_io, server_io) = tokio::io::duplex(1024);
    let (mut client, _server) =
        pair_with(client_io, server_io, &plain_options(), &plain_options()).await;
    // Incompressible (xorshift), so permessage-deflate cannot shrink it below the mark.
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    client
        .write(Message::binary(noise))
        .await
        .expect("room for the first");
    let blocked = timeout(
        Duration::from_millis(100),
        client.write(Message::binary(vec![1])),
    )
    .await;
    assert!(
        blocked.is_err(),
        "over the high-water mark, write waits for the transport"
    );
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let options = plain_options();
    let (_, io) = tokio::io::duplex(1);
    assert_send(accept_with(io, &options, async |request: &Request| {
        tokio::task::yield_now().await;
        Ok(Accept::new().subprotocol(request.target()))
    }));
    let (_, io) = tokio::io::duplex(1);
    assert_send(accept_with(io, &options, |request: &Request| {
        let target = request.target().to_owned();
        async move { Ok(Accept::new().subprotocol(target)) }
    }));
    assert_send(connect_async("ws://localhost"));
}

/// Options without permessage-deflate, so that payload sizes on the wire are what the tests
/// write (deflate has its own tests in tests/deflate.rs and tests/abuse.rs).
fn plain_options() -> Options {
    #[allow(unused_mut)]
    let mut options = Options::default();
    #[cfg(feature = "deflate")]
    {
        options.deflate = None;
    }
    options
}

#[tokio::test]
async fn borrowed_sends_arrive_as_messages_in_both_directions() {
    let (mut client, mut server) = pair().await;
    client.send_text("héllo").await.expect("send text");
    client.send_binary(&[1, 2, 3]).await.expect("send binary");
    let long = vec![9u8; 30_000];
    server.send_binary(&long).await.expect("send long");
    server.send_text("bye").await.expect("send text");
    for expected in [Message::text("héllo"), Message::binary(vec![1, 2, 3])] {
        let got = timeout(WAIT, server.read()).await.expect("in time");
        assert_eq!(got.expect("read"), Some(expected));
    }
    for expected in [Message::binary(long), Message::text("bye")] {
        let got = timeout(WAIT, client.read()).await.expect("in time");
        assert_eq!(got.expect("read"), Some(expected));
    }
}

/// Large binary messages, whose rest the adapter reads straight onto the message, arrive whole
/// and in order however the transport cuts them: small pieces, or reads that end a frame and
/// start the next.
#[tokio::test]
async fn large_messages_read_onto_themselves_arrive_intact() {
    for pipe in [4 << 10, 1 << 20] {
        let (client_io, server_io) = tokio::io::duplex(pipe);
        let (mut client, mut server) =
            pair_with(client_io, server_io, &plain_options(), &plain_options()).await;
        let sizes = [200_000, 65_536, (1 << 20) + 7, 300_001];
        let sent: Vec<Message> = sizes
            .iter()
            .enumerate()
            .map(|(index, &size)| {
                Message::binary(
                    (0..size)
                        .map(|i| (i * 31 + index) as u8)
                        .collect::<Vec<u8>>(),
                )
            })
            .collect();
        let writer = async {
            for message in &sent {
                client.feed(message.clone()).await.expect("feed");
            }
            client.flush().await.expect("flush");
            client
        };
        let reader = async {
            let mut received = Vec::new();
            for _ in &sent {
                received.push(server.read().await.expect("read").expect("message"));
            }
            received
        };
        let (_client, received) = timeout(WAIT, async { tokio::join!(writer, reader) })
            .await
            .expect("in time");
        assert!(received == sent, "pipe of {pipe} bytes: messages differ");
    }
}

#[tokio::test]
async fn a_connection_that_read_much_starts_its_next_burst_with_large_reads() {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_io, _writes) = counting(server_io, true);
    let offered = Arc::clone(&server_io.offered);
    let conn = Connection::server(crate::proto::Config::default());
    let options = plain_options();
    let mut server = WebSocketStream::from_connection(server_io, conn, &options);
    let mut client = client_io;
    let frame = |len: usize| {
        let mut wire = BytesMut::new();
        Frame::new(OpCode::Binary, vec![7; len]).encode(Some([1, 2, 3, 4]), &mut wire);
        wire
    };
    // One burst at a time, each read until the stream runs dry; returns the room offered to
    // the burst's first read.
    let mut burst = async |count: usize, len: usize| {
        offered.lock().expect("not poisoned").clear();
        for _ in 0..count {
            client.write_all(&frame(len)).await.expect("write");
        }
        for _ in 0..count {
            let message = timeout(WAIT, server.read()).await.expect("in time");
            assert_eq!(message.expect("read").expect("message").len(), len);
        }
        let dry = timeout(Duration::from_millis(20), server.read()).await;
        assert!(dry.is_err(), "nothing more was sent");
        offered.lock().expect("not poisoned")[0]
    };
    let small = SMALL_READ;
    assert_eq!(burst(3, 30_000).await, small, "a first burst starts small");
    assert!(
        burst(3, 30_000).await > small,
        "after a large burst, reads start large"
    );
    assert!(
        burst(1, 100).await > small,
        "the burst after a large one still does"
    );
    assert_eq!(
        burst(1, 100).await,
        small,
        "after a small burst, reads start small again"
    );
}
