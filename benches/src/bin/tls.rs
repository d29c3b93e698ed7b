//! Echo over TLS and idle memory per TLS connection: wsio's tokio adapter behind
//! `wsio::tls::Acceptor` against tokio-tungstenite behind a `tokio_rustls::TlsAcceptor` built from
//! the same `ServerConfig` (same rustls, `ring` provider), in two idioms (`next`/`send` per
//! message, and its echo example's `split` + `forward`), with `tls-hold` (the TLS handshake and
//! a held stream, no WebSocket) as the floor.
//!
//! `tls [--quick]` runs everything: it makes a certificate with rcgen in a temporary directory,
//! starts `tls serve NAME PORT DIR` pinned to CPU 0 per contender, and drives it from this
//! process (pin it to CPU 1 with `taskset -c 1`). Prints Markdown tables.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsio::tls::{Acceptor, Connector, rustls, tokio_rustls};
use wsio_benches::{
    EXPECTED_ACCEPT, FrameCounter, UPGRADE_REQUEST, binary_payload, can_pin, median, print_table,
    push_frame, rss_kib, si, size_label,
};

const CONTENDERS: &[&str] = &[
    "wsio-tokio",
    "tokio-tungstenite",
    "tokio-tungstenite-forward",
    "tls-hold",
];
/// The contenders that echo: all but `tls-hold`.
const ECHOING: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let [_, name, port, dir] = &args[..] else {
            panic!("usage: tls serve NAME PORT DIR");
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(serve(name, port.parse().expect("port"), Path::new(dir)));
        return;
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let dir = std::env::temp_dir().join(format!("wsio-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = make_certificate(&dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        echo_suite(&dir, &ca, quick).await;
        memory_suite(&dir, &ca, quick).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A self-signed certificate for 127.0.0.1 in `dir` (cert.pem, key.pem); returns its DER.
fn make_certificate(dir: &Path) -> rustls::pki_types::CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
    cert.der().clone()
}

async fn serve(name: &str, port: u16, dir: &Path) {
    let acceptor = Acceptor::from_pem_files(dir.join("cert.pem"), dir.join("key.pem"))
        .expect("the certificate");
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    // Exit with the parent: it holds our standard input.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        std::process::exit(0);
    });
    let mut held = Vec::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        match name {
            "wsio-tokio" => {
                tokio::spawn(async move {
                    let Ok(mut ws) = acceptor
                        .accept_async(stream, &wsio::Options::default())
                        .await
                    else {
                        return;
                    };
                    while let Ok(Some(message)) = ws.read().await {
                        if ws.send(message).await.is_err() {
                            return;
                        }
                    }
                });
            }
            "tokio-tungstenite" => {
                tokio::spawn(async move {
                    use futures_util::{SinkExt, StreamExt};
                    let tls = tokio_rustls::TlsAcceptor::from(Arc::clone(acceptor.config()));
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if (message.is_binary() || message.is_text())
                            && ws.send(message).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
            "tokio-tungstenite-forward" => {
                tokio::spawn(async move {
                    use futures_util::{StreamExt, TryStreamExt, future};
                    let tls = tokio_rustls::TlsAcceptor::from(Arc::clone(acceptor.config()));
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    // Its echo example: `forward` flushes when the stream has nothing ready.
                    let (write, read) = ws.split();
                    let _ = read
                        .try_filter(|message| {
                            future::ready(message.is_text() || message.is_binary())
                        })
                        .forward(write)
                        .await;
                });
            }
            "tls-hold" => {
                let tls = tokio_rustls::TlsAcceptor::from(Arc::clone(acceptor.config()));
                if let Ok(stream) = tls.accept(stream).await {
                    held.push(stream);
                }
            }
            other => panic!("unknown contender {other}"),
        }
    }
}

/// Starts `tls serve NAME PORT DIR` pinned to CPU 0 when possible and waits until it listens.
fn spawn_server(name: &str, dir: &Path) -> (std::process::Child, SocketAddr) {
    let exe = std::env::current_exe().expect("exe");
    let port = free_port();
    let mut command = if can_pin() {
        let mut command = std::process::Command::new("taskset");
        command.arg("-c").arg("0").arg(&exe);
        command
    } else {
        std::process::Command::new(&exe)
    };
    let mut child = command
        .arg("serve")
        .arg(name)
        .arg(port.to_string())
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let mut stdout = child.stdout.take().expect("piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).expect("read") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    assert!(line.starts_with(b"listening"), "{name} did not start");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn client_config(ca: &rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("the CA");
    Arc::clone(Connector::with_roots(roots).config())
}

/// Opens a TLS connection and upgrades it with the fixed request; no WebSocket library.
async fn open_tls(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    upgrade: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await?;
    if upgrade {
        client_upgrade(&mut tls).await?;
    }
    Ok(tls)
}

async fn client_upgrade<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    stream.write_all(UPGRADE_REQUEST).await?;
    stream.flush().await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            return Err(std::io::Error::other("no 101"));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") || !head.contains(&EXPECTED_ACCEPT.to_ascii_lowercase()) {
        return Err(std::io::Error::other(format!("not a 101: {head}")));
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Point {
    conns: usize,
    inflight: usize,
    size: usize,
}

async fn echo_suite(dir: &Path, ca: &rustls::pki_types::CertificateDer<'static>, quick: bool) {
    let config = client_config(ca);
    let points: Vec<Point> = if quick {
        vec![Point {
            conns: 10,
            inflight: 16,
            size: 1024,
        }]
    } else {
        let mut points = Vec::new();
        for conns in [1, 100] {
            for size in [16, 1024, 64 << 10] {
                points.push(Point {
                    conns,
                    inflight: 16,
                    size,
                });
            }
        }
        points
    };
    let rounds = if quick { 1 } else { 3 };
    let contenders = &CONTENDERS[..ECHOING];
    // results[point][contender] = messages/s per round
    let mut results = vec![vec![Vec::new(); contenders.len()]; points.len()];
    for round in 0..rounds {
        for (p, point) in points.iter().enumerate() {
            for offset in 0..contenders.len() {
                let c = (offset + round + p) % contenders.len();
                let (child, addr) = spawn_server(contenders[c], dir);
                match run_point(addr, &config, *point).await {
                    Ok(rate) => results[p][c].push(rate),
                    Err(error) => {
                        eprintln!("{} {}: {error}", contenders[c], size_label(point.size))
                    }
                }
                stop(child);
            }
        }
    }
    println!("## Echo over TLS (messages/s, median of {rounds})\n");
    let mut headers = vec!["connections".into(), "in flight".into(), "size".into()];
    headers.extend(contenders.iter().map(|name| (*name).to_owned()));
    headers.push("wsio / best peer".into());
    let rows: Vec<Vec<String>> = points
        .iter()
        .zip(&mut results)
        .map(|(point, rates)| {
            let medians: Vec<f64> = rates
                .iter_mut()
                .map(|rates| {
                    if rates.is_empty() {
                        f64::NAN
                    } else {
                        median(rates)
                    }
                })
                .collect();
            let mut row = vec![
                point.conns.to_string(),
                point.inflight.to_string(),
                size_label(point.size),
            ];
            row.extend(medians.iter().map(|rate| si(*rate)));
            let best_peer = medians[1..].iter().copied().fold(f64::NAN, f64::max);
            row.push(format!("{:.2}", medians[0] / best_peer));
            row
        })
        .collect();
    print_table(&headers, &rows);
    println!();
}

async fn run_point(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    point: Point,
) -> Result<f64, String> {
    let mut frames = Vec::new();
    let payload = binary_payload(point.size);
    for _ in 0..point.inflight {
        push_frame(&mut frames, 0x2, &payload, true);
    }
    let frames: Arc<[u8]> = frames.into();
    let frame_len = frames.len() / point.inflight;
    let echoed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..point.conns {
        let stream = open_tls(addr, config, true)
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let (frames, echoed) = (Arc::clone(&frames), Arc::clone(&echoed));
        tasks.push(tokio::spawn(pump(stream, frames, frame_len, echoed)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start, before) = (Instant::now(), echoed.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (elapsed, after) = (start.elapsed(), echoed.load(Ordering::Relaxed));
    let failed = tasks.iter().any(|task| task.is_finished());
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    if failed || after == before {
        return Err("a connection failed or nothing was echoed".into());
    }
    Ok((after - before) as f64 / elapsed.as_secs_f64())
}

/// Keeps `inflight` frames in flight: writes the first window, then as many frames as were
/// echoed.
async fn pump(
    mut stream: tokio_rustls::client::TlsStream<TcpStream>,
    frames: Arc<[u8]>,
    frame_len: usize,
    echoed: Arc<AtomicU64>,
) -> std::io::Result<()> {
    stream.write_all(&frames).await?;
    stream.flush().await?;
    let mut counter = FrameCounter::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other("server closed"));
        }
        let done = counter.feed(&buf[..n]);
        if done > 0 {
            echoed.fetch_add(done as u64, Ordering::Relaxed);
            stream.write_all(&frames[..done * frame_len]).await?;
            stream.flush().await?;
        }
    }
}

async fn memory_suite(dir: &Path, ca: &rustls::pki_types::CertificateDer<'static>, quick: bool) {
    let config = client_config(ca);
    let count = if quick { 200 } else { 1000 };
    println!("## Idle memory per TLS connection ({count} connections, KiB, VmRSS delta / count)\n");
    let mut rows = Vec::new();
    for name in CONTENDERS {
        let (child, addr) = spawn_server(name, dir);
        let pid = child.id();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib(pid).expect("VmRSS");
        let mut streams = Vec::with_capacity(count);
        let upgrade = *name != "tls-hold";
        for _ in 0..count {
            let mut stream = open_tls(addr, &config, upgrade).await.expect("connect");
            if upgrade {
                let mut frame = Vec::new();
                push_frame(&mut frame, 0x2, &[7; 20], true);
                stream.write_all(&frame).await.expect("write");
                stream.flush().await.expect("flush");
                let mut counter = FrameCounter::default();
                let mut buf = [0u8; 256];
                loop {
                    let n = stream.read(&mut buf).await.expect("read");
                    assert!(n > 0, "{name} closed before the echo");
                    if counter.feed(&buf[..n]) > 0 {
                        break;
                    }
                }
            }
            streams.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid).expect("VmRSS");
        rows.push(vec![
            (*name).to_owned(),
            format!(
                "{:.1}",
                (after.saturating_sub(before)) as f64 / count as f64
            ),
        ]);
        drop(streams);
        stop(child);
    }
    print_table(&["server".into(), "KiB per connection".into()], &rows);
    println!();
}
