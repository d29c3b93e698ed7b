//! The handshake, namespace middleware, packet middleware, `on_any` and the disconnecting hook.
#![cfg(feature = "events")]

mod events_support;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use wsio::Message;
use wsio::events::{DisconnectReason, Handshake, Packet, Refusal, Server};

use events_support::{Client, WAIT, config, map, start};

async fn recv<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn handshake_holds_the_request_and_the_namespace_auth() {
    let server = Server::new(config());
    let (sender, mut seen) = mpsc::unbounded_channel::<(&str, Handshake)>();
    for name in ["/", "/admin"] {
        let from_middleware = sender.clone();
        server.of(name).use_middleware(move |socket| {
            let _ = from_middleware.send(("middleware", socket.handshake().clone()));
            async { Ok(()) }
        });
        let from_handler = sender.clone();
        server.of(name).on_connection(move |socket| {
            let _ = from_handler.send(("connection", socket.handshake().clone()));
        });
    }
    let addr = start(&server).await;
    let before = SystemTime::now();
    let mut client = Client::connect_with(
        addr,
        "&room=a%20b&name=caf%C3%A9",
        &[("X-Token", "abc"), ("Cookie", "io=1")],
    )
    .await;
    let after = SystemTime::now();
    client.join("/", Some(json!({"token": "t", "b": 2}))).await;
    let (_, from_middleware) = recv(&mut seen).await;
    let (_, handshake) = recv(&mut seen).await;
    for handshake in [&from_middleware, &handshake] {
        assert_eq!(handshake.header("x-token"), Some("abc"));
        assert_eq!(handshake.header("cookie"), Some("io=1"));
        assert!(handshake.headers().iter().any(|(name, _)| name == "host"));
        assert_eq!(handshake.query_param("room"), Some("a b"));
        assert_eq!(handshake.query_param("name"), Some("café"));
        assert_eq!(handshake.query_param("EIO"), Some("4"));
        assert_eq!(handshake.query_param("transport"), Some("websocket"));
        assert_eq!(
            handshake.url(),
            "/socket.io/?EIO=4&transport=websocket&room=a%20b&name=caf%C3%A9"
        );
        let address = handshake.address().expect("serve knows the peer address");
        assert!(address.ip().is_loopback());
        assert_ne!(address.port(), addr.port());
        assert!(!handshake.secure());
        assert!(before <= handshake.time() && handshake.time() <= after);
        assert_eq!(handshake.auth(), &json!({"token": "t", "b": 2}));
    }
    // The second namespace shares the request, not the auth.
    client.join("/admin", None).await;
    let (_, admin) = recv(&mut seen).await;
    assert_eq!(admin.auth(), &json!({}));
    assert_eq!(admin.time(), handshake.time());
    assert_eq!(admin.address(), handshake.address());
}

