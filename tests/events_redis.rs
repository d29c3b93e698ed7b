//! Several wsio nodes on one Redis through `RedisAdapter`: broadcasts, operators, requests and
//! faults. Each test starts its own `redis-server` on a free loopback port and stops it by PID;
//! without `redis-server` installed the tests say so and pass without running, unless
//! `WSIO_REQUIRE_REDIS` is set (CI sets it), which makes them fail.
#![cfg(feature = "redis")]

mod events_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use wsio::events::client::{Client, DisconnectReason};
use wsio::events::{
    Args, BroadcastAckError, Config, RedisAdapter, RedisAdapterConfig, Server, Socket,
};

use events_support::WAIT;

/// The event names the test clients forward to their channel.
const EVENTS: &[&str] = &[
    "hello", "end", "x", "loc", "bin", "from-a1", "in-blue", "direct", "q", "during", "after",
    "fromnode",
];

/// A `redis-server` of this test's own, on a free loopback port; killed when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Starts one, or `None` (after saying why) when `redis-server` is not installed; with
    /// `WSIO_REQUIRE_REDIS` set (as CI sets it), a missing `redis-server` fails the test.
    fn start() -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if found.is_err() {
            assert!(
                std::env::var_os("WSIO_REQUIRE_REDIS").is_none(),
                "WSIO_REQUIRE_REDIS is set but redis-server is not installed"
            );
            println!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { child: None, port };
        redis.launch();
        Some(redis)
    }

    /// Runs `redis-server` on `self.port` and waits for its "ready" line.
    fn launch(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let (ready, wait) = std::sync::mpsc::channel();
        // Reads the log until it ends, so redis-server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        wait.recv_timeout(WAIT).expect("redis-server ready");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (by its PID) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts a fresh one on the same port.
    fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// A plain Redis connection, to play a foreign node.
    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One wsio node: a server with a Redis adapter, on a loopback port.
struct Node {
    server: Server,
    adapter: RedisAdapter,
    addr: SocketAddr,
    sockets: mpsc::UnboundedReceiver<Socket>,
    /// The task serving `addr`; it holds a clone of `server`.
    serving: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Stops serving and drops the server and its adapter, as when a node goes away; waits
    /// until the serving task (and its clone of the server) is gone.
    async fn shut_down(self) {
        self.serving.abort();
        let _ = tokio::time::timeout(WAIT, self.serving).await.unwrap();
    }
}

async fn node(redis: &Redis) -> Node {
    let mut settings = RedisAdapterConfig::default();
    settings.requests_timeout = Duration::from_secs(2);
    settings.max_reconnect_delay = Duration::from_millis(200);
    settings.command_timeout = Duration::from_millis(500);
    let adapter = RedisAdapter::connect_with(&redis.url(), settings)
        .await
        .unwrap();
    let mut config: Config = events_support::config();
    config.adapter = adapter.clone().into();
    let server = Server::new(config);
    let (sender, sockets) = mpsc::unbounded_channel();
    server.of("/").on_connection(move |socket| {
        let rooms = socket.auth()["rooms"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for room in rooms.iter().filter_map(Value::as_str) {
            socket.join(room);
        }
        let _ = sender.send(socket);
    });
    tokio::time::timeout(WAIT, adapter.ready()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            let _ = server.serve(listener).await;
        }
    });
    Node {
        server,
        adapter,
        addr,
        sockets,
        serving,
    }
}

/// A wsio events client: the events it gets arrive on `events`.
struct Peer {
    /// Kept open for the test's length.
    _client: Client,
    events: mpsc::UnboundedReceiver<(String, Args)>,
    disconnects: mpsc::UnboundedReceiver<DisconnectReason>,
}

impl Peer {
    async fn next(&mut self) -> (String, Args) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .unwrap()
    }

    async fn next_name(&mut self) -> String {
        self.next().await.0
    }
}

