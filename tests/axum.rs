//! The axum extractor (RFC 6455 §4.2, RFC 7692): refusals with the sans-IO handshake's statuses,
//! an app that refuses and keeps serving, permessage-deflate and the message limit through axum.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsio::axum::{WebSocket, WebSocketUpgrade};
use wsio::proto::Event;
use wsio::proto::handshake::ClientRequest;
use wsio::{CloseCode, Message, Options};

/// Bounds every wait on the network.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The message limit of the `/limited` route.
const LIMIT: usize = 1024;

/// Serves the test app on 127.0.0.1 and returns its address.
async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/", any(|ws: WebSocketUpgrade| async { echo_route(ws) }))
        .route(
            "/limited",
            any(|ws: WebSocketUpgrade| async { ws.max_message_size(LIMIT).on_upgrade(echo) }),
        )
        .route(
            "/frames",
            any(|ws: WebSocketUpgrade| async { ws.max_frame_size(LIMIT).on_upgrade(echo) }),
        )
        .route(
            "/plain",
            any(|ws: WebSocketUpgrade| async { ws.deflate(None).on_upgrade(echo) }),
        )
        .route("/private", any(private))
        .route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn echo_route(ws: WebSocketUpgrade) -> Response {
    ws.protocols(["other", "chat"]).on_upgrade(echo)
}

/// Refuses the upgrade unless the request carries a token.
async fn private(headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if headers.get("authorization").is_none() {
        return (StatusCode::UNAUTHORIZED, "token needed").into_response();
    }
    ws.on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if socket.send(message).await.is_err() {
            return;
        }
    }
}

/// A response head read off the wire: status and lower-case header fields.
struct Head {
    status: u16,
    fields: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `request` on a new connection and reads the response head.
async fn raw(addr: SocketAddr, request: &str) -> Head {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut data = Vec::new();
        let mut buf = [0; 1024];
        while !data.windows(4).any(|window| window == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "eof before the response head");
            data.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&data).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines.next().expect("status line")[9..12]
            .parse()
            .expect("status");
        let fields = lines
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Head { status, fields }
    })
    .await
    .expect("a response in time")
}

/// An upgrade request to `path` with the sample key, `extra` lines added and `drop` left out.
fn upgrade_request(method: &str, path: &str, drop: &[&str], extra: &[&str]) -> String {
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for line in [
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ] {
        let name = line.split(':').next().unwrap();
        if !drop.contains(&name) {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// The app answers a plain request on its health route: it kept serving.
async fn assert_still_serving(addr: SocketAddr) {
    let head = raw(addr, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert_eq!(head.status, 200);
}

#[tokio::test]
async fn non_upgrade_request_gets_400_and_the_app_keeps_serving() {
    let addr = serve().await;
    let head = raw(addr, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert_eq!(head.status, 400);
    assert_eq!(head.get("content-type"), Some("text/plain; charset=utf-8"));
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn wrong_version_gets_426_with_the_version_we_speak() {
    let addr = serve().await;
    let request = upgrade_request(
        "GET",
        "/",
        &["Sec-WebSocket-Version"],
        &["Sec-WebSocket-Version: 8"],
    );
    let head = raw(addr, &request).await;
    assert_eq!(head.status, 426);
    assert_eq!(head.get("sec-websocket-version"), Some("13"));
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn missing_key_gets_400() {
    let addr = serve().await;
    let head = raw(
        addr,
        &upgrade_request("GET", "/", &["Sec-WebSocket-Key"], &[]),
    )
    .await;
    assert_eq!(head.status, 400);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn wrong_method_gets_405_with_allow_get() {
    let addr = serve().await;
    let head = raw(
        addr,
        &upgrade_request("POST", "/", &[], &["Content-Length: 0"]),
    )
    .await;
    assert_eq!(head.status, 405);
    assert_eq!(head.get("allow"), Some("GET"));
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn refused_upgrade_gets_the_apps_status_and_the_app_keeps_serving() {
    let addr = serve().await;
    let head = raw(addr, &upgrade_request("GET", "/private", &[], &[])).await;
    assert_eq!(head.status, 401);
    let head = raw(
        addr,
        &upgrade_request("GET", "/private", &[], &["Authorization: Bearer t"]),
    )
    .await;
    assert_eq!(head.status, 101);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn deflate_and_subprotocol_are_negotiated_through_axum() {
    let addr = serve().await;
    let request = ClientRequest::new(&format!("ws://{addr}/"))
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let (mut ws, response) = tokio::time::timeout(
        TIMEOUT,
        wsio::tokio::connect_async_with(request, &Options::default()),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(response.subprotocol(), Some("chat"));
    let extensions = response.headers().get("sec-websocket-extensions");
    assert!(
        extensions.is_some_and(|value| value.starts_with("permessage-deflate")),
        "{extensions:?}"
    );
    assert!(ws.connection().deflate_params().is_some());

    let text = "compressible ".repeat(1000);
    for message in [Message::text(text.clone()), Message::binary(vec![7; 5000])] {
        ws.send(message.clone()).await.unwrap();
        let echo = tokio::time::timeout(TIMEOUT, ws.read())
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(echo, Some(message));
    }
    ws.close(None).await.unwrap();
    while tokio::time::timeout(TIMEOUT, ws.read())
        .await
        .expect("close in time")
        .unwrap()
        .is_some()
    {}
}

#[tokio::test]
async fn deflate_off_on_the_route_declines_the_offer() {
    let addr = serve().await;
    let (ws, response) = tokio::time::timeout(
        TIMEOUT,
        wsio::tokio::connect_async(&format!("ws://{addr}/plain")),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(response.headers().get("sec-websocket-extensions"), None);
    assert_eq!(response.subprotocol(), None);
    assert!(ws.connection().deflate_params().is_none());
}

#[tokio::test]
async fn message_over_the_limit_gets_1009() {
    // With deflate: the limit is on the message as decompressed.
    over_the_limit_gets_1009("/limited", Options::default()).await;
}

#[tokio::test]
async fn frame_over_the_limit_gets_1009() {
    // Without deflate, so that the frame on the wire is as long as the message.
    let mut options = Options::default();
    options.deflate = None;
    over_the_limit_gets_1009("/frames", options).await;
}

/// A message of `LIMIT` bytes comes back; one byte more, in one frame, closes with 1009.
async fn over_the_limit_gets_1009(path: &str, options: Options) {
    let addr = serve().await;
    let request = ClientRequest::new(&format!("ws://{addr}{path}")).unwrap();
    let (mut ws, _) =
        tokio::time::timeout(TIMEOUT, wsio::tokio::connect_async_with(request, &options))
            .await
            .expect("handshake in time")
            .expect("handshake");
    let fits = Message::binary(vec![1; LIMIT]);
    ws.send(fits.clone()).await.unwrap();
    let echo = tokio::time::timeout(TIMEOUT, ws.read())
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(echo, Some(fits));

    ws.send(Message::binary(vec![2; LIMIT + 1])).await.unwrap();
    let event = tokio::time::timeout(TIMEOUT, ws.read_event())
        .await
        .expect("close in time")
        .unwrap();
    match event {
        Some(Event::Closed(Some(frame))) => assert_eq!(frame.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}
