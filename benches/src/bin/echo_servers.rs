//! Echo servers, one per contender, each written the way its library's docs and examples show
//! (two ways where a library documents two: a flush per message, and batched flushes):
//!
//! ```text
//! echo_servers NAME PORT [MAX_SECONDS] [--until-stdin-closes]
//! ```
//! NAME is one of `wsio-tokio`, `wsio-tokio-flush` (`next` + `SinkExt::send`: a flush per
//! message), `wsio-sync`, `tungstenite`, `tokio-tungstenite` (`send` per message: a flush each), `tokio-tungstenite-forward` (its echo-server example: `split` +
//! `forward`, which flushes when no more input is ready), `fastwebsockets`, `tokio-websockets`
//! (its echo_server example: `send` per message), `tokio-websockets-forward` (`split` +
//! `forward` over its sink, which queues frames up to its flush threshold, though its stream
//! writes the queue before every read), `raw-tcp` (echoes
//! bytes after a bare 101) or `tcp-hold` (answers the upgrade, echoes through a 512-byte
//! buffer: the memory baseline), `wsio-axum` and `axum-builtin` (an axum route with
//! `wsio::axum::WebSocketUpgrade` or axum's own, each connection served by hyper as
//! `axum::serve` does), or the probe `wsio-tokio-flush-spin` (`wsio-tokio-flush` busy-waiting
//! `ECHO_SPIN_NS` nanoseconds, default 300, before each reply; see `benches/pipeline-probe`).
//! It listens on 127.0.0.1 only, prints `listening on ...` and exits by itself after
//! MAX_SECONDS (default 600), or as soon as its standard input ends with
//! `--until-stdin-closes` (the load generators hold that pipe, so a server never outlives
//! them and never quits in the middle of a long suite). Tokio servers run on a current-thread
//! runtime (one core each, like the `taskset` pinning); the blocking ones use a thread per
//! connection. Every accepted socket gets `TCP_NODELAY`. fastwebsockets and tokio-websockets
//! run each connection in `tokio::task::unconstrained`, as their examples do.

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::unconstrained;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().expect("NAME").clone();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).expect("PORT");
    let max_seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(600);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max_seconds));
        std::process::exit(0);
    });
    if args.iter().any(|a| a == "--until-stdin-closes") {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let addr = ("127.0.0.1", port);
    let spin = Duration::from_nanos(
        std::env::var("ECHO_SPIN_NS")
            .ok()
            .and_then(|ns| ns.parse().ok())
            .unwrap_or(300),
    );
    match name.as_str() {
        "wsio-sync" => sync_server(StdListener::bind(addr).expect("bind"), wsio_sync),
        "tungstenite" => sync_server(StdListener::bind(addr).expect("bind"), tungstenite_sync),
        _ => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let listener = TcpListener::bind(addr).await.expect("bind");
                announce(port);
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    match name.as_str() {
                        "wsio-tokio" => drop(tokio::spawn(wsio_tokio(stream))),
                        "wsio-tokio-flush" => drop(tokio::spawn(wsio_tokio_flush(stream))),
                        "wsio-tokio-flush-spin" => {
                            drop(tokio::spawn(wsio_tokio_flush_spin(stream, spin)))
                        }
                        "tokio-tungstenite" => drop(tokio::spawn(tokio_tungstenite(stream))),
                        "tokio-tungstenite-forward" => {
                            drop(tokio::spawn(tokio_tungstenite_forward(stream)))
                        }
                        "fastwebsockets" => drop(tokio::spawn(fastwebsockets(stream))),
                        "tokio-websockets" => {
                            drop(tokio::spawn(unconstrained(tokio_websockets(stream))))
                        }
                        "tokio-websockets-forward" => drop(tokio::spawn(unconstrained(
                            tokio_websockets_forward(stream),
                        ))),
                        "wsio-axum" => drop(tokio::spawn(serve_axum(
                            stream,
                            axum::Router::new().route("/", axum::routing::any(wsio_axum)),
                        ))),
                        "axum-builtin" => drop(tokio::spawn(serve_axum(
                            stream,
                            axum::Router::new().route("/", axum::routing::any(axum_builtin)),
                        ))),
                        "raw-tcp" => drop(tokio::spawn(raw_tcp(stream))),
                        "tcp-hold" => drop(tokio::spawn(tcp_hold(stream))),
                        other => panic!("unknown server {other}"),
                    }
                }
            });
        }
    }
}

fn announce(port: u16) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on 127.0.0.1:{port}");
    let _ = out.flush();
}

fn sync_server(listener: StdListener, handle: fn(std::net::TcpStream)) {
    announce(listener.local_addr().expect("addr").port());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || handle(stream));
    }
}

/// wsio, blocking: the README's server, thread per connection, 250 ms read timeout as the tick;
/// `send` writes and flushes each message (like tungstenite's).
fn wsio_sync(stream: std::net::TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let run = || -> Result<(), wsio::Error> {
        let mut ws = wsio::sync::accept(stream)?;
        while let Some(message) = ws.read()? {
            ws.send(message)?;
        }
        Ok(())
    };
    let _ = run();
}

