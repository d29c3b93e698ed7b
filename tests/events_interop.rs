//! Interop with the stock npm `socket.io-client` 4.x, WebSocket only and with its default options
//! (long-polling, then the upgrade): this test starts a wsio events server and
//! runs `tests/socketio/interop.mjs` against it, standalone and mounted in an axum app. It needs
//! Node.js and `npm ci` in `tests/socketio/`, so it is ignored by default; `tests/socketio/run`
//! runs it.
#![cfg(feature = "events")]

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::net::TcpListener;
use wsio::events::{Args, Config, Refusal, Server};

/// The server the node script expects: see the script for what each event checks.
fn server() -> Server {
    let mut config = Config::default();
    config.ping_interval = Duration::from_millis(300);
    config.ping_timeout = Duration::from_millis(300);
    let server = Server::new(config);
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let root = server.of("/");
    root.on_connection(move |socket| {
        socket.on("echo", |_, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
        socket.on("ask", |socket, args, _| async move {
            let question = args.get::<String>(0).unwrap_or_default();
            let reply = socket
                .emit_with_ack_timeout("question", json!([question]), Duration::from_secs(5))
                .await;
            let answer = match reply {
                Ok(args) => json!([args.values()]),
                Err(error) => json!([error.to_string()]),
            };
            let _ = socket.emit("answer", answer);
        });
        socket.on("join", |socket, args, ack| async move {
            socket.join(args.get::<String>(0).unwrap_or_default());
            if let Some(ack) = ack {
                let _ = ack.send(json!([socket.rooms()]));
            }
        });
        socket.on("to", |socket, args, ack| async move {
            let room = args.get::<String>(0).unwrap_or_default();
            let count = socket
                .to(room)
                .emit("room", json!([args.value(1)]))
                .unwrap_or(0);
            if let Some(ack) = ack {
                let _ = ack.send(json!([count]));
            }
        });
        socket.on("all", |socket, args, _| async move {
            let _ = socket.broadcast().emit("all", args.clone());
            let _ = socket.emit("all", args);
        });
        socket.on("others", |socket, args, _| async move {
            let _ = socket.broadcast().emit("others", args);
        });
        socket.on("binary", |socket, args, ack| async move {
            let data = args.binary_at(0).cloned().unwrap_or_default();
            let doubled: Vec<u8> = data.iter().map(|byte| byte.wrapping_mul(2)).collect();
            let mut reply = Args::new().with(json!({"len": data.len()}));
            let blob = reply.attach(Bytes::from(doubled));
            reply.push(json!({"nested": [blob]}));
            let _ = socket.emit("binary", reply);
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
        socket.on("kick", |socket, _, _| async move { socket.disconnect() });
        socket.on("drop", |socket, _, _| async move { socket.close() });
        socket.on("poll-all", |socket, args, ack| async move {
            let question = args.value(0).cloned().unwrap_or_default();
            let replies = socket
                .to("pollers")
                .timeout(Duration::from_secs(2))
                .emit_with_ack("poll", json!([question]));
            // The room without the asker, then the asker itself.
            let mine = socket
                .emit_with_ack_timeout("poll", json!([question]), Duration::from_secs(2))
                .await;
            let result = match (replies.await, mine) {
                (Ok(mut replies), Ok(mine)) => {
                    replies.push(mine);
                    let replies: Vec<_> = replies
                        .iter()
                        .map(|args| args.values()[0].clone())
                        .collect();
                    json!({"ok": true, "replies": replies})
                }
                (others, mine) => json!({"ok": false, "error": format!("{others:?} {mine:?}")}),
            };
            if let Some(ack) = ack {
                let _ = ack.send(json!([result]));
            }
        });
        let reasons_for_query = std::sync::Arc::clone(&reasons);
        socket.on("reasons", move |_, _, ack| {
            let reasons = reasons_for_query.lock().unwrap().clone();
            async move {
                if let Some(ack) = ack {
                    let _ = ack.send(json!([reasons]));
                }
            }
        });
        let reasons = std::sync::Arc::clone(&reasons);
        socket.on_disconnect(move |_, reason| {
            reasons.lock().unwrap().push(reason.to_string());
            async {}
        });
    });
    let guarded = server.of("/guarded");
    guarded.use_middleware(|socket| async move {
        match socket.auth()["user"].as_str() {
            Some(_) => Ok(()),
            None => Err(Refusal::new("who are you?").with_data(json!({"need": "user"}))),
        }
    });
    guarded.on_connection(|socket| {
        let handshake = socket.handshake();
        let query: serde_json::Map<String, serde_json::Value> = handshake
            .query()
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        let address = handshake
            .address()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let _ = socket.emit(
            "welcome",
            json!([socket.auth()["user"], {"address": address, "query": query}]),
        );
    });
    let admin = server.of("/admin");
    admin.authorize(|auth| async move {
        match auth["token"].as_str() {
            Some("secret") => Ok(()),
            _ => Err(Refusal::new("not authorized").with_data(json!({"need": "token"}))),
        }
    });
    admin.on_connection(|socket| {
        let token = socket.auth()["token"].clone();
        let _ = socket.emit("welcome", json!([socket.namespace(), token]));
    });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and `npm ci` in tests/socketio (run tests/socketio/run)"]
async fn stock_socketio_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = server();
    tokio::spawn(async move { server.serve(listener).await });
    run_script(port).await;
}

/// The same script against the server mounted in an axum app as a `tower::Service`.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Node.js and `npm ci` in tests/socketio (run tests/socketio/run)"]
async fn stock_socketio_client_through_axum() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "another route" }))
        .route_service("/socket.io/", server().service());
    // Connect info: the middleware test checks the handshake's peer address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    run_script(port).await;
}

/// Runs `interop.mjs` against the server on `port`.
async fn run_script(port: u16) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/socketio/interop.mjs");
    let status = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .status()
    })
    .await
    .unwrap()
    .expect("node runs");
    assert!(status.success(), "interop.mjs failed: {status}");
}
