//! A chat room in one axum app: a static page, a plain WebSocket route and Socket.IO, on one
//! port.
//!
//! `cargo run --example axum_chat -- [ADDR]`, then open `http://ADDR/` in a few browser tabs
//! (ADDR defaults to 127.0.0.1:3000). Prints `listening on ADDR` once ready.
//!
//! `/ws` upgrades through `wsio::axum::WebSocketUpgrade` (permessage-deflate when the browser
//! offers it, which they all do); every text message goes to every connected page.
//! `/socket.io/` is the Socket.IO server mounted as a service: a socket.io-client with its
//! default options (long-polling, then the upgrade) emits `chat`, and every socket receives it.
//! The page loads that client from `/socket.io.min.js`, served from what `examples/chat/setup`
//! installs (nothing is fetched from elsewhere); without it, the plain WebSocket side still works.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use tokio::sync::broadcast;
use wsio::Message;
use wsio::axum::{WebSocket, WebSocketUpgrade};
use wsio::events::Server;

/// The page: a message list, an input, and a WebSocket to `/ws`.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>wsio axum chat</title>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus><button>send</button></form>
<script>
  const log = document.getElementById("log");
  const show = (text) => { const li = document.createElement("li"); li.textContent = text; log.append(li); };
  // Plain WebSocket: /ws.
  const ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onopen = () => show(`connected (extensions: ${ws.extensions || "none"})`);
  ws.onmessage = (event) => show(event.data);
  ws.onclose = (event) => show(`closed ${event.code}`);
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    if (input.value) ws.send(input.value);
    if (input.value && window.socket) socket.emit("chat", input.value);
    input.value = "";
  };
</script>
<!-- Socket.IO, default options (long-polling, then the upgrade), when the CDN is reachable. -->
<script src="/socket.io.min.js"></script>
<script>
  if (window.io) {
    window.socket = io();
    socket.on("connect", () => show(`socket.io connected (${socket.io.engine.transport.name})`));
    socket.io.engine.on("upgrade", (transport) => show(`socket.io upgraded to ${transport.name}`));
    socket.on("chat", (text, from) => show(`[socket.io] ${from}: ${text}`));
  }
</script>
"#;

/// How many messages a slow page may fall behind before it misses some.
const BACKLOG: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:3000".parse()?,
    };
    let (room, _) = broadcast::channel::<String>(BACKLOG);
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", any(chat))
        .route("/socket.io.min.js", get(client_js))
        .route_service("/socket.io/", socket_io().service())
        .with_state(room);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    // Connect info gives the Socket.IO handshakes the peer's address.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}

/// The Socket.IO side of the chat: each `chat` event goes to every socket, with who sent it.
fn socket_io() -> Server {
    let io = Server::default();
    let everyone = io.clone();
    io.of("/").on_connection(move |socket| {
        let everyone = everyone.clone();
        socket.on("chat", move |socket, args, _ack| {
            let everyone = everyone.clone();
            async move {
                let text = args.get::<String>(0).unwrap_or_default();
                let from = socket
                    .handshake()
                    .address()
                    .map(|address| address.to_string());
                let _ = everyone.emit("chat", serde_json::json!([text, from]));
            }
        });
    });
    io
}

/// The socket.io browser client, from `examples/chat/setup`'s install.
async fn client_js() -> Response {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/chat/node_modules/socket.io-client/dist/socket.io.min.js"
    );
    match tokio::fs::read(path).await {
        Ok(script) => ([(header::CONTENT_TYPE, "text/javascript")], script).into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            "no socket.io client: run examples/chat/setup (needs npm)",
        )
            .into_response(),
    }
}

async fn chat(ws: WebSocketUpgrade, State(room): State<broadcast::Sender<String>>) -> Response {
    ws.max_message_size(64 << 10)
        .on_upgrade(move |socket| join(socket, room))
}

/// Relays the page's messages to the room, and the room's to the page, until either side ends.
async fn join(socket: WebSocket, room: broadcast::Sender<String>) {
    let mut heard = room.subscribe();
    let (mut read, mut write) = socket.into_inner().split();
    let relay = tokio::spawn(async move {
        loop {
            match heard.recv().await {
                Ok(text) => {
                    if write.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    while let Ok(Some(message)) = read.read().await {
        if let Message::Text(text) = message {
            // No receiver is not an error here: this page's own relay may have ended.
            let _ = room.send(text.to_string());
        }
    }
    relay.abort();
}
