//! The wsio side of the broadcast benchmark: an events server on one thread.
//!
//! `server [--deflate] [--polling] [--redis URL]` prints `listening on 127.0.0.1:PORT`. A
//! client's `go` event, with a count, a payload string and a burst size, makes it emit `msg`
//! with that payload to every socket of the namespace, count times, yielding to the runtime
//! after each burst of emits so the connections' writers interleave with the broadcast (the
//! Node server does the same with `setImmediate`).
//! permessage-deflate is off unless `--deflate`, which keeps the server's default (no context
//! takeover, messages of 1 KiB and more). Long-polling is always accepted (the server has no
//! switch for it): `--polling`, which the run script gives every server at its polling points,
//! changes nothing here. `--redis` makes the server a node of a cluster over the Redis at URL
//! (`RedisAdapter`): it prints its address once its subscriptions are in place, and its
//! broadcasts reach the sockets of the other nodes too.

use std::io::Write;

use tokio::net::TcpListener;
use wsio::events::{Args, Config, RedisAdapter, Server};

// One thread, like Node's event loop: the run script pins the process to one CPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let deflate = args.iter().any(|arg| arg == "--deflate");
    let redis = (args.iter())
        .position(|arg| arg == "--redis")
        .map(|at| args.get(at + 1).cloned().unwrap_or_default());
    let mut config = Config::default();
    if !deflate {
        config.websocket.deflate = None;
    }
    if let Some(url) = redis {
        let adapter = RedisAdapter::connect(&url)
            .await
            .map_err(std::io::Error::other)?;
        adapter.ready().await;
        config.adapter = adapter.into();
    }
    let server = Server::new(config);
    let namespace = server.of("/");
    let broadcast = namespace.clone();
    namespace.on_connection(move |socket| {
        let namespace = broadcast.clone();
        socket.on("go", move |_, args, _| {
            let namespace = namespace.clone();
            async move {
                let (Ok(count), Ok(payload)) = (args.get::<u64>(0), args.get::<String>(1)) else {
                    eprintln!("go: expected a count and a payload string");
                    return;
                };
                let burst = args.get::<u64>(2).unwrap_or(1).max(1);
                for sent in 0..count {
                    let _ = namespace.emit("msg", Args::new().with(payload.clone()));
                    if (sent + 1) % burst == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
    });

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    server.serve(listener).await
}