/// tungstenite, blocking, as its server example: `accept`, then `read` / `send` (write and
/// flush). It documents `write` without a flush, but a blocking reader cannot tell when the
/// input is drained, so a flush per message is the idiom here.
fn tungstenite_sync(stream: std::net::TcpStream) {
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    while let Ok(message) = ws.read() {
        if (message.is_binary() || message.is_text()) && ws.send(message).is_err() {
            return;
        }
    }
}

/// wsio, tokio: the README's server. `send` writes at once unless more input is already
/// buffered, in which case the replies to a burst leave together.
async fn wsio_tokio(stream: TcpStream) {
    let Ok(mut ws) = wsio::tokio::accept(stream).await else {
        return;
    };
    while let Ok(Some(message)) = ws.read().await {
        if ws.send(message).await.is_err() {
            return;
        }
    }
}

/// wsio-tokio as a `Stream` and `Sink`: `next`, then `SinkExt::send` (feed and flush) per
/// message, so each reply is written before the next message is read.
async fn wsio_tokio_flush(stream: TcpStream) {
    // A no-op closure compiles away: the contender runs the loop alone.
    wsio_tokio_flush_after(stream, || {}).await;
}

/// `wsio_tokio_flush` slowed down on purpose: it busy-waits `spin` before each reply. A probe,
/// not a contender (`benches/pipeline-probe`): it shows whether a point rewards a server for
/// being slower.
async fn wsio_tokio_flush_spin(stream: TcpStream, spin: Duration) {
    wsio_tokio_flush_after(stream, || {
        let until = std::time::Instant::now() + spin;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    })
    .await;
}

/// The `wsio_tokio_flush` loop, calling `before_reply` before each reply.
async fn wsio_tokio_flush_after(stream: TcpStream, before_reply: impl Fn()) {
    let Ok(mut ws) = wsio::tokio::accept(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        before_reply();
        if SinkExt::send(&mut ws, message).await.is_err() {
            return;
        }
    }
}

/// tokio-tungstenite with a `send` (write and flush) per message, as its server example does.
async fn tokio_tungstenite(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_binary() || message.is_text()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

/// tokio-tungstenite as its echo-server example: `split`, then `forward` the text and binary
/// messages from the stream into the sink. `forward` starts a send per message and flushes only
/// when the stream has nothing ready, so the replies to a burst leave together.
async fn tokio_tungstenite_forward(stream: TcpStream) {
    use futures_util::{TryStreamExt, future};
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
        .forward(write)
        .await;
}

/// fastwebsockets: the upgrade through hyper (its `upgrade` feature), then a `FragmentCollector`
/// echoing frames in an unconstrained task, as in its echo_server example. `write_frame` writes
/// each frame to the socket; the crate documents no batching of writes.
async fn fastwebsockets(stream: TcpStream) {
    use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    async fn handle(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => return Ok(()),
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
    }

    async fn upgrade_request(
        mut request: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut request)?;
        tokio::spawn(tokio::task::unconstrained(async move {
            let _ = handle(fut).await;
        }));
        Ok(response)
    }

    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, hyper::service::service_fn(upgrade_request))
        .with_upgrades()
        .await;
}

/// One connection of an axum app, served by hyper with upgrades, as `axum::serve` does.
async fn serve_axum(stream: TcpStream, app: axum::Router) {
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(app),
        )
        .with_upgrades()
        .await;
}

/// wsio through axum: the extractor's `on_upgrade`, then `recv` / `send` (the load generator
/// offers no compression, so none is negotiated).
async fn wsio_axum(ws: wsio::axum::WebSocketUpgrade) -> axum::response::Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    })
}

/// axum's built-in extractor (tokio-tungstenite underneath), written the same way.
async fn axum_builtin(ws: axum::extract::ws::WebSocketUpgrade) -> axum::response::Response {
    use axum::extract::ws::Message;
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Binary(_) | Message::Text(_))
                && socket.send(message).await.is_err()
            {
                return;
            }
        }
    })
}

/// tokio-websockets as its echo_server example: `send` (queue and flush) per message.
async fn tokio_websockets(stream: TcpStream) {
    let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_binary() || message.is_text()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

/// tokio-websockets with `split` + `forward`: its sink queues frames and flushes before taking
/// more only past its flush threshold (8 KiB by default), and `forward` flushes when the stream
/// has nothing ready. But its stream writes whatever is queued before every read, so in an echo
/// loop this still writes about once per message: the batching its sink documents is for
/// sending without reading.
async fn tokio_websockets_forward(stream: TcpStream) {
    use futures_util::{TryStreamExt, future};
    let Ok((_request, ws)) = tokio_websockets::ServerBuilder::new().accept(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
        .forward(write)
        .await;
}

/// Reads the request head and answers with a bare 101 (the load generator only checks the
/// status line when no accept key is sent).
async fn bare_upgrade(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        .await
}

/// The ceiling: echoes bytes through a 64 KiB buffer, no WebSocket processing at all.
async fn raw_tcp(mut stream: TcpStream) {
    if bare_upgrade(&mut stream).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The memory baseline: a task that holds the socket and echoes through a small buffer.
async fn tcp_hold(mut stream: TcpStream) {
    if bare_upgrade(&mut stream).await.is_err() {
        return;
    }
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
