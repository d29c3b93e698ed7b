//! Interop with independent implementations (RFC 6455, RFC 7692 §7): Node `ws` and Python
//! `websockets`, each as client of both wsio servers and as server for both wsio clients, with
//! permessage-deflate in several parameter combinations.
//!
//! The peers are separate programs in `tests/interop/`; `tests/interop/run` installs them and
//! runs these tests with `--ignored`, passing where they are in `WSIO_INTEROP_NODE`,
//! `WSIO_INTEROP_PYTHON` and `WSIO_INTEROP_PEERS`. Run with `--ignored` but without those
//! variables, every test fails.
//!
//! A peer echoes every data message and obeys a few text commands (`interop:fragment N`,
//! `interop:ping DATA`, `interop:close REASON`); it prints what it negotiated and how the
//! connection closed, one `key value` line each. The wsio side drives the same script with every
//! agent, checks every echo byte for byte, and checks the negotiated parameters on both sides.
#![cfg(all(feature = "sync", feature = "tokio", feature = "deflate"))]

#[path = "interop/peer.rs"]
mod peer;
#[path = "interop/script.rs"]
mod script;
#[path = "interop/traffic.rs"]
mod traffic;

use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use wsio::Options;
use wsio::proto::deflate::DeflateConfig;
use wsio::proto::handshake::{Accept, ClientRequest, ExtensionOffer, Request};

use peer::{ClientBits, Peer, PeerDeflate, PeerKind};
use script::{Agreed, SyncWs, TokioWs, Ws};
use traffic::Counted;