/// Connects a client to `node` in `rooms`; it answers acknowledgements with `answer` (or
/// never, with `None`). Returns it with its server-side socket.
async fn peer(node: &mut Node, rooms: &[&str], answer: Option<&str>) -> (Peer, Socket) {
    let (sender, events) = mpsc::unbounded_channel();
    let (lost, disconnects) = mpsc::unbounded_channel();
    let mut builder = Client::builder(format!("http://{}", node.addr))
        .auth(json!({ "rooms": rooms }))
        .reconnection(false)
        .on_disconnect(move |reason| {
            let _ = lost.send(reason.clone());
        });
    for &name in EVENTS {
        let sender = sender.clone();
        let answer = answer.map(str::to_owned);
        builder = builder.on(name, move |args, ack| {
            let _ = sender.send((name.to_owned(), args));
            if let (Some(ack), Some(answer)) = (ack, &answer) {
                let _ = ack.send(json!([answer]));
            }
        });
    }
    let client = tokio::time::timeout(WAIT, builder.connect())
        .await
        .unwrap()
        .unwrap();
    let socket = tokio::time::timeout(WAIT, node.sockets.recv())
        .await
        .unwrap()
        .unwrap();
    let peer = Peer {
        _client: client,
        events,
        disconnects,
    };
    (peer, socket)
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[tokio::test]
async fn redis_room_broadcast_reaches_every_node_once_with_except_local_and_binary() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, mut b) = (node(&redis).await, node(&redis).await);
    let (mut a1, a1_socket) = peer(&mut a, &["r"], None).await;
    let (mut a2, _) = peer(&mut a, &[], None).await;
    let (mut b1, _) = peer(&mut b, &["r"], None).await;
    let (mut b2, _) = peer(&mut b, &["r", "quiet"], None).await;
    let nsp = a.server.of("/");

    // A room broadcast: every member on both nodes, once; then an emit to all marks the end.
    assert_eq!(nsp.to("r").emit("hello", json!([1])), Ok(1));
    nsp.emit("end", json!([])).unwrap();
    for peer in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(peer.next().await, ("hello".into(), json!([1]).into()));
        assert_eq!(peer.next_name().await, "end");
    }
    assert_eq!(a2.next_name().await, "end");

    // except, across nodes.
    nsp.to("r").except("quiet").emit("x", json!([])).unwrap();
    nsp.emit("end", json!([])).unwrap();
    for peer in [&mut a1, &mut b1] {
        assert_eq!(peer.next_name().await, "x");
        assert_eq!(peer.next_name().await, "end");
    }
    assert_eq!(b2.next_name().await, "end");
    assert_eq!(a2.next_name().await, "end");

    // local: this node only.
    assert_eq!(nsp.local().emit("loc", json!([])), Ok(2));
    nsp.emit("end", json!([])).unwrap();
    for peer in [&mut a1, &mut a2] {
        assert_eq!(peer.next_name().await, "loc");
        assert_eq!(peer.next_name().await, "end");
    }
    for peer in [&mut b1, &mut b2] {
        assert_eq!(peer.next_name().await, "end");
    }

    // Binary attachments cross as msgpack bin, from B to A.
    let payload = vec![0u8, 1, 2, 255];
    let args = Args::new().with("file").with_binary(payload.clone());
    b.server.of("/").to("r").emit("bin", args).unwrap();
    let (event, args) = a1.next().await;
    assert_eq!(event, "bin");
    assert_eq!(args.binary_at(1).map(|data| data.to_vec()), Some(payload));
    for peer in [&mut b1, &mut b2] {
        assert_eq!(peer.next_name().await, "bin");
    }

    // A socket's broadcast leaves out the sender, on the other node too.
    a1_socket.to("r").emit("from-a1", json!([])).unwrap();
    nsp.emit("end", json!([])).unwrap();
    for peer in [&mut b1, &mut b2] {
        assert_eq!(peer.next_name().await, "from-a1");
    }
    assert_eq!(a1.next_name().await, "end");
    assert_eq!(a.adapter.stats().dropped, 0);
}

