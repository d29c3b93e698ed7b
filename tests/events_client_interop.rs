//! The Socket.IO client against a stock socket.io 4.x server (Node), started per test from
//! `tests/socketio-client/server.js`.
//!
//! Ignored by default: `tests/socketio-client/run` installs the server and runs them with
//! `SOCKETIO_NODE` (the node binary) and `SOCKETIO_SERVER` (the script) set. Run with
//! `--ignored` but without those variables, they fail.
#![cfg(feature = "events")]

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use wsio::events::Args;
use wsio::events::client::{Client, ClientBuilder, ClientError, DisconnectReason, Transport};

const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(future: impl Future<Output = T>) -> T {
    timeout(LIMIT, future).await.expect("timed out")
}

/// A running `server.js`; dropping it closes the script's stdin and kills it.
struct NodeServer {
    _child: Child,
    _stdin: ChildStdin,
    port: u16,
    fast_port: u16,
    polling_port: u16,
    upgrade_port: u16,
}

impl NodeServer {
    async fn start() -> Self {
        let node = std::env::var("SOCKETIO_NODE")
            .expect("SOCKETIO_NODE must name the node binary: run tests/socketio-client/run");
        let script = std::env::var("SOCKETIO_SERVER")
            .expect("SOCKETIO_SERVER must name server.js: run tests/socketio-client/run");
        let mut child = Command::new(node)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start node");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = within(BufReader::new(stdout).lines().next_line())
            .await
            .unwrap()
            .expect("server.js printed no ports");
        let ports: Value = serde_json::from_str(&line).unwrap();
        let port = |key: &str| u16::try_from(ports[key].as_u64().unwrap()).unwrap();
        Self {
            port: port("port"),
            fast_port: port("fastPort"),
            polling_port: port("pollingPort"),
            upgrade_port: port("upgradePort"),
            _child: child,
            _stdin: stdin,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn polling_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.polling_port)
    }

    fn upgrade_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.upgrade_port)
    }

    fn fast_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.fast_port)
    }
}

fn builder(url: String) -> ClientBuilder {
    ClientBuilder::new(url)
        .reconnection_delay(Duration::from_millis(100))
        .reconnection_delay_max(Duration::from_millis(500))
        .ack_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
}

/// A handler that forwards each event's arguments to a channel.
fn collect(builder: ClientBuilder, event: &str) -> (ClientBuilder, mpsc::UnboundedReceiver<Args>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let builder = builder.on(event, move |args, _| {
        let _ = sender.send(args);
    });
    (builder, receiver)
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    within(receiver.recv()).await.expect("channel closed")
}