/// How long a peer may take to connect or to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn node_client_with_sync_server() {
    run_matrix(Direction::WsioServer(Adapter::Sync), PeerKind::Node);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn node_client_with_tokio_server() {
    run_matrix(Direction::WsioServer(Adapter::Tokio), PeerKind::Node);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn python_client_with_sync_server() {
    run_matrix(Direction::WsioServer(Adapter::Sync), PeerKind::Python);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn python_client_with_tokio_server() {
    run_matrix(Direction::WsioServer(Adapter::Tokio), PeerKind::Python);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn sync_client_with_node_server() {
    run_matrix(Direction::WsioClient(Adapter::Sync), PeerKind::Node);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn tokio_client_with_node_server() {
    run_matrix(Direction::WsioClient(Adapter::Tokio), PeerKind::Node);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn sync_client_with_python_server() {
    run_matrix(Direction::WsioClient(Adapter::Sync), PeerKind::Python);
}

#[test]
#[ignore = "needs Node ws and Python websockets: run tests/interop/run"]
fn tokio_client_with_python_server() {
    run_matrix(Direction::WsioClient(Adapter::Tokio), PeerKind::Python);
}

#[derive(Debug, Clone, Copy)]
enum Adapter {
    Sync,
    Tokio,
}

/// Which role wsio plays; the peer plays the other.
#[derive(Debug, Clone, Copy)]
enum Direction {
    WsioServer(Adapter),
    WsioClient(Adapter),
}

/// One parameter combination: what each side is configured with, and what they must agree on.
struct Case {
    name: &'static str,
    /// wsio's `Options::deflate`.
    wsio: Option<DeflateConfig>,
    peer: PeerDeflate,
    /// The parameters in force, as both sides must report them; `None`: no extension.
    agreed: Option<Agreed>,
    /// The one peer the combination applies to, when the other cannot be configured for it.
    only: Option<PeerKind>,
}

/// Combinations with wsio as the server: the peer's flags shape its offer.
fn server_cases() -> Vec<Case> {
    let peer = PeerDeflate::default();
    vec![
        case(
            "default offer and answer",
            Some(wsio(|_| {})),
            peer,
            agreed(false, false, 15, 15),
        ),
        case(
            "client asks for server_no_context_takeover",
            Some(wsio(|_| {})),
            PeerDeflate {
                server_no_context_takeover: true,
                ..peer
            },
            agreed(true, false, 15, 15),
        ),
        case(
            "wsio adds server_no_context_takeover unasked",
            Some(wsio(|c| c.server_no_context_takeover = true)),
            peer,
            agreed(true, false, 15, 15),
        ),
        case(
            "client offers client_no_context_takeover",
            Some(wsio(|_| {})),
            PeerDeflate {
                client_no_context_takeover: true,
                ..peer
            },
            agreed(false, true, 15, 15),
        ),
        case(
            "wsio asks for client_no_context_takeover",
            Some(wsio(|c| c.client_no_context_takeover = true)),
            peer,
            agreed(false, true, 15, 15),
        ),
        case(
            "client asks for server_max_window_bits=10",
            Some(wsio(|_| {})),
            PeerDeflate {
                server_max_window_bits: Some(10),
                ..peer
            },
            agreed(false, false, 10, 15),
        ),
        case(
            "wsio announces server_max_window_bits=10 unasked",
            Some(wsio(|c| c.server_max_window_bits = 10)),
            peer,
            agreed(false, false, 10, 15),
        ),
        case(
            "client asks for server_max_window_bits=8, which wsio declines",
            Some(wsio(|_| {})),
            PeerDeflate {
                server_max_window_bits: Some(8),
                ..peer
            },
            None,
        ),
        case(
            "client announces client_max_window_bits=9",
            Some(wsio(|_| {})),
            PeerDeflate {
                client_max_window_bits: ClientBits::Bits(9),
                ..peer
            },
            agreed(false, false, 15, 9),
        ),
        case(
            "valueless client_max_window_bits, wsio picks 9",
            Some(wsio(|c| c.client_max_window_bits = 9)),
            PeerDeflate {
                client_max_window_bits: ClientBits::Bare,
                ..peer
            },
            agreed(false, false, 15, 9),
        ),
        case(
            "no client_max_window_bits offered, so wsio cannot pick 9",
            Some(wsio(|c| c.client_max_window_bits = 9)),
            PeerDeflate {
                client_max_window_bits: ClientBits::Omit,
                ..peer
            },
            agreed(false, false, 15, 15),
        ),
        case(
            "both without context takeover, 9-bit windows",
            Some(wsio(small_windows_without_takeover)),
            small_peer_windows_without_takeover(),
            agreed(true, true, 9, 9),
        ),
        case("client offers, wsio has deflate off", None, peer, None),
        case(
            "wsio accepts, client does not offer",
            Some(wsio(|_| {})),
            PeerDeflate {
                enabled: false,
                ..peer
            },
            None,
        ),
    ]
}

/// Combinations with wsio as the client: the peer's flags shape its answer.
fn client_cases() -> Vec<Case> {
    let peer = PeerDeflate::default();
    vec![
        case(
            "default offer and answer",
            Some(wsio(|_| {})),
            peer,
            agreed(false, false, 15, 15),
        ),
        case(
            "wsio asks for server_no_context_takeover",
            Some(wsio(|c| c.server_no_context_takeover = true)),
            peer,
            agreed(true, false, 15, 15),
        ),
        case(
            "server adds server_no_context_takeover unasked",
            Some(wsio(|_| {})),
            PeerDeflate {
                server_no_context_takeover: true,
                ..peer
            },
            agreed(true, false, 15, 15),
        ),
        case(
            "wsio offers client_no_context_takeover",
            Some(wsio(|c| c.client_no_context_takeover = true)),
            peer,
            agreed(false, true, 15, 15),
        ),
        case(
            "server asks for client_no_context_takeover",
            Some(wsio(|_| {})),
            PeerDeflate {
                client_no_context_takeover: true,
                ..peer
            },
            agreed(false, true, 15, 15),
        ),
        case(
            "wsio asks for server_max_window_bits=10",
            Some(wsio(|c| c.server_max_window_bits = 10)),
            peer,
            agreed(false, false, 10, 15),
        ),
        case(
            "server announces server_max_window_bits=10 unasked",
            Some(wsio(|_| {})),
            PeerDeflate {
                server_max_window_bits: Some(10),
                ..peer
            },
            agreed(false, false, 10, 15),
        ),
        case(
            "wsio announces client_max_window_bits=9",
            Some(wsio(|c| c.client_max_window_bits = 9)),
            peer,
            agreed(false, false, 15, 9),
        ),
        case(
            "valueless client_max_window_bits, server picks 9",
            Some(wsio(|_| {})),
            PeerDeflate {
                client_max_window_bits: ClientBits::Bits(9),
                ..peer
            },
            agreed(false, false, 15, 9),
        ),
        case(
            "server picks client_max_window_bits=8, so wsio sends stored blocks",
            Some(wsio(|_| {})),
            PeerDeflate {
                client_max_window_bits: ClientBits::Bits(8),
                ..peer
            },
            agreed(false, false, 15, 8),
        ),
        Case {
            // websockets cannot compress with 8 bits, and refuses to be configured so.
            only: Some(PeerKind::Node),
            ..case(
                "server announces server_max_window_bits=8 unasked",
                Some(wsio(|_| {})),
                PeerDeflate {
                    server_max_window_bits: Some(8),
                    ..peer
                },
                agreed(false, false, 8, 15),
            )
        },
        case(
            "both without context takeover, 9-bit windows",
            Some(wsio(small_windows_without_takeover)),
            small_peer_windows_without_takeover(),
            agreed(true, true, 9, 9),
        ),
        case("server accepts, wsio has deflate off", None, peer, None),
        case(
            "wsio offers, server refuses",
            Some(wsio(|_| {})),
            PeerDeflate {
                enabled: false,
                ..peer
            },
            None,
        ),
    ]
}

fn case(
    name: &'static str,
    wsio: Option<DeflateConfig>,
    peer: PeerDeflate,
    agreed: Option<Agreed>,
) -> Case {
    Case {
        name,
        wsio,
        peer,
        agreed,
        only: None,
    }
}

fn wsio(edit: impl FnOnce(&mut DeflateConfig)) -> DeflateConfig {
    let mut config = DeflateConfig::default();
    edit(&mut config);
    config
}

fn agreed(
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
) -> Option<Agreed> {
    Some(Agreed {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    })
}

fn small_windows_without_takeover(config: &mut DeflateConfig) {
    config.server_no_context_takeover = true;
    config.client_no_context_takeover = true;
    config.server_max_window_bits = 9;
    config.client_max_window_bits = 9;
}

fn small_peer_windows_without_takeover() -> PeerDeflate {
    PeerDeflate {
        enabled: true,
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(9),
        client_max_window_bits: ClientBits::Bits(9),
    }
}

/// Runs every case of a direction against one peer and fails with the list of failed cases.
fn run_matrix(direction: Direction, kind: PeerKind) {
    let peers = peer::Installed::from_env();
    let cases: Vec<Case> = match direction {
        Direction::WsioServer(_) => server_cases(),
        Direction::WsioClient(_) => client_cases(),
    }
    .into_iter()
    .filter(|case| case.only.is_none_or(|only| only == kind))
    .collect();
    let started = Instant::now();
    let mut failed = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        // Who starts the closing handshake alternates, so each side checks both the close frame
        // it is sent and the echo of its own.
        let wsio_closes = index % 2 == 0;
        eprintln!("{direction:?} with {kind:?}: {}", case.name);
        let run = catch_unwind(AssertUnwindSafe(|| match direction {
            Direction::WsioServer(adapter) => wsio_server(&peers, kind, adapter, case, wsio_closes),
            Direction::WsioClient(adapter) => wsio_client(&peers, kind, adapter, case, wsio_closes),
        }));
        if run.is_err() {
            failed.push(case.name);
        }
    }
    eprintln!(
        "{direction:?} with {kind:?}: {} cases in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{direction:?} with {kind:?}: {} of {} cases failed: {failed:#?}",
        failed.len(),
        cases.len()
    );
}

fn wsio_options(case: &Case) -> Options {
    let mut options = Options::default();
    options.deflate = case.wsio.clone();
    options
}

/// wsio accepts one connection from the peer as client, then drives the script.
fn wsio_server(
    peers: &peer::Installed,
    kind: PeerKind,
    adapter: Adapter,
    case: &Case,
    wsio_closes: bool,
) {
    let options = wsio_options(case);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/interop", listener.local_addr().expect("address"));
    let mut peer = Peer::client(peers, kind, &url, &case.peer);
    let stream = accept_peer(&listener, &mut peer);

    let mut offers = None;
    let mut answer = None;
    let mut decide = |request: &Request| {
        offers = Some(deflate_offers(request.extensions()));
        // What the adapter answers, through the same public negotiation, for the header check.
        answer = options
            .deflate
            .as_ref()
            .and_then(|config| config.negotiate(request.extensions()))
            .map(|(_, header)| header);
        Ok(Accept::new())
    };
    let mut ws: Box<dyn Ws> = match adapter {
        Adapter::Sync => {
            wsio::sync::configure_tcp(&stream, &options).expect("configure");
            let ws = wsio::sync::accept_with(Counted::new(stream), &options, decide)
                .expect("sync accept");
            Box::new(SyncWs::new(ws))
        }
        Adapter::Tokio => {
            let runtime = script::runtime();
            let ws = runtime
                .block_on(async {
                    stream.set_nonblocking(true)?;
                    let stream = Counted::new(tokio::net::TcpStream::from_std(stream)?);
                    wsio::tokio::accept_with(stream, &options, async |request: &Request| {
                        decide(request)
                    })
                    .await
                })
                .expect("tokio accept");
            Box::new(TokioWs::new(runtime, ws))
        }
    };

    assert_eq!(
        offers.expect("the request was seen"),
        case.peer.expected_offer(),
        "{}: the peer's offer",
        case.name
    );
    let sent = script::check_exchange(&mut *ws, &mut peer, case.agreed, answer, wsio_closes);
    drop(ws); // closes the transport, which the peer waits for
    script::check_peer_end(peer, sent, wsio_closes);
}

/// The peer listens; wsio connects, then drives the script.
fn wsio_client(
    peers: &peer::Installed,
    kind: PeerKind,
    adapter: Adapter,
    case: &Case,
    wsio_closes: bool,
) {
    let options = wsio_options(case);
    let mut peer = Peer::server(peers, kind, &case.peer);
    let port = peer.line("listening");
    let address = format!("127.0.0.1:{port}");
    let request = ClientRequest::new(&format!("ws://{address}/interop")).expect("url");
    // What `connect_with` and `connect_async_with` do, over a stream that counts bytes.
    let (mut ws, response): (Box<dyn Ws>, _) = match adapter {
        Adapter::Sync => {
            let stream = std::net::TcpStream::connect(&address).expect("connect");
            wsio::sync::configure_tcp(&stream, &options).expect("configure");
            let (ws, response) = wsio::sync::client(Counted::new(stream), &request, &options)
                .expect("sync handshake");
            (Box::new(SyncWs::new(ws)), response)
        }
        Adapter::Tokio => {
            let runtime = script::runtime();
            let (ws, response) = runtime
                .block_on(async {
                    let stream = tokio::net::TcpStream::connect(&address).await?;
                    stream.set_nodelay(true)?;
                    wsio::tokio::client_async(Counted::new(stream), &request, &options).await
                })
                .expect("tokio handshake");
            (Box::new(TokioWs::new(runtime, ws)), response)
        }
    };
    let answer = response
        .headers()
        .get("sec-websocket-extensions")
        .map(str::to_owned);
    let sent = script::check_exchange(&mut *ws, &mut peer, case.agreed, answer, wsio_closes);
    drop(ws);
    script::check_peer_end(peer, sent, wsio_closes);
}

/// Waits for the peer's connection, failing early if the peer exits first.
fn accept_peer(listener: &TcpListener, peer: &mut Peer) -> std::net::TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                return stream;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                peer.assert_running("before connecting");
                assert!(
                    Instant::now() < deadline,
                    "no connection from the peer in time"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
}

/// The permessage-deflate offers of a request, each as `name; param; param=value`.
fn deflate_offers(extensions: &[ExtensionOffer]) -> Vec<String> {
    extensions
        .iter()
        .filter(|offer| offer.name().eq_ignore_ascii_case("permessage-deflate"))
        .map(|offer| {
            let mut text = offer.name().to_owned();
            for (name, value) in offer.params() {
                text.push_str("; ");
                text.push_str(name);
                if let Some(value) = value {
                    text.push('=');
                    text.push_str(value);
                }
            }
            text
        })
        .collect()
}
