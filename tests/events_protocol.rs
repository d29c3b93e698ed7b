//! The behaviour the Socket.IO protocol compliance suite checks (socketio/socket.io-protocol,
//! test-suite/), one test per suite case, against the server its Readme describes (the same
//! configuration as `examples/socketio_protocol_server.rs`), with raw HTTP requests and raw
//! WebSocket frames.
#![cfg(feature = "events")]

mod events_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use wsio::Message;
use wsio::events::{Args, Config, Cors, Server};
use wsio::proto::handshake::ClientRequest;
use wsio::tokio::{MaybeTlsStream, WebSocketStream};

use events_support::http::{Http, request};

/// How long a test waits for anything.
const WAIT: Duration = Duration::from_secs(5);
const PING_INTERVAL: Duration = Duration::from_millis(300);
const PING_TIMEOUT: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// The suite's server: its settings, `/` echoing `message` as `message-back` and acknowledging
/// `message-with-ack` with its arguments, `/` and `/custom` emitting the auth payload as `auth`.
fn suite_server() -> Server {
    let mut config = Config::default();
    config.ping_interval = PING_INTERVAL;
    config.ping_timeout = PING_TIMEOUT;
    config.max_payload = 1_000_000;
    config.connect_timeout = CONNECT_TIMEOUT;
    config.cors = Some(Cors::any());
    let server = Server::new(config);
    server.of("/").on_connection(|socket| {
        let _ = socket.emit("auth", Args::from_values(vec![socket.auth().clone()]));
        socket.on("message", |socket, args, _| async move {
            let _ = socket.emit("message-back", args);
        });
        socket.on("message-with-ack", |_, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
    });
    server.of("/custom").on_connection(|socket| {
        let _ = socket.emit("auth", Args::from_values(vec![socket.auth().clone()]));
    });
    server
}

async fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = suite_server();
    tokio::spawn(async move { server.serve(listener).await });
    addr
}

// ---- raw HTTP ----

/// Opens a long-polling session; returns its id.
async fn open_polling(addr: SocketAddr) -> String {
    let response = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!(response.status, 200, "{response:?}");
    let open: Value = serde_json::from_str(&response.body[1..]).unwrap();
    open["sid"].as_str().unwrap().to_owned()
}

