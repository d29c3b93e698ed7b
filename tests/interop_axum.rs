//! Interop through the axum extractor (RFC 6455, RFC 7692 §7): Node `ws` and Python
//! `websockets` clients against an axum app whose route upgrades with
//! `wsio::axum::WebSocketUpgrade`, as `examples/axum_echo` does, with permessage-deflate.
//!
//! The same peers and script as `tests/interop.rs`: `tests/interop/run` installs the peers and
//! runs these tests with `--ignored`; run with `--ignored` but without its variables, every test
//! fails. Each connection is served by hyper over a transport that counts bytes, so the script
//! checks that compression really happened through axum.
#![cfg(feature = "axum")]

#[allow(dead_code)] // the helpers for the other adapters
#[path = "interop/peer.rs"]
mod peer;
#[allow(dead_code)]
#[path = "interop/script.rs"]
mod script;
#[allow(dead_code)]
#[path = "interop/traffic.rs"]
mod traffic;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use axum::routing::any;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use wsio::axum::{WebSocket, WebSocketUpgrade};
use wsio::proto::deflate::DeflateConfig;

use peer::{ClientBits, Peer, PeerDeflate, PeerKind};
use script::{Agreed, TokioWs};
use traffic::Traffic;

/// How long the peer may take to connect, and wsio to wait for one event.
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn node_client_with_axum_server() {
    run_cases(PeerKind::Node);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn python_client_with_axum_server() {
    run_cases(PeerKind::Python);
}

/// One combination: wsio's deflate settings on the route, the peer's, what they agree on.
struct Case {
    name: &'static str,
    wsio: Option<DeflateConfig>,
    peer: PeerDeflate,
    agreed: Option<Agreed>,
}

fn cases() -> Vec<Case> {
    let peer = PeerDeflate::default();
    let agreed = |snct, cnct, sbits, cbits| {
        Some(Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        })
    };
    vec![
        Case {
            name: "default offer and answer",
            wsio: Some(DeflateConfig::default()),
            peer,
            agreed: agreed(false, false, 15, 15),
        },
        Case {
            name: "client asks for server_no_context_takeover",
            wsio: Some(DeflateConfig::default()),
            peer: PeerDeflate {
                server_no_context_takeover: true,
                ..peer
            },
            agreed: agreed(true, false, 15, 15),
        },
        Case {
            name: "client announces client_max_window_bits=9",
            wsio: Some(DeflateConfig::default()),
            peer: PeerDeflate {
                client_max_window_bits: ClientBits::Bits(9),
                ..peer
            },
            agreed: agreed(false, false, 15, 9),
        },
        Case {
            name: "client offers, the route has deflate off",
            wsio: None,
            peer,
            agreed: None,
        },
    ]
}

fn run_cases(kind: PeerKind) {
    let peers = peer::Installed::from_env();
    let mut failed = Vec::new();
    for (index, case) in cases().iter().enumerate() {
        eprintln!("axum with {kind:?}: {}", case.name);
        let wsio_closes = index % 2 == 0;
        let run = catch_unwind(AssertUnwindSafe(|| {
            run_case(&peers, kind, case, wsio_closes);
        }));
        if run.is_err() {
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "axum with {kind:?}: failed {failed:#?}");
}

/// What the route saw and answered, sent to the test with the socket.
struct Upgraded {
    socket: WebSocket,
    offers: Vec<String>,
    answer: Option<String>,
}

/// Serves one connection from the peer with an axum app, then drives the script.
fn run_case(peers: &peer::Installed, kind: PeerKind, case: &Case, wsio_closes: bool) {
    let runtime = script::runtime();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("address"));
    let mut peer = Peer::client(peers, kind, &url, &case.peer);
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let upgraded = runtime.block_on(async {
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("a connection from the peer in time")
            .expect("accept");
        let (sender, receiver) = oneshot::channel();
        let sender = Arc::new(Mutex::new(Some(sender)));
        let deflate = case.wsio.clone();
        let app = Router::new().route(
            "/",
            any(move |ws: WebSocketUpgrade| {
                let sender = sender.clone();
                let deflate = deflate.clone();
                async move { route(ws, deflate, sender) }
            }),
        );
        let io = SharedCounted {
            inner: stream,
            traffic: traffic.clone(),
        };
        tokio::spawn(
            http1::Builder::new()
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
                .with_upgrades(),
        );
        tokio::time::timeout(TIMEOUT, receiver)
            .await
            .expect("an upgrade in time")
            .expect("the route ran")
    });
    assert_eq!(
        upgraded.offers,
        case.peer.expected_offer(),
        "{}: the peer's offer",
        case.name
    );
    // The transport hyper serves is counted outside the socket, which cannot reach it.
    let mut ws = TokioWs::counted_by(runtime, upgraded.socket.into_inner(), move |_| {
        *traffic.lock().unwrap_or_else(PoisonError::into_inner)
    });
    let sent = script::check_exchange(
        &mut ws,
        &mut peer,
        case.agreed,
        upgraded.answer,
        wsio_closes,
    );
    drop(ws);
    script::check_peer_end(peer, sent, wsio_closes);
}

type Sender = Arc<Mutex<Option<oneshot::Sender<Upgraded>>>>;

/// The route: what `axum_echo` does, but the socket goes to the test to drive.
fn route(ws: WebSocketUpgrade, deflate: Option<DeflateConfig>, sender: Sender) -> Response {
    let offers = ws
        .request()
        .extensions()
        .iter()
        .filter(|offer| offer.name() == "permessage-deflate")
        .map(ToString::to_string)
        .collect();
    // What the extractor answers, through the same public negotiation, for the header check.
    let answer = deflate
        .as_ref()
        .and_then(|config| config.negotiate(ws.request().extensions()))
        .map(|(_, header)| header);
    ws.deflate(deflate).on_upgrade(move |socket| async move {
        let taken = sender.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(sender) = taken {
            let _ = sender.send(Upgraded {
                socket,
                offers,
                answer,
            });
        }
    })
}

/// A TCP stream that counts the bytes each way into a counter the test keeps, since hyper owns
/// the stream once it serves the connection.
struct SharedCounted {
    inner: tokio::net::TcpStream,
    traffic: Arc<Mutex<Traffic>>,
}

impl SharedCounted {
    fn count(&self, read: usize, written: usize) {
        let mut traffic = self.traffic.lock().unwrap_or_else(PoisonError::into_inner);
        traffic.read += read as u64;
        traffic.written += written as u64;
    }
}

impl AsyncRead for SharedCounted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.count(read, 0);
        result
    }
}

impl AsyncWrite for SharedCounted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = result {
            self.count(0, n);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
