//! `wss://` through the public API: both adapters in both roles, large and compressed messages,
//! and every TLS failure with its typed error, the server serving the next client afterwards.
#![cfg(feature = "rustls-manual-roots")]

mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tls_support::{Client, Pki, SIDES, Server, Side, WAIT};
use wsio::tls::{TlsError, rustls};
use wsio::{Error, Message, Options};

fn wss(server: &Server) -> String {
    format!("wss://{}/echo", server.addr)
}

/// A good client's full round trip: proves the server still serves.
fn assert_serves(server: &Server, pki: &Pki, client_side: Side) {
    let mut client = Client::connect(client_side, &wss(server), &pki.client_options())
        .expect("a trusting client connects");
    server.next_result().expect("the server accepts it");
    assert_eq!(
        client.echo(Message::text("still here")),
        Message::text("still here")
    );
    client.close();
}

#[test]
fn both_adapters_echo_over_tls_in_both_roles() {
    let pki = Pki::localhost();
    for server_side in SIDES {
        let server = Server::start(server_side, Some(pki.acceptor()), Options::default());
        for client_side in SIDES {
            let mut client = Client::connect(client_side, &wss(&server), &pki.client_options())
                .unwrap_or_else(|error| panic!("{client_side:?} -> {server_side:?}: {error}"));
            server.next_result().unwrap();
            assert_eq!(client.alpn().as_deref(), Some(&b"http/1.1"[..]));
            for message in [Message::text("hello"), Message::binary(vec![1, 2, 3])] {
                assert_eq!(client.echo(message.clone()), message);
            }
            client.close();
        }
    }
}

#[test]
fn one_mebibyte_messages_with_and_without_deflate_over_tls() {
    let pki = Pki::localhost();
    let text: String = (0..(1 << 20))
        .map(|i| char::from(b'a' + (i % 23) as u8))
        .collect();
    let binary: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for deflate in [true, false] {
        let mut options = pki.client_options();
        options.connection.max_message_size = 2 << 20;
        if !deflate {
            options.deflate = None;
        }
        let mut server_options = Options::default();
        server_options.connection.max_message_size = 2 << 20;
        for server_side in SIDES {
            let server = Server::start(server_side, Some(pki.acceptor()), server_options.clone());
            for client_side in SIDES {
                let mut client = Client::connect(client_side, &wss(&server), &options).unwrap();
                server.next_result().unwrap();
                assert_eq!(
                    client.deflate(),
                    deflate,
                    "{client_side:?} -> {server_side:?}"
                );
                let echoed = client.echo(Message::text(text.clone()));
                assert_eq!(echoed, Message::text(text.clone()));
                let echoed = client.echo(Message::binary(binary.clone()));
                assert_eq!(echoed, Message::binary(binary.clone()));
                client.close();
            }
        }
    }
}

#[test]
fn a_server_signed_by_an_unknown_ca_is_refused() {
    let pki = Pki::localhost();
    let stranger = Pki::localhost();
    for server_side in SIDES {
        let server = Server::start(server_side, Some(pki.acceptor()), Options::default());
        for client_side in SIDES {
            let error = Client::connect(client_side, &wss(&server), &stranger.client_options())
                .err()
                .expect("an untrusted server is refused");
            assert!(
                matches!(error, Error::Tls(TlsError::UnknownIssuer)),
                "{client_side:?}: {error}"
            );
            // The server learns from the client's alert.
            let error = server.next_result().expect_err("the handshake failed");
            assert!(
                matches!(error, Error::Tls(TlsError::Alert(_))),
                "{server_side:?}: {error}"
            );
            assert_serves(&server, &pki, client_side);
        }
    }
}

