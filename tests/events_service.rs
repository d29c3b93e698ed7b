//! The Socket.IO server mounted in an axum app as a `tower::Service`: long-polling, the
//! WebSocket upgrade, the wsio client, and the app's other routes on the same port.
#![cfg(all(feature = "events", feature = "axum"))]

mod events_support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsio::Message;
use wsio::events::client::ClientBuilder;
use wsio::events::{Config, Cors, Refusal, Server};

use events_support::http::{Response, request};

/// Bounds every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

/// Serves an axum app with a page at `/` and `server` at `/socket.io/`, with connect info.
async fn start(server: &Server) -> SocketAddr {
    let app = Router::new()
        .route("/", get(|| async { "home page" }))
        .route_service("/socket.io/", server.service());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `/` echoes `echo` to its acknowledgement, greets with the peer address, and relays
/// `push` back as `pushed`.
fn echo_server(config: Config) -> Server {
    let server = Server::new(config);
    server.of("/").on_connection(|socket| {
        let address = socket
            .handshake()
            .address()
            .map(|address| address.to_string());
        let _ = socket.emit("hello", json!([address, socket.handshake().secure()]));
        socket.on("echo", |_, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
        socket.on("push", |socket, args, _| async move {
            let _ = socket.emit("pushed", args);
        });
        socket.on("ask", |socket, args, _| async move {
            let reply = socket.emit_with_ack("question", args).await;
            let answer = reply.map(|args| args.values().to_vec()).unwrap_or_default();
            let _ = socket.emit("answer", json!([answer]));
        });
    });
    server
}

/// A polling session opened through the app.
struct Session {
    addr: SocketAddr,
    sid: String,
}

impl Session {
    async fn open(addr: SocketAddr) -> Self {
        let response = request(addr, "GET", "/socket.io/?EIO=4&transport=polling&t=1", "").await;
        assert_eq!(response.status, 200, "{response:?}");
        let open = response.body.strip_prefix('0').expect("an open packet");
        let open: Value = serde_json::from_str(open).unwrap();
        assert_eq!(open["upgrades"], json!(["websocket"]));
        Self {
            addr,
            sid: open["sid"].as_str().unwrap().to_owned(),
        }
    }

    fn target(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    async fn post(&self, body: &str) -> Response {
        request(self.addr, "POST", &self.target(), body).await
    }

    /// GETs until `count` records arrived, answering pings; returns them.
    async fn records(&self, count: usize) -> Vec<String> {
        let mut records = Vec::new();
        while records.len() < count {
            let response = request(self.addr, "GET", &self.target(), "").await;
            assert_eq!(response.status, 200, "{response:?}");
            for record in response.body.split('\x1e') {
                match record {
                    "2" => assert_eq!(self.post("3").await.body, "ok"),
                    "6" => {}
                    other => records.push(other.to_owned()),
                }
            }
        }
        records
    }
}

#[tokio::test]
async fn polling_open_post_and_get_through_axum() {
    let server = echo_server(Config::default());
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    assert_eq!(session.post("40").await.body, "ok");
    let records = session.records(2).await;
    assert!(records[0].starts_with("40{\"sid\":"), "{records:?}");
    // The handshake saw axum's connect info: the peer address is the test's loopback socket.
    let hello: Value = serde_json::from_str(records[1].strip_prefix("42").unwrap()).unwrap();
    assert_eq!(hello[0], "hello");
    assert!(
        hello[1].as_str().unwrap().starts_with("127.0.0.1:"),
        "{hello}"
    );
    assert_eq!(hello[2], false);

    let response = session.post("42[\"push\",{\"b\":1,\"a\":2}]").await;
    assert_eq!((response.status, response.body.as_str()), (200, "ok"));
    assert_eq!(
        session.records(1).await,
        ["42[\"pushed\",{\"b\":1,\"a\":2}]"]
    );
}

#[tokio::test]
async fn the_tls_flag_of_the_service_reaches_the_handshake() {
    let server = echo_server(Config::default());
    let app = Router::new().route_service("/socket.io/", server.service().secure(true));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let session = Session::open(addr).await;
    session.post("40").await;
    let records = session.records(2).await;
    // No connect info in this app: no address, but the flag the app set.
    assert_eq!(records[1], "42[\"hello\",null,true]");
}

#[tokio::test]
async fn a_body_over_max_payload_is_refused_with_413() {
    let mut config = Config::default();
    config.max_payload = 100;
    let server = echo_server(config);
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    let big = format!("42[\"push\",\"{}\"]", "x".repeat(200));
    assert_eq!(session.post(&big).await.status, 413);
    // The session ended with it.
    let after = session.post("40").await;
    assert_eq!((after.status, after.error_code()), (400, 1));
}

#[tokio::test]
async fn bad_requests_under_the_path_get_socketio_json_errors() {
    let server = echo_server(Config::default());
    let addr = start(&server).await;
    let no_version = request(addr, "GET", "/socket.io/?transport=polling", "").await;
    assert_eq!((no_version.status, no_version.error_code()), (400, 5));
    assert_eq!(no_version.header("content-type"), Some("application/json"));
    let unknown = request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling&sid=nope",
        "",
    )
    .await;
    assert_eq!((unknown.status, unknown.error_code()), (400, 1));
    let transport = request(addr, "GET", "/socket.io/?EIO=4&transport=carrier", "").await;
    assert_eq!((transport.status, transport.error_code()), (400, 0));
    let method = request(addr, "PUT", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!((method.status, method.error_code()), (400, 2));
    // A websocket request that is no upgrade gets the handshake's refusal, not a session.
    let plain = request(addr, "GET", "/socket.io/?EIO=4&transport=websocket", "").await;
    assert_eq!(plain.status, 400);
}

#[tokio::test]
async fn cors_preflight_and_allow_request_as_in_the_standalone_server() {
    let mut config = Config::default();
    config.cors = Some(Cors::origins(["http://app.example"]));
    let server = echo_server(config);
    server.allow_request(|request| async move {
        match request.query_param("token") {
            Some("ok") => Ok(()),
            _ => Err(Refusal::new("no token")),
        }
    });
    let addr = start(&server).await;
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let preflight = "OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\
            Origin: http://app.example\r\nAccess-Control-Request-Headers: content-type\r\n\
            Connection: close\r\n\r\n";
        stream.write_all(preflight.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let preflight = tokio::time::timeout(WAIT, exchange).await.unwrap();
    assert!(preflight.starts_with("HTTP/1.1 204"), "{preflight}");
    let preflight = preflight.to_ascii_lowercase();
    assert!(preflight.contains("access-control-allow-origin: http://app.example\r\n"));
    assert!(preflight.contains("access-control-allow-headers: content-type\r\n"));

    let refused = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!((refused.status, refused.error_code()), (403, 4));
    let allowed = "/socket.io/?EIO=4&transport=polling&token=ok";
    assert_eq!(request(addr, "GET", allowed, "").await.status, 200);
}

#[tokio::test]
async fn the_apps_other_routes_answer_on_the_same_port() {
    let server = echo_server(Config::default());
    let addr = start(&server).await;
    let home = request(addr, "GET", "/", "").await;
    assert_eq!((home.status, home.body.as_str()), (200, "home page"));
    let missing = request(addr, "GET", "/elsewhere", "").await;
    assert_eq!(missing.status, 404);
    // And Socket.IO still answers after them.
    Session::open(addr).await;
}

#[tokio::test]
async fn wsio_client_exchanges_events_and_acks_over_websocket_through_axum() {
    let server = echo_server(Config::default());
    let addr = start(&server).await;
    let (heard, mut hello) = mpsc::unbounded_channel();
    let (answered, mut answers) = mpsc::unbounded_channel();
    let builder = ClientBuilder::new(format!("http://{addr}"))
        .on("hello", move |args, _| {
            let _ = heard.send(args.values().to_vec());
        })
        .on("question", |args, ack| {
            let question = args.get::<String>(0).unwrap_or_default();
            let _ = ack
                .expect("asked with an ack")
                .send(json!([format!("{question}: yes")]));
        })
        .on("answer", move |args, _| {
            let _ = answered.send(args.values().to_vec());
        });
    let client = tokio::time::timeout(WAIT, builder.connect())
        .await
        .unwrap()
        .unwrap();
    let greeting = tokio::time::timeout(WAIT, hello.recv()).await.unwrap();
    let greeting = greeting.unwrap();
    assert!(greeting[0].as_str().unwrap().starts_with("127.0.0.1:"));
    let reply = client.emit_with_ack("echo", json!([1, "two", {"z": 0, "a": 1}]));
    let reply = tokio::time::timeout(WAIT, reply).await.unwrap().unwrap();
    assert_eq!(
        reply.values(),
        [json!(1), json!("two"), json!({"z": 0, "a": 1})]
    );
    // And the other way: the server asks, the client acknowledges.
    client.emit("ask", json!(["ready?"])).unwrap();
    let answer = tokio::time::timeout(WAIT, answers.recv()).await.unwrap();
    assert_eq!(answer.unwrap(), [json!(["ready?: yes"])]);
    assert_eq!(server.fetch_sockets().await.len(), 1);
}

#[tokio::test]
async fn a_polling_session_upgrades_to_websocket_through_axum() {
    let server = echo_server(Config::default());
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    assert_eq!(session.post("40").await.body, "ok");
    assert_eq!(session.records(2).await.len(), 2);

    let url = format!(
        "ws://{addr}/socket.io/?EIO=4&transport=websocket&sid={}",
        session.sid
    );
    let (mut ws, _) = tokio::time::timeout(WAIT, wsio::tokio::connect_async(&url))
        .await
        .unwrap()
        .unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    let probe = tokio::time::timeout(WAIT, ws.read())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(probe, Some(Message::text("3probe")));
    ws.send(Message::text("5")).await.unwrap();
    ws.send(Message::text("42[\"push\",\"over websocket\"]"))
        .await
        .unwrap();
    let pushed = loop {
        let message = tokio::time::timeout(WAIT, ws.read())
            .await
            .unwrap()
            .unwrap();
        match message {
            Some(message) if message.as_text() == Some("2") => {
                ws.send(Message::text("3")).await.unwrap();
            }
            // The noop that would have released a waiting GET.
            Some(message) if message.as_text() == Some("6") => {}
            other => break other,
        }
    };
    assert_eq!(
        pushed,
        Some(Message::text("42[\"pushed\",\"over websocket\"]"))
    );
    // The polling side no longer knows the session.
    let after = request(addr, "GET", &session.target(), "").await;
    assert_eq!((after.status, after.error_code()), (400, 1));
}

/// A WebSocket client that shows the frames as they are on the wire: it offers
/// permessage-deflate and reads the RSV1 bit of every frame.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens a Socket.IO WebSocket offering permessage-deflate; returns the client and the
    /// extensions the server accepted.
    async fn connect(addr: SocketAddr) -> (Self, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\
            Upgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut ws = Self {
            stream,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            ws.fill().await;
        };
        let head = String::from_utf8(ws.buf.drain(..end + 4).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head
            .split("\r\n")
            .filter_map(|line| line.split_once(": "))
            .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, value)| value.to_owned())
            .unwrap_or_default();
        (ws, extensions)
    }

    async fn fill(&mut self) {
        let mut chunk = [0; 8192];
        let read = tokio::time::timeout(WAIT, self.stream.read(&mut chunk));
        let n = read.await.expect("nothing arrived in time").unwrap();
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn need(&mut self, len: usize) {
        while self.buf.len() < len {
            self.fill().await;
        }
    }

    /// The next frame from the server (unmasked): whether RSV1 is set, and the payload.
    async fn frame(&mut self) -> (bool, Vec<u8>) {
        self.need(2).await;
        let rsv1 = self.buf[0] & 0x40 != 0;
        let (header, len) = match self.buf[1] & 0x7f {
            126 => {
                self.need(4).await;
                (
                    4,
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                )
            }
            127 => panic!("no frame this large in this test"),
            len => (2, usize::from(len)),
        };
        self.need(header + len).await;
        let frame: Vec<u8> = self.buf.drain(..header + len).collect();
        (rsv1, frame[header..].to_vec())
    }

    /// Sends a short text frame, masked with a zero key.
    async fn send_text(&mut self, text: &str) {
        assert!(text.len() < 126);
        let mut frame = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(text.as_bytes());
        self.stream.write_all(&frame).await.unwrap();
    }
}

#[tokio::test]
async fn compress_false_sends_uncompressed_frames_where_deflate_is_on() {
    let big = "a".repeat(4096);
    let server = Server::new(Config::default());
    let greeting = big.clone();
    server.of("/").on_connection(move |socket| {
        let _ = socket.emit("big", json!([greeting]));
        let _ = socket.compress(false).emit("big", json!([greeting]));
    });
    let addr = start(&server).await;
    let (mut ws, extensions) = RawWs::connect(addr).await;
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    let (rsv1, open) = ws.frame().await;
    assert!(!rsv1 && open.starts_with(b"0{"));
    ws.send_text("40").await;
    let (_, connect) = ws.frame().await;
    assert!(connect.starts_with(b"40{\"sid\":"));

    let expected = |event: &str| format!("42[\"{event}\",\"{big}\"]").into_bytes();
    // Over the threshold: compressed by default, so deflate is really on here.
    let (rsv1, compressed) = ws.frame().await;
    assert!(rsv1, "a 4 KiB emit went out uncompressed");
    assert!(compressed.len() < 200);
    // The same emit with compress(false): RSV1 clear, the payload as it is.
    let (rsv1, plain) = ws.frame().await;
    assert!(!rsv1);
    assert_eq!(plain, expected("big"));

    // Broadcasts: `io.compress(false).emit` goes out plain, a plain `io.emit` compressed.
    assert_eq!(server.compress(false).emit("all", json!([big])), Ok(1));
    assert_eq!(server.emit("all", json!([big])), Ok(1));
    let (rsv1, plain) = ws.frame().await;
    assert!(!rsv1);
    assert_eq!(plain, expected("all"));
    let (rsv1, _) = ws.frame().await;
    assert!(rsv1);
}

#[tokio::test]
async fn a_client_that_drops_its_waiting_get_ends_the_session() {
    let server = echo_server(Config::default());
    let (left, mut reasons) = mpsc::unbounded_channel();
    server.of("/").use_middleware(move |socket| {
        let left = left.clone();
        async move {
            socket.on_disconnect(move |_, reason| {
                let left = left.clone();
                async move {
                    let _ = left.send(reason);
                }
            });
            Ok(())
        }
    });
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    session.post("40").await;
    session.records(2).await;
    // A GET that waits (nothing is queued), then its connection closes under it.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let get = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", session.target());
    stream.write_all(get.as_bytes()).await.unwrap();
    // The request's bytes arrive before the end of stream: hyper hands the GET to the
    // service, then sees the connection close and drops the waiting answer.
    drop(stream);
    let reason = tokio::time::timeout(WAIT, reasons.recv()).await.unwrap();
    assert_eq!(
        reason.map(|reason| reason.as_str()),
        Some("transport close")
    );
}
