//! An echo server: text and binary messages come back as they were sent.
//!
//! `cargo run --release --example echo_server -- [--sync] [--no-deflate] [ADDR]`
//!
//! The tokio adapter serves by default, the blocking one (a thread per connection) with
//! `--sync`. permessage-deflate is accepted when offered, unless `--no-deflate`. ADDR defaults to 127.0.0.1:9002. The subprotocol `chat` is selected when offered,
//! and a close is answered with the peer's own code. Prints `listening on ADDR` once ready.

use std::net::{SocketAddr, TcpListener, TcpStream};

use wsio::Options;
use wsio::proto::handshake::{Accept, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sync = false;
    let mut deflate = true;
    let mut addr: SocketAddr = "127.0.0.1:9002".parse()?;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--sync" => sync = true,
            "--no-deflate" => deflate = false,
            "-h" | "--help" => {
                println!("usage: echo_server [--sync] [--no-deflate] [ADDR]");
                return Ok(());
            }
            other => addr = other.parse()?,
        }
    }
    let mut options = Options::default();
    if !deflate {
        options.deflate = None;
    }
    if sync {
        serve_blocking(addr, options)
    } else {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(serve_tokio(addr, options))
    }
}

/// Picks `chat` when the client offers it.
fn decide(request: &Request) -> Accept {
    if request
        .subprotocols()
        .iter()
        .any(|protocol| protocol == "chat")
    {
        Accept::new().subprotocol("chat")
    } else {
        Accept::new()
    }
}

fn serve_blocking(addr: SocketAddr, options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let options = options.clone();
        std::thread::spawn(move || {
            if let Err(error) = echo_blocking(stream, &options) {
                eprintln!("connection ended: {error}");
            }
        });
    }
    Ok(())
}

fn echo_blocking(stream: TcpStream, options: &Options) -> Result<(), wsio::Error> {
    // The read timeout is the tick on which the adapter runs its timers.
    wsio::sync::configure_tcp(&stream, options)?;
    let mut ws = wsio::sync::accept_with(stream, options, |request| Ok(decide(request)))?;
    while let Some(message) = ws.read()? {
        ws.send(message)?;
    }
    Ok(())
}

async fn serve_tokio(addr: SocketAddr, options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let options = options.clone();
        tokio::spawn(async move {
            if let Err(error) = echo_tokio(stream, &options).await {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

async fn echo_tokio(stream: tokio::net::TcpStream, options: &Options) -> Result<(), wsio::Error> {
    stream.set_nodelay(true)?;
    let mut ws = wsio::tokio::accept_with(stream, options, async |request: &Request| {
        Ok(decide(request))
    })
    .await?;
    while let Some(message) = ws.read().await? {
        ws.send(message).await?;
    }
    Ok(())
}
