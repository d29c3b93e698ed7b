//! Certificates made at test time, and echo servers over TLS or plain TCP on loopback ports,
//! one per adapter, that report each connection's handshake result.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use wsio::Options;
use wsio::tls::{Acceptor, Connector, rustls};

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);

/// A certificate authority made for one test, and a server certificate it signed.
pub struct Pki {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// The CA's certificate, DER.
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    /// The server's certificate chain (leaf only), PEM.
    pub cert_pem: String,
    /// The server's private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl Pki {
    /// A CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("wsio test CA {}", next_serial()),
        );
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// A server certificate for 127.0.0.1.
    pub fn localhost() -> Self {
        Self::new(&["127.0.0.1"])
    }

    pub fn acceptor(&self) -> Acceptor {
        Acceptor::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    /// A connector that trusts this CA only.
    pub fn connector(&self) -> Connector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        Connector::with_roots(roots)
    }

    /// Client options that trust this CA only.
    pub fn client_options(&self) -> Options {
        let mut options = Options::default();
        options.tls_connector = Some(self.connector());
        options
    }
}

/// A number no other CA of this process has, so each test CA has a name of its own.
fn next_serial() -> usize {
    static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Which adapter plays a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sync,
    Tokio,
}

pub const SIDES: [Side; 2] = [Side::Sync, Side::Tokio];

/// An echo server on a loopback port; every connection's handshake result is reported.
pub struct Server {
    pub addr: SocketAddr,
    results: mpsc::Receiver<Result<(), wsio::Error>>,
}

impl Server {
    /// Serves `wss://` with `acceptor`, or `ws://` without one.
    pub fn start(side: Side, acceptor: Option<Acceptor>, options: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, results) = mpsc::channel();
        std::thread::spawn(move || match side {
            Side::Sync => serve_sync(listener, acceptor, options, report),
            Side::Tokio => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(serve_tokio(listener, acceptor, options, report));
            }
        });
        Self { addr, results }
    }

    /// The handshake result of the next connection.
    pub fn next_result(&self) -> Result<(), wsio::Error> {
        self.results
            .recv_timeout(WAIT)
            .expect("the server reports every connection in time")
    }
}

fn serve_sync(
    listener: TcpListener,
    acceptor: Option<Acceptor>,
    options: Options,
    report: mpsc::Sender<Result<(), wsio::Error>>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (acceptor, options, report) = (acceptor.clone(), options.clone(), report.clone());
        std::thread::spawn(move || match acceptor {
            Some(acceptor) => match acceptor.accept(stream, &options) {
                Ok(ws) => {
                    let _ = report.send(Ok(()));
                    echo_sync(ws);
                }
                Err(error) => {
                    let _ = report.send(Err(error));
                }
            },
            None => {
                wsio::sync::configure_tcp(&stream, &options).unwrap();
                match wsio::sync::accept_with(stream, &options, |_| {
                    Ok(wsio::proto::handshake::Accept::new())
                }) {
                    Ok(ws) => {
                        let _ = report.send(Ok(()));
                        echo_sync(ws);
                    }
                    Err(error) => {
                        let _ = report.send(Err(error));
                    }
                }
            }
        });
    }
}

fn echo_sync<S: std::io::Read + std::io::Write>(mut ws: wsio::sync::WebSocket<S>) {
    while let Ok(Some(message)) = ws.read() {
        if ws.send(message).is_err() {
            return;
        }
    }
}

async fn serve_tokio(
    listener: TcpListener,
    acceptor: Option<Acceptor>,
    options: Options,
    report: mpsc::Sender<Result<(), wsio::Error>>,
) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).unwrap();
        let (acceptor, options, report) = (acceptor.clone(), options.clone(), report.clone());
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => match acceptor.accept_async(stream, &options).await {
                    Ok(ws) => {
                        let _ = report.send(Ok(()));
                        echo_tokio(ws).await;
                    }
                    Err(error) => {
                        let _ = report.send(Err(error));
                    }
                },
                None => match wsio::tokio::accept_with(stream, &options, async |_: &_| {
                    Ok(wsio::proto::handshake::Accept::new())
                })
                .await
                {
                    Ok(ws) => {
                        let _ = report.send(Ok(()));
                        echo_tokio(ws).await;
                    }
                    Err(error) => {
                        let _ = report.send(Err(error));
                    }
                },
            }
        });
    }
}

async fn echo_tokio<S>(mut ws: wsio::tokio::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Ok(Some(message)) = ws.read().await {
        if ws.send(message).await.is_err() {
            return;
        }
    }
}

/// A client connection made by either adapter's `connect_with`.
pub enum Client {
    Sync(Box<wsio::sync::WebSocket<wsio::sync::MaybeTlsStream>>),
    Tokio(
        tokio::runtime::Runtime,
        Box<wsio::tokio::WebSocketStream<wsio::tokio::MaybeTlsStream>>,
    ),
}

impl Client {
    pub fn connect(side: Side, url: &str, options: &Options) -> Result<Self, wsio::Error> {
        let request = wsio::proto::handshake::ClientRequest::new(url)?;
        match side {
            Side::Sync => Ok(Self::Sync(Box::new(
                wsio::sync::connect_with(request, options)?.0,
            ))),
            Side::Tokio => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let (ws, _) =
                    runtime.block_on(wsio::tokio::connect_async_with(request, options))?;
                Ok(Self::Tokio(runtime, Box::new(ws)))
            }
        }
    }

    /// Sends `message` and returns the next message read.
    pub fn echo(&mut self, message: wsio::Message) -> wsio::Message {
        match self {
            Self::Sync(ws) => {
                ws.send(message).unwrap();
                ws.read().unwrap().expect("an echo")
            }
            Self::Tokio(runtime, ws) => runtime.block_on(async {
                ws.send(message).await.unwrap();
                tokio::time::timeout(WAIT, ws.read())
                    .await
                    .expect("an echo in time")
                    .unwrap()
                    .expect("an echo")
            }),
        }
    }

    /// Whether permessage-deflate was negotiated.
    pub fn deflate(&self) -> bool {
        match self {
            Self::Sync(ws) => ws.connection().deflate_params().is_some(),
            Self::Tokio(_, ws) => ws.connection().deflate_params().is_some(),
        }
    }

    /// The ALPN protocol the TLS handshake chose, `None` for plain TCP.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        match self {
            Self::Sync(ws) => match ws.get_ref() {
                wsio::sync::MaybeTlsStream::Rustls(tls) => {
                    tls.conn.alpn_protocol().map(<[u8]>::to_vec)
                }
                _ => None,
            },
            Self::Tokio(_, ws) => match ws.get_ref() {
                wsio::tokio::MaybeTlsStream::Rustls(tls) => {
                    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
                }
                _ => None,
            },
        }
    }

    /// Closes and waits for the closing handshake to end.
    pub fn close(self) {
        match self {
            Self::Sync(mut ws) => {
                ws.close(None).unwrap();
                while ws.read().unwrap().is_some() {}
            }
            Self::Tokio(runtime, mut ws) => runtime.block_on(async {
                ws.close(None).await.unwrap();
                while ws.read().await.unwrap().is_some() {}
            }),
        }
    }
}
