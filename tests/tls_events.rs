//! The Socket.IO server over TLS (`Server::serve_tls`) and the client on `https://` and
//! `wss://` URLs, with certificates made at test time.
#![cfg(all(feature = "events", feature = "rustls-manual-roots"))]

mod tls_support;

use std::time::{Duration, Instant};

use serde_json::json;
use tls_support::Pki;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::timeout;
use wsio::events::client::{ClientBuilder, ClientError};
use wsio::events::{Args, Config, Server};
use wsio::tls::TlsError;

const WAIT: Duration = Duration::from_secs(10);

/// An echo server (`echo` acknowledges with its arguments) over TLS on a loopback port.
async fn start(pki: &Pki, config: Config) -> std::net::SocketAddr {
    let server = Server::new(config);
    server.of("/").on_connection(|socket| {
        socket.on("echo", |_, args, ack| async move {
            ack.expect("ack requested").send(args).unwrap();
        });
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = pki.acceptor();
    tokio::spawn(async move { server.serve_tls(listener, acceptor).await });
    addr
}

async fn echo_over(url: String, pki: &Pki) {
    let client = ClientBuilder::new(url.clone())
        .tls_connector(pki.connector())
        .reconnection(false)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("{url}: {error}"));
    let reply = timeout(
        WAIT,
        client.emit_with_ack("echo", json!([1, "two", {"three": 3}])),
    )
    .await
    .expect("the ack in time")
    .unwrap();
    assert_eq!(reply, Args::from(json!([1, "two", {"three": 3}])));
    let big = "x".repeat(512 << 10);
    let reply = timeout(WAIT, client.emit_with_ack("echo", json!([big])))
        .await
        .expect("the ack in time")
        .unwrap();
    assert_eq!(reply, Args::from(json!([big])));
    client.disconnect();
}

#[tokio::test]
async fn the_client_reaches_a_tls_server_on_https_and_wss_urls() {
    let pki = Pki::localhost();
    let addr = start(&pki, Config::default()).await;
    echo_over(format!("https://{addr}"), &pki).await;
    echo_over(format!("wss://{addr}/"), &pki).await;
}

#[tokio::test]
async fn an_untrusted_server_fails_the_client_with_a_tls_error() {
    let pki = Pki::localhost();
    let stranger = Pki::localhost();
    let addr = start(&pki, Config::default()).await;
    let error = ClientBuilder::new(format!("https://{addr}"))
        .tls_connector(stranger.connector())
        .reconnection(false)
        .connect()
        .await
        .expect_err("an untrusted server is refused");
    let ClientError::Transport(error) = &error else {
        panic!("expected a transport error, got {error}");
    };
    assert!(
        matches!(**error, wsio::Error::Tls(TlsError::UnknownIssuer)),
        "{error}"
    );
    echo_over(format!("https://{addr}"), &pki).await;
}

#[tokio::test]
async fn a_stalled_tls_peer_is_dropped_and_the_server_keeps_serving() {
    let pki = Pki::localhost();
    let mut config = Config::default();
    let limit = Duration::from_millis(300);
    config.websocket.handshake_timeout = Some(limit);
    let addr = start(&pki, config).await;
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut byte = [0; 1];
    // The server hangs up: end of stream, or a reset.
    let read = timeout(WAIT, silent.read(&mut byte))
        .await
        .expect("dropped in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= limit - Duration::from_millis(50));
    echo_over(format!("https://{addr}"), &pki).await;
}

#[tokio::test]
async fn plain_http_to_the_tls_server_is_dropped_and_it_keeps_serving() {
    let pki = Pki::localhost();
    let addr = start(&pki, Config::default()).await;
    let error = ClientBuilder::new(format!("http://{addr}"))
        .reconnection(false)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect_err("a TLS server does not answer plain HTTP");
    assert!(matches!(error, ClientError::Transport(_)), "{error}");
    echo_over(format!("wss://{addr}"), &pki).await;
}