#[test]
fn a_certificate_for_another_host_name_is_refused() {
    let pki = Pki::new(&["elsewhere.test"]);
    for server_side in SIDES {
        let server = Server::start(server_side, Some(pki.acceptor()), Options::default());
        for client_side in SIDES {
            let error = Client::connect(client_side, &wss(&server), &pki.client_options())
                .err()
                .expect("a certificate for another name is refused");
            assert!(
                matches!(error, Error::Tls(TlsError::WrongHostName)),
                "{client_side:?}: {error}"
            );
            let error = server.next_result().expect_err("the handshake failed");
            assert!(matches!(error, Error::Tls(_)), "{server_side:?}: {error}");
            // A client that names the host the certificate is for still gets through.
            let tcp = TcpStream::connect(server.addr).unwrap();
            let name = rustls::pki_types::ServerName::try_from("elsewhere.test").unwrap();
            let conn =
                rustls::ClientConnection::new(Arc::clone(pki.connector().config()), name).unwrap();
            let tls = rustls::StreamOwned::new(conn, tcp);
            let request =
                wsio::proto::handshake::ClientRequest::new("wss://elsewhere.test/echo").unwrap();
            let (mut ws, _) = wsio::sync::client(tls, &request, &Options::default()).unwrap();
            server.next_result().unwrap();
            ws.send(Message::text("named right")).unwrap();
            assert_eq!(ws.read().unwrap(), Some(Message::text("named right")));
        }
    }
}

#[test]
fn plaintext_sent_to_a_tls_port_is_a_typed_error_on_both_ends() {
    let pki = Pki::localhost();
    for server_side in SIDES {
        let server = Server::start(server_side, Some(pki.acceptor()), Options::default());
        for client_side in SIDES {
            let url = format!("ws://{}/echo", server.addr);
            let error = Client::connect(client_side, &url, &Options::default())
                .err()
                .expect("a TLS server does not answer plain HTTP");
            assert!(
                matches!(error, Error::Handshake(_) | Error::Io(_)),
                "{client_side:?}: {error}"
            );
            let error = server.next_result().expect_err("the handshake failed");
            assert!(
                matches!(error, Error::Tls(TlsError::NotTls)),
                "{server_side:?}: {error}"
            );
            assert_serves(&server, &pki, client_side);
        }
    }
}

#[test]
fn a_tls_client_on_a_plain_port_is_a_typed_error() {
    let pki = Pki::localhost();
    for server_side in SIDES {
        let server = Server::start(server_side, None, Options::default());
        for client_side in SIDES {
            let error = Client::connect(client_side, &wss(&server), &pki.client_options())
                .err()
                .expect("a plain server does not speak TLS");
            assert!(
                matches!(error, Error::Tls(TlsError::NotTls)),
                "{client_side:?}: {error}"
            );
            // The plain server saw a ClientHello where a request belongs.
            let error = server.next_result().expect_err("not a websocket request");
            assert!(
                matches!(error, Error::Handshake(_)),
                "{server_side:?}: {error}"
            );
            let url = format!("ws://{}/echo", server.addr);
            let mut client = Client::connect(client_side, &url, &Options::default()).unwrap();
            server.next_result().unwrap();
            assert_eq!(client.echo(Message::text("plain")), Message::text("plain"));
            client.close();
        }
    }
}

#[test]
fn a_stalled_tls_handshake_is_dropped_within_the_handshake_timeout() {
    let pki = Pki::localhost();
    let timeout = Duration::from_millis(300);
    let mut options = Options::default();
    options.handshake_timeout = Some(timeout);
    for server_side in SIDES {
        let server = Server::start(server_side, Some(pki.acceptor()), options.clone());
        // A peer that connects and never says anything.
        let mut silent = TcpStream::connect(server.addr).unwrap();
        let started = Instant::now();
        let error = server
            .next_result()
            .expect_err("the silent peer is dropped");
        let elapsed = started.elapsed();
        assert!(
            matches!(error, Error::Tls(TlsError::HandshakeTimeout)),
            "{server_side:?}: {error}"
        );
        assert!(
            elapsed >= timeout - Duration::from_millis(50),
            "{elapsed:?}"
        );
        assert!(elapsed < WAIT / 2, "{elapsed:?}");
        // Dropped: the peer reads the end of the stream (or a reset).
        silent.set_read_timeout(Some(WAIT)).unwrap();
        let mut byte = [0; 1];
        assert!(matches!(silent.read(&mut byte), Ok(0) | Err(_)));
        for client_side in SIDES {
            assert_serves(&server, &pki, client_side);
        }
    }
}

