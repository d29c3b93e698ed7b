//! The events server over loopback, driven by a raw Socket.IO client built on the codec.
#![cfg(feature = "events")]

mod events_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wsio::Message;
use wsio::events::{AckError, Args, DisconnectReason, EmitError, Packet, Refusal, Server, Socket};

use events_support::{Client, Incoming, WAIT, config, map, start};

/// Records every socket that connects to `namespace`, with its disconnect reason later.
fn watch(
    server: &Server,
    namespace: &str,
) -> mpsc::UnboundedReceiver<(Socket, Option<DisconnectReason>)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    server.of(namespace).on_connection(move |socket| {
        let _ = sender.send((socket.clone(), None));
        let sender = sender.clone();
        socket.on_disconnect(move |socket, reason| {
            let _ = sender.send((socket, Some(reason)));
            async {}
        });
    });
    receiver
}

async fn recv<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn open_packet_then_connect_to_the_default_namespace() {
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    assert_eq!(client.open.ping_interval, 200);
    assert_eq!(client.open.ping_timeout, 200);
    assert_eq!(client.open.max_payload, 1_000_000);
    assert!(client.open.upgrades.is_empty());
    let sid = client.join("/", None).await;
    let (socket, _) = recv(&mut sockets).await;
    assert_eq!(socket.id(), sid);
    assert_ne!(
        sid, client.open.sid,
        "socket ids are not the engine session id"
    );
    assert_eq!(socket.namespace(), "/");
    assert_eq!(socket.rooms(), [sid]);
    assert_eq!(socket.auth(), &json!({}));
}

#[tokio::test]
async fn unknown_namespace_is_refused() {
    let server = Server::new(config());
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client
        .send(&Packet::Connect {
            namespace: "/nope".into(),
            data: None,
        })
        .await;
    let Packet::ConnectError {
        namespace, message, ..
    } = client.packet().await
    else {
        panic!("expected CONNECT_ERROR");
    };
    assert_eq!(
        (namespace.as_str(), message.as_str()),
        ("/nope", "Invalid namespace")
    );
}

#[tokio::test]
async fn connect_hook_sees_auth_and_may_refuse() {
    let server = Server::new(config());
    server.of("admin").authorize(|auth| async move {
        match auth["token"].as_str() {
            Some("secret") => Ok(()),
            _ => Err(Refusal::new("not authorized").with_data(json!({"hint": "token"}))),
        }
    });
    let mut sockets = watch(&server, "/admin");
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client
        .send(&Packet::Connect {
            namespace: "/admin".into(),
            data: Some(map(json!({"token": "wrong"}))),
        })
        .await;
    assert_eq!(
        client.packet().await,
        Packet::ConnectError {
            namespace: "/admin".into(),
            message: "not authorized".into(),
            data: Some(json!({"hint": "token"})),
        }
    );
    let sid = client
        .join("/admin", Some(json!({"token": "secret"})))
        .await;
    let (socket, _) = recv(&mut sockets).await;
    assert_eq!(socket.id(), sid);
    assert_eq!(socket.auth()["token"], "secret");
}

