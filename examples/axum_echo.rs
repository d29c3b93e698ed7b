//! An echo server inside axum: text and binary messages come back as they were sent.
//!
//! `cargo run --release --example axum_echo -- [--no-deflate] [ADDR]`
//!
//! The route `/` upgrades through `wsio::axum::WebSocketUpgrade`; permessage-deflate is accepted
//! when offered, unless `--no-deflate`. ADDR defaults to 127.0.0.1:9002, like `echo_server`. The
//! subprotocol `chat` is selected when offered. Prints `listening on ADDR` once ready.

use std::net::SocketAddr;

use axum::Router;
use axum::response::Response;
use axum::routing::any;
use axum::serve::ListenerExt;
use wsio::axum::{WebSocket, WebSocketUpgrade};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut deflate = true;
    let mut addr: SocketAddr = "127.0.0.1:9002".parse()?;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-deflate" => deflate = false,
            "-h" | "--help" => {
                println!("usage: axum_echo [--no-deflate] [ADDR]");
                return Ok(());
            }
            other => addr = other.parse()?,
        }
    }
    let app = Router::new().route(
        "/",
        any(move |ws: WebSocketUpgrade| async move { upgrade(ws, deflate) }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

fn upgrade(ws: WebSocketUpgrade, deflate: bool) -> Response {
    let ws = ws.protocols(["chat"]);
    let ws = if deflate { ws } else { ws.deflate(None) };
    ws.on_failed_upgrade(|error| eprintln!("upgrade failed: {error}"))
        .on_upgrade(|socket| async {
            if let Err(error) = echo(socket).await {
                eprintln!("connection ended: {error}");
            }
        })
}

async fn echo(mut socket: WebSocket) -> Result<(), wsio::Error> {
    while let Some(message) = socket.recv().await {
        socket.send(message?).await?;
    }
    Ok(())
}