#[tokio::test]
async fn middleware_runs_in_order_after_authorize_and_may_refuse_with_data() {
    let server = Server::new(config());
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let namespace = server.of("/");
    let record = Arc::clone(&log);
    namespace.authorize(move |auth| {
        record.lock().unwrap().push("authorize".into());
        async move {
            match auth.get("banned") {
                Some(_) => Err(Refusal::new("banned")),
                None => Ok(()),
            }
        }
    });
    let record = Arc::clone(&log);
    namespace.use_middleware(move |socket| {
        let record = Arc::clone(&record);
        async move {
            // Awaits before answering: the next middleware waits for it.
            tokio::task::yield_now().await;
            record.lock().unwrap().push("first".into());
            socket.join("members");
            socket.extensions().insert(String::from("from middleware"));
            Ok(())
        }
    });
    let record = Arc::clone(&log);
    namespace.use_middleware(move |socket| {
        record.lock().unwrap().push("second".into());
        let token = socket.auth()["token"].as_str().map(str::to_owned);
        async move {
            match token.as_deref() {
                Some("ok") => Ok(()),
                _ => Err(Refusal::new("not authorized").with_data(json!({"code": 401}))),
            }
        }
    });
    let record = Arc::clone(&log);
    namespace.use_middleware(move |_| {
        record.lock().unwrap().push("third".into());
        async { Ok(()) }
    });
    let (sender, mut connected) = mpsc::unbounded_channel();
    namespace.on_connection(move |socket| {
        let _ = sender.send((socket.rooms(), socket.extensions().get::<String>()));
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;

    client
        .send(&Packet::Connect {
            namespace: "/".into(),
            data: Some(map(json!({"token": "wrong"}))),
        })
        .await;
    assert_eq!(
        client.packet().await,
        Packet::ConnectError {
            namespace: "/".into(),
            message: "not authorized".into(),
            data: Some(json!({"code": 401})),
        }
    );
    assert_eq!(*log.lock().unwrap(), ["authorize", "first", "second"]);
    assert!(namespace.sockets().is_empty());

    log.lock().unwrap().clear();
    client
        .send(&Packet::Connect {
            namespace: "/".into(),
            data: Some(map(json!({"banned": true}))),
        })
        .await;
    assert!(matches!(
        client.packet().await,
        Packet::ConnectError { message, .. } if message == "banned"
    ));
    assert_eq!(*log.lock().unwrap(), ["authorize"]);

    log.lock().unwrap().clear();
    let sid = client.join("/", Some(json!({"token": "ok"}))).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["authorize", "first", "second", "third"]
    );
    let (mut rooms, extension) = recv(&mut connected).await;
    rooms.sort();
    let mut expected = vec!["members".to_owned(), sid];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(extension.as_deref(), Some("from middleware"));
    assert_eq!(namespace.to("members").sockets().len(), 1);
}

#[tokio::test]
async fn packet_middleware_on_any_and_error_handlers() {
    let server = Server::new(config());
    let (sender, mut seen) = mpsc::unbounded_channel::<String>();
    server.of("/").on_connection(move |socket| {
        socket.use_packet_middleware(|_, event, args| async move {
            match event.as_str() {
                "secret" => Err(Refusal::new("forbidden")),
                "old-name" => Ok(("new-name".to_owned(), args)),
                _ => Ok((event, args)),
            }
        });
        socket.use_packet_middleware(|_, event, args| async move {
            // Sees what the first one returned.
            assert_ne!(event, "old-name");
            Ok((event, args))
        });
        let any = sender.clone();
        socket.on_any(move |_, event, args| {
            let _ = any.send(format!(
                "any {event} {}",
                Value::from(args.values().to_vec())
            ));
            async {}
        });
        let errors = sender.clone();
        socket.on_error(move |_, refusal| {
            let _ = errors.send(format!("error {}", refusal.message));
            async {}
        });
        let handled = sender.clone();
        for event in ["new-name", "secret", "plain"] {
            let handled = handled.clone();
            socket.on(event, move |_, args, ack| {
                let _ = handled.send(format!("handler {event}"));
                async move {
                    if let Some(ack) = ack {
                        let _ = ack.send(args);
                    }
                }
            });
        }
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    client.send_raw(Message::text("421[\"secret\",1]")).await;
    assert_eq!(recv(&mut seen).await, "error forbidden");
    client.send_raw(Message::text("422[\"old-name\",2]")).await;
    assert_eq!(recv(&mut seen).await, "any new-name [2]");
    assert_eq!(recv(&mut seen).await, "handler new-name");
    // The refused event got no acknowledgement: the first reply is the second event's.
    assert_eq!(
        client.packet().await,
        Packet::Ack {
            namespace: "/".into(),
            id: 2,
            args: json!([2]).into(),
        }
    );
    client
        .send_raw(Message::text("42[\"plain\",{\"b\":1,\"a\":2}]"))
        .await;
    assert_eq!(recv(&mut seen).await, "any plain [{\"b\":1,\"a\":2}]");
    assert_eq!(recv(&mut seen).await, "handler plain");
}

#[tokio::test]
async fn disconnecting_sees_the_rooms_and_disconnect_runs_after() {
    let server = Server::new(config());
    let (sender, mut seen) = mpsc::unbounded_channel();
    server.of("/").on_connection(move |socket| {
        socket.join("red");
        let disconnecting = sender.clone();
        socket.on_disconnecting(move |socket, reason| {
            let _ = disconnecting.send(("disconnecting", reason, socket.rooms()));
            async {}
        });
        let disconnect = sender.clone();
        socket.on_disconnect(move |socket, reason| {
            let _ = disconnect.send(("disconnect", reason, socket.rooms()));
            async {}
        });
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    let sid = client.join("/", None).await;
    let red = server.of("/").to("red");
    assert_eq!(red.sockets().len(), 1);
    client.send_raw(Message::text("41")).await;
    let (first, reason, rooms) = recv(&mut seen).await;
    assert_eq!(first, "disconnecting");
    assert_eq!(reason, DisconnectReason::ClientNamespaceDisconnect);
    let mut expected = vec!["red".to_owned(), sid];
    expected.sort();
    assert_eq!(rooms, expected);
    let (second, reason, rooms) = recv(&mut seen).await;
    assert_eq!(second, "disconnect");
    assert_eq!(reason, DisconnectReason::ClientNamespaceDisconnect);
    assert!(rooms.is_empty(), "{rooms:?}");
    assert!(red.sockets().is_empty());
    assert_eq!(red.emit("late", json!([1])), Ok(0));
}

#[tokio::test]
async fn dynamic_namespaces_are_made_on_demand_and_take_the_parents_handlers() {
    let server = Server::new(config());
    let parent =
        server.dynamic(|name, auth| name.starts_with("/ws-") && auth.get("deny").is_none());
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&log);
    parent.use_middleware(move |socket| {
        record
            .lock()
            .unwrap()
            .push(format!("middleware {}", socket.namespace()));
        async { Ok(()) }
    });
    parent.on_connection(|socket| {
        let _ = socket.emit("hello", json!([socket.namespace()]));
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/ws-1", None).await;
    let (event, args, _) = client.event().await;
    assert_eq!(
        (event.as_str(), args.values()),
        ("hello", &[json!("/ws-1")][..])
    );
    assert_eq!(*log.lock().unwrap(), ["middleware /ws-1"]);
    let names: Vec<String> = parent
        .children()
        .iter()
        .map(|ns| ns.name().to_owned())
        .collect();
    assert_eq!(names, ["/ws-1"]);

    for (name, auth) in [("/other", None), ("/ws-2", Some(json!({"deny": true})))] {
        client
            .send(&Packet::Connect {
                namespace: name.into(),
                data: auth.map(map),
            })
            .await;
        assert!(matches!(
            client.packet().await,
            Packet::ConnectError { message, .. } if message == "Invalid namespace"
        ));
    }

    // The child is a namespace like any: its own handler runs after the parent's.
    server.of("/ws-1").on_connection(|socket| {
        let _ = socket.emit("own", json!([]));
    });
    let mut second = Client::connect(addr).await;
    second.join("/ws-1", None).await;
    assert_eq!(second.event().await.0, "hello");
    assert_eq!(second.event().await.0, "own");
    // The parent's emit reaches every child.
    assert_eq!(parent.emit("all", json!([1])), Ok(2));
    assert_eq!(client.event().await.0, "all");
    assert_eq!(second.event().await.0, "all");
}
