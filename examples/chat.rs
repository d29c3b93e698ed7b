//! A rooms chat over the events (Socket.IO) server, with its page served on the same port.
//!
//! ```text
//! examples/chat/setup                                   # once: npm ci of socket.io-client
//! cargo run --example chat -- [ADDR] [--client FILE]
//! ```
//!
//! then open `http://ADDR/` in a few browser tabs (ADDR defaults to 127.0.0.1:3000). Prints
//! `listening on ADDR` once ready.
//!
//! The page (`examples/chat/index.html`) loads the socket.io client from `/socket.io.min.js`,
//! which this example serves from FILE, by default the copy `examples/chat/setup` installs in
//! `examples/chat/node_modules`. Nothing is fetched from elsewhere, so it works offline; when
//! FILE is missing, the example says so at startup and the page says so too. The client
//! connects with `transports: ['websocket']`: the server does not do long-polling.
//!
//! Events: `join(room)` moves the sender to a room; `message(text)` goes to everyone in the
//! sender's room; the server sends `message({from, text})` and `system(text)`. The nickname comes
//! from the client's auth payload (`{nick}`), refused when empty.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::json;
use wsio::events::{Config, HttpResponse, Refusal, Server, Socket};

/// The page, compiled in.
const PAGE: &str = include_str!("chat/index.html");

#[derive(Clone)]
struct Nick(String);

#[derive(Clone)]
struct Room(String);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, client_js) = parse_args()?;
    if !client_js.is_file() {
        println!(
            "note: no socket.io client at {}: the page cannot connect. \
             Run examples/chat/setup (needs npm), or pass --client FILE.",
            client_js.display()
        );
    }
    let server = Server::new(Config::default());
    server.http_fallback(move |path| match path {
        "/" | "/index.html" => Some(HttpResponse::new(200, "text/html; charset=utf-8", PAGE)),
        "/socket.io.min.js" => std::fs::read(&client_js)
            .ok()
            .map(|js| HttpResponse::new(200, "text/javascript", js)),
        _ => None,
    });

    let chat = server.of("/");
    chat.authorize(|auth| async move {
        match auth["nick"].as_str().map(str::trim) {
            Some(nick) if !nick.is_empty() && nick.len() <= 32 => Ok(()),
            _ => Err(Refusal::new("pick a nickname (1 to 32 characters)")),
        }
    });
    let rooms = chat.clone();
    chat.on_connection(move |socket| {
        let nick = socket.auth()["nick"]
            .as_str()
            .unwrap_or("?")
            .trim()
            .to_owned();
        socket.extensions().insert(Nick(nick));
        enter(&socket, "lobby");

        socket.on("join", |socket, args, ack| async move {
            let room: String = args.get(0).unwrap_or_default();
            let room = room.trim();
            if room.is_empty() || room.len() > 32 {
                return;
            }
            if let Some(Room(old)) = socket.extensions().get::<Room>() {
                let _ = socket
                    .to(&old)
                    .emit("system", json!([format!("{} left", nick_of(&socket))]));
                socket.leave(&old);
            }
            enter(&socket, room);
            if let Some(ack) = ack {
                let _ = ack.send(json!([room]));
            }
        });

        let rooms = rooms.clone();
        socket.on("message", move |socket, args, _| {
            let rooms = rooms.clone();
            async move {
                let text: String = args.get(0).unwrap_or_default();
                if text.is_empty() || text.len() > 2000 {
                    return;
                }
                if let Some(Room(room)) = socket.extensions().get::<Room>() {
                    let message = json!({"from": nick_of(&socket), "text": text});
                    let _ = rooms.to(room).emit("message", json!([message]));
                }
            }
        });

        socket.on_disconnect(|socket, reason| async move {
            if let Some(Room(room)) = socket.extensions().get::<Room>() {
                let text = format!("{} left ({reason})", nick_of(&socket));
                let _ = socket.to(room).emit("system", json!([text]));
            }
        });
    });

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    server.serve(listener).await?;
    Ok(())
}

/// `[ADDR] [--client FILE]`: the address to listen on and the socket.io client to serve.
fn parse_args() -> Result<(SocketAddr, PathBuf), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:3000".parse()?;
    let mut client_js = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/chat/node_modules/socket.io-client/dist/socket.io.min.js");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--client" => client_js = args.next().ok_or("--client needs a FILE")?.into(),
            _ if arg.starts_with('-') => {
                return Err(
                    format!("unknown option {arg}; usage: chat [ADDR] [--client FILE]").into(),
                );
            }
            _ => addr = arg.parse()?,
        }
    }
    Ok((addr, client_js))
}

/// Puts `socket` in `room` and tells both sides.
fn enter(socket: &Socket, room: &str) {
    socket.join(room);
    socket.extensions().insert(Room(room.to_owned()));
    let _ = socket.emit("system", json!([format!("you are in #{room}")]));
    let _ = socket
        .to(room)
        .emit("system", json!([format!("{} joined", nick_of(socket))]));
}

fn nick_of(socket: &Socket) -> String {
    socket
        .extensions()
        .get::<Nick>()
        .map(|Nick(nick)| nick)
        .unwrap_or_default()
}
