//! The server the Socket.IO protocol compliance suite expects (test-suite/ in the public
//! socketio/socket.io-protocol repository), built on the public `wsio::events` API.
//!
//! `cargo run --example socketio_protocol_server -- [ADDR]`
//!
//! ADDR defaults to 127.0.0.1:3000, where the suite connects. It is configured as the suite's
//! Readme says: a ping every 300 ms, a 200 ms ping timeout, a 1 MB `maxPayload`, a 1 s connect
//! timeout and any CORS origin. Both `/` and `/custom` emit the client's auth payload back as an
//! `auth` event on connection; `/` also answers `message` with `message-back` and the same
//! arguments, and acknowledges `message-with-ack` with its arguments. Prints `listening on ADDR`
//! once ready.

use std::net::SocketAddr;
use std::time::Duration;

use wsio::events::{Args, Config, Cors, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:3000".parse()?,
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    server().serve(listener).await?;
    Ok(())
}

/// The suite's configuration and handlers.
fn server() -> Server {
    let mut config = Config::default();
    config.ping_interval = Duration::from_millis(300);
    config.ping_timeout = Duration::from_millis(200);
    config.max_payload = 1_000_000;
    config.connect_timeout = Duration::from_millis(1000);
    config.cors = Some(Cors::any());
    let server = Server::new(config);
    server.of("/").on_connection(|socket| {
        let _ = socket.emit("auth", Args::from_values(vec![socket.auth().clone()]));
        socket.on("message", |socket, args, _| async move {
            let _ = socket.emit("message-back", args);
        });
        socket.on("message-with-ack", |_, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
    });
    server.of("/custom").on_connection(|socket| {
        let _ = socket.emit("auth", Args::from_values(vec![socket.auth().clone()]));
    });
    server
}
