//! Upgrades inside a bare hyper 1.x server (RFC 6455 §4.2): the application's choice of
//! subprotocol and refusal, deflate, and the errors that never reach the network.
#![cfg(feature = "hyper")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use wsio::hyper::{Body, Upgrade, UpgradeError, is_upgrade_request, reject_response};
use wsio::proto::handshake::{Accept, ClientRequest, HandshakeError, Reject};
use wsio::{Message, Options};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts `chat` when offered; refuses a request without `Origin` with 403.
async fn handle(mut request: http::Request<Incoming>) -> Result<http::Response<Body>, Infallible> {
    if !is_upgrade_request(&request) {
        return Ok(http::Response::new(Body::from("not a websocket")));
    }
    let upgrade = match Upgrade::new(&mut request, &Options::default()) {
        Ok(upgrade) => upgrade,
        Err(error) => return Ok(error.response()),
    };
    if upgrade.request().origin().is_none() {
        return Ok(reject_response(&Reject::new(403).body("origin needed")));
    }
    let chat = upgrade
        .request()
        .subprotocols()
        .iter()
        .any(|name| name == "chat");
    let accept = if chat {
        Accept::new().subprotocol("chat")
    } else {
        Accept::new()
    };
    let (response, pending) = match upgrade.accept(accept) {
        Ok(accepted) => accepted,
        Err(error) => return Ok(error.response()),
    };
    tokio::spawn(async move {
        let mut ws = pending.await?;
        while let Some(message) = ws.read().await? {
            ws.send(message).await?;
        }
        Ok::<(), wsio::Error>(())
    });
    Ok(response)
}

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .with_upgrades(),
            );
        }
    });
    addr
}

#[tokio::test]
async fn upgrade_with_subprotocol_and_deflate_then_echo() {
    let addr = serve().await;
    let request = ClientRequest::new(&format!("ws://{addr}/"))
        .unwrap()
        .subprotocol("chat")
        .unwrap()
        .header("Origin", "http://127.0.0.1")
        .unwrap();
    let (mut ws, response) = tokio::time::timeout(
        TIMEOUT,
        wsio::tokio::connect_async_with(request, &Options::default()),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(response.subprotocol(), Some("chat"));
    assert!(ws.connection().deflate_params().is_some());
    let message = Message::text("hello ".repeat(100));
    ws.send(message.clone()).await.unwrap();
    let echo = tokio::time::timeout(TIMEOUT, ws.read())
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(echo, Some(message));
}

#[tokio::test]
async fn application_refusal_reaches_the_client() {
    let addr = serve().await;
    let error = tokio::time::timeout(
        TIMEOUT,
        wsio::tokio::connect_async(&format!("ws://{addr}/")),
    )
    .await
    .expect("answer in time")
    .unwrap_err();
    match error {
        wsio::Error::Handshake(HandshakeError::Rejected { status, body, .. }) => {
            assert_eq!(status, 403);
            assert_eq!(&body[..], b"origin needed");
        }
        other => panic!("expected a 403 refusal, got {other}"),
    }
}

/// A request hyper did not parse has no upgrade handle: a valid request is still checked first.
#[test]
fn request_without_hyper_connection_is_not_upgradable() {
    let mut request = http::Request::get("/")
        .header("Host", "a")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
        .body(())
        .unwrap();
    let error = Upgrade::new(&mut request, &Options::default()).unwrap_err();
    assert_eq!(error, UpgradeError::NotUpgradable);
    assert_eq!(error.status(), 500);
    assert_eq!(error.response().status(), 500);

    request.headers_mut().remove("sec-websocket-version");
    let error = Upgrade::new(&mut request, &Options::default()).unwrap_err();
    assert_eq!(
        error,
        UpgradeError::Handshake(HandshakeError::UnsupportedVersion)
    );
    let response = error.response();
    assert_eq!(response.status(), 426);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    assert!(response.headers().get("connection").is_none());
}

#[test]
fn reject_response_keeps_status_headers_and_body() {
    let reject = Reject::new(302)
        .header("Location", "/elsewhere")
        .unwrap()
        .body("moved");
    let response = reject_response(&reject);
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/elsewhere");
    assert!(response.headers().get("content-length").is_none());
}
