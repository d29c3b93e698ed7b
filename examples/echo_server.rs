//! An echo server: text and binary messages come back as they were sent.
//!
//! `cargo run --release --example echo_server -- [--sync] [--no-deflate] [--tls CERT_PEM KEY_PEM] [ADDR]`
//!
//! The tokio adapter serves by default, the blocking one (a thread per connection) with
//! `--sync`. permessage-deflate is accepted when offered, unless `--no-deflate`. With `--tls`
//! it serves `wss://` with the PEM certificate chain and private key (PKCS#8, RSA or EC; needs
//! the feature `rustls`). ADDR defaults to 127.0.0.1:9002. The subprotocol `chat` is selected
//! when offered, and a close is answered with the peer's own code. Prints `listening on ADDR`
//! once ready.

use std::net::{SocketAddr, TcpListener, TcpStream};

use wsio::Options;
use wsio::proto::handshake::{Accept, Request};

const USAGE: &str = "usage: echo_server [--sync] [--no-deflate] [--tls CERT_PEM KEY_PEM] [ADDR]";

/// How connections are accepted: plain TCP, or TLS over it.
#[derive(Clone)]
enum Transport {
    Plain,
    #[cfg(feature = "rustls-manual-roots")]
    Tls(wsio::tls::Acceptor),
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sync = false;
    let mut deflate = true;
    let mut transport = Transport::Plain;
    let mut addr: SocketAddr = "127.0.0.1:9002".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sync" => sync = true,
            "--no-deflate" => deflate = false,
            "--tls" => {
                let (Some(cert), Some(key)) = (args.next(), args.next()) else {
                    return Err(USAGE.into());
                };
                transport = tls(&cert, &key)?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
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
        serve_blocking(addr, options, transport)
    } else {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(serve_tokio(addr, options, transport))
    }
}

#[cfg(feature = "rustls-manual-roots")]
fn tls(cert: &str, key: &str) -> Result<Transport, Box<dyn std::error::Error>> {
    Ok(Transport::Tls(wsio::tls::Acceptor::from_pem_files(
        cert, key,
    )?))
}

#[cfg(not(feature = "rustls-manual-roots"))]
fn tls(_: &str, _: &str) -> Result<Transport, Box<dyn std::error::Error>> {
    Err(
        "--tls needs the feature `rustls`: cargo run --features rustls --example echo_server"
            .into(),
    )
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

fn serve_blocking(
    addr: SocketAddr,
    options: Options,
    transport: Transport,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (options, transport) = (options.clone(), transport.clone());
        std::thread::spawn(move || {
            if let Err(error) = echo_blocking(stream, &options, &transport) {
                eprintln!("connection ended: {error}");
            }
        });
    }
    Ok(())
}

fn echo_blocking(
    stream: TcpStream,
    options: &Options,
    transport: &Transport,
) -> Result<(), wsio::Error> {
    // The read timeout is the tick on which the adapter runs its timers.
    wsio::sync::configure_tcp(&stream, options)?;
    match transport {
        Transport::Plain => echo(wsio::sync::accept_with(stream, options, |request| {
            Ok(decide(request))
        })?),
        #[cfg(feature = "rustls-manual-roots")]
        Transport::Tls(acceptor) => {
            echo(acceptor.accept_with(stream, options, |request| Ok(decide(request)))?)
        }
    }
}

fn echo<S: std::io::Read + std::io::Write>(
    mut ws: wsio::sync::WebSocket<S>,
) -> Result<(), wsio::Error> {
    while let Some(message) = ws.read()? {
        ws.send(message)?;
    }
    Ok(())
}

async fn serve_tokio(
    addr: SocketAddr,
    options: Options,
    transport: Transport,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let (options, transport) = (options.clone(), transport.clone());
        tokio::spawn(async move {
            if let Err(error) = echo_tokio(stream, &options, &transport).await {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

async fn echo_tokio(
    stream: tokio::net::TcpStream,
    options: &Options,
    transport: &Transport,
) -> Result<(), wsio::Error> {
    stream.set_nodelay(true)?;
    let decide = async |request: &Request| Ok(decide(request));
    match transport {
        Transport::Plain => {
            echo_async(wsio::tokio::accept_with(stream, options, decide).await?).await
        }
        #[cfg(feature = "rustls-manual-roots")]
        Transport::Tls(acceptor) => {
            echo_async(acceptor.accept_async_with(stream, options, decide).await?).await
        }
    }
}

async fn echo_async<S>(mut ws: wsio::tokio::WebSocketStream<S>) -> Result<(), wsio::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = ws.read().await? {
        ws.send(message).await?;
    }
    Ok(())
}