async fn whoami(client: &Client) -> Value {
    let reply = within(client.emit_with_ack("whoami", ())).await.unwrap();
    reply.value(0).cloned().unwrap()
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn events_and_acks_both_ways() {
    let server = NodeServer::start().await;
    let (questions_seen, mut questions) = mpsc::unbounded_channel();
    let client = builder(server.url())
        .on("question", move |args, ack| {
            questions_seen.send(args.get::<String>(0).unwrap()).unwrap();
            ack.expect("the server asks for an ack")
                .send(json!([42]))
                .unwrap();
        })
        .connect()
        .await
        .unwrap();
    assert!(client.id().is_some());

    let sum = client.emit_with_ack("sum", json!([2, 3])).await.unwrap();
    assert_eq!(sum.get::<i64>(0).unwrap(), 5);
    let echoed = client
        .emit_with_ack("echo", json!(["text", { "nested": [1, null] }, 1.5]))
        .await
        .unwrap();
    assert_eq!(
        echoed.values(),
        [json!("text"), json!({ "nested": [1, null] }), json!(1.5)]
    );

    // The server asks the client (emitWithAck) and relays the client's answer.
    let relayed = client
        .emit_with_ack("ask", json!(["6 * 7?"]))
        .await
        .unwrap();
    assert_eq!(next(&mut questions).await, "6 * 7?");
    assert_eq!(relayed.value(0), Some(&json!({ "answer": 42 })));
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn binary_both_ways() {
    let server = NodeServer::start().await;
    let (builder, mut binaries) = collect(builder(server.url()), "binary");
    let client = builder.connect().await.unwrap();

    // Client to server: the server sees a Buffer.
    let seen = client
        .emit_with_ack("inspect", Args::new().with_binary(vec![9, 8, 7]))
        .await
        .unwrap();
    assert_eq!(
        seen.value(0),
        Some(&json!({ "isBuffer": true, "bytes": [9, 8, 7] }))
    );

    // A round trip with nested binary.
    let mut args = Args::new();
    let blob = args.attach(vec![0u8; 5000]);
    args.push(json!({ "file": { "data": blob, "name": "zeros" } }));
    let args = args.with_binary(vec![255, 0, 1]);
    let echoed = client.emit_with_ack("echo", args).await.unwrap();
    let file = &echoed.value(0).unwrap()["file"];
    assert_eq!(file["name"], "zeros");
    assert_eq!(echoed.binary(&file["data"]).unwrap().as_ref(), [0u8; 5000]);
    assert_eq!(echoed.binary_at(1).unwrap().as_ref(), [255, 0, 1]);

    // Server to client: a Buffer and a nested one.
    client.emit("send-binary", ()).unwrap();
    let args = next(&mut binaries).await;
    assert_eq!(args.binary_at(0).unwrap().as_ref(), [1, 2, 3]);
    let nested = args.value(1).unwrap();
    assert_eq!(nested["name"], "nested");
    assert_eq!(args.binary(&nested["data"]).unwrap().as_ref(), b"hello");
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn namespaces_with_auth_middleware() {
    let server = NodeServer::start().await;
    let client = builder(server.url()).connect().await.unwrap();

    // Refused by the middleware: a typed error with the server's message and data.
    match client.socket("/admin").connect().await {
        Err(ClientError::ConnectRefused {
            namespace,
            message,
            data,
        }) => {
            assert_eq!(namespace, "/admin");
            assert_eq!(message, "not authorized");
            assert_eq!(data, Some(json!({ "code": 401 })));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let refused = builder(format!("{}/admin", server.url()))
        .auth(json!({ "token": "wrong" }))
        .connect()
        .await;
    assert!(matches!(refused, Err(ClientError::ConnectRefused { .. })));

    // Accepted: both namespaces share one Engine.IO connection.
    let admin = client
        .socket("/admin")
        .auth(json!({ "token": "secret", "user": "ann" }))
        .connect()
        .await
        .unwrap();
    let main = whoami(&client).await;
    let admin_info = whoami(&admin).await;
    assert_eq!(main["nsp"], "/");
    assert_eq!(admin_info["nsp"], "/admin");
    assert_eq!(admin_info["user"], "ann");
    assert_eq!(main["conn"], admin_info["conn"], "one connection");
    assert_eq!(admin_info["id"].as_str(), admin.id().as_deref());
    assert_ne!(main["id"], admin_info["id"]);
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn rooms_and_broadcast() {
    let server = NodeServer::start().await;
    let mut clients = Vec::new();
    let mut room_messages = Vec::new();
    let mut announcements = Vec::new();
    for _ in 0..3 {
        let (builder, rooms) = collect(builder(server.url()), "room-message");
        let (builder, announced) = collect(builder, "announcement");
        clients.push(builder.connect().await.unwrap());
        room_messages.push(rooms);
        announcements.push(announced);
    }
    // The first two join room r1; the third does not.
    for client in &clients[..2] {
        let joined = client.emit_with_ack("join", json!(["r1"])).await.unwrap();
        assert_eq!(joined.get::<String>(0).unwrap(), "r1");
    }
    clients[0]
        .emit("to-room", json!(["r1", "hi room"]))
        .unwrap();
    clients[0].emit("broadcast", json!(["hi all"])).unwrap();

    assert_eq!(
        next(&mut room_messages[1]).await.get::<String>(0).unwrap(),
        "hi room"
    );
    for announced in &mut announcements {
        assert_eq!(next(announced).await.get::<String>(0).unwrap(), "hi all");
    }
    // The server sends in order, so a room message to the sender or the third client would
    // have arrived before the announcement.
    assert!(
        room_messages[0].try_recv().is_err(),
        "the sender is excluded"
    );
    assert!(room_messages[2].try_recv().is_err(), "not in the room");
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn disconnects_from_either_side() {
    let server = NodeServer::start().await;
    let (observer, mut left) = collect(builder(server.url()), "left");
    let _observer = observer.connect().await.unwrap();

    // The server disconnects the socket: no reconnection.
    let (reasons_seen, mut reasons) = mpsc::unbounded_channel();
    let (connects_seen, mut connects) = mpsc::unbounded_channel();
    let kicked = builder(server.url())
        .on_disconnect(move |reason| reasons_seen.send(reason.clone()).unwrap())
        .on_connect(move || connects_seen.send(()).unwrap())
        .connect()
        .await
        .unwrap();
    next(&mut connects).await;
    let kicked_id = kicked.id().unwrap();
    kicked.emit("kick-me", ()).unwrap();
    assert_eq!(
        next(&mut reasons).await,
        DisconnectReason::IoServerDisconnect
    );
    let gone = next(&mut left).await;
    assert_eq!(
        gone.value(0),
        Some(&json!({ "id": kicked_id, "reason": "server namespace disconnect" }))
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        connects.try_recv().is_err(),
        "reconnected after a server disconnect"
    );
    assert!(!kicked.is_connected());
    assert!(matches!(kicked.emit("x", ()), Err(ClientError::Closed)));

    // The client disconnects.
    let leaving = builder(server.url()).connect().await.unwrap();
    let leaving_id = leaving.id().unwrap();
    leaving.disconnect();
    let gone = next(&mut left).await;
    assert_eq!(
        gone.value(0),
        Some(&json!({ "id": leaving_id, "reason": "client namespace disconnect" }))
    );
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn heartbeat_timeout_then_reconnect() {
    let server = NodeServer::start().await;
    let (observer, mut left) = collect(builder(server.fast_url()), "left");
    let _observer = observer.connect().await.unwrap();

    let (seen, mut lifecycle) = mpsc::unbounded_channel();
    let (on_connect, on_reconnect) = (seen.clone(), seen.clone());
    let victim = builder(server.fast_url())
        .on_connect(move || on_connect.send("connect".to_owned()).unwrap())
        .on_disconnect(move |reason| seen.send(format!("disconnect: {reason}")).unwrap())
        .on_reconnect(move |attempt| on_reconnect.send(format!("reconnect {attempt}")).unwrap())
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut lifecycle).await, "connect");
    let first_id = victim.id().unwrap();

    // Unanswered pings: the server times the client out (300 ms interval + 200 ms timeout).
    victim.pause_heartbeat(true);
    let gone = next(&mut left).await;
    assert_eq!(
        gone.value(0),
        Some(&json!({ "id": first_id, "reason": "ping timeout" }))
    );
    assert_eq!(next(&mut lifecycle).await, "disconnect: transport close");

    // Answering again, the client comes back by itself, with a new id.
    victim.pause_heartbeat(false);
    assert_eq!(next(&mut lifecycle).await, "reconnect 1");
    assert_eq!(next(&mut lifecycle).await, "connect");
    let info = whoami(&victim).await;
    assert_ne!(info["id"].as_str(), Some(first_id.as_str()));
    assert_eq!(info["id"].as_str(), victim.id().as_deref());
    // It stays connected across several heartbeats.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(victim.is_connected());
}

#[tokio::test]
#[ignore = "needs node and npm: run tests/socketio-client/run"]
async fn long_polling_fallback_against_a_polling_only_server() {
    let server = NodeServer::start().await;
    let refused = builder(server.polling_url())
        .reconnection(false)
        .connect()
        .await;
    assert!(refused.is_err(), "the WebSocket should be refused");
    let (sender, mut received) = mpsc::unbounded_channel();
    let client = within(
        builder(server.polling_url())
            .polling_fallback(true)
            .on("binary", move |args, _| {
                let _ = sender.send(args);
            })
            .connect(),
    )
    .await
    .unwrap();
    let sum = within(client.emit_with_ack("sum", json!([2, 3])))
        .await
        .unwrap();
    assert_eq!(sum.values(), &[json!(5)]);
    let echoed = within(client.emit_with_ack("echo", json!([{"z": 1, "a": [true]}, "x"])))
        .await
        .unwrap();
    assert_eq!(echoed.values(), &[json!({"z": 1, "a": [true]}), json!("x")]);
    // Binary both ways over base64 records.
    let inspected = within(client.emit_with_ack("inspect", Args::new().with_binary(vec![7, 8])))
        .await
        .unwrap();
    assert_eq!(inspected.values()[0]["bytes"], json!([7, 8]));
    client.emit("send-binary", ()).unwrap();
    let binary = within(received.recv()).await.unwrap();
    assert_eq!(binary.binary_at(0).map(|b| b.to_vec()), Some(vec![1, 2, 3]));
    // Heartbeats (every 300 ms) are answered over polling: still connected later.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(client.is_connected());
    let who = within(client.emit_with_ack("whoami", ())).await.unwrap();
    assert_eq!(who.values()[0]["nsp"], "/");
    client.disconnect();
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn retries_until_the_node_server_answers() {
    let server = NodeServer::start().await;
    let client = builder(server.url())
        .retries(3)
        .ack_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    // The handler ignores the first two attempts: the third is answered.
    let reply = within(client.emit_with_ack("flaky", json!(["twice", 2])))
        .await
        .unwrap();
    assert_eq!(reply.values(), [json!(3)]);
    let attempts = within(client.emit_with_ack("attempts", json!(["twice"])))
        .await
        .unwrap();
    assert_eq!(attempts.values(), [json!(3)]);
    // Never answered: two attempts, then the typed error; the queue goes on after it.
    let timeout = Duration::from_millis(100);
    let error = within(client.emit_with_ack_retries("flaky", json!(["never", 99]), timeout, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::RetriesExhausted { attempts: 2, .. }),
        "{error:?}"
    );
    let attempts = within(client.emit_with_ack("attempts", json!(["never"])))
        .await
        .unwrap();
    assert_eq!(attempts.values(), [json!(2)]);
}

#[tokio::test]
#[ignore = "needs node and socket.io: run tests/socketio-client/run"]
async fn polling_first_upgrades_like_socket_io_client() {
    const BEATS: u64 = 300;
    let server = NodeServer::start().await;
    let (ticks, mut ticked) = mpsc::unbounded_channel();
    let (beats, mut beaten) = mpsc::unbounded_channel();
    let (upgrade, mut upgraded) = mpsc::unbounded_channel();
    let client = builder(server.upgrade_url())
        .polling_first(true)
        .on("tick", move |args, _| {
            ticks.send(args.get::<u64>(0).unwrap()).unwrap()
        })
        .on("beat", move |args, _| {
            beats.send(args.get::<u64>(0).unwrap()).unwrap()
        })
        .on_upgrade(move || upgrade.send(()).unwrap())
        .connect()
        .await
        .unwrap();
    let id = client.id().unwrap();
    // Packets both ways while the upgrade runs: a stream from the server, echoes of ours.
    client.emit("stream", json!([BEATS])).unwrap();
    let mut upgraded_at = None;
    let mut sent: u64 = 0;
    while upgraded_at.is_none_or(|at| sent < at + 64) {
        assert!(sent < 20_000, "no upgrade");
        client.emit("tock", json!([sent])).unwrap();
        sent += 1;
        if sent.is_multiple_of(8) {
            within(client.emit_with_ack("sync", ())).await.unwrap();
        }
        if upgraded_at.is_none() && upgraded.try_recv().is_ok() {
            upgraded_at = Some(sent);
        }
    }
    for expected in 0..sent {
        assert_eq!(
            next(&mut ticked).await,
            expected,
            "ticks in order, none lost"
        );
    }
    for expected in 0..BEATS {
        assert_eq!(
            next(&mut beaten).await,
            expected,
            "beats in order, none lost"
        );
    }
    assert_eq!(client.transport(), Some(Transport::WebSocket));
    let transport = within(client.emit_with_ack("transport", ())).await.unwrap();
    assert_eq!(transport.values(), [json!("websocket")]);
    assert_eq!(client.id().unwrap(), id, "the same session");
}
