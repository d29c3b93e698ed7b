//! The Socket.IO client through its public API, against a scripted server on loopback built
//! from the WebSocket adapter and the packet codec.
#![cfg(feature = "events")]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use wsio::Message;
use wsio::events::client::{Client, ClientBuilder, ClientError, DisconnectReason};
use wsio::events::{Args, DecodeLimits, Decoder, EnginePacket, OpenInfo, Packet};
use wsio::proto::handshake::{Accept, Request};
use wsio::tokio::WebSocketStream;

/// Bounds every wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

async fn within<T>(future: impl Future<Output = T>) -> T {
    timeout(LIMIT, future).await.expect("timed out")
}

/// A scripted Socket.IO server: accepts connections and lets the test play the server side.
struct FakeServer {
    listener: TcpListener,
}

/// One accepted connection, after the Engine.IO open packet was sent.
struct Peer {
    ws: WebSocketStream<TcpStream>,
    decoder: Decoder,
    /// The request target of the WebSocket upgrade.
    target: String,
    /// The headers of the upgrade, as `name: value` lines.
    headers: Vec<(String, String)>,
}

impl FakeServer {
    async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self { listener }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    /// Accepts the next connection and opens it with a long heartbeat.
    async fn accept(&self) -> Peer {
        self.accept_with_heartbeat(25_000, 20_000).await
    }

    async fn accept_with_heartbeat(&self, ping_interval: u64, ping_timeout: u64) -> Peer {
        let (stream, _) = within(self.listener.accept()).await.unwrap();
        let seen = Arc::new(Mutex::new((String::new(), Vec::new())));
        let record = Arc::clone(&seen);
        let ws = wsio::tokio::accept_with(
            stream,
            &wsio::Options::default(),
            async move |request: &Request| {
                let headers = request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                    .collect();
                *record.lock().unwrap() = (request.target().to_owned(), headers);
                Ok(Accept::new())
            },
        )
        .await
        .unwrap();
        let (target, headers) = seen.lock().unwrap().clone();
        let mut peer = Peer {
            ws,
            decoder: Decoder::default(),
            target,
            headers,
        };
        let open = EnginePacket::Open(OpenInfo {
            sid: "engine-sid".into(),
            upgrades: vec![],
            ping_interval,
            ping_timeout,
            max_payload: 1_000_000,
        });
        peer.ws.send(open.encode()).await.unwrap();
        peer
    }

    /// Asserts that no client connects within `wait`.
    async fn expect_no_connection(&self, wait: Duration) {
        let accepted = timeout(wait, self.listener.accept()).await;
        assert!(accepted.is_err(), "the client connected again");
    }
}

impl Peer {
    async fn send(&mut self, packet: Packet) {
        for message in packet.to_messages() {
            self.ws.write(message).await.unwrap();
        }
        self.ws.flush().await.unwrap();
    }

    /// The next WebSocket message, `None` once the client closed.
    async fn next_message(&mut self) -> Option<Message> {
        within(self.ws.read()).await.ok().flatten()
    }

    /// The next Socket.IO packet, skipping heartbeat answers.
    async fn recv(&mut self) -> Packet {
        loop {
            let message = self.next_message().await.expect("connection closed");
            let decoded = match EnginePacket::decode(&message).unwrap() {
                EnginePacket::Message(text) => self.decoder.receive_text(text),
                EnginePacket::Binary(data) => self.decoder.receive_binary(data),
                EnginePacket::Pong(_) => continue,
                other => panic!("unexpected engine.io packet {other:?}"),
            };
            if let Some(packet) = decoded.unwrap() {
                return packet;
            }
        }
    }