fn polling(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

// ---- raw WebSocket ----

type Ws = WebSocketStream<MaybeTlsStream>;

async fn try_ws(addr: SocketAddr, query: &str) -> Result<Ws, wsio::Error> {
    let url = format!("ws://{addr}/socket.io/?{query}");
    let request = ClientRequest::new(&url).unwrap();
    let options = wsio::Options::default();
    let connect = wsio::tokio::connect_async_with(request, &options);
    let (ws, _) = tokio::time::timeout(WAIT, connect)
        .await
        .expect("no handshake answer in time")?;
    Ok(ws)
}

/// A WebSocket session whose open packet was read.
async fn ws_session(addr: SocketAddr) -> Ws {
    let mut ws = try_ws(addr, "EIO=4&transport=websocket").await.unwrap();
    let open = next(&mut ws).await.expect("the open packet");
    assert!(open.as_text().unwrap().starts_with('0'), "{open:?}");
    ws
}

/// A WebSocket session joined to `/`, the CONNECT reply and the `auth` event read.
async fn socketio_session(addr: SocketAddr) -> Ws {
    let mut ws = ws_session(addr).await;
    ws.send(Message::text("40")).await.unwrap();
    assert!(text(&mut ws).await.starts_with("40{"));
    assert_eq!(text(&mut ws).await, r#"42["auth",{}]"#);
    ws
}

/// The next message, or `None` once the connection is closed (or failed).
async fn next(ws: &mut Ws) -> Option<Message> {
    tokio::time::timeout(WAIT, ws.read())
        .await
        .expect("nothing arrived in time")
        .ok()
        .flatten()
}

/// The next message that is not an Engine.IO ping; pings are answered.
async fn next_data(ws: &mut Ws) -> Option<Message> {
    loop {
        let message = next(ws).await?;
        if message.as_text() == Some("2") {
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        return Some(message);
    }
}

async fn text(ws: &mut Ws) -> String {
    let message = next_data(ws).await.expect("connection closed");
    message.as_text().expect("a text message").to_owned()
}

/// Waits for the server to close the connection, answering pings (so the heartbeat is not
/// what closes it); fails on any other message.
async fn closed(ws: &mut Ws) {
    if let Some(message) = next_data(ws).await {
        panic!("expected the close, got {message:?}");
    }
}

fn open_fields(text: &str) -> Value {
    let open: Value =
        serde_json::from_str(text.strip_prefix('0').expect("an open packet")).unwrap();
    let mut keys: Vec<&str> = open
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert!(open["sid"].is_string());
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
    open
}

/// The CONNECT reply's data: exactly a string `sid`.
fn connect_reply(text: &str, prefix: &str) {
    let data: Value = serde_json::from_str(text.strip_prefix(prefix).unwrap()).unwrap();
    let data = data.as_object().unwrap();
    assert_eq!(data.len(), 1, "{text}");
    assert!(data["sid"].is_string(), "{text}");
}

// ---- Engine.IO: handshake ----

#[tokio::test]
async fn polling_open_has_the_configured_fields_and_offers_websocket() {
    let addr = start().await;
    let response = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!(response.status, 200);
    let open = open_fields(&response.body);
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
}

#[tokio::test]
async fn polling_open_without_a_supported_eio_is_refused_with_400() {
    let addr = start().await;
    for target in [
        "/socket.io/?transport=polling",
        "/socket.io/?EIO=abc&transport=polling",
    ] {
        let response = request(addr, "GET", target, "").await;
        assert_eq!(response.status, 400, "{target}");
        assert_eq!(response.error(), (5, "Unsupported protocol version".into()));
    }
}

#[tokio::test]
async fn polling_open_without_a_known_transport_is_refused_with_400() {
    let addr = start().await;
    // The transport is checked first, as Node does: an unknown one wins over a bad version.
    for target in [
        "/socket.io/?EIO=4",
        "/socket.io/?EIO=4&transport=abc",
        "/socket.io/?EIO=abc&transport=abc",
    ] {
        let response = request(addr, "GET", target, "").await;
        assert_eq!(response.status, 400, "{target}");
        assert_eq!(response.error(), (0, "Transport unknown".into()));
    }
}

#[tokio::test]
async fn polling_open_with_post_or_put_is_refused_with_400() {
    let addr = start().await;
    for method in ["POST", "PUT"] {
        let response = request(addr, method, "/socket.io/?EIO=4&transport=polling", "").await;
        assert_eq!(response.status, 400, "{method}");
        assert_eq!(response.error(), (2, "Bad handshake method".into()));
    }
}

#[tokio::test]
async fn websocket_open_has_the_configured_fields_and_no_upgrades() {
    let addr = start().await;
    let mut ws = try_ws(addr, "EIO=4&transport=websocket").await.unwrap();
    let open = next(&mut ws).await.expect("the open packet");
    let open = open_fields(open.as_text().unwrap());
    assert_eq!(open["upgrades"], serde_json::json!([]));
}

#[tokio::test]
async fn websocket_open_without_a_supported_eio_is_refused() {
    let addr = start().await;
    for query in ["transport=websocket", "EIO=abc&transport=websocket"] {
        assert!(try_ws(addr, query).await.is_err(), "{query}");
    }
}

#[tokio::test]
async fn websocket_open_without_a_known_transport_is_refused() {
    let addr = start().await;
    for query in ["EIO=4", "EIO=4&transport=abc"] {
        assert!(try_ws(addr, query).await.is_err(), "{query}");
    }
}

// ---- Engine.IO: heartbeat ----

#[tokio::test]
async fn polling_heartbeat_pings_every_interval_and_takes_pongs() {
    let addr = start().await;
    let sid = open_polling(addr).await;
    let mut last = Instant::now();
    for _ in 0..3 {
        let ping = request(addr, "GET", &polling(&sid), "").await;
        assert_eq!((ping.status, ping.body.as_str()), (200, "2"));
        // Never early; late only by scheduling.
        assert!(last.elapsed() >= PING_INTERVAL - Duration::from_millis(50));
        last = Instant::now();
        let pong = request(addr, "POST", &polling(&sid), "3").await;
        assert_eq!((pong.status, pong.body.as_str()), (200, "ok"));
    }
}

#[tokio::test]
async fn polling_session_ends_when_a_ping_goes_unanswered() {
    let addr = start().await;
    let sid = open_polling(addr).await;
    let ping = request(addr, "GET", &polling(&sid), "").await;
    assert_eq!(ping.body, "2");
    let pinged = Instant::now();
    // The next poll waits until the ping timeout ends the session.
    let waiting = request(addr, "GET", &polling(&sid), "").await;
    // Not right after the ping: the client has the timeout (at least half of it when the
    // server woke late to send the ping) to answer.
    assert!(pinged.elapsed() >= PING_TIMEOUT / 4);
    assert!(
        waiting.status == 400 || waiting.body == "1" || waiting.body == "6",
        "{waiting:?}"
    );
    let after = request(addr, "GET", &polling(&sid), "").await;
    assert_eq!(after.status, 400);
    assert_eq!(after.error(), (1, "Session ID unknown".into()));
}

// The suite's sequence: open, let the interval and the timeout pass, poll. The session was
// created before its open response arrived, so it is past its pong deadline by then, and the
// answer must not depend on when the server's timer task wakes up.
#[tokio::test]
async fn polling_session_is_gone_once_the_interval_and_the_timeout_have_passed() {
    let addr = start().await;
    for _ in 0..5 {
        let sid = open_polling(addr).await;
        tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT).await;
        let response = request(addr, "GET", &polling(&sid), "").await;
        assert_eq!(response.status, 400, "{response:?}");
        assert_eq!(response.error(), (1, "Session ID unknown".into()));
    }
}

#[tokio::test]
async fn websocket_heartbeat_pings_every_interval_and_takes_pongs() {
    let addr = start().await;
    let mut ws = ws_session(addr).await;
    let mut last = Instant::now();
    for _ in 0..3 {
        let ping = next(&mut ws).await.expect("a ping");
        assert_eq!(ping.as_text(), Some("2"));
        assert!(last.elapsed() >= PING_INTERVAL - Duration::from_millis(50));
        last = Instant::now();
        ws.send(Message::text("3")).await.unwrap();
    }
}

#[tokio::test]
async fn websocket_session_ends_when_a_ping_goes_unanswered() {
    let addr = start().await;
    let mut ws = ws_session(addr).await;
    // Joined, so the connect timeout is out of the way: only the heartbeat can end it.
    ws.send(Message::text("40")).await.unwrap();
    let mut pinged = None;
    while let Some(message) = next(&mut ws).await {
        if message.as_text() == Some("2") {
            pinged = Some(Instant::now());
        }
    }
    let pinged = pinged.expect("a ping before the close");
    // Not right after the ping: the client has the timeout (at least half of it when the
    // server woke late to send the ping) to answer.
    assert!(pinged.elapsed() >= PING_TIMEOUT / 4);
}

// ---- Engine.IO: close ----

// Several rounds on a multi-threaded runtime, over connections already open (as an HTTP
// client's pool has them): the GET is written before the POST, and the close must not overtake
// it on the server, whose scheduler runs the task woken last first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_close_packet_releases_the_waiting_poll_and_ends_the_session() {
    let addr = start().await;
    let (mut first, mut second) = (Http::connect(addr).await, Http::connect(addr).await);
    for _ in 0..20 {
        let open = first
            .request("GET", "/socket.io/?EIO=4&transport=polling", "")
            .await;
        let open: Value = serde_json::from_str(&open.body[1..]).unwrap();
        let target = polling(open["sid"].as_str().unwrap());
        first.send("GET", &target, "").await;
        let close = second.request("POST", &target, "1").await;
        assert_eq!((close.status, close.body.as_str()), (200, "ok"));
        let waiting = first.response().await;
        assert_eq!((waiting.status, waiting.body.as_str()), (200, "6"));
        let after = second.request("GET", &target, "").await;
        assert_eq!(after.error(), (1, "Session ID unknown".into()));
        // The refusal keeps the connection, as Node does, so the pool stays warm.
        assert!(after.keep_alive);
    }
}

#[tokio::test]
async fn a_refused_request_keeps_its_connection_for_the_next() {
    let addr = start().await;
    let mut http = Http::connect(addr).await;
    for target in [
        "/socket.io/?EIO=4&transport=polling&sid=unknown",
        "/socket.io/?EIO=3&transport=polling",
        "/socket.io/?EIO=4&transport=abc",
    ] {
        let refused = http.request("GET", target, "").await;
        assert_eq!(
            (refused.status, refused.keep_alive),
            (400, true),
            "{target}"
        );
    }
    let open = http
        .request("GET", "/socket.io/?EIO=4&transport=polling", "")
        .await;
    assert_eq!(open.status, 200);
    assert!(open.body.starts_with("0{"));
}

#[tokio::test]
async fn websocket_close_packet_ends_the_session() {
    let addr = start().await;
    let mut ws = ws_session(addr).await;
    ws.send(Message::text("1")).await.unwrap();
    closed(&mut ws).await;
}

// ---- Engine.IO: upgrade ----

/// Probes and completes the upgrade of `sid`; returns the upgraded WebSocket.
async fn upgrade(addr: SocketAddr, sid: &str) -> Ws {
    let mut ws = try_ws(addr, &format!("EIO=4&transport=websocket&sid={sid}"))
        .await
        .unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap().as_text(), Some("3probe"));
    // The pending (or next) poll is released with a noop so the client can switch.
    let noop = request(addr, "GET", &polling(sid), "").await;
    assert_eq!((noop.status, noop.body.as_str()), (200, "6"));
    ws.send(Message::text("5")).await.unwrap();
    ws
}