#[test]
fn a_server_that_stalls_the_tls_handshake_times_the_client_out() {
    let pki = Pki::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and reads, never answers; keeps the streams open until the test ends.
    let silent = std::thread::spawn(move || {
        let mut streams = Vec::new();
        for _ in SIDES {
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0; 512];
            let _ = stream.read(&mut hello);
            streams.push(stream);
        }
        streams
    });
    let mut options = pki.client_options();
    let timeout = Duration::from_millis(300);
    options.handshake_timeout = Some(timeout);
    for client_side in SIDES {
        let started = Instant::now();
        let error = Client::connect(client_side, &format!("wss://{addr}/"), &options)
            .err()
            .expect("a silent server times out");
        assert!(
            matches!(error, Error::Tls(TlsError::HandshakeTimeout)),
            "{client_side:?}: {error}"
        );
        assert!(started.elapsed() < WAIT / 2);
    }
    let mut streams = silent.join().unwrap();
    for stream in &mut streams {
        let _ = stream.write_all(b"");
    }
}

#[test]
fn without_a_connector_the_default_roots_refuse_a_private_ca() {
    let pki = Pki::localhost();
    let server = Server::start(Side::Tokio, Some(pki.acceptor()), Options::default());
    for client_side in SIDES {
        let error = Client::connect(client_side, &wss(&server), &Options::default())
            .err()
            .expect("the test CA is in no default store");
        assert!(
            matches!(
                error,
                Error::Tls(TlsError::UnknownIssuer) | Error::Tls(TlsError::NoRoots)
            ),
            "{client_side:?}: {error}"
        );
        if !matches!(error, Error::Tls(TlsError::NoRoots)) {
            server.next_result().expect_err("the handshake failed");
        }
        assert_serves(&server, &pki, client_side);
    }
}