#[tokio::test]
async fn redis_fetch_sockets_join_leave_and_disconnect_across_nodes() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, mut b) = (node(&redis).await, node(&redis).await);
    let (_a1, a1_socket) = peer(&mut a, &["r"], None).await;
    let (mut b1, b1_socket) = peer(&mut b, &["r"], None).await;
    let (mut b2, b2_socket) = peer(&mut b, &[], None).await;
    let nsp = a.server.of("/");

    let fetched = nsp.fetch_sockets().await;
    let ids = sorted(
        fetched
            .iter()
            .map(|s| s.id().to_owned())
            .collect::<Vec<_>>(),
    );
    let expected = sorted(vec![
        a1_socket.id().to_owned(),
        b1_socket.id().to_owned(),
        b2_socket.id().to_owned(),
    ]);
    assert_eq!(ids, expected);
    assert!(ids.iter().all(|id| id.len() == 20), "{ids:?}");
    let remote_b1 = fetched.iter().find(|s| s.id() == b1_socket.id()).unwrap();
    assert!(remote_b1.is_remote());
    assert!(remote_b1.rooms().contains(&"r".to_owned()));
    assert_eq!(remote_b1.handshake()["auth"], json!({ "rooms": ["r"] }));
    let in_r = nsp.in_("r").fetch_sockets().await;
    assert_eq!(
        sorted(in_r.iter().map(|s| s.id().to_owned()).collect()),
        sorted(vec![a1_socket.id().to_owned(), b1_socket.id().to_owned()])
    );

    // A fetched remote socket can be sent to directly.
    remote_b1.emit("direct", json!(["hi"])).unwrap();
    assert_eq!(b1.next().await, ("direct".into(), json!(["hi"]).into()));

    // sockets_join on the other node: b2 (outside r) joins blue, then a broadcast to blue
    // (published after the join) reaches it.
    nsp.except("r").sockets_join("blue");
    nsp.to("blue").emit("in-blue", json!([])).unwrap();
    assert_eq!(b2.next_name().await, "in-blue");
    assert!(b2_socket.rooms().contains(&"blue".to_owned()));
    assert!(!b1_socket.rooms().contains(&"blue".to_owned()));

    nsp.in_("blue").sockets_leave("blue");
    nsp.to("blue").emit("x", json!([])).unwrap();
    nsp.emit("end", json!([])).unwrap();
    assert_eq!(b2.next_name().await, "end");
    assert!(!b2_socket.rooms().contains(&"blue".to_owned()));

    // disconnect_sockets reaches the other node's members of r, not the others.
    nsp.in_("r").disconnect_sockets(false);
    let reason = tokio::time::timeout(WAIT, b1.disconnects.recv())
        .await
        .unwrap();
    assert_eq!(reason, Some(DisconnectReason::IoServerDisconnect));
    assert!(!a1_socket.connected());
    nsp.emit("end", json!([])).unwrap();
    assert_eq!(b2.next_name().await, "end");
    assert!(b2_socket.connected());
    assert_eq!(b.server.of("/").fetch_sockets().await.len(), 1);
}

#[tokio::test]
async fn redis_server_side_emit_with_acks_and_server_count() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    assert_eq!(a.server.of("/").server_count().await, 3);

    let (seen, mut heard) = mpsc::unbounded_channel();
    for (node, name) in [(&b, "b"), (&c, "c")] {
        let seen = seen.clone();
        node.server
            .of("/")
            .on_server_event("sync", move |args, ack| {
                let seen = seen.clone();
                async move {
                    let _ = seen.send((name, args));
                    if let Some(ack) = ack {
                        ack.send(json!(name));
                    }
                }
            });
    }
    let nsp = a.server.of("/");
    assert_eq!(nsp.server_side_emit("sync", json!([1])), Ok(1));
    let mut got = Vec::new();
    for _ in 0..2 {
        let (name, args) = tokio::time::timeout(WAIT, heard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(args, json!([1]).into());
        got.push(name);
    }
    assert_eq!(sorted(got), ["b", "c"]);

    let answers = nsp
        .server_side_emit_with_ack("sync", json!([2]), Duration::from_secs(3))
        .await
        .unwrap();
    let values = sorted(
        answers
            .iter()
            .map(|args| args.values()[0].clone().to_string())
            .collect(),
    );
    assert_eq!(values, ["\"b\"", "\"c\""]);

    // A node that never answers: the request ends at its timeout with the answers that came.
    c.server.of("/").on_server_event("sync", |_, _| async {});
    let started = tokio::time::Instant::now();
    let answer = nsp
        .server_side_emit_with_ack("sync", json!([3]), Duration::from_millis(500))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    match answer {
        Err(BroadcastAckError::Missing { replies, missing }) => {
            assert_eq!(missing, 1);
            assert_eq!(replies, vec![Args::from(json!(["b"]))]);
        }
        other => panic!("{other:?}"),
    }
    drop(c);
}

