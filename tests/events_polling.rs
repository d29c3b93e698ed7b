//! Engine.IO HTTP long-polling and the upgrade to WebSocket, driven with raw HTTP requests.
#![cfg(feature = "events")]

mod events_support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use wsio::Message;
use wsio::events::{Config, Cors, Refusal, Server};

use events_support::http::{Http, Response, request};
use events_support::{WAIT, config, start};

/// A polling session: its id and its URL.
struct Session {
    addr: SocketAddr,
    sid: String,
    open: Value,
}

impl Session {
    async fn open(addr: SocketAddr) -> Self {
        let response = request(addr, "GET", "/socket.io/?EIO=4&transport=polling&t=1", "").await;
        assert_eq!(response.status, 200, "{response:?}");
        let open = response.body.strip_prefix('0').expect("an open packet");
        let open: Value = serde_json::from_str(open).unwrap();
        Self {
            addr,
            sid: open["sid"].as_str().unwrap().to_owned(),
            open,
        }
    }

    fn target(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    async fn get(&self) -> Response {
        request(self.addr, "GET", &self.target(), "").await
    }

    async fn post(&self, body: &str) -> Response {
        request(self.addr, "POST", &self.target(), body).await
    }

    /// GETs until `count` records arrived, answering pings; returns them.
    async fn records(&self, count: usize) -> Vec<String> {
        let mut records = Vec::new();
        while records.len() < count {
            let response = self.get().await;
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

/// A server whose `/` echoes `echo` to its acknowledgement and greets with the auth payload.
fn echo_server(config: Config) -> Server {
    let server = Server::new(config);
    server.of("/").on_connection(|socket| {
        let _ = socket.emit("auth", json!([socket.auth()]));
        socket.on("echo", |_, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
        socket.on("push", |socket, args, _| async move {
            let _ = socket.emit("pushed", args);
        });
    });
    server
}

#[tokio::test]
async fn open_connect_events_acks_and_binary_over_polling() {
    let server = echo_server(config());
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    assert_eq!(session.open["upgrades"], json!(["websocket"]));
    assert_eq!(session.open["pingInterval"], 200);
    assert_eq!(session.open["pingTimeout"], 200);
    assert_eq!(session.open["maxPayload"], 1_000_000);

    assert_eq!(session.post("40").await.body, "ok");
    let records = session.records(2).await;
    assert!(records[0].starts_with("40{\"sid\":"), "{records:?}");
    assert_eq!(records[1], "42[\"auth\",{}]");

    // Two packets in one POST, objects in their key order, answered in order.
    let body = "421[\"echo\",{\"b\":1,\"a\":2}]\x1e422[\"echo\",\"x\"]";
    assert_eq!(session.post(body).await.body, "ok");
    assert_eq!(
        session.records(2).await,
        ["431[{\"b\":1,\"a\":2}]", "432[\"x\"]"]
    );

    // Binary attachments travel as base64 `b` records.
    let body = "451-3[\"echo\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID";
    assert_eq!(session.post(body).await.body, "ok");
    assert_eq!(
        session.records(2).await,
        ["461-3[{\"_placeholder\":true,\"num\":0}]", "bAQID"]
    );
}

#[tokio::test]
async fn requests_share_one_kept_alive_connection() {
    let server = echo_server(config());
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    let mut http = Http::connect(addr).await;
    let target = session.target();
    let posted = http.request("POST", &target, "40").await;
    assert_eq!((posted.status, posted.body.as_str()), (200, "ok"));
    assert!(posted.keep_alive);
    let polled = http.request("GET", &target, "").await;
    assert!(polled.body.starts_with("40{\"sid\":"), "{polled:?}");
    assert!(polled.keep_alive);
}

#[tokio::test]
async fn heartbeat_over_polling_and_ping_timeout_ends_the_session() {
    let server = echo_server(config());
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    for _ in 0..3 {
        assert_eq!(session.get().await.body, "2");
        assert_eq!(session.post("3").await.body, "ok");
    }
    // Not answered this time: the next poll ends with the close packet.
    assert_eq!(session.get().await.body, "2");
    assert_eq!(session.get().await.body, "1");
    let gone = session.get().await;
    assert_eq!((gone.status, gone.error_code()), (400, 1));
}

#[tokio::test]
async fn bad_requests_get_socketio_errors() {
    let server = echo_server(config());
    let addr = start(&server).await;
    let unknown = request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling&sid=nope",
        "",
    )
    .await;
    assert_eq!((unknown.status, unknown.error_code()), (400, 1));
    for method in ["POST", "PUT"] {
        let handshake = request(addr, method, "/socket.io/?EIO=4&transport=polling", "").await;
        assert_eq!(
            (handshake.status, handshake.error_code()),
            (400, 2),
            "{method}"
        );
    }
    let version = request(addr, "GET", "/socket.io/?EIO=3&transport=polling", "").await;
    assert_eq!((version.status, version.error_code()), (400, 5));
    let session = Session::open(addr).await;
    let put = request(addr, "PUT", &session.target(), "").await;
    assert_eq!((put.status, put.error_code()), (400, 3));
    let garbage = session.post("b!!").await;
    assert_eq!(garbage.status, 400);
    let gone = session.get().await;
    assert!(
        gone.body == "1" || (gone.status, gone.error_code()) == (400, 1),
        "a bad payload closes the session: {gone:?}"
    );
}

#[tokio::test]
async fn a_body_over_max_payload_is_refused() {
    let mut config = config();
    config.max_payload = 64;
    let server = echo_server(config);
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    assert_eq!(session.open["maxPayload"], 64);
    assert_eq!(session.post("40").await.status, 200);
    let fits = format!("42[\"echo\",\"{}\"]", "x".repeat(40));
    assert_eq!(session.post(&fits).await.status, 200);
    let too_large = format!("42[\"echo\",\"{}\"]", "x".repeat(60));
    assert_eq!(session.post(&too_large).await.status, 413);
    // The session is closed: what was queued ends with the close packet, then it is unknown.
    for _ in 0..4 {
        let response = session.get().await;
        if response.status == 400 {
            assert_eq!(response.error_code(), 1);
            return;
        }
    }
    panic!("the session outlived a body over max_payload");
}

#[tokio::test]
async fn a_close_packet_releases_the_waiting_poll_and_ends_the_session() {
    let mut config = config();
    config.ping_interval = Duration::from_secs(30);
    let server = echo_server(config);
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    let mut waiting = Http::connect(addr).await;
    waiting.send("GET", &session.target(), "").await;
    assert_eq!(session.post("1").await.body, "ok");
    let released = waiting.response().await;
    // "6" when the GET was waiting (the usual case); if the close overtook it, it finds no
    // session.
    assert!(
        released.body == "6" || (released.status, released.error_code()) == (400, 1),
        "{released:?}"
    );
    let gone = session.get().await;
    assert_eq!((gone.status, gone.error_code()), (400, 1));
}

#[tokio::test]
async fn a_second_concurrent_poll_closes_the_session() {
    let mut config = config();
    config.ping_interval = Duration::from_secs(30);
    let server = echo_server(config);
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    // Nothing is queued, so neither GET can be answered before both arrived; whichever came
    // second is refused, and the session closes under the first.
    let mut first = Http::connect(addr).await;
    let mut second = Http::connect(addr).await;
    first.send("GET", &session.target(), "").await;
    second.send("GET", &session.target(), "").await;
    let (first, second) = (first.response().await, second.response().await);
    let (refused, released) = match first.status {
        400 => (first, second),
        _ => (second, first),
    };
    assert_eq!((refused.status, refused.error_code()), (400, 3));
    assert_eq!(released.body, "1");
    let gone = session.get().await;
    assert_eq!((gone.status, gone.error_code()), (400, 1));
}

#[tokio::test]
async fn upgrade_to_websocket_keeps_the_session_and_its_order() {
    let mut config = config();
    config.ping_interval = Duration::from_secs(30);
    let server = echo_server(config);
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    assert_eq!(session.post("40").await.body, "ok");
    assert_eq!(session.records(2).await.len(), 2);

    // A poll waits while the WebSocket probes; the probe releases it with a noop.
    let mut waiting = Http::connect(addr).await;
    waiting.send("GET", &session.target(), "").await;
    let url = format!(
        "ws://{addr}/socket.io/?EIO=4&transport=websocket&sid={}",
        session.sid
    );
    let (mut ws, _) = wsio::tokio::connect_async(&url).await.unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    let probe = tokio::time::timeout(WAIT, ws.read())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(probe, Some(Message::text("3probe")));
    assert_eq!(waiting.response().await.body, "6");
    // Packets posted before the upgrade completes still count.
    assert_eq!(session.post("42[\"push\",\"before\"]").await.body, "ok");
    ws.send(Message::text("5")).await.unwrap();
    ws.send(Message::text("427[\"echo\",\"after\"]"))
        .await
        .unwrap();
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let message = tokio::time::timeout(WAIT, ws.read())
            .await
            .unwrap()
            .unwrap();
        match message.unwrap().as_text().unwrap() {
            "6" => {}
            text => texts.push(text.to_owned()),
        }
    }
    assert_eq!(texts, ["42[\"pushed\",\"before\"]", "437[\"after\"]"]);

    // The session no longer answers polling, nor another WebSocket.
    let poll = session.get().await;
    assert_eq!((poll.status, poll.error_code()), (400, 1));
    let again = wsio::tokio::connect_async(&url).await;
    assert!(again.is_err(), "a second upgrade was accepted");
}

#[tokio::test]
async fn a_client_that_joins_no_namespace_is_closed_after_the_connect_timeout() {
    let mut config = config();
    config.connect_timeout = Duration::from_millis(300);
    let server = echo_server(config);
    let addr = start(&server).await;
    let session = Session::open(addr).await;
    // Pings keep the session alive; the connect timeout ends it anyway.
    let mut records = Vec::new();
    while records.last().map(String::as_str) != Some("1") {
        let response = session.get().await;
        assert_eq!(response.status, 200, "{response:?}");
        for record in response.body.split('\x1e') {
            if record == "2" {
                session.post("3").await;
            }
            records.push(record.to_owned());
        }
    }
    let gone = session.get().await;
    assert_eq!((gone.status, gone.error_code()), (400, 1));
    // Over WebSocket too.
    let mut client = events_support::Client::connect(addr).await;
    client.closed().await;
}

#[tokio::test]
async fn cors_headers_for_allowed_origins_and_preflight() {
    let mut config = config();
    config.cors = Some(Cors::origins(["http://app.test"]).with_credentials(true));
    let server = echo_server(config);
    let addr = start(&server).await;
    let open = "/socket.io/?EIO=4&transport=polling";
    let mut http = Http::connect(addr).await;
    http.send_with("GET", open, &[("Origin", "http://app.test")], "")
        .await;
    let allowed = http.response().await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));

    let mut http = Http::connect(addr).await;
    let preflight_headers = [
        ("Origin", "http://app.test"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    http.send_with("OPTIONS", open, &preflight_headers, "")
        .await;
    let preflight = http.response().await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );

    let mut http = Http::connect(addr).await;
    http.send_with("GET", open, &[("Origin", "http://elsewhere.test")], "")
        .await;
    let other = http.response().await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn allow_request_sees_the_request_and_may_forbid_it() {
    let server = echo_server(config());
    let (sender, mut seen) = tokio::sync::mpsc::unbounded_channel();
    server.allow_request(move |request| {
        let _ = sender.send((request.url().to_owned(), request.address()));
        async move {
            match request.query_param("token") {
                Some("ok") => Ok(()),
                _ => Err(Refusal::new("no token")),
            }
        }
    });
    let addr = start(&server).await;
    let refused = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!((refused.status, refused.error_code()), (403, 4));
    let (url, address) = seen.recv().await.unwrap();
    assert_eq!(url, "/socket.io/?EIO=4&transport=polling");
    assert!(address.unwrap().ip().is_loopback());
    let allowed = request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling&token=ok",
        "",
    )
    .await;
    assert_eq!(allowed.status, 200);
    let ws = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    assert!(wsio::tokio::connect_async(&ws).await.is_err());
    let ws = format!("{ws}&token=ok");
    assert!(wsio::tokio::connect_async(&ws).await.is_ok());
}

#[tokio::test]
async fn the_cookie_holds_the_session_id() {
    let mut config = config();
    config.cookie = Some("io".into());
    let server = echo_server(config);
    let addr = start(&server).await;
    let open = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid: Value = serde_json::from_str(&open.body[1..]).unwrap();
    let expected = format!(
        "io={}; Path=/; HttpOnly; SameSite=Lax",
        sid["sid"].as_str().unwrap()
    );
    assert_eq!(open.header("set-cookie"), Some(expected.as_str()));

    let ws = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, response) = wsio::tokio::connect_async(&ws).await.unwrap();
    let message = tokio::time::timeout(WAIT, ws.read())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let open: Value = serde_json::from_str(&message.as_text().unwrap()[1..]).unwrap();
    let expected = format!(
        "io={}; Path=/; HttpOnly; SameSite=Lax",
        open["sid"].as_str().unwrap()
    );
    assert_eq!(
        response.headers().get("set-cookie"),
        Some(expected.as_str())
    );
}

#[tokio::test]
async fn the_client_falls_back_to_polling_where_websocket_is_refused() {
    use wsio::events::client::ClientBuilder;

    let server = echo_server(config());
    server.allow_request(|request| async move {
        match request.query_param("transport") {
            Some("websocket") => Err(Refusal::new("no websocket here")),
            _ => Ok(()),
        }
    });
    let (sender, mut pushed) = tokio::sync::mpsc::unbounded_channel();
    let addr = start(&server).await;
    let url = format!("http://{addr}");
    // Without the fallback the refusal is the answer.
    let refused = ClientBuilder::new(url.clone())
        .reconnection(false)
        .connect()
        .await;
    assert!(refused.is_err());

    let client = ClientBuilder::new(url)
        .reconnection(false)
        .polling_fallback(true)
        .auth(json!({"z": 1, "a": 2}))
        .on("pushed", move |args, _| {
            let _ = sender.send(args);
        })
        .connect()
        .await
        .unwrap();
    let reply = client
        .emit_with_ack("echo", json!([{"b": 1, "a": [1, 2]}, "x"]))
        .await
        .unwrap();
    assert_eq!(reply.values(), &[json!({"b": 1, "a": [1, 2]}), json!("x")]);
    let binary = wsio::events::Args::new().with_binary(vec![1, 2, 3]);
    let reply = client.emit_with_ack("echo", binary.clone()).await.unwrap();
    assert_eq!(reply, binary);
    client.emit("push", json!(["over polling"])).unwrap();
    let args = tokio::time::timeout(WAIT, pushed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(args.values(), &[json!("over polling")]);
    // The heartbeat runs over polling too: still connected after a few ping intervals.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(client.is_connected());
    assert_eq!(
        client
            .emit_with_ack("echo", json!([1]))
            .await
            .unwrap()
            .values(),
        &[json!(1)]
    );
    client.disconnect();
}