#[test]
fn acceptor_reads_pem_files_and_refuses_bad_ones() {
    let pki = Pki::localhost();
    let dir = std::env::temp_dir().join(format!("wsio-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, empty) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("empty.pem"),
    );
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    std::fs::write(&empty, "not pem\n").unwrap();
    let acceptor = wsio::tls::Acceptor::from_pem_files(&cert, &key).unwrap();
    assert_eq!(acceptor.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    for (cert, key) in [(&empty, &key), (&cert, &empty), (&key, &cert)] {
        let error = wsio::tls::Acceptor::from_pem_files(cert, key).unwrap_err();
        assert!(matches!(error, TlsError::Pem(_)), "{error}");
    }
    let missing = wsio::tls::Acceptor::from_pem_files(dir.join("missing.pem"), &key).unwrap_err();
    assert!(matches!(missing, TlsError::Pem(_)), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tls_connection_from_connect_cannot_be_split_but_a_plain_one_can() {
    let pki = Pki::localhost();
    let server = Server::start(Side::Sync, Some(pki.acceptor()), Options::default());
    let request = wsio::proto::handshake::ClientRequest::new(&wss(&server)).unwrap();
    let (ws, _) = wsio::sync::connect_with(request, &pki.client_options()).unwrap();
    let error = ws.split().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
    let plain = Server::start(Side::Sync, None, Options::default());
    let (ws, _) = wsio::sync::connect(&format!("ws://{}/", plain.addr)).unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    writer.send(Message::text("split")).unwrap();
    assert_eq!(reader.read().unwrap(), Some(Message::text("split")));
}

// ---------------------------------------------------------------------------------------------
// The end of a TLS connection: `close_notify` after the closing handshake, and an EOF without
// it before or after, seen by a peer written with rustls alone and hand-made frames.

/// The TLS stream of a [`RawPeer`], either role.
trait RawTls: Read + Write + Send {
    /// The TCP stream underneath.
    fn tcp(&self) -> &TcpStream;
    /// Sends `close_notify` now.
    fn close_notify(&mut self);
}

macro_rules! raw_tls {
    ($conn:ty) => {
        impl RawTls for rustls::StreamOwned<$conn, TcpStream> {
            fn tcp(&self) -> &TcpStream {
                self.get_ref()
            }

            fn close_notify(&mut self) {
                self.conn.send_close_notify();
                while self.conn.wants_write() {
                    self.conn.write_tls(&mut self.sock).unwrap();
                }
            }
        }
    };
}
raw_tls!(rustls::ClientConnection);
raw_tls!(rustls::ServerConnection);

/// A WebSocket peer over TLS made of rustls and hand-made frames, so a test sees exactly what
/// the wsio end puts on the wire and what it does with the end of the TCP stream.
struct RawPeer {
    tls: Box<dyn RawTls>,
    /// A client masks its frames.
    client: bool,
}

impl RawPeer {
    /// Connects to a wsio server as a WebSocket client.
    fn connect(addr: std::net::SocketAddr, pki: &Pki) -> Self {
        // The configuration only: the TLS session and everything on it is this test's.
        let config = Arc::clone(pki.connector().config());
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let mut peer = Self {
            tls: Box::new(rustls::StreamOwned::new(conn, sock)),
            client: true,
        };
        peer.tls
            .write_all(
                b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let head = peer.read_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        peer
    }

    /// Accepts a wsio client on `listener` as a WebSocket server.
    fn accept(listener: &std::net::TcpListener, pki: &Pki) -> Self {
        let conn = rustls::ServerConnection::new(Arc::clone(pki.acceptor().config())).unwrap();
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let mut peer = Self {
            tls: Box::new(rustls::StreamOwned::new(conn, sock)),
            client: false,
        };
        let head = peer.read_head();
        let key = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("a Sec-WebSocket-Key");
        let accept = wsio::proto::handshake::accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        peer.tls.write_all(response.as_bytes()).unwrap();
        peer.tls.flush().unwrap();
        peer
    }

    /// Reads an HTTP head, byte by byte so nothing past it is taken.
    fn read_head(&mut self) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            self.tls.read_exact(&mut byte).expect("an HTTP head");
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// Sends one frame (masked from a client) with a payload of at most 125 bytes.
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match self.client {
            true => {
                frame.push(0x80 | payload.len() as u8);
                frame.extend_from_slice(&MASK);
                frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
            }
            false => {
                frame.push(payload.len() as u8);
                frame.extend_from_slice(payload);
            }
        }
        self.tls.write_all(&frame).unwrap();
        self.tls.flush().unwrap();
    }

    /// Sends a 1000 close frame.
    fn send_close(&mut self) {
        self.send_frame(0x8, &1000u16.to_be_bytes());
    }

    /// Reads one frame: its first byte (FIN and opcode) and its unmasked payload.
    fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0; 2];
        self.tls.read_exact(&mut header).expect("a frame header");
        assert!(header[1] & 0x7f <= 125, "a short frame");
        let mut mask = [0; 4];
        if header[1] & 0x80 != 0 {
            self.tls.read_exact(&mut mask).unwrap();
        }
        let mut payload = vec![0; usize::from(header[1] & 0x7f)];
        self.tls.read_exact(&mut payload).unwrap();
        for (byte, m) in payload.iter_mut().zip(mask.iter().cycle()) {
            *byte ^= m;
        }
        (header[0], payload)
    }

    /// Reads the wsio end's close frame: empty, or code 1000 (the echo of ours).
    fn expect_close(&mut self) {
        let (first, payload) = self.read_frame();
        assert_eq!(first, 0x88, "a close frame");
        assert!(
            payload.is_empty() || payload == 1000u16.to_be_bytes(),
            "{payload:?}"
        );
    }

    /// Reads once past the last frame: `Ok(0)` when the wsio end sent `close_notify` before
    /// ending TCP, an `UnexpectedEof` error when it ended TCP without it.
    fn read_end(&mut self) -> std::io::Result<usize> {
        self.tls.read(&mut [0; 64])
    }

    /// Ends the TCP stream (write side) without `close_notify`.
    fn cut(&self) {
        self.tls.tcp().shutdown(std::net::Shutdown::Write).unwrap();
    }
}

/// Accepts one `wss://` connection with `side` on a loopback port, starts the closing handshake
/// when a message arrives, and reports how its reads end: `Ok(())` for the close.
fn serve_once(
    side: Side,
    acceptor: wsio::tls::Acceptor,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<Result<(), Error>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let ended = match side {
            Side::Sync => (|| {
                let mut ws = acceptor.accept(stream, &Options::default())?;
                while ws.read()?.is_some() {
                    ws.close(None)?;
                }
                Ok(())
            })(),
            Side::Tokio => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    stream.set_nonblocking(true)?;
                    let stream = tokio::net::TcpStream::from_std(stream)?;
                    let mut ws = acceptor.accept_async(stream, &Options::default()).await?;
                    while ws.read().await?.is_some() {
                        ws.close(None).await?;
                    }
                    Ok(())
                }),
        };
        let _ = report.send(ended);
    });
    (addr, result)
}

