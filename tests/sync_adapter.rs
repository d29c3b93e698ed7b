//! The blocking adapter over real loopback sockets.
#![cfg(feature = "sync")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wsio::proto::Event;
use wsio::proto::handshake::{Accept, ClientRequest, HandshakeError, Reject};
use wsio::{CloseCode, CloseFrame, Error, Message, Options};

/// Starts a blocking echo server for `connections` connections; returns its address.
fn echo_server(connections: usize) -> (String, thread::JoinHandle<Vec<Result<(), Error>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let mut options = Options::default();
                options.handshake_timeout = Some(Duration::from_millis(500));
                let mut ws = wsio::sync::accept_with(stream, &options, |request| {
                    if request.target().starts_with("/private") {
                        return Err(Reject::new(401).body("who are you?"));
                    }
                    let chat = request.subprotocols().iter().any(|p| p == "chat");
                    Ok(if chat {
                        Accept::new().subprotocol("chat")
                    } else {
                        Accept::new()
                    })
                })?;
                while let Some(message) = ws.read()? {
                    ws.send(message)?;
                }
                Ok(())
            })
            .collect()
    });
    (addr, handle)
}

#[test]
fn echo_text_and_binary_then_close_with_a_code() {
    let (addr, server) = echo_server(1);
    let request = ClientRequest::new(&format!("ws://{addr}/echo"))
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let (mut ws, response) = wsio::sync::connect_with(request, &Options::default()).unwrap();
    assert_eq!(response.subprotocol(), Some("chat"));
    ws.send(Message::text("héllo")).unwrap();
    assert_eq!(ws.read().unwrap(), Some(Message::text("héllo")));
    let big = vec![7u8; 300_000];
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Some(Message::binary(big)));
    ws.close(Some(CloseFrame::new(CloseCode(4000), "done")))
        .unwrap();
    assert_eq!(ws.read().unwrap(), None);
    assert_eq!(
        ws.close_frame().map(|frame| frame.code),
        Some(CloseCode(4000))
    );
    assert!(server.join().unwrap()[0].is_ok());
}

#[test]
fn borrowed_sends_are_echoed() {
    let (addr, server) = echo_server(1);
    let request = ClientRequest::new(&format!("ws://{addr}/echo")).unwrap();
    let (mut ws, _) = wsio::sync::connect_with(request, &Options::default()).unwrap();
    ws.send_text("héllo").unwrap();
    let long = vec![3u8; 200_000];
    ws.send_binary(&long).unwrap();
    assert_eq!(ws.read().unwrap(), Some(Message::text("héllo")));
    assert_eq!(ws.read().unwrap(), Some(Message::binary(long)));
    ws.close(None).unwrap();
    assert_eq!(ws.read().unwrap(), None);
    assert!(server.join().unwrap()[0].is_ok());
}

#[test]
fn rejection_reaches_the_client_with_status_and_body() {
    let (addr, server) = echo_server(1);
    let error = wsio::sync::connect(&format!("ws://{addr}/private")).unwrap_err();
    let Error::Handshake(HandshakeError::Rejected { status, body, .. }) = error else {
        panic!("unexpected {error:?}")
    };
    assert_eq!(status, 401);
    assert_eq!(&body[..], b"who are you?");
    assert!(matches!(
        server.join().unwrap()[0],
        Err(Error::Rejected(401))
    ));
}

fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn bad_handshakes_get_their_http_status() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", "HTTP/1.1 400"),
    ];
    let (addr, server) = echo_server(cases.len());
    for (request, status) in cases {
        let response = raw_exchange(&addr, request);
        assert!(response.starts_with(status), "{response}");
        if status.ends_with("426") {
            assert!(
                response
                    .to_ascii_lowercase()
                    .contains("sec-websocket-version: 13")
            );
        }
    }
    assert!(
        server
            .join()
            .unwrap()
            .iter()
            .all(|result| matches!(result, Err(Error::Handshake(_))))
    );
}

#[test]
fn silent_client_is_cut_by_the_handshake_timeout() {
    let (addr, server) = echo_server(1);
    let _stream = TcpStream::connect(&addr).unwrap();
    assert!(matches!(
        server.join().unwrap()[0],
        Err(Error::HandshakeTimeout)
    ));
}

#[test]
fn split_reads_and_writes_on_two_threads() {
    let (addr, server) = echo_server(1);
    let (ws, _) = wsio::sync::connect(&format!("ws://{addr}")).unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    let sender = thread::spawn(move || {
        for i in 0..200 {
            writer.send(Message::text(format!("message {i}"))).unwrap();
        }
        writer.close(None).unwrap();
    });
    let mut received = 0;
    while let Some(message) = reader.read().unwrap() {
        assert_eq!(message, Message::text(format!("message {received}")));
        received += 1;
    }
    assert_eq!(received, 200);
    sender.join().unwrap();
    assert!(server.join().unwrap()[0].is_ok());
}

#[test]
fn protocol_error_from_the_peer_is_reported_with_its_close_code() {
    let (addr, server) = echo_server(1);
    let (mut ws, _) = wsio::sync::connect(&format!("ws://{addr}")).unwrap();
    // Bypass the client's framing: an unmasked frame is a protocol error for a server.
    ws.get_mut().write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let mut close = [0u8; 4];
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    ws.get_mut().read_exact(&mut close).unwrap();
    assert_eq!(close, [0x88, 0x02, 0x03, 0xea], "close frame 1002");
    let error = server.join().unwrap().remove(0).unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::PROTOCOL_ERROR));
}