    /// Expects a CONNECT and returns its namespace and auth payload.
    async fn expect_connect(&mut self) -> (String, Option<Map<String, Value>>) {
        match self.recv().await {
            Packet::Connect { namespace, data } => (namespace, data),
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    /// Accepts the CONNECT of `namespace` with socket id `sid`.
    async fn accept_namespace(&mut self, namespace: &str, sid: &str) {
        let data = json!({ "sid": sid }).as_object().cloned();
        self.send(Packet::Connect {
            namespace: namespace.into(),
            data,
        })
        .await;
    }

    /// Expects a CONNECT of `/` and accepts it.
    async fn handshake(&mut self) {
        let (namespace, _) = self.expect_connect().await;
        assert_eq!(namespace, "/");
        self.accept_namespace("/", "sid-1").await;
    }

    /// Expects an event and returns its name, arguments and ack id.
    async fn expect_event(&mut self) -> (String, String, Args, Option<u64>) {
        match self.recv().await {
            Packet::Event {
                namespace,
                event,
                args,
                ack,
            } => (namespace, event, args, ack),
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

fn event(namespace: &str, name: &str, args: impl Into<Args>, ack: Option<u64>) -> Packet {
    Packet::Event {
        namespace: namespace.into(),
        event: name.into(),
        args: args.into(),
        ack,
    }
}

/// A builder whose reconnection is quick and deterministic.
fn quick(url: String) -> ClientBuilder {
    ClientBuilder::new(url)
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
        .randomization_factor(0.0)
        .connect_timeout(Duration::from_secs(3))
}

/// Collects what callbacks report, for the test to await.
fn channel<T>() -> (mpsc::UnboundedSender<T>, mpsc::UnboundedReceiver<T>) {
    mpsc::unbounded_channel()
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    within(receiver.recv())
        .await
        .expect("callback channel closed")
}

#[tokio::test]
async fn connects_with_auth_query_and_headers() {
    let server = FakeServer::bind().await;
    let url = server.url();
    let connect = tokio::spawn(async move {
        ClientBuilder::new(url)
            .auth(json!({ "token": "abc" }))
            .query("room", "a b")
            .header("X-Client", "wsio")
            .connect()
            .await
    });
    let mut peer = server.accept().await;
    assert!(peer.target.starts_with("/socket.io/?"), "{}", peer.target);
    assert!(peer.target.contains("room=a%20b"), "{}", peer.target);
    assert!(peer.target.contains("EIO=4"), "{}", peer.target);
    assert!(
        peer.target.contains("transport=websocket"),
        "{}",
        peer.target
    );
    assert!(
        peer.headers
            .contains(&("x-client".to_owned(), "wsio".to_owned())),
        "{:?}",
        peer.headers
    );
    let (namespace, auth) = peer.expect_connect().await;
    assert_eq!(namespace, "/");
    assert_eq!(Value::Object(auth.unwrap()), json!({ "token": "abc" }));
    peer.accept_namespace("/", "socket-42").await;
    let client = within(connect).await.unwrap().unwrap();
    assert_eq!(client.id().as_deref(), Some("socket-42"));
    assert!(client.is_connected());
    assert_eq!(client.namespace(), "/");
}

#[tokio::test]
async fn events_and_acks_both_ways() {
    let server = FakeServer::bind().await;
    let (seen, mut events) = channel();
    let builder = ClientBuilder::new(server.url()).on("greet", move |args, ack| {
        let name: String = args.get(0).unwrap();
        if let Some(ack) = ack {
            ack.send(json!([format!("hello {name}"), 7])).unwrap();
        }
        seen.send(name).unwrap();
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();

    // Client to server, without and with an ack.
    client.emit("note", json!(["plain", { "n": 1 }])).unwrap();
    let (namespace, name, args, ack) = peer.expect_event().await;
    assert_eq!(
        (namespace.as_str(), name.as_str(), ack),
        ("/", "note", None)
    );
    assert_eq!(args.values(), [json!("plain"), json!({ "n": 1 })]);

    let asking = client.clone();
    let reply = tokio::spawn(async move { asking.emit_with_ack("sum", json!([2, 3])).await });
    let (_, name, args, ack) = peer.expect_event().await;
    assert_eq!(name, "sum");
    let id = ack.expect("an ack id");
    let total = args.get::<i64>(0).unwrap() + args.get::<i64>(1).unwrap();
    peer.send(Packet::Ack {
        namespace: "/".into(),
        id,
        args: Args::from(json!([total])),
    })
    .await;
    let reply = within(reply).await.unwrap().unwrap();
    assert_eq!(reply.get::<i64>(0).unwrap(), 5);

    // Server to client: an event without ack, then one the client acknowledges.
    peer.send(event("/", "greet", json!(["ann"]), None)).await;
    assert_eq!(next(&mut events).await, "ann");
    peer.send(event("/", "greet", json!(["bob"]), Some(9)))
        .await;
    assert_eq!(next(&mut events).await, "bob");
    match peer.recv().await {
        Packet::Ack {
            namespace,
            id,
            args,
        } => {
            assert_eq!((namespace.as_str(), id), ("/", 9));
            assert_eq!(args.values(), [json!("hello bob"), json!(7)]);
        }
        other => panic!("expected the ack, got {other:?}"),
    }

    // Events nobody handles are ignored, and the connection carries on.
    peer.send(event("/", "unknown", json!([1]), Some(10))).await;
    client.emit("after", ()).unwrap();
    assert_eq!(peer.expect_event().await.1, "after");
}

#[tokio::test]
async fn events_before_the_connect_answer_are_handed_out_first() {
    // python-socketio sends what its connect handler emits before it answers the CONNECT.
    let server = FakeServer::bind().await;
    let (seen, mut log) = channel();
    let on_greet = seen.clone();
    let builder = ClientBuilder::new(server.url())
        .on("greet", move |args, ack| {
            let name: String = args.get(0).unwrap();
            let blob = args.binary_at(1).map(|data| data.to_vec());
            if let Some(ack) = ack {
                ack.send(json!([format!("hi {name}")])).unwrap();
            }
            on_greet.send(format!("greet {name} {blob:?}")).unwrap();
        })
        .on_connect(move || seen.send("connect".to_owned()).unwrap());
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    assert_eq!(peer.expect_connect().await.0, "/");
    let mut with_blob = Args::from(json!(["ann"]));
    let blob = with_blob.attach(bytes::Bytes::from_static(&[1, 2, 3]));
    with_blob.push(blob);
    peer.send(event("/", "greet", with_blob, None)).await;
    peer.send(event("/", "greet", json!(["bob"]), Some(4)))
        .await;
    peer.accept_namespace("/", "sid-1").await;
    let client = within(connect).await.unwrap().unwrap();

    assert_eq!(next(&mut log).await, "greet ann Some([1, 2, 3])");
    assert_eq!(next(&mut log).await, "greet bob None");
    assert_eq!(next(&mut log).await, "connect");
    match peer.recv().await {
        Packet::Ack { id, args, .. } => {
            assert_eq!(id, 4);
            assert_eq!(args.values(), [json!("hi bob")]);
        }
        other => panic!("expected the ack, got {other:?}"),
    }
    client.emit("after", ()).unwrap();
    assert_eq!(peer.expect_event().await.1, "after");
}

#[tokio::test]
async fn too_many_events_before_the_connect_answer_drop_the_connection() {
    let server = FakeServer::bind().await;
    let (seen, mut log) = channel();
    let builder = quick(server.url())
        .max_buffered(2)
        .on("greet", move |args, _| {
            seen.send(args.get::<i64>(0).unwrap()).unwrap();
        });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.expect_connect().await;
    for n in 0..3 {
        peer.send(event("/", "greet", json!([n]), None)).await;
    }
    assert_eq!(
        peer.next_message().await,
        None,
        "the client drops the connection"
    );

    // The next connection starts afresh: the events of the dropped one are not handed out.
    let mut peer = server.accept().await;
    peer.expect_connect().await;
    peer.send(event("/", "greet", json!([10]), None)).await;
    peer.accept_namespace("/", "sid-2").await;
    within(connect).await.unwrap().unwrap();
    assert_eq!(next(&mut log).await, 10);
}

#[tokio::test]
async fn events_before_the_connect_answer_are_bounded_in_bytes() {
    // Together they may be as large as one packet: 100 bytes of text and one attachment of
    // 100 here, so 200 bytes.
    let mut limits = DecodeLimits::default();
    limits.max_packet_size = 100;
    limits.max_attachments = 1;
    let server = FakeServer::bind().await;
    let (seen, mut log) = channel();
    let builder = quick(server.url())
        .decode_limits(limits)
        .on("greet", move |args, _| {
            seen.send(args.get::<String>(0).unwrap().len()).unwrap();
        });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.expect_connect().await;
    for _ in 0..3 {
        peer.send(event("/", "greet", json!(["x".repeat(80)]), None))
            .await;
    }
    assert_eq!(
        peer.next_message().await,
        None,
        "the third event passes 200 bytes: the client drops the connection"
    );

    let mut peer = server.accept().await;
    peer.expect_connect().await;
    for _ in 0..2 {
        peer.send(event("/", "greet", json!(["x".repeat(80)]), None))
            .await;
    }
    peer.accept_namespace("/", "sid-2").await;
    within(connect).await.unwrap().unwrap();
    assert_eq!(next(&mut log).await, 80);
    assert_eq!(next(&mut log).await, 80);
}

#[tokio::test]
async fn binary_both_ways() {
    let server = FakeServer::bind().await;
    let (seen, mut received) = channel();
    let builder = ClientBuilder::new(server.url()).on("file", move |args, ack| {
        let data = args.binary_at(1).cloned();
        seen.send((args.get::<String>(0).unwrap(), data)).unwrap();
        if let Some(ack) = ack {
            ack.send(Args::new().with("stored").with_binary(vec![0xff, 0x00]))
                .unwrap();
        }
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();

    // Client to server: nested binary in a binary event, acknowledged with binary.
    let mut args = Args::new();
    let blob = args.attach(vec![1, 2, 3]);
    args.push(json!({ "name": "a.bin", "data": blob }));
    let args = args.with_binary(vec![4; 1000]);
    let asking = client.clone();
    let reply = tokio::spawn(async move { asking.emit_with_ack("upload", args).await });
    let (_, name, args, ack) = peer.expect_event().await;
    assert_eq!(name, "upload");
    let meta = args.value(0).unwrap();
    assert_eq!(meta["name"], "a.bin");
    assert_eq!(args.binary(&meta["data"]).unwrap().as_ref(), [1, 2, 3]);
    assert_eq!(args.binary_at(1).unwrap().as_ref(), [4; 1000]);
    peer.send(Packet::Ack {
        namespace: "/".into(),
        id: ack.unwrap(),
        args: Args::new().with_binary(vec![9, 9]),
    })
    .await;
    let reply = within(reply).await.unwrap().unwrap();
    assert_eq!(reply.binary_at(0).unwrap().as_ref(), [9, 9]);

    // Server to client: a binary event the client acknowledges with binary.
    let args = Args::new().with("photo").with_binary(vec![7; 300]);
    peer.send(event("/", "file", args, Some(1))).await;
    let (label, data) = next(&mut received).await;
    assert_eq!(label, "photo");
    assert_eq!(data.unwrap().as_ref(), [7; 300]);
    match peer.recv().await {
        Packet::Ack { id: 1, args, .. } => {
            assert_eq!(args.get::<String>(0).unwrap(), "stored");
            assert_eq!(args.binary_at(1).unwrap().as_ref(), [0xff, 0x00]);
        }
        other => panic!("expected the binary ack, got {other:?}"),
    }
}

#[tokio::test]
async fn namespaces_share_one_connection() {
    let server = FakeServer::bind().await;
    let (chat_seen, mut chat_events) = channel();
    let url = format!("{}/chat", server.url());
    let builder = ClientBuilder::new(url).on("message", move |args, _| {
        chat_seen.send(args.get::<String>(0).unwrap()).unwrap();
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    let (namespace, _) = peer.expect_connect().await;
    assert_eq!(namespace, "/chat");
    peer.accept_namespace("/chat", "chat-sid").await;
    let chat = within(connect).await.unwrap().unwrap();
    assert_eq!(chat.namespace(), "/chat");

    let (admin_seen, mut admin_events) = channel();
    let joining =
        chat.socket("/admin")
            .auth(json!({ "role": "admin" }))
            .on("message", move |args, _| {
                admin_seen.send(args.get::<String>(0).unwrap()).unwrap();
            });
    let join = tokio::spawn(joining.connect());
    let (namespace, auth) = peer.expect_connect().await;
    assert_eq!(namespace, "/admin");
    assert_eq!(auth.unwrap()["role"], "admin");
    peer.accept_namespace("/admin", "admin-sid").await;
    let admin = within(join).await.unwrap().unwrap();
    assert_eq!(admin.id().as_deref(), Some("admin-sid"));

    // Each namespace gets its own events, over the one WebSocket.
    peer.send(event("/admin", "message", json!(["for admin"]), None))
        .await;
    peer.send(event("/chat", "message", json!(["for chat"]), None))
        .await;
    assert_eq!(next(&mut admin_events).await, "for admin");
    assert_eq!(next(&mut chat_events).await, "for chat");
    admin.emit("report", json!([1])).unwrap();
    chat.emit("say", json!([2])).unwrap();
    let first = peer.expect_event().await;
    let second = peer.expect_event().await;
    assert_eq!((first.0.as_str(), first.1.as_str()), ("/admin", "report"));
    assert_eq!((second.0.as_str(), second.1.as_str()), ("/chat", "say"));

    // Leaving one namespace keeps the other; leaving the last closes the connection.
    admin.disconnect();
    assert_eq!(
        peer.recv().await,
        Packet::Disconnect {
            namespace: "/admin".into()
        }
    );
    assert!(matches!(admin.emit("x", ()), Err(ClientError::Closed)));
    chat.emit("still", ()).unwrap();
    assert_eq!(peer.expect_event().await.1, "still");
    chat.disconnect();
    assert_eq!(
        peer.recv().await,
        Packet::Disconnect {
            namespace: "/chat".into()
        }
    );
    assert_eq!(peer.next_message().await, None, "the client closes");
    server
        .expect_no_connection(Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn connect_error_is_typed_and_not_retried() {
    let server = FakeServer::bind().await;
    let (errors_seen, mut errors) = channel();
    let builder = quick(server.url())
        .auth(json!({ "token": "wrong" }))
        .on_connect_error(move |error| errors_seen.send(error.to_string()).unwrap());
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.expect_connect().await;
    peer.send(Packet::ConnectError {
        namespace: "/".into(),
        message: "not authorized".into(),
        data: Some(json!({ "code": 401 })),
    })
    .await;
    match within(connect).await.unwrap() {
        Err(ClientError::ConnectRefused {
            namespace,
            message,
            data,
        }) => {
            assert_eq!(namespace, "/");
            assert_eq!(message, "not authorized");
            assert_eq!(data, Some(json!({ "code": 401 })));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(next(&mut errors).await.contains("not authorized"));
    assert_eq!(peer.next_message().await, None, "the client closes");
    server
        .expect_no_connection(Duration::from_millis(400))
        .await;
}

#[tokio::test]
async fn connect_reply_without_sid_is_a_connect_error() {
    // A Socket.IO v2 server answers `40` with no session id; socket.io-client reports a
    // connect error instead of connecting.
    for data in [
        None,
        json!({}).as_object().cloned(),
        json!({ "sid": 7 }).as_object().cloned(),
    ] {
        let server = FakeServer::bind().await;
        let (errors_seen, mut errors) = channel();
        let builder = quick(server.url())
            .on_connect_error(move |error| errors_seen.send(error.clone()).unwrap());
        let connect = tokio::spawn(async move { builder.connect().await });
        let mut peer = server.accept().await;
        peer.expect_connect().await;
        peer.send(Packet::Connect {
            namespace: "/".into(),
            data: data.clone(),
        })
        .await;
        match within(connect).await.unwrap() {
            Err(ClientError::InvalidConnect { namespace }) => assert_eq!(namespace, "/"),
            other => panic!("expected a connect error for {data:?}, got {other:?}"),
        }
        assert!(matches!(
            next(&mut errors).await,
            ClientError::InvalidConnect { .. }
        ));
        assert_eq!(peer.next_message().await, None, "the client closes");
    }
}

#[tokio::test]
async fn auth_callback_runs_on_every_connection() {
    let server = FakeServer::bind().await;
    let calls = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&calls);
    let builder = quick(server.url()).auth_with(move || {
        let mut calls = counter.lock().unwrap();
        *calls += 1;
        json!({ "token": format!("token-{calls}") })
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    let (_, auth) = peer.expect_connect().await;
    assert_eq!(Value::Object(auth.unwrap()), json!({ "token": "token-1" }));
    peer.accept_namespace("/", "sid-1").await;
    let client = within(connect).await.unwrap().unwrap();
    // The connection drops: the reconnection asks the callback anew.
    drop(peer);
    let mut peer = server.accept().await;
    let (_, auth) = peer.expect_connect().await;
    assert_eq!(Value::Object(auth.unwrap()), json!({ "token": "token-2" }));
    peer.accept_namespace("/", "sid-2").await;
    assert_eq!(*calls.lock().unwrap(), 2);
    drop(client);
}

#[tokio::test]
async fn volatile_emits_go_out_only_while_connected() {
    let server = FakeServer::bind().await;
    let (seen, mut lifecycle) = channel();
    let on_disconnect = seen.clone();
    let builder = quick(server.url())
        .on_connect(move || seen.send("connect").unwrap())
        .on_disconnect(move |_| on_disconnect.send("disconnect").unwrap());
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();
    assert_eq!(next(&mut lifecycle).await, "connect");
    assert!(matches!(client.emit_volatile("tick", json!([1])), Ok(true)));
    assert_eq!(peer.expect_event().await.1, "tick");
    assert!(matches!(
        client.emit_volatile("connect", json!([])),
        Err(ClientError::ReservedEvent(_))
    ));

    drop(peer);
    assert_eq!(next(&mut lifecycle).await, "disconnect");
    // Disconnected: dropped, not buffered for the reconnection.
    assert!(matches!(
        client.emit_volatile("tick", json!([2])),
        Ok(false)
    ));
    client.emit("kept", json!([3])).unwrap();
    let mut peer = server.accept().await;
    peer.handshake().await;
    let (_, event, args, _) = peer.expect_event().await;
    assert_eq!((event.as_str(), args.values()), ("kept", &[json!(3)][..]));
}

#[tokio::test]
async fn server_disconnect_does_not_reconnect() {
    let server = FakeServer::bind().await;
    let (reasons_seen, mut reasons) = channel();
    let builder = quick(server.url()).on_disconnect(move |reason| {
        reasons_seen.send(reason.clone()).unwrap();
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();
    let asking = client.clone();
    let pending = tokio::spawn(async move { asking.emit_with_ack("slow", ()).await });
    peer.expect_event().await;

    peer.send(Packet::Disconnect {
        namespace: "/".into(),
    })
    .await;
    let reason = next(&mut reasons).await;
    assert_eq!(reason, DisconnectReason::IoServerDisconnect);
    assert_eq!(reason.as_str(), "io server disconnect");
    assert!(!reason.reconnects());
    assert!(matches!(
        within(pending).await.unwrap(),
        Err(ClientError::Closed)
    ));
    assert!(matches!(client.emit("late", ()), Err(ClientError::Closed)));
    assert!(!client.is_connected());
    assert_eq!(peer.next_message().await, None, "the client closes");
    server
        .expect_no_connection(Duration::from_millis(400))
        .await;
}

#[tokio::test]
async fn transport_drop_reconnects_with_backoff_and_delivers_buffered_emits() {
    let server = FakeServer::bind().await;
    let (events_seen, mut lifecycle) = channel();
    let on_disconnect = events_seen.clone();
    let on_connect = events_seen.clone();
    let builder = quick(server.url())
        .reconnection_delay(Duration::from_millis(150))
        .auth(json!({ "token": "t" }))
        .on_connect(move || on_connect.send("connect".to_owned()).unwrap())
        .on_disconnect(move |reason| {
            on_disconnect
                .send(format!("disconnect: {}", reason.as_str()))
                .unwrap()
        })
        .on_reconnect(move |attempt| events_seen.send(format!("reconnect {attempt}")).unwrap());
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();
    assert_eq!(next(&mut lifecycle).await, "connect");

    // An event already sent when the connection drops loses its ack.
    let asking = client.clone();
    let lost = tokio::spawn(async move { asking.emit_with_ack("lost", ()).await });
    peer.expect_event().await;
    drop(peer);
    let dropped = Instant::now();
    assert_eq!(next(&mut lifecycle).await, "disconnect: transport close");
    assert!(matches!(
        within(lost).await.unwrap(),
        Err(ClientError::Disconnected)
    ));

    // Emits while disconnected wait in the buffer, an ack-asking one included.
    client.emit("buffered", json!([1])).unwrap();
    client.emit("buffered", json!([2])).unwrap();
    let asking = client.clone();
    let kept = tokio::spawn(async move { asking.emit_with_ack("kept", ()).await });

    let mut peer = server.accept().await;
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(140),
        "reconnected after {waited:?}, before the 150 ms backoff"
    );
    assert_eq!(next(&mut lifecycle).await, "reconnect 1");
    let (namespace, auth) = peer.expect_connect().await;
    assert_eq!(namespace, "/");
    assert_eq!(auth.unwrap()["token"], "t", "auth is sent again");
    peer.accept_namespace("/", "sid-2").await;
    assert_eq!(next(&mut lifecycle).await, "connect");
    assert_eq!(client.id().as_deref(), Some("sid-2"));

    let mut buffered = Vec::new();
    for _ in 0..3 {
        let (_, name, args, ack) = peer.expect_event().await;
        if let Some(id) = ack {
            peer.send(Packet::Ack {
                namespace: "/".into(),
                id,
                args: Args::from(json!(["ok"])),
            })
            .await;
        }
        buffered.push((name, args.value(0).cloned()));
    }
    assert_eq!(
        buffered,
        [
            ("buffered".to_owned(), Some(json!(1))),
            ("buffered".to_owned(), Some(json!(2))),
            ("kept".to_owned(), None),
        ]
    );
    let kept = within(kept).await.unwrap().unwrap();
    assert_eq!(kept.get::<String>(0).unwrap(), "ok");
}

#[tokio::test]
async fn reconnection_gives_up_after_its_attempts() {
    let server = FakeServer::bind().await;
    let (seen, mut lifecycle) = channel();
    let on_error = seen.clone();
    let builder = quick(server.url())
        .reconnection_attempts(3)
        .on_connect_error(move |_| on_error.send("connect_error").unwrap())
        .on_reconnect_failed(move || seen.send("reconnect_failed").unwrap());
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();

    // With the listener gone every attempt is refused; delays 50, 100 and 200 ms.
    drop(server);
    drop(peer);
    let dropped = Instant::now();
    for _ in 0..3 {
        assert_eq!(next(&mut lifecycle).await, "connect_error");
    }
    assert_eq!(next(&mut lifecycle).await, "reconnect_failed");
    let elapsed = dropped.elapsed();
    assert!(
        elapsed >= Duration::from_millis(340),
        "three attempts took only {elapsed:?}"
    );
    assert!(matches!(client.emit("x", ()), Err(ClientError::Closed)));
}

#[tokio::test]
async fn heartbeat_is_answered_and_can_be_paused() {
    let server = FakeServer::bind().await;
    let connect = tokio::spawn(Client::connect(server.url()));
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();

    peer.ws.send(Message::text("2")).await.unwrap();
    assert_eq!(peer.next_message().await, Some(Message::text("3")));

    client.pause_heartbeat(true);
    peer.ws.send(Message::text("2")).await.unwrap();
    client.emit("marker", ()).unwrap();
    // The next message is the event: no pong came before it.
    assert_eq!(peer.expect_event().await.1, "marker");
    let silence = timeout(Duration::from_millis(200), peer.ws.read()).await;
    assert!(silence.is_err(), "a pong was sent while paused");

    client.pause_heartbeat(false);
    peer.ws.send(Message::text("2")).await.unwrap();
    assert_eq!(peer.next_message().await, Some(Message::text("3")));
}

#[tokio::test]
async fn silent_server_is_a_ping_timeout() {
    let server = FakeServer::bind().await;
    let (reasons_seen, mut reasons) = channel();
    let builder = quick(server.url()).on_disconnect(move |reason| {
        reasons_seen.send(reason.clone()).unwrap();
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    // pingInterval + pingTimeout = 600 ms, and the server pings only three times.
    let mut peer = server.accept_with_heartbeat(400, 200).await;
    let opened = Instant::now();
    peer.handshake().await;
    let _client = within(connect).await.unwrap().unwrap();

    // Pings push the deadline back…
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        peer.ws.send(Message::text("2")).await.unwrap();
        assert_eq!(peer.next_message().await, Some(Message::text("3")));
    }
    // …and silence ends the connection.
    let reason = next(&mut reasons).await;
    let elapsed = opened.elapsed();
    assert_eq!(reason, DisconnectReason::PingTimeout);
    assert!(elapsed >= Duration::from_millis(1050), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(3000), "{elapsed:?}");
    let mut again = server.accept().await;
    again.handshake().await;
}

#[tokio::test]
async fn malformed_packets_drop_the_connection_and_reconnect() {
    let server = FakeServer::bind().await;
    let (reasons_seen, mut reasons) = channel();
    let builder = quick(server.url()).on_disconnect(move |reason| {
        reasons_seen.send(reason.clone()).unwrap();
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let _client = within(connect).await.unwrap().unwrap();

    for bad in [
        "42[\"connect\"]",
        "9",
        "451-[\"x\",{\"_placeholder\":true,\"num\":3}]",
    ] {
        peer.ws.send(Message::text(bad)).await.unwrap();
        if bad.starts_with("451-") {
            peer.ws.send(Message::binary(vec![1])).await.unwrap();
        }
        let reason = next(&mut reasons).await;
        assert!(
            matches!(reason, DisconnectReason::ParseError(_)),
            "{bad}: {reason:?}"
        );
        peer = server.accept().await;
        peer.handshake().await;
    }
}

#[tokio::test]
async fn client_disconnect_sends_disconnect_and_closes() {
    let server = FakeServer::bind().await;
    let (reasons_seen, mut reasons) = channel();
    let builder = ClientBuilder::new(server.url()).on_disconnect(move |reason| {
        reasons_seen.send(reason.clone()).unwrap();
    });
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();

    client.emit("last", ()).unwrap();
    client.disconnect();
    assert_eq!(
        next(&mut reasons).await,
        DisconnectReason::IoClientDisconnect
    );
    assert_eq!(
        peer.expect_event().await.1,
        "last",
        "buffered emits go first"
    );
    assert_eq!(
        peer.recv().await,
        Packet::Disconnect {
            namespace: "/".into()
        }
    );
    assert_eq!(peer.next_message().await, None);
    assert!(matches!(client.emit("x", ()), Err(ClientError::Closed)));
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let server = FakeServer::bind().await;
    let connect = tokio::spawn(Client::connect(server.url()));
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();
    drop(client);
    assert_eq!(peer.next_message().await, None);
}

#[tokio::test]
async fn limits_and_bad_input_are_typed_errors() {
    for (url, expected) in [
        ("https://127.0.0.1:1", "unsupported"),
        ("wss://127.0.0.1:1", "unsupported"),
        ("ftp://127.0.0.1:1", "invalid url"),
    ] {
        // With TLS built in, https:// and wss:// are connected to (tests/tls_events.rs).
        if cfg!(feature = "rustls-manual-roots") && expected == "unsupported" {
            continue;
        }
        let error = Client::connect(url).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{url}: {error}");
    }
    let error = ClientBuilder::new("http://127.0.0.1:1")
        .auth(json!("not an object"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidAuth));
    let error = ClientBuilder::new("http://127.0.0.1:1")
        .namespace("chat")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidNamespace(_)));

    // Nothing listens: the first connection fails with the transport's error.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = Client::connect(url).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");

    let server = FakeServer::bind().await;
    let builder = quick(server.url())
        .reconnection_delay(Duration::from_secs(60))
        .max_buffered(3)
        .ack_timeout(Duration::from_millis(100));
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();

    assert!(matches!(
        client.emit("disconnect", ()),
        Err(ClientError::ReservedEvent(_))
    ));
    let too_big = "x".repeat(1_000_001);
    assert!(matches!(
        client.emit("big", json!([too_big])),
        Err(ClientError::TooLarge {
            limit: 1_000_000,
            ..
        })
    ));
    assert!(matches!(
        client.emit_with_ack("unanswered", ()).await,
        Err(ClientError::AckTimeout(_))
    ));
    peer.expect_event().await;

    // While disconnected (the next attempt is a minute away) the buffer fills up.
    drop(peer);
    while client.is_connected() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 0..3 {
        client.emit("queued", json!([n])).unwrap();
    }
    assert!(matches!(
        client.emit("queued", json!([3])),
        Err(ClientError::BufferFull { limit: 3 })
    ));
}

#[tokio::test]
async fn connect_times_out_when_the_namespace_never_answers() {
    let server = FakeServer::bind().await;
    let builder = quick(server.url()).connect_timeout(Duration::from_millis(300));
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.expect_connect().await;
    assert!(matches!(
        within(connect).await.unwrap(),
        Err(ClientError::ConnectTimeout(_))
    ));
}

#[tokio::test]
async fn retries_take_new_ack_ids_ignore_late_answers_and_survive_a_reconnection() {
    let server = FakeServer::bind().await;
    let builder = quick(server.url())
        .retries(2)
        .ack_timeout(Duration::from_millis(150));
    let connect = tokio::spawn(async move { builder.connect().await });
    let mut peer = server.accept().await;
    peer.handshake().await;
    let client = within(connect).await.unwrap().unwrap();
    let asking = client.clone();
    let reply = tokio::spawn(async move { asking.emit_with_ack("job", json!([1])).await });
    let (_, name, args, first) = peer.expect_event().await;
    assert_eq!((name.as_str(), first), ("job", Some(0)));
    // Unanswered: sent again after the timeout, under a new ack id, with the same arguments.
    let (_, name, again, second) = peer.expect_event().await;
    assert_eq!((name.as_str(), second), ("job", Some(1)));
    assert_eq!(again, args);
    // The connection drops during the second attempt, which fails with it; the third goes out
    // once the namespace is connected again.
    drop(peer);
    let mut peer = server.accept().await;
    peer.handshake().await;
    let (_, _, _, third) = peer.expect_event().await;
    assert_eq!(third, Some(2));
    // An answer to an earlier attempt is ignored; the current attempt's is the reply.
    for (id, text) in [(0, "late"), (2, "on time")] {
        peer.send(Packet::Ack {
            namespace: "/".into(),
            id,
            args: Args::from(json!([text])),
        })
        .await;
    }
    let reply = within(reply).await.unwrap().unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on time");
}
