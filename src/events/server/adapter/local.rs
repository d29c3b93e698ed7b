//! The in-memory behaviour every node has: the recipients of an operation among this node's
//! sockets, and delivery to them with the packet encoded once for all of them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::SocketInfo;
use crate::events::server::lock;
use crate::events::server::namespace::NamespaceInner;
use crate::events::server::queue::{Push, prepare_with};
use crate::events::server::socket::Socket;
use crate::events::{Args, Packet};

/// The recipients of an operation and its flags: socket.io's `BroadcastOptions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Target {
    /// Rooms sent to; every socket when empty.
    pub(crate) rooms: Vec<String>,
    /// Rooms whose sockets are left out.
    pub(crate) except: Vec<String>,
    /// A socket left out (the sender of `socket.broadcast`).
    pub(crate) skip: Option<String>,
    /// Dropped for connections that are not writable.
    pub(crate) volatile: bool,
    /// This node only.
    pub(crate) local: bool,
    /// How long acknowledgements are awaited.
    pub(crate) timeout: Option<Duration>,
    /// Sent without permessage-deflate (socket.io's `compress(false)`).
    pub(crate) uncompressed: bool,
}

impl Target {
    /// The rooms left out, the skipped socket's own room included: how other nodes see them.
    pub(crate) fn except_all(&self) -> Vec<String> {
        let mut except = self.except.clone();
        if let Some(skip) = &self.skip
            && !except.contains(skip)
        {
            except.push(skip.clone());
        }
        except
    }
}

/// The sockets of this node that `target` reaches, each once.
pub(crate) fn sockets(namespace: &NamespaceInner, target: &Target) -> Vec<Socket> {
    // Rooms then sockets, the one order in which both locks are ever held together.
    let rooms = lock(&namespace.rooms);
    let sockets = lock(&namespace.sockets);
    let mut reached = Vec::with_capacity(match target.rooms.is_empty() {
        true => sockets.len(),
        false => 0,
    });
    rooms.recipients(
        &target.rooms,
        &target.except,
        target.skip.as_deref(),
        |id| reached.extend(sockets.get(id).cloned()),
    );
    reached
}

/// Whether some socket of this node is in `room`.
pub(crate) fn has_room(namespace: &NamespaceInner, room: &str) -> bool {
    lock(&namespace.rooms).has_room(room)
}

/// Sends an event to this node's recipients, encoded once; returns how many queued it.
pub(crate) fn broadcast(
    namespace: &NamespaceInner,
    event: &str,
    args: Args,
    target: &Target,
) -> usize {
    let packet = Packet::Event {
        namespace: namespace.name.clone(),
        event: event.to_owned(),
        args,
        ack: None,
    };
    let outgoing = prepare_with(packet.to_messages(), !target.uncompressed);
    sockets(namespace, target)
        .iter()
        .filter(|socket| socket.push(&outgoing, target.volatile) == Push::Queued)
        .count()
}

/// Sends an event to this node's recipients under one acknowledgement id; returns their
/// answers to come.
pub(crate) fn broadcast_with_ack(
    namespace: &NamespaceInner,
    event: &str,
    args: Args,
    target: &Target,
) -> Vec<oneshot::Receiver<Args>> {
    let id = namespace.next_ack_id();
    let packet = Packet::Event {
        namespace: namespace.name.clone(),
        event: event.to_owned(),
        args,
        ack: Some(id),
    };
    let outgoing = prepare_with(packet.to_messages(), !target.uncompressed);
    let mut waiting = Vec::new();
    for socket in sockets(namespace, target) {
        let Some(receiver) = socket.expect_ack(id) else {
            continue;
        };
        match socket.push(&outgoing, target.volatile) {
            Push::Queued => waiting.push(receiver),
            _ => socket.forget_ack(id),
        }
    }
    waiting
}

/// Puts this node's recipients in `rooms`.
pub(crate) fn add_sockets(namespace: &NamespaceInner, target: &Target, rooms: &[String]) {
    for socket in sockets(namespace, target) {
        for room in rooms {
            socket.join(room);
        }
    }
}

/// Takes this node's recipients out of `rooms`.
pub(crate) fn del_sockets(namespace: &NamespaceInner, target: &Target, rooms: &[String]) {
    for socket in sockets(namespace, target) {
        for room in rooms {
            socket.leave(room);
        }
    }
}

/// Disconnects this node's recipients, or closes their connections with `close`.
pub(crate) fn disconnect_sockets(namespace: &NamespaceInner, target: &Target, close: bool) {
    for socket in sockets(namespace, target) {
        match close {
            true => socket.close(),
            false => socket.disconnect(),
        }
    }
}

/// This node's recipients, described as socket.io's `fetchSockets` answer describes them.
pub(crate) fn fetch_sockets(namespace: &NamespaceInner, target: &Target) -> Vec<SocketInfo> {
    sockets(namespace, target).iter().map(describe).collect()
}

/// A socket as other nodes see it: id, rooms, handshake (as socket.io has it) and data.
pub(crate) fn describe(socket: &Socket) -> SocketInfo {
    let handshake = socket.handshake();
    let mut headers = Map::new();
    for (name, value) in handshake.headers() {
        headers
            .entry(name.clone())
            .or_insert_with(|| Value::String(value.clone()));
    }
    let mut query = Map::new();
    for (name, value) in handshake.query() {
        query
            .entry(name.clone())
            .or_insert_with(|| Value::String(value.clone()));
    }
    let issued = handshake
        .time()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or_default();
    let time = time_text(handshake.time());
    SocketInfo {
        id: socket.id().to_owned(),
        rooms: socket.rooms(),
        handshake: json!({
            "headers": headers,
            "time": time,
            "address": handshake.address().map(|address| address.ip().to_string()).unwrap_or_default(),
            "xdomain": handshake.header("origin").is_some(),
            "secure": handshake.secure(),
            "issued": issued,
            "url": handshake.url(),
            "query": query,
            "auth": handshake.auth(),
        }),
        data: json!({}),
    }
}

/// Seconds since the epoch, as text: socket.io sends `new Date().toString()`, whose format no
/// peer parses; a stable, sortable form serves better.
fn time_text(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs().to_string())
        .unwrap_or_default()
}