/// A server that closes with 4000, reads the client's echo, says so on `echoed`, and ends the
/// transport only when `go` says so.
fn closing_server(
    echoed: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut raw = wsio::sync::accept(stream).unwrap().into_inner();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(&[0x88, 0x05, 0x0f, 0xa0, b'b', b'y', b'e'])
            .unwrap();
        let mut head = [0u8; 2];
        raw.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x88, "a close frame");
        let mut rest = vec![0u8; usize::from(head[1] & 0x7f) + 4];
        raw.read_exact(&mut rest).unwrap();
        echoed.send(()).unwrap();
        go.recv_timeout(Duration::from_secs(5)).unwrap();
        raw.shutdown(std::net::Shutdown::Write).unwrap();
        // The client ends its side in turn.
        let mut end = Vec::new();
        raw.read_to_end(&mut end).unwrap();
        assert!(end.is_empty());
    });
    (addr, handle)
}

/// Both ways of reading a connection report the server's close only once the server has ended
/// the transport, as RFC 6455 §7.1.1 asks of a client.
fn client_reports_the_close_after_the_servers_end(split: bool) {
    let (echoed_tx, echoed) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let (addr, server) = closing_server(echoed_tx, go_rx);
    let (ws, _) = wsio::sync::connect(&format!("ws://{addr}")).unwrap();
    let (closed_tx, closed) = mpsc::channel();
    let (writer, client) = if split {
        let (mut reader, writer) = ws.split().unwrap();
        let client = thread::spawn(move || {
            let event = reader.read_event();
            let after = reader.read_event();
            closed_tx
                .send((event, after, reader.close_frame()))
                .unwrap();
        });
        (Some(writer), client)
    } else {
        let client = thread::spawn(move || {
            let mut ws = ws;
            let event = ws.read_event();
            let after = ws.read_event();
            let sent = ws.send(Message::text("late"));
            assert!(matches!(sent, Err(Error::AlreadyClosed)), "{sent:?}");
            closed_tx
                .send((event, after, ws.close_frame().cloned()))
                .unwrap();
        });
        (None, client)
    };
    echoed.recv_timeout(Duration::from_secs(5)).unwrap();
    if let Some(writer) = &writer {
        // The close is taken (it was echoed) though not yet reported: nothing more may be sent.
        let sent = writer.send(Message::text("late"));
        assert!(matches!(sent, Err(Error::AlreadyClosed)), "{sent:?}");
    }
    assert_eq!(
        closed.recv_timeout(Duration::from_millis(200)).err(),
        Some(mpsc::RecvTimeoutError::Timeout),
        "the close is reported before the server ended the transport"
    );
    go.send(()).unwrap();
    let (event, after, close_frame) = closed.recv_timeout(Duration::from_secs(5)).unwrap();
    let expected = CloseFrame::new(CloseCode(4000), "bye");
    match event.unwrap() {
        Some(Event::Closed(Some(frame))) => assert_eq!(frame, expected),
        other => panic!("expected the close, got {other:?}"),
    }
    assert!(after.unwrap().is_none(), "nothing after the close");
    assert_eq!(
        close_frame,
        Some(expected),
        "close_frame keeps the peer's frame"
    );
    client.join().unwrap();
    server.join().unwrap();
}

#[test]
fn whole_socket_reports_the_close_after_the_servers_end() {
    client_reports_the_close_after_the_servers_end(false);
}

#[test]
fn reader_reports_the_close_after_the_servers_end() {
    client_reports_the_close_after_the_servers_end(true);
}

/// RFC 9110 §5.5 keeps obs-text legal in field values: a cookie a site set in Latin-1 comes back
/// byte for byte, and the handshake must take it and hand it to the application unchanged.
#[test]
fn latin1_cookie_upgrades_and_reaches_the_application_as_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        (0..2)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                let mut cookie = None;
                let ws = wsio::sync::accept_with(stream, &Options::default(), |request| {
                    cookie = request.headers().get_bytes("cookie").map(<[u8]>::to_vec);
                    Ok(Accept::new()
                        .header_bytes("Set-Cookie", b"name=na\xefve")
                        .unwrap())
                });
                (ws.map(drop), cookie)
            })
            .collect::<Vec<_>>()
    });

    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Cookie: name=caf\xe9\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert!(
        head.ends_with(b"\r\nSet-Cookie: name=na\xefve\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    drop(stream);

    // Our own client sends and reads such values too.
    let request = ClientRequest::new(&format!("ws://{addr}/"))
        .unwrap()
        .header_bytes("Cookie", b"name=caf\xe9")
        .unwrap();
    let (ws, response) = wsio::sync::connect_with(request, &Options::default()).unwrap();
    assert_eq!(
        response.headers().get_bytes("set-cookie"),
        Some(&b"name=na\xefve"[..])
    );
    drop(ws);

    for (result, cookie) in server.join().unwrap() {
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(cookie.as_deref(), Some(&b"name=caf\xe9"[..]));
    }
}