#[tokio::test]
async fn redis_broadcast_acks_across_nodes_with_timeout() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, mut b) = (node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&mut a, &["r"], Some("a1")).await;
    let (mut b1, _) = peer(&mut b, &["r"], Some("b1")).await;
    let nsp = a.server.of("/");

    let replies = nsp
        .to("r")
        .timeout(Duration::from_secs(3))
        .emit_with_ack("q", json!(["ready?"]))
        .await
        .unwrap();
    let values = sorted(
        replies
            .iter()
            .map(|args| args.values()[0].to_string())
            .collect(),
    );
    assert_eq!(values, ["\"a1\"", "\"b1\""]);
    assert_eq!(a1.next_name().await, "q");
    assert_eq!(b1.next_name().await, "q");

    // A silent recipient on the other node: the answer comes at the timeout, one missing.
    let (mut b2, _) = peer(&mut b, &["r"], None).await;
    let answer = nsp
        .to("r")
        .timeout(Duration::from_millis(500))
        .emit_with_ack("q", json!([]))
        .await;
    match answer {
        Err(BroadcastAckError::Missing { replies, missing }) => {
            assert_eq!((replies.len(), missing), (2, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b2.next_name().await, "q");
}

#[tokio::test]
async fn redis_requests_waiting_on_a_dead_node_end_at_their_timeout_with_what_came() {
    let Some(redis) = Redis::start() else { return };
    let (a, mut b) = (node(&redis).await, node(&redis).await);
    let (mut b1, b1_socket) = peer(&mut b, &["r"], Some("b1")).await;
    // A node that subscribed, then hung: Redis counts it, it never answers.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut dead = client.get_async_pubsub().await.unwrap();
    dead.subscribe("socket.io-request#/#").await.unwrap();
    let nsp = a.server.of("/");
    assert_eq!(nsp.server_count().await, 3);

    // fetch_sockets waits for the adapter's request timeout (2 s here), then answers with B's.
    let started = tokio::time::Instant::now();
    let fetched = nsp.fetch_sockets().await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    let ids: Vec<&str> = fetched.iter().map(|socket| socket.id()).collect();
    assert_eq!(ids, [b1_socket.id()]);

    // Broadcast acks: B's client answers, the dead node never reports and counts as missing.
    let answer = nsp
        .timeout(Duration::from_millis(500))
        .emit_with_ack("q", json!([]))
        .await;
    match answer {
        Err(BroadcastAckError::Missing { replies, missing }) => {
            assert_eq!(replies, vec![Args::from(json!(["b1"]))]);
            assert_eq!(missing, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b1.next_name().await, "q");
    drop(dead);
}

#[tokio::test]
async fn redis_restart_drops_and_counts_then_broadcasts_resume() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (mut a, mut b) = (node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&mut a, &[], None).await;
    let (mut b1, _) = peer(&mut b, &[], None).await;
    let nsp = a.server.of("/");
    let (gen_a, gen_b) = (a.adapter.generation(), b.adapter.generation());

    redis.stop();
    // Local delivery goes on; the copy for B is dropped and counted, not buffered.
    assert_eq!(nsp.emit("during", json!([])), Ok(1));
    assert_eq!(a1.next_name().await, "during");
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.adapter.stats().dropped == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the drop was counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    redis.restart();
    tokio::time::timeout(WAIT, a.adapter.ready_after(gen_a))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, b.adapter.ready_after(gen_b))
        .await
        .unwrap();
    assert!(a.adapter.stats().reconnects >= 1);
    // The publishing connection is back once Redis answers through it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while nsp.server_count().await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both nodes counted again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nsp.emit("after", json!([])).unwrap();
    assert_eq!(a1.next_name().await, "after");
    assert_eq!(
        b1.next_name().await,
        "after",
        "B never got the dropped message"
    );
}

#[tokio::test]
async fn redis_malformed_messages_are_skipped_and_node_format_is_understood() {
    use redis::AsyncCommands;

    let Some(redis) = Redis::start() else { return };
    let (mut a, mut b) = (node(&redis).await, node(&redis).await);
    let (mut b1, _) = peer(&mut b, &[], None).await;
    let mut raw = redis.connection().await;

    let garbage: [(&str, &[u8]); 4] = [
        ("socket.io#/#", b"\xc1 not msgpack"),
        ("socket.io#/#", b"\x93\xa1x\x01"),
        ("socket.io-request#/#", b"{not json"),
        ("socket.io-response#/#", b"\xdd\xff\xff\xff\xff"),
    ];
    for (channel, payload) in garbage {
        let _: i64 = raw.publish(channel, payload).await.unwrap();
    }
    // What Node's adapter publishes for `io.emit("fromnode", "x", <Buffer 07>)`.
    let node_message = rmpv::Value::Array(vec![
        rmpv::Value::from("nodeuid"),
        rmpv::Value::Map(vec![
            (rmpv::Value::from("type"), rmpv::Value::from(2)),
            (
                rmpv::Value::from("data"),
                rmpv::Value::Array(vec![
                    rmpv::Value::from("fromnode"),
                    rmpv::Value::from("x"),
                    rmpv::Value::Binary(vec![7]),
                ]),
            ),
            (rmpv::Value::from("nsp"), rmpv::Value::from("/")),
        ]),
        rmpv::Value::Map(vec![
            (rmpv::Value::from("rooms"), rmpv::Value::Array(vec![])),
            (rmpv::Value::from("except"), rmpv::Value::Array(vec![])),
            (rmpv::Value::from("flags"), rmpv::Value::Map(vec![])),
        ]),
    ]);
    let mut encoded = Vec::new();
    rmpv::encode::write_value(&mut encoded, &node_message).unwrap();
    let _: i64 = raw.publish("socket.io#/#", encoded).await.unwrap();

    let (event, args) = b1.next().await;
    assert_eq!(event, "fromnode");
    assert_eq!(args.values()[0], json!("x"));
    assert_eq!(args.binary_at(1).map(|data| data.to_vec()), Some(vec![7]));
    assert_eq!(b.adapter.stats().malformed, 4);

    // And B still takes A's broadcasts.
    a.server.of("/").emit("after", json!([])).unwrap();
    assert_eq!(b1.next_name().await, "after");
    drop(peer(&mut a, &[], None).await);
}

/// A mixed cluster: this wsio node and a Node socket.io node with @socket.io/redis-adapter on
/// one Redis; `tests/redis-interop/cluster.js` (run by `tests/redis-interop/run`, which
/// installs the npm packages) drives both with socket.io-client and checks every direction.
#[tokio::test]
#[ignore = "needs Node and the npm packages of tests/redis-interop: run tests/redis-interop/run"]
async fn redis_mixed_cluster_with_node() {
    let script = std::env::var("REDIS_INTEROP_SCRIPT").expect("REDIS_INTEROP_SCRIPT set");
    let node_binary = std::env::var("REDIS_INTEROP_NODE").unwrap_or_else(|_| "node".into());
    let redis = Redis::start().expect("redis-server installed");
    let wsio = node(&redis).await;
    let nsp = wsio.server.of("/");
    let everyone = nsp.clone();
    nsp.on_connection(move |socket| {
        let rooms = socket.auth()["rooms"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for room in rooms.iter().filter_map(Value::as_str) {
            socket.join(room);
        }
        let namespace = everyone.clone();
        socket.on("please-broadcast", move |_, _, _| {
            let namespace = namespace.clone();
            async move {
                let args = Args::new().with("hi").with_binary(vec![4, 5, 6]);
                namespace.to("r").emit("from-wsio", args).unwrap();
            }
        });
        let namespace = everyone.clone();
        socket.on("please-fetch", move |_, _, ack| {
            let namespace = namespace.clone();
            async move {
                let ids: Vec<String> = namespace
                    .to("r")
                    .fetch_sockets()
                    .await
                    .iter()
                    .map(|socket| socket.id().to_owned())
                    .collect();
                if let Some(ack) = ack {
                    let _ = ack.send(json!([ids]));
                }
            }
        });
        let namespace = everyone.clone();
        socket.on("please-ask", move |_, _, ack| {
            let namespace = namespace.clone();
            async move {
                let replies = namespace
                    .server_side_emit_with_ack("ask", json!(["who?"]), Duration::from_secs(3))
                    .await
                    .unwrap_or_default();
                let values: Vec<Value> = replies
                    .iter()
                    .map(|args| args.values()[0].clone())
                    .collect();
                if let Some(ack) = ack {
                    let _ = ack.send(json!([values]));
                }
            }
        });
    });
    nsp.on_server_event("ping-wsio", |args, ack| async move {
        let number = args.values().first().cloned().unwrap_or(Value::Null);
        if let Some(ack) = ack {
            ack.send(json!(format!("pong-wsio:{number}")));
        }
    });

    let mut cluster = tokio::process::Command::new(node_binary)
        .arg(&script)
        .env("REDIS_URL", redis.url())
        .env("WSIO_URL", format!("http://{}", wsio.addr))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let _stdin = cluster.stdin.take();
    let output = tokio::time::timeout(Duration::from_secs(60), cluster.wait_with_output())
        .await
        .expect("cluster.js finished in time")
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(output.status.success(), "cluster.js failed:\n{report}");
    assert!(report.contains("9 passed, 0 failed"), "{report}");
}

#[tokio::test]
async fn redis_namespaces_have_channels_of_their_own() {
    let Some(redis) = Redis::start() else { return };
    let (a, mut b) = (node(&redis).await, node(&redis).await);
    let (mut root, _) = peer(&mut b, &[], None).await;
    // A namespace made after start-up is subscribed too.
    let (chat_a, _chat_b) = (a.server.of("/chat"), b.server.of("/chat"));
    tokio::time::timeout(WAIT, a.adapter.ready()).await.unwrap();
    tokio::time::timeout(WAIT, b.adapter.ready()).await.unwrap();
    let (sender, mut events) = mpsc::unbounded_channel();
    let chat = Client::builder(format!("http://{}", b.addr))
        .namespace("/chat")
        .reconnection(false)
        .on("hello", move |args, _| {
            let _ = sender.send(args);
        });
    let _chat = tokio::time::timeout(WAIT, chat.connect())
        .await
        .unwrap()
        .unwrap();

    chat_a.emit("hello", json!(["chat"])).unwrap();
    let args = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
    assert_eq!(args, Some(json!(["chat"]).into()));
    a.server.of("/").emit("end", json!([])).unwrap();
    assert_eq!(
        root.next_name().await,
        "end",
        "/ never saw /chat's broadcast"
    );
    assert_eq!(a.server.of("/chat").server_count().await, 2);
}

/// Three nodes on one Redis and a sender on each in turn: a room broadcast reaches each
/// member once, on every node, and no one outside the room; `except` holds across nodes;
/// `local` stays on the emitting node.
#[tokio::test]
async fn redis_three_nodes_room_broadcast_except_and_local() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, mut b, mut c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&mut a, &["r"], None).await;
    let (mut a2, _) = peer(&mut a, &[], None).await;
    let (mut b1, _) = peer(&mut b, &["r"], None).await;
    let (mut b2, _) = peer(&mut b, &["r", "quiet"], None).await;
    let (mut c1, _) = peer(&mut c, &["r"], None).await;
    let (mut c2, _) = peer(&mut c, &[], None).await;
    let nsp = [a.server.of("/"), b.server.of("/"), c.server.of("/")];

    // From each node in turn: the room's members on all three nodes get it once (the next
    // event is the emit to all that follows it), the others only that end mark.
    for (sender, members_here) in nsp.iter().zip([1, 2, 1]) {
        assert_eq!(sender.to("r").emit("hello", json!([1])), Ok(members_here));
        sender.emit("end", json!([])).unwrap();
        for peer in [&mut a1, &mut b1, &mut b2, &mut c1] {
            assert_eq!(peer.next().await, ("hello".into(), json!([1]).into()));
            assert_eq!(peer.next_name().await, "end");
        }
        for peer in [&mut a2, &mut c2] {
            assert_eq!(peer.next_name().await, "end");
        }
    }

    // except, from the third node: the quiet member of the second node is left out.
    nsp[2].to("r").except("quiet").emit("x", json!([])).unwrap();
    nsp[2].emit("end", json!([])).unwrap();
    for peer in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(peer.next_name().await, "x");
        assert_eq!(peer.next_name().await, "end");
    }
    for peer in [&mut a2, &mut b2, &mut c2] {
        assert_eq!(peer.next_name().await, "end");
    }

    // local, from the second node: its own sockets only; the end mark, from the first node,
    // shows the others got nothing before it.
    assert_eq!(nsp[1].local().emit("loc", json!([])), Ok(2));
    for peer in [&mut b1, &mut b2] {
        assert_eq!(peer.next_name().await, "loc");
    }
    nsp[0].emit("end", json!([])).unwrap();
    for peer in [&mut a1, &mut a2, &mut b1, &mut b2, &mut c1, &mut c2] {
        assert_eq!(peer.next_name().await, "end");
    }
    for node in [&a, &b, &c] {
        assert_eq!(node.adapter.stats().dropped, 0);
        assert_eq!(node.adapter.stats().malformed, 0);
    }
}