#[tokio::test]
async fn polling_session_upgrades_to_websocket_and_keeps_working() {
    let addr = start().await;
    let sid = open_polling(addr).await;
    let mut ws = upgrade(addr, &sid).await;
    // The session now runs on the WebSocket: joining and an event round trip.
    ws.send(Message::text("40")).await.unwrap();
    assert!(text(&mut ws).await.starts_with("40{"));
    assert_eq!(text(&mut ws).await, r#"42["auth",{}]"#);
    ws.send(Message::text(r#"42["message","after upgrade"]"#))
        .await
        .unwrap();
    assert_eq!(text(&mut ws).await, r#"42["message-back","after upgrade"]"#);
}

#[tokio::test]
async fn polling_requests_for_an_upgraded_session_are_refused() {
    let addr = start().await;
    let sid = open_polling(addr).await;
    let mut ws = upgrade(addr, &sid).await;
    // Once the WebSocket answers a ping, the server has processed the `5`.
    assert_eq!(next(&mut ws).await.unwrap().as_text(), Some("2"));
    let response = request(addr, "GET", &polling(&sid), "").await;
    assert_eq!(response.status, 400);
}

// The suite's sequence: `5` sent, then at once a poll, which must not overtake the `5` on the
// server. Several rounds, over a connection already open, on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_sent_right_after_the_upgrade_is_refused() {
    let addr = start().await;
    let mut http = Http::connect(addr).await;
    for _ in 0..10 {
        let open = http
            .request("GET", "/socket.io/?EIO=4&transport=polling", "")
            .await;
        let open: Value = serde_json::from_str(&open.body[1..]).unwrap();
        let sid = open["sid"].as_str().unwrap();
        let mut ws = try_ws(addr, &format!("EIO=4&transport=websocket&sid={sid}"))
            .await
            .unwrap();
        ws.send(Message::text("2probe")).await.unwrap();
        assert_eq!(next(&mut ws).await.unwrap().as_text(), Some("3probe"));
        ws.send(Message::text("5")).await.unwrap();
        let response = http.request("GET", &polling(sid), "").await;
        assert_eq!(response.status, 400, "{response:?}");
    }
}

#[tokio::test]
async fn a_second_websocket_for_an_upgraded_session_is_refused() {
    let addr = start().await;
    let sid = open_polling(addr).await;
    let mut ws = upgrade(addr, &sid).await;
    assert_eq!(next(&mut ws).await.unwrap().as_text(), Some("2"));
    let query = format!("EIO=4&transport=websocket&sid={sid}");
    match try_ws(addr, &query).await {
        Err(_) => {}
        Ok(mut second) => closed(&mut second).await,
    }
}

// ---- Socket.IO: connect ----

async fn connect_and_read_auth(connect: &str, prefix: &str, auth: &str) {
    let addr = start().await;
    let mut ws = ws_session(addr).await;
    ws.send(Message::text(connect)).await.unwrap();
    // The CONNECT reply comes first, in a message of its own, then the handler's emit.
    connect_reply(&text(&mut ws).await, prefix);
    assert_eq!(text(&mut ws).await, auth);
}

#[tokio::test]
async fn connect_to_main_namespace_without_auth_sees_an_empty_object() {
    connect_and_read_auth("40", "40", r#"42["auth",{}]"#).await;
}

#[tokio::test]
async fn connect_to_main_namespace_with_auth_sees_it() {
    connect_and_read_auth(
        r#"40{"token":"123"}"#,
        "40",
        r#"42["auth",{"token":"123"}]"#,
    )
    .await;
}

#[tokio::test]
async fn connect_to_custom_namespace_without_auth_sees_an_empty_object() {
    connect_and_read_auth("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#).await;
}

#[tokio::test]
async fn connect_to_custom_namespace_with_auth_sees_it() {
    connect_and_read_auth(
        r#"40/custom,{"token":"abc"}"#,
        "40/custom,",
        r#"42/custom,["auth",{"token":"abc"}]"#,
    )
    .await;
}

#[tokio::test]
async fn connect_to_an_unknown_namespace_gets_invalid_namespace() {
    let addr = start().await;
    let mut ws = ws_session(addr).await;
    ws.send(Message::text("40/random")).await.unwrap();
    assert_eq!(
        text(&mut ws).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
}

#[tokio::test]
async fn an_invalid_packet_before_connect_closes_the_connection() {
    let addr = start().await;
    let mut ws = ws_session(addr).await;
    ws.send(Message::text("4abc")).await.unwrap();
    closed(&mut ws).await;
}

#[tokio::test]
async fn no_connect_within_the_connect_timeout_closes_the_connection() {
    let addr = start().await;
    let opened = Instant::now();
    let mut ws = ws_session(addr).await;
    // Pings are answered, so only the connect timeout can end it.
    closed(&mut ws).await;
    assert!(opened.elapsed() >= CONNECT_TIMEOUT - Duration::from_millis(50));
}

// ---- Socket.IO: disconnect ----

#[tokio::test]
async fn disconnect_from_main_namespace_keeps_the_session_open() {
    let addr = start().await;
    let mut ws = socketio_session(addr).await;
    ws.send(Message::text("41")).await.unwrap();
    // The next thing the server sends is its ping: the Engine.IO session outlives the namespace.
    assert_eq!(next(&mut ws).await.unwrap().as_text(), Some("2"));
}

#[tokio::test]
async fn disconnect_from_custom_namespace_keeps_the_main_one() {
    let addr = start().await;
    let mut ws = socketio_session(addr).await;
    ws.send(Message::text("40/custom")).await.unwrap();
    assert!(text(&mut ws).await.starts_with("40/custom,"));
    assert_eq!(text(&mut ws).await, r#"42/custom,["auth",{}]"#);
    ws.send(Message::text("41/custom")).await.unwrap();
    ws.send(Message::text(
        r#"42["message","message to main namespace"]"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        text(&mut ws).await,
        r#"42["message-back","message to main namespace"]"#
    );
}

// ---- Socket.IO: message ----

#[tokio::test]
async fn plain_event_comes_back_unchanged() {
    let addr = start().await;
    let mut ws = socketio_session(addr).await;
    ws.send(Message::text(r#"42["message",1,"2",{"3":[true]}]"#))
        .await
        .unwrap();
    assert_eq!(
        text(&mut ws).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
}

/// Sends a binary event with two attachments and checks the three messages that come back.
async fn binary_round_trip(sent: &str, expected: &str) {
    let addr = start().await;
    let mut ws = socketio_session(addr).await;
    ws.send(Message::text(sent)).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    ws.send(Message::binary(vec![4u8, 5, 6])).await.unwrap();
    assert_eq!(text(&mut ws).await, expected);
    for attachment in [[1u8, 2, 3], [4, 5, 6]] {
        let message = next_data(&mut ws).await.expect("an attachment");
        assert!(message.is_binary(), "{message:?}");
        assert_eq!(message.as_bytes(), attachment);
    }
}

#[tokio::test]
async fn binary_event_comes_back_with_its_attachments() {
    binary_round_trip(
        r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
}

#[tokio::test]
async fn event_with_ack_is_acknowledged_with_its_arguments() {
    let addr = start().await;
    let mut ws = socketio_session(addr).await;
    ws.send(Message::text(
        r#"42456["message-with-ack",1,"2",{"3":[false]}]"#,
    ))
    .await
    .unwrap();
    assert_eq!(text(&mut ws).await, r#"43456[1,"2",{"3":[false]}]"#);
}

#[tokio::test]
async fn binary_event_with_ack_gets_a_binary_ack() {
    binary_round_trip(
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
}

async fn closes_on(packet: &str) {
    let addr = start().await;
    let mut ws = socketio_session(addr).await;
    ws.send(Message::text(packet)).await.unwrap();
    closed(&mut ws).await;
}

#[tokio::test]
async fn unknown_packet_type_closes_the_connection() {
    closes_on("4abc").await;
}

#[tokio::test]
async fn event_payload_that_is_not_an_array_closes_the_connection() {
    closes_on("42{}").await;
}

#[tokio::test]
async fn invalid_ack_id_closes_the_connection() {
    closes_on(r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#).await;
}
