//! `Config::message_timeout` through both adapters over loopback TCP: a client that trickles a
//! frame in a byte at a time gets close 1008, while a normal client served at the same time
//! still gets its echo.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use wsio::proto::{DecoderLimits, Frame, FrameDecoder, OpCode, ProtocolError, Role};
use wsio::{Error, Options};

/// How long one message may take to arrive on the servers under test.
const LIMIT: Duration = Duration::from_millis(300);

/// The pause between two bytes of the slow client: the load, not an assertion.
const TRICKLE: Duration = Duration::from_millis(50);

/// Bounds every blocking read, so a broken server fails the test instead of hanging it.
const READ_BOUND: Duration = Duration::from_secs(20);

fn options() -> Options {
    let mut options = Options::default();
    options.connection.message_timeout = Some(LIMIT);
    options.connection.close_timeout = Some(Duration::from_secs(2));
    options
}

/// A client that speaks the protocol by hand, so it can send a frame a byte at a time.
struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl RawClient {
    fn connect(addr: &str) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_BOUND)).unwrap();
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "response head cut short"
            );
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let limits = DecoderLimits {
            max_frame_size: 1 << 20,
            allow_rsv1: false,
        };
        Self {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(Role::Client, limits),
        }
    }

    /// The next frame from the server, or `None` at end of stream.
    fn next_frame(&mut self) -> Option<Frame> {
        let mut chunk = [0; 4096];
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(frame);
            }
            match self.stream.read(&mut chunk).unwrap() {
                0 => return None,
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next close frame, skipping anything before it.
    fn next_close(&mut self) -> Frame {
        loop {
            let frame = self.next_frame().expect("a close frame before the end");
            if frame.opcode == OpCode::Close {
                return frame;
            }
        }
    }
}

/// A masked client frame.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut wire = BytesMut::new();
    Frame {
        fin: true,
        rsv1: false,
        opcode,
        payload: payload.to_vec().into(),
    }
    .encode(Some([0x37, 0xfa, 0x21, 0x3d]), &mut wire);
    wire.to_vec()
}

/// Runs the scenario against the echo server at `addr`: the slow client trickles a frame and
/// gets close 1008; a normal client, connected while it trickles, gets its echo and closes.
fn slow_client_is_closed_while_another_is_served(addr: &str) {
    let mut slow = RawClient::connect(addr);
    // A frame declared much longer than the trickle can send before the server gives up, and
    // bounded: 1 000 bytes at one per TRICKLE is under a minute.
    let wire = client_frame(OpCode::Binary, &[7; 1000]);
    let mut writer = slow.stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            for byte in wire {
                if stop.load(Ordering::Relaxed) || writer.write_all(&[byte]).is_err() {
                    return;
                }
                thread::sleep(TRICKLE);
            }
            panic!("the whole frame went out: the server never timed the message out");
        }
    });

    let mut normal = RawClient::connect(addr);
    normal
        .stream
        .write_all(&client_frame(OpCode::Text, b"still served"))
        .unwrap();
    let echo = normal.next_frame().expect("an echo");
    assert_eq!(
        (echo.opcode, &echo.payload[..]),
        (OpCode::Text, &b"still served"[..])
    );
    normal
        .stream
        .write_all(&client_frame(OpCode::Close, b"\x03\xe8"))
        .unwrap();
    assert_eq!(&normal.next_close().payload[..2], b"\x03\xe8");
    assert!(
        normal.next_frame().is_none(),
        "the server closes the transport"
    );

    let close = slow.next_close();
    assert_eq!(&close.payload[..], b"\x03\xf0message timeout", "close 1008");
    stop.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    // It cannot answer mid-frame: it ends the transport instead.
    slow.stream.shutdown(Shutdown::Write).unwrap();
    assert!(slow.next_frame().is_none(), "nothing after the close frame");
}

/// How the server side of the slow connection ended: without a closing handshake.
fn assert_ended_without_handshake(result: Result<(), Error>) {
    assert!(
        matches!(
            result,
            Err(Error::Protocol(
                ProtocolError::UnexpectedEof | ProtocolError::CloseTimeout
            ))
        ),
        "{result:?}"
    );
}

#[cfg(feature = "sync")]
#[test]
fn sync_server_closes_a_trickled_message_with_1008() {
    use std::net::TcpListener;
    use std::sync::mpsc;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (results, finished) = mpsc::channel();
    let server = thread::spawn(move || {
        for index in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let results = results.clone();
            thread::spawn(move || {
                let serve = || -> Result<(), Error> {
                    let options = options();
                    wsio::sync::configure_tcp(&stream, &options)?;
                    let mut ws = wsio::sync::accept_with(stream, &options, |_| {
                        Ok(wsio::proto::handshake::Accept::new())
                    })?;
                    while let Some(message) = ws.read()? {
                        ws.send(message)?;
                    }
                    Ok(())
                };
                results.send((index, serve())).unwrap();
            });
        }
    });
    slow_client_is_closed_while_another_is_served(&addr);
    server.join().unwrap();
    let mut ended: Vec<_> = finished.iter().take(2).collect();
    ended.sort_by_key(|(index, _)| *index);
    let mut ended = ended.into_iter().map(|(_, result)| result);
    assert_ended_without_handshake(ended.next().unwrap());
    assert!(
        ended.next().unwrap().is_ok(),
        "the normal client closed cleanly"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_server_closes_a_trickled_message_with_1008() {
    use wsio::proto::handshake::{Accept, Request};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = runtime.spawn(async move {
        let mut connections = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            connections.push(tokio::spawn(async move {
                let options = options();
                let mut ws = wsio::tokio::accept_with(stream, &options, async |_: &Request| {
                    Ok(Accept::new())
                })
                .await?;
                while let Some(message) = ws.read().await? {
                    ws.send(message).await?;
                }
                Ok::<(), Error>(())
            }));
        }
        let mut results = Vec::new();
        for connection in connections {
            results.push(connection.await.unwrap());
        }
        results
    });
    slow_client_is_closed_while_another_is_served(&addr);
    let mut results = runtime.block_on(server).unwrap().into_iter();
    assert_ended_without_handshake(results.next().unwrap());
    assert!(
        results.next().unwrap().is_ok(),
        "the normal client closed cleanly"
    );
}