/// Three nodes on one Redis: `server_count`, `fetch_sockets`, `sockets_join` on a socket of
/// the third node from the first, and `server_side_emit` answered by both other nodes.
#[tokio::test]
async fn redis_three_nodes_count_fetch_join_and_server_side_emit() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, mut b, mut c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    for node in [&a, &b, &c] {
        assert_eq!(node.server.of("/").server_count().await, 3);
    }
    let (_a1, a1_socket) = peer(&mut a, &["r"], None).await;
    let (mut b1, b1_socket) = peer(&mut b, &[], None).await;
    let (mut c1, c1_socket) = peer(&mut c, &[], None).await;
    let (mut c2, c2_socket) = peer(&mut c, &["r"], None).await;
    let nsp = a.server.of("/");

    // fetch_sockets sees every node's sockets; remote ones are marked so.
    let fetched = nsp.fetch_sockets().await;
    let ids = sorted(fetched.iter().map(|s| s.id().to_owned()).collect());
    let all = [&a1_socket, &b1_socket, &c1_socket, &c2_socket];
    assert_eq!(ids, sorted(all.map(|s| s.id().to_owned()).to_vec()));
    for socket in &fetched {
        assert_eq!(socket.is_remote(), socket.id() != a1_socket.id());
    }
    let in_r = nsp.in_("r").fetch_sockets().await;
    assert_eq!(
        sorted(in_r.iter().map(|s| s.id().to_owned()).collect()),
        sorted(vec![a1_socket.id().to_owned(), c2_socket.id().to_owned()])
    );

    // sockets_join from the first node on one socket of the third (its own room): only it
    // joins, and a broadcast to the room, published after, reaches it alone.
    nsp.in_(c1_socket.id()).sockets_join("blue");
    nsp.to("blue").emit("in-blue", json!([])).unwrap();
    nsp.emit("end", json!([])).unwrap();
    assert_eq!(c1.next_name().await, "in-blue");
    assert_eq!(c1.next_name().await, "end");
    for peer in [&mut b1, &mut c2] {
        assert_eq!(peer.next_name().await, "end");
    }
    assert!(c1_socket.rooms().contains(&"blue".to_owned()));
    assert!(!c2_socket.rooms().contains(&"blue".to_owned()));
    let in_blue = b.server.of("/").in_("blue").fetch_sockets().await;
    let ids: Vec<&str> = in_blue.iter().map(|socket| socket.id()).collect();
    assert_eq!(ids, [c1_socket.id()]);

    // server_side_emit with acks from the third node: one answer from each other node.
    for (node, name) in [(&a, "a"), (&b, "b")] {
        node.server
            .of("/")
            .on_server_event("sync", move |args, ack| async move {
                if let Some(ack) = ack {
                    ack.send(json!([name, args.values()[0]]));
                }
            });
    }
    let answers = c
        .server
        .of("/")
        .server_side_emit_with_ack("sync", json!([7]), Duration::from_secs(3))
        .await
        .unwrap();
    let values = sorted(
        answers
            .iter()
            .map(|args| args.values()[0].to_string())
            .collect(),
    );
    assert_eq!(values, [r#"["a",7]"#, r#"["b",7]"#]);
}

/// When one of three nodes goes away, the others count two servers again.
#[tokio::test]
async fn redis_server_count_drops_when_a_third_node_goes_away() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let nsp = a.server.of("/");
    assert_eq!(nsp.server_count().await, 3);
    c.shut_down().await;
    // Redis forgets the node once its connections close: wait for that, within WAIT.
    let deadline = tokio::time::Instant::now() + WAIT;
    while nsp.server_count().await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node that went away is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.server.of("/").server_count().await, 2);
}
