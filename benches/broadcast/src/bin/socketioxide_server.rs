//! The socketioxide side of the broadcast benchmark: its hyper service on one thread.
//!
//! `socketioxide_server [--polling]` prints `listening on 127.0.0.1:PORT`. A client's `go`
//! event, with a count, a payload string and a burst size, makes it emit `msg` with that
//! payload to every socket of the default namespace (`io.emit`), count times, yielding to the
//! runtime after each burst of emits, as the wsio and Node servers do.
//! Only the WebSocket transport is accepted unless `--polling`, which accepts long-polling too
//! (socketioxide's default). socketioxide has no permessage-deflate: it has no `--deflate`.

use std::io::Write;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::{SocketIo, TransportType};
use tokio::net::TcpListener;

// One thread, like the other two servers: the run script pins the process to one CPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let polling = std::env::args().any(|arg| arg == "--polling");
    let builder = SocketIo::builder();
    let builder = if polling {
        builder.transports([TransportType::Polling, TransportType::Websocket])
    } else {
        builder.transports([TransportType::Websocket])
    };
    let (service, io) = builder.build_svc();
    io.ns("/", async |socket: SocketRef| {
        socket.on(
            "go",
            async |io: SocketIo, Data((count, payload, burst)): Data<(u64, String, u64)>| {
                let burst = burst.max(1);
                for sent in 0..count {
                    if let Err(error) = io.emit("msg", &payload).await {
                        eprintln!("emit: {error}");
                    }
                    if (sent + 1) % burst == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            },
        );
    });

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                eprintln!("connection: {error}");
            }
        });
    }
}