#[tokio::test]
async fn events_and_acks_both_ways() {
    let mut config = config();
    // The second question goes unanswered: `emit_with_ack` gives up after this.
    config.ack_timeout = Duration::from_millis(50);
    let server = Server::new(config);
    let (results, mut results_rx) = mpsc::unbounded_channel();
    server.of("/").on_connection(move |socket| {
        socket.on("echo", |_, args, ack| async move {
            ack.expect("ack requested").send(args).unwrap();
        });
        let results = results.clone();
        socket.on("ask", move |socket, _, _| {
            let results = results.clone();
            async move {
                let answer = socket
                    .emit_with_ack_timeout("question", json!(["6 x 7?"]), WAIT)
                    .await;
                let _ = results.send(answer);
                let short = socket.emit_with_ack("question", json!(["again?"])).await;
                let _ = results.send(short);
            }
        });
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;

    client
        .emit(
            "/",
            "echo",
            Args::from(json!([1, "two", {"three": 3}])),
            Some(99),
        )
        .await;
    assert_eq!(
        client.packet().await,
        Packet::Ack {
            namespace: "/".into(),
            id: 99,
            args: Args::from(json!([1, "two", {"three": 3}])),
        }
    );

    client.emit("/", "ask", Args::new(), None).await;
    let (event, args, ack) = client.event().await;
    assert_eq!(
        (event.as_str(), args.values()),
        ("question", &[json!("6 x 7?")][..])
    );
    client
        .send(&Packet::Ack {
            namespace: "/".into(),
            id: ack.expect("server asks for an ack"),
            args: Args::from(json!([42])),
        })
        .await;
    let answer = recv(&mut results_rx).await.unwrap();
    assert_eq!(answer.get::<u32>(0).unwrap(), 42);
    let (event, _, _) = client.event().await;
    assert_eq!(event, "question");
    assert_eq!(recv(&mut results_rx).await, Err(AckError::Timeout));
}

#[tokio::test]
async fn binary_arguments_both_ways() {
    let server = Server::new(config());
    server.of("/").on_connection(|socket| {
        socket.on("upload", |socket, args, ack| async move {
            let data = args.binary(&args.values()[0]["file"]).cloned().unwrap();
            let reversed: Vec<u8> = data.iter().rev().copied().collect();
            socket
                .emit("download", Args::new().with("rev").with_binary(reversed))
                .unwrap();
            ack.unwrap().send(args).unwrap();
        });
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    let mut args = Args::new();
    let file = args.attach(Bytes::from_static(&[1, 2, 3, 0xff]));
    args.push(json!({"name": "f.bin", "file": file}));
    client.emit("/", "upload", args.clone(), Some(1)).await;

    let (event, download, _) = client.event().await;
    assert_eq!(event, "download");
    assert_eq!(download.value(0), Some(&json!("rev")));
    assert_eq!(download.binary_at(1).unwrap().as_ref(), [0xff, 3, 2, 1]);
    let Packet::Ack {
        id: 1,
        args: echoed,
        ..
    } = client.packet().await
    else {
        panic!("expected the binary ack");
    };
    assert_eq!(echoed, args);
}

#[tokio::test]
async fn rooms_broadcast_and_except() {
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let chat = server.of("/");
    let addr = start(&server).await;
    let mut clients = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let mut client = Client::connect(addr).await;
        client.join("/", None).await;
        clients.push(client);
        handles.push(recv(&mut sockets).await.0);
    }
    let [a, b, c] = [&handles[0], &handles[1], &handles[2]];
    a.join("red");
    b.join("red");
    b.join("blue");
    c.join("blue");
    assert_eq!(b.rooms(), {
        let mut rooms = vec!["blue".to_owned(), "red".to_owned(), b.id().to_owned()];
        rooms.sort();
        rooms
    });

    // Each step names who must receive; a marker to everyone then proves the others did not.
    type Step<'a> = (&'a str, Box<dyn Fn() -> usize + 'a>, [bool; 3]);
    let steps: [Step; 6] = [
        (
            "all",
            Box::new(|| chat.emit("m", json!(["all"])).unwrap()),
            [true, true, true],
        ),
        (
            "red",
            Box::new(|| chat.to("red").emit("m", json!(["red"])).unwrap()),
            [true, true, false],
        ),
        (
            "a to red",
            Box::new(|| a.to("red").emit("m", json!(["a to red"])).unwrap()),
            [false, true, false],
        ),
        (
            "except red",
            Box::new(|| chat.except("red").emit("m", json!(["except red"])).unwrap()),
            [false, false, true],
        ),
        (
            "red and blue except a",
            Box::new(|| {
                chat.to("red")
                    .to("blue")
                    .except(a.id())
                    .emit("m", json!(["red and blue except a"]))
                    .unwrap()
            }),
            [false, true, true],
        ),
        (
            "others",
            Box::new(|| c.broadcast().emit("m", json!(["others"])).unwrap()),
            [true, true, false],
        ),
    ];
    for (name, emit, expected) in steps {
        let count = emit();
        assert_eq!(count, expected.iter().filter(|&&x| x).count(), "{name}");
        chat.emit("marker", json!([name])).unwrap();
        for (client, expected) in clients.iter_mut().zip(expected) {
            let (event, args, _) = client.event().await;
            if expected {
                assert_eq!((event.as_str(), args.values()), ("m", &[json!(name)][..]));
                let (event, _, _) = client.event().await;
                assert_eq!(event, "marker", "{name}: one copy only");
            } else {
                assert_eq!(event, "marker", "{name}: must not receive");
            }
        }
    }
    a.leave("red");
    assert_eq!(chat.to("red").sockets().len(), 1);
    assert_eq!(
        chat.emit("connect", json!([])),
        Err(EmitError::ReservedEvent("connect".into()))
    );
}

#[tokio::test]
async fn namespaces_are_independent_on_one_connection() {
    let server = Server::new(config());
    let mut root = watch(&server, "/");
    let mut admin = watch(&server, "/admin");
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    client.join("/admin", None).await;
    let (root_socket, _) = recv(&mut root).await;
    let (admin_socket, _) = recv(&mut admin).await;
    admin_socket.emit("hello", json!(["admin"])).unwrap();
    assert!(
        matches!(client.packet().await, Packet::Event { namespace, .. } if namespace == "/admin")
    );

    client
        .send(&Packet::Disconnect {
            namespace: "/admin".into(),
        })
        .await;
    let (_, reason) = recv(&mut admin).await;
    assert_eq!(reason, Some(DisconnectReason::ClientNamespaceDisconnect));
    assert!(!admin_socket.connected());
    assert_eq!(admin_socket.emit("x", ()), Err(EmitError::Disconnected));
    root_socket.emit("still", ()).unwrap();
    assert!(matches!(client.event().await, (event, _, _) if event == "still"));
}

#[tokio::test]
async fn server_side_disconnect_and_close() {
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    let (socket, _) = recv(&mut sockets).await;
    socket.disconnect();
    assert_eq!(
        client.packet().await,
        Packet::Disconnect {
            namespace: "/".into()
        }
    );
    assert_eq!(
        recv(&mut sockets).await.1,
        Some(DisconnectReason::ServerNamespaceDisconnect)
    );

    client.join("/", None).await;
    let (socket, _) = recv(&mut sockets).await;
    socket.close();
    client.closed().await;
    assert_eq!(
        recv(&mut sockets).await.1,
        Some(DisconnectReason::ServerClose)
    );
}

#[tokio::test]
async fn transport_close_is_reported() {
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    recv(&mut sockets).await;
    client.ws.close(None).await.unwrap();
    assert_eq!(
        recv(&mut sockets).await.1,
        Some(DisconnectReason::TransportClose)
    );
}

#[tokio::test]
async fn heartbeat_pings_and_dead_peer_detection() {
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;

    // A live client answers pings and stays connected over several intervals.
    let mut live = Client::connect(addr).await;
    live.join("/", None).await;
    let (live_socket, _) = recv(&mut sockets).await;
    live.answer_pings = false;
    for _ in 0..3 {
        assert!(matches!(live.next().await, Incoming::Ping));
        live.send_raw(Message::text("3")).await;
    }
    assert!(live_socket.connected());
    live.answer_pings = true;
    let live_reader =
        tokio::spawn(async move { while let Incoming::Packet(_) = live.next().await {} });

    // A dead one is dropped after ping interval + ping timeout.
    let mut dead = Client::connect(addr).await;
    dead.join("/", None).await;
    recv(&mut sockets).await;
    dead.answer_pings = false;
    let started = tokio::time::Instant::now();
    assert!(matches!(dead.next().await, Incoming::Ping));
    let (_, reason) = recv(&mut sockets).await;
    assert_eq!(reason, Some(DisconnectReason::PingTimeout));
    assert!(started.elapsed() >= Duration::from_millis(150));
    dead.closed().await;
    assert!(live_socket.connected());
    live_reader.abort();
}

#[tokio::test]
async fn malformed_packets_close_the_connection_cleanly() {
    let inputs = [
        Message::text(""),
        Message::text("9"),
        Message::text("4"),
        Message::text("42[\"connect\"]"),
        Message::text("42[true]"),
        Message::text("4{"),
        Message::text("452-[\"a\"]"),
        Message::text(format!("43{}0[]", u64::MAX)),
        Message::text("451-[\"a\"]4"),
        Message::text("0{}"),
        Message::binary(vec![1, 2, 3]),
    ];
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;
    for input in inputs {
        let mut client = Client::connect(addr).await;
        client.join("/", None).await;
        recv(&mut sockets).await;
        client.send_raw(input.clone()).await;
        if input.as_text() == Some("452-[\"a\"]") {
            client.send_raw(Message::text("40")).await;
        }
        let (_, reason) = recv(&mut sockets).await;
        assert_eq!(reason, Some(DisconnectReason::ParseError), "{input:?}");
        client.closed().await;
    }
}

#[tokio::test]
async fn slow_consumer_is_disconnected_without_stalling_others() {
    let mut config = config();
    config.queue_limit = 4;
    config.overflow_timeout = Duration::from_millis(200);
    config.ping_interval = Duration::from_secs(30);
    let server = Server::new(config);
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;
    let mut slow = Client::connect(addr).await;
    slow.join("/", None).await;
    let (slow_socket, _) = recv(&mut sockets).await;
    let mut fast = Client::connect(addr).await;
    fast.join("/", None).await;
    recv(&mut sockets).await;

    // The fast client reads everything while the slow one reads nothing.
    let received = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&received);
    let reader = tokio::spawn(async move {
        while let Incoming::Packet(_) = fast.next().await {
            *counter.lock().unwrap() += 1;
        }
    });
    // Incompressible, so permessage-deflate cannot shrink it.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let chunk: Bytes = (0..256 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut dropped = 0;
    let mut broadcasts = 0;
    let mut reason = None;
    while reason.is_none() && broadcasts < 2000 {
        server
            .of("/")
            .emit("big", Args::new().with_binary(chunk.clone()))
            .unwrap();
        broadcasts += 1;
        if !matches!(slow_socket.emit_volatile("tick", ()), Ok(true)) {
            dropped += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if let Ok((_, found)) = sockets.try_recv() {
            reason = found;
        }
    }
    assert_eq!(reason, Some(DisconnectReason::SlowConsumer));
    assert!(dropped > 0, "volatile emits to a full queue are dropped");
    // The fast client got (nearly) every broadcast while the slow one was stuck.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        *received.lock().unwrap() + 8 >= broadcasts,
        "fast client stalled"
    );
    reader.abort();
}

#[tokio::test]
async fn socket_extensions_hold_application_data() {
    #[derive(Clone, Debug, PartialEq)]
    struct Nick(String);
    let server = Server::new(config());
    server.of("/").on_connection(|socket| {
        socket.extensions().insert(Nick("anon".into()));
        socket.on("nick", |socket, args, _| async move {
            socket.extensions().insert(Nick(args.get(0).unwrap()));
        });
        socket.on("whoami", |socket, _, ack| async move {
            let Nick(nick) = socket.extensions().get::<Nick>().unwrap();
            ack.unwrap().send(json!([nick])).unwrap();
        });
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    client.emit("/", "whoami", Args::new(), Some(1)).await;
    assert!(
        matches!(client.packet().await, Packet::Ack { args, .. } if args.values() == [json!("anon")])
    );
    client
        .emit("/", "nick", Args::from(json!(["zoe"])), None)
        .await;
    client.emit("/", "whoami", Args::new(), Some(2)).await;
    assert!(
        matches!(client.packet().await, Packet::Ack { args, .. } if args.values() == [json!("zoe")])
    );
}

async fn http_get(addr: std::net::SocketAddr, target: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

#[tokio::test]
async fn unknown_transports_and_other_versions_get_a_clear_http_error() {
    let server = Server::new(config());
    server.http_fallback(|path| {
        (path == "/").then(|| wsio::events::HttpResponse::new(200, "text/html", "<p>hi</p>"))
    });
    let addr = start(&server).await;
    for target in ["/socket.io/?EIO=4&transport=abc", "/socket.io/?EIO=4"] {
        let response = http_get(addr, target).await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], 0, "{response}");
    }
    let v3 = http_get(addr, "/socket.io/?EIO=3&transport=websocket").await;
    assert!(
        v3.starts_with("HTTP/1.1 400 ") && v3.contains("\"code\":5"),
        "{v3}"
    );
    let other = http_get(addr, "/elsewhere").await;
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
    let page = http_get(addr, "/").await;
    assert!(
        page.starts_with("HTTP/1.1 200 ") && page.ends_with("<p>hi</p>"),
        "{page}"
    );
}

#[cfg(feature = "deflate")]
#[tokio::test]
async fn large_broadcasts_are_compressed_without_context_takeover_and_arrive_intact() {
    let server = Server::new(config());
    let mut sockets = watch(&server, "/");
    let addr = start(&server).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::connect(addr).await;
        let params = *client
            .ws
            .connection()
            .deflate_params()
            .expect("deflate agreed");
        assert!(params.server_no_context_takeover() && params.client_no_context_takeover());
        client.join("/", None).await;
        recv(&mut sockets).await;
        clients.push(client);
    }
    let record = json!({"city": "Zürich", "temperature": 21.5, "tags": ["a", "b"]});
    let big = json!(vec![record; 400]);
    assert!(big.to_string().len() > 16 * 1024);
    for round in 0..3 {
        let count = server.of("/").emit("data", json!([round, big])).unwrap();
        assert_eq!(count, 3);
    }
    for client in &mut clients {
        for round in 0..3 {
            let (event, args, _) = client.event().await;
            assert_eq!(event, "data");
            assert_eq!(args.values(), [json!(round), big.clone()]);
        }
    }
}
