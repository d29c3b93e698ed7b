//! Broadcast operators: `in_`, `except`, `local`, `timeout` with broadcast acknowledgements,
//! `fetch_sockets`, `sockets_join`, `sockets_leave`, `disconnect_sockets`, `server_side_emit`.
#![cfg(feature = "events")]

mod events_support;

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use wsio::events::{Args, BroadcastAckError, EmitError, FetchedSocket, Packet, Server, Socket};

use events_support::{Client, WAIT, config, start};

async fn recv<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .unwrap()
        .unwrap()
}

/// A server whose `/` sockets join the rooms named in their auth's `rooms`, reported on the
/// channel once connected.
fn server() -> (Server, mpsc::UnboundedReceiver<Socket>) {
    let server = Server::new(config());
    let (sender, sockets) = mpsc::unbounded_channel();
    server.of("/").on_connection(move |socket| {
        let rooms: Vec<String> = socket.auth()["rooms"]
            .as_array()
            .map(|rooms| {
                rooms
                    .iter()
                    .filter_map(|room| room.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for room in rooms {
            socket.join(room);
        }
        let _ = sender.send(socket);
    });
    (server, sockets)
}

/// Connects a client to `/` in `rooms`; returns it and its server-side socket.
async fn member(
    addr: std::net::SocketAddr,
    sockets: &mut mpsc::UnboundedReceiver<Socket>,
    rooms: &[&str],
) -> (Client, Socket) {
    let mut client = Client::connect(addr).await;
    client.join("/", Some(json!({ "rooms": rooms }))).await;
    (client, recv(sockets).await)
}

/// Reads the next event and answers its acknowledgement with `reply`.
async fn answer(client: &mut Client, reply: serde_json::Value) -> (String, Args) {
    let (event, args, ack) = client.event().await;
    let id = ack.expect("an acknowledgement was asked for");
    client
        .send(&Packet::Ack {
            namespace: "/".into(),
            id,
            args: json!([reply]).into(),
        })
        .await;
    (event, args)
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn broadcast_acks_collect_one_reply_per_recipient() {
    let (server, mut sockets) = server();
    let addr = start(&server).await;
    let (mut a, _) = member(addr, &mut sockets, &["r"]).await;
    let (mut b, _) = member(addr, &mut sockets, &["r"]).await;
    let (mut outside, _) = member(addr, &mut sockets, &[]).await;
    // A socket's own emit_with_ack draws from the namespace's ids, as broadcasts do.
    let (mut asked, asked_socket) = member(addr, &mut sockets, &["r", "asked"]).await;
    let own = tokio::spawn(async move {
        asked_socket
            .emit_with_ack_timeout("own", json!([]), Duration::from_secs(5))
            .await
    });
    let (_, _, own_id) = asked.event().await;
    let replies = server
        .of("/")
        .in_("r")
        .except("asked")
        .timeout(Duration::from_secs(5))
        .emit_with_ack("question", json!(["ready?"]));
    let (event, args, id) = a.event().await;
    assert_ne!(id, own_id, "one id per acknowledgement in the namespace");
    a.send(&Packet::Ack {
        namespace: "/".into(),
        id: id.unwrap(),
        args: json!(["a"]).into(),
    })
    .await;
    assert_eq!(
        (event.as_str(), args.values()),
        ("question", &[json!("ready?")][..])
    );
    answer(&mut b, json!("b")).await;
    let replies = tokio::time::timeout(WAIT, replies).await.unwrap().unwrap();
    let mut values: Vec<String> = replies
        .iter()
        .map(|args| args.values()[0].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    assert_eq!(values, ["a", "b"]);
    // The client outside the room got nothing: its next packet is a later emit.
    server.of("/").emit("after", json!([])).unwrap();
    assert_eq!(outside.event().await.0, "after");
    own.abort();
}

#[tokio::test]
async fn broadcast_ack_timeout_reports_what_arrived() {
    let (server, mut sockets) = server();
    let addr = start(&server).await;
    let (mut answering, _) = member(addr, &mut sockets, &[]).await;
    let (mut silent, _) = member(addr, &mut sockets, &[]).await;
    let replies = server
        .of("/")
        .timeout(Duration::from_millis(300))
        .emit_with_ack("question", json!([]));
    answer(&mut answering, json!(1)).await;
    assert_eq!(silent.event().await.0, "question");
    match tokio::time::timeout(WAIT, replies).await.unwrap() {
        Err(BroadcastAckError::Missing { replies, missing }) => {
            assert_eq!(missing, 1);
            assert_eq!(replies, [Args::from(json!([1]))]);
        }
        other => panic!("expected a partial answer, got {other:?}"),
    }
}

#[tokio::test]
async fn broadcast_ack_without_timeout_stops_waiting_for_a_recipient_that_leaves() {
    let (server, mut sockets) = server();
    let addr = start(&server).await;
    let (mut answering, _) = member(addr, &mut sockets, &[]).await;
    let (mut leaving, _) = member(addr, &mut sockets, &[]).await;
    let replies = server.of("/").emit_with_ack("question", json!([]));
    answer(&mut answering, json!("here")).await;
    assert_eq!(leaving.event().await.0, "question");
    leaving.send_raw(wsio::Message::text("41")).await;
    match tokio::time::timeout(WAIT, replies).await.unwrap() {
        Err(BroadcastAckError::Missing { replies, missing }) => {
            assert_eq!((replies.len(), missing), (1, 1));
        }
        other => panic!("expected a partial answer, got {other:?}"),
    }
    assert_eq!(
        server.of("/").emit_with_ack("connect", json!([])).await,
        Err(BroadcastAckError::Emit(EmitError::ReservedEvent(
            "connect".into()
        )))
    );
    // Nobody to ask: an empty answer at once.
    assert_eq!(
        server
            .of("/")
            .to("nobody")
            .emit_with_ack("q", json!([]))
            .await,
        Ok(vec![])
    );
}

#[tokio::test]
async fn fetch_join_leave_and_disconnect_sockets() {
    let (server, mut sockets) = server();
    let addr = start(&server).await;
    let (mut red, red_socket) = member(addr, &mut sockets, &["red"]).await;
    let (mut other, other_socket) = member(addr, &mut sockets, &[]).await;
    let namespace = server.of("/");

    let ids =
        |sockets: Vec<FetchedSocket>| sorted(sockets.iter().map(|s| s.id().to_owned()).collect());
    assert_eq!(ids(namespace.fetch_sockets().await).len(), 2);
    assert_eq!(
        ids(namespace.in_("red").fetch_sockets().await),
        [red_socket.id().to_owned()]
    );

    namespace.except("red").sockets_join("blue");
    assert_eq!(
        other_socket.rooms(),
        sorted(vec![other_socket.id().into(), "blue".into()])
    );
    assert_eq!(namespace.local().to("blue").emit("hi", json!([])), Ok(1));
    assert_eq!(other.event().await.0, "hi");
    namespace.sockets_join("all");
    assert_eq!(namespace.to("all").sockets().len(), 2);
    namespace.to("blue").sockets_leave("all");
    assert_eq!(
        ids(namespace.to("all").fetch_sockets().await),
        [red_socket.id().to_owned()]
    );

    // Without close: the namespace is left, the connection stays.
    namespace.to("red").disconnect_sockets(false);
    assert_eq!(
        red.packet().await,
        Packet::Disconnect {
            namespace: "/".into()
        }
    );
    assert!(!red_socket.connected());
    let rejoined = red.join("/", None).await;
    assert_ne!(rejoined, red_socket.id());
    recv(&mut sockets).await;

    // With close: the whole connection ends.
    namespace.to("blue").disconnect_sockets(true);
    other.closed().await;
    assert!(!other_socket.connected());
    assert_eq!(namespace.fetch_sockets().await.len(), 1);
}

#[tokio::test]
async fn server_side_emit_reaches_no_other_node_on_a_single_server() {
    let (server, _) = server();
    let namespace = server.of("/");
    assert_eq!(namespace.server_side_emit("sync", json!([1])), Ok(0));
    assert_eq!(
        namespace
            .server_side_emit_with_ack("sync", json!([1]), Duration::from_secs(1))
            .await,
        Ok(vec![])
    );
    assert_eq!(
        namespace.server_side_emit("disconnect", json!([])),
        Err(EmitError::ReservedEvent("disconnect".into()))
    );
}

#[tokio::test]
async fn volatile_emits_are_dropped_while_the_connection_is_not_writable() {
    let (server, mut sockets) = server();
    let addr = start(&server).await;
    let (mut client, socket) = member(addr, &mut sockets, &[]).await;
    // Far below the queue limit, yet not writable: a packet is queued or being written.
    socket.emit("first", json!([])).unwrap();
    assert_eq!(socket.emit_volatile("dropped", json!([])), Ok(false));
    assert_eq!(server.of("/").volatile().emit("dropped", json!([])), Ok(0));
    assert_eq!(client.event().await.0, "first");
    // Writable again once the writer is done: the next volatile emit goes out.
    let sent = tokio::time::timeout(WAIT, async {
        while socket.emit_volatile("kept", json!([])) != Ok(true) {
            tokio::task::yield_now().await;
        }
    });
    sent.await.expect("the connection became writable");
    assert_eq!(client.event().await.0, "kept");
}

#[tokio::test]
async fn server_shortcuts_act_on_the_default_namespace() {
    let (server, mut sockets) = server();
    let addr = start(&server).await;
    let (mut red, _) = member(addr, &mut sockets, &["red"]).await;
    let (mut other, _) = member(addr, &mut sockets, &[]).await;
    assert_eq!(server.fetch_sockets().await.len(), 2);
    assert_eq!(server.in_("red").emit("to-red", json!([])), Ok(1));
    assert_eq!(server.except("red").emit("not-red", json!([])), Ok(1));
    assert_eq!(server.emit("all", json!([])), Ok(2));
    assert_eq!(red.event().await.0, "to-red");
    assert_eq!(red.event().await.0, "all");
    assert_eq!(other.event().await.0, "not-red");
    assert_eq!(other.event().await.0, "all");
    server.disconnect_sockets(true);
    red.closed().await;
    other.closed().await;
}
