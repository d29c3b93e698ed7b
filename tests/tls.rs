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