/// Connects a `side` client to `wss://addr` and reports how its reads end: `Ok(())` for the
/// close.
fn connect_once(
    side: Side,
    addr: std::net::SocketAddr,
    pki: &Pki,
) -> std::sync::mpsc::Receiver<Result<(), Error>> {
    let (url, options) = (format!("wss://{addr}/raw"), pki.client_options());
    let (report, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ended = Client::connect(side, &url, &options).and_then(|client| match client {
            Client::Sync(mut ws) => {
                while ws.read()?.is_some() {}
                Ok(())
            }
            Client::Tokio(runtime, mut ws) => runtime.block_on(async {
                while ws.read().await?.is_some() {}
                Ok(())
            }),
        });
        let _ = report.send(ended);
    });
    result
}

fn ended(result: &std::sync::mpsc::Receiver<Result<(), Error>>) -> Result<(), Error> {
    result
        .recv_timeout(WAIT)
        .expect("the wsio end reports its end in time")
}

fn assert_truncated(result: Result<(), Error>, what: &str) {
    assert!(
        matches!(
            result,
            Err(Error::Protocol(wsio::proto::ProtocolError::UnexpectedEof))
        ),
        "{what}: {result:?}"
    );
}

#[test]
fn a_server_sends_close_notify_after_the_closing_handshake() {
    let pki = Pki::localhost();
    for side in SIDES {
        // The client closes.
        let (addr, result) = serve_once(side, pki.acceptor());
        let mut peer = RawPeer::connect(addr, &pki);
        peer.send_close();
        peer.expect_close();
        let end = peer.read_end();
        assert!(
            matches!(end, Ok(0)),
            "{side:?}: close_notify, then EOF: {end:?}"
        );
        ended(&result).unwrap_or_else(|error| panic!("{side:?}: {error}"));

        // The server closes; the client then ends TCP without close_notify, which is no error
        // once the closing handshake is done.
        let (addr, result) = serve_once(side, pki.acceptor());
        let mut peer = RawPeer::connect(addr, &pki);
        peer.send_frame(0x1, b"close, please");
        peer.expect_close();
        peer.send_close();
        let end = peer.read_end();
        assert!(
            matches!(end, Ok(0)),
            "{side:?}: close_notify, then EOF: {end:?}"
        );
        peer.cut();
        ended(&result).unwrap_or_else(|error| panic!("{side:?}: {error}"));
    }
}

#[test]
fn a_client_sends_close_notify_after_the_closing_handshake() {
    let pki = Pki::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for side in SIDES {
        for server_notifies in [true, false] {
            let result = connect_once(side, addr, &pki);
            let mut peer = RawPeer::accept(&listener, &pki);
            peer.send_close();
            peer.expect_close();
            // The server ends the connection first; without close_notify too, the closing
            // handshake having authenticated the end.
            if server_notifies {
                peer.tls.close_notify();
            }
            peer.cut();
            let end = peer.read_end();
            assert!(
                matches!(end, Ok(0)),
                "{side:?} (server close_notify: {server_notifies}): close_notify, then EOF: {end:?}"
            );
            ended(&result).unwrap_or_else(|error| {
                panic!("{side:?} (server close_notify: {server_notifies}): {error}")
            });
        }
    }
}

#[test]
fn an_eof_before_the_closing_handshake_is_unexpected_with_or_without_close_notify() {
    let pki = Pki::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // With close_notify, the end is the peer's own, but it still comes before the closing
    // handshake: the same error.
    for (side, notify) in SIDES
        .into_iter()
        .flat_map(|side| [(side, false), (side, true)])
    {
        let (server_addr, result) = serve_once(side, pki.acceptor());
        let mut peer = RawPeer::connect(server_addr, &pki);
        if notify {
            peer.tls.close_notify();
        }
        peer.cut();
        assert_truncated(ended(&result), &format!("{side:?} server, {notify}"));

        let result = connect_once(side, addr, &pki);
        let mut peer = RawPeer::accept(&listener, &pki);
        if notify {
            peer.tls.close_notify();
        }
        peer.cut();
        assert_truncated(ended(&result), &format!("{side:?} client, {notify}"));
    }
}
