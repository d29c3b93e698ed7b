//! One namespace's side of the [`RedisAdapter`](super::RedisAdapter): its channels, what it
//! publishes and how it answers the requests of other nodes.

use std::sync::Arc;
use std::time::Duration;

use rmpv::Value as Pack;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::Args;
use crate::events::server::adapter::{
    BoxFuture, NamespaceHandle, NodeAdapter, RemoteAck, RemoteAcks, SocketInfo, Target, local,
};
use crate::events::server::broadcast::BroadcastAckError;
use crate::events::server::lock;
use crate::events::server::namespace::ServerAck;

use super::Shared;
use super::wire::{
    ALL_ROOMS, BROADCAST, BROADCAST_ACK, BROADCAST_CLIENT_COUNT, EVENT, REMOTE_DISCONNECT,
    REMOTE_FETCH, REMOTE_JOIN, REMOTE_LEAVE, SERVER_SIDE_EMIT, SOCKETS, decode, encode, event_of,
    event_of_json, json_to_pack, options_pack, pack_to_json, parse, strings, target_of, to_pack,
};

/// One namespace's channels.
pub(super) struct RedisNamespace {
    pub(super) shared: Arc<Shared>,
    pub(super) handle: NamespaceHandle,
    pub(super) name: String,
    pub(super) channel: String,
    pub(super) request_channel: String,
    pub(super) response_channel: String,
    pub(super) specific_channel: String,
}

/// The namespace's adapter: a handle the namespace keeps.
pub(super) struct RedisNode(pub(super) Arc<RedisNamespace>);

impl RedisNamespace {
    pub(super) fn uid(&self) -> &str {
        &self.shared.uid
    }

    /// The socket.io packet of an event, as the Node adapter publishes it.
    pub(super) fn packet(&self, event: &str, args: &Args) -> Pack {
        let mut data = vec![Pack::from(event)];
        data.extend(
            args.values()
                .iter()
                .map(|value| to_pack(value, args.attachments())),
        );
        Pack::Map(vec![
            (Pack::from("type"), Pack::from(EVENT)),
            (Pack::from("data"), Pack::Array(data)),
            (Pack::from("nsp"), Pack::from(self.name.as_str())),
        ])
    }

    /// A request to the other nodes, as JSON.
    pub(super) fn request(&self, kind: u64, fields: Value) -> Vec<u8> {
        let mut request = json!({ "uid": self.uid(), "type": kind });
        if let (Some(request), Value::Object(fields)) = (request.as_object_mut(), fields) {
            request.extend(fields);
        }
        request.to_string().into_bytes()
    }

    pub(super) fn respond(&self, response: Vec<u8>) {
        self.shared.publish(self.response_channel.clone(), response);
    }

    /// A broadcast from another node: delivered to this node's recipients.
    pub(super) fn on_broadcast(&self, channel: &str, payload: &[u8]) -> Option<()> {
        let room = channel
            .strip_prefix(&self.channel)
            .and_then(|room| room.strip_suffix('#'))
            .unwrap_or_default();
        let namespace = self.handle.get()?;
        if !room.is_empty() && !local::has_room(&namespace, room) {
            return Some(());
        }
        let Pack::Array(items) = decode(payload)? else {
            return None;
        };
        let [uid, packet, options] = <[Pack; 3]>::try_from(items).ok()?;
        if uid.as_str() == Some(self.uid()) {
            return Some(());
        }
        let (event, args, nsp) = event_of(packet)?;
        if nsp != self.name {
            return Some(());
        }
        let options = pack_to_json(options, &mut Vec::new())?;
        let target = target_of(&options);
        local::broadcast(&namespace, &event, args, &target);
        Some(())
    }

    /// A request from another node (or from this one, which is skipped).
    pub(super) fn on_request(&self, payload: &[u8]) -> Option<()> {
        let (request, attachments) = parse(payload)?;
        if request.get("uid").and_then(Value::as_str) == Some(self.uid()) {
            return Some(());
        }
        let namespace = self.handle.get()?;
        let kind = request.get("type").and_then(Value::as_u64)?;
        let request_id = request.get("requestId").cloned();
        match kind {
            SOCKETS => {
                let target = Target {
                    rooms: strings(request.get("rooms")),
                    ..Target::default()
                };
                let ids: Vec<String> = local::sockets(&namespace, &target)
                    .iter()
                    .map(|socket| socket.id().to_owned())
                    .collect();
                let response = json!({ "requestId": request_id, "sockets": ids });
                self.respond(response.to_string().into_bytes());
            }
            ALL_ROOMS => {
                let rooms = lock(&namespace.rooms).all();
                let response = json!({ "requestId": request_id, "rooms": rooms });
                self.respond(response.to_string().into_bytes());
            }
            REMOTE_JOIN | REMOTE_LEAVE | REMOTE_DISCONNECT => {
                let target = match request.get("opts") {
                    Some(options) => target_of(options),
                    // The older form names one socket.
                    None => Target {
                        rooms: vec![request.get("sid")?.as_str()?.to_owned()],
                        ..Target::default()
                    },
                };
                let mut rooms = strings(request.get("rooms"));
                if let Some(room) = request.get("room").and_then(Value::as_str) {
                    rooms.push(room.to_owned());
                }
                match kind {
                    REMOTE_JOIN => local::add_sockets(&namespace, &target, &rooms),
                    REMOTE_LEAVE => local::del_sockets(&namespace, &target, &rooms),
                    _ => {
                        let close = request.get("close").and_then(Value::as_bool);
                        local::disconnect_sockets(&namespace, &target, close.unwrap_or(false));
                    }
                }
                if request.get("opts").is_none() {
                    let response = json!({ "requestId": request_id });
                    self.respond(response.to_string().into_bytes());
                }
            }
            REMOTE_FETCH => {
                let target = target_of(request.get("opts")?);
                let sockets: Vec<Value> = local::fetch_sockets(&namespace, &target)
                    .into_iter()
                    .map(|info| {
                        json!({
                            "id": info.id,
                            "handshake": info.handshake,
                            "rooms": info.rooms,
                            "data": info.data,
                        })
                    })
                    .collect();
                let response = json!({ "requestId": request_id, "sockets": sockets });
                self.respond(response.to_string().into_bytes());
            }
            SERVER_SIDE_EMIT => {
                let Value::Array(mut data) = request.get("data")?.clone() else {
                    return None;
                };
                if data.is_empty() {
                    return None;
                }
                let Value::String(event) = data.remove(0) else {
                    return None;
                };
                let args = Args::from_parts(data, attachments).ok()?;
                let ack = request_id.map(|request_id| {
                    let shared = Arc::clone(&self.shared);
                    let channel = self.response_channel.clone();
                    ServerAck::new(move |value| {
                        let response = json!({
                            "type": SERVER_SIDE_EMIT,
                            "requestId": request_id,
                            "data": value,
                        });
                        shared.publish(channel, response.to_string().into_bytes());
                    })
                });
                namespace.server_event(&event, args, ack);
            }
            BROADCAST => {
                let request_id = request_id?;
                let (event, args) = event_of_json(request.get("packet")?, attachments)?;
                let options = request.get("opts")?;
                let target = target_of(options);
                let waiting = local::broadcast_with_ack(&namespace, &event, args, &target);
                let response = json!({
                    "type": BROADCAST_CLIENT_COUNT,
                    "requestId": request_id,
                    "clientCount": waiting.len(),
                });
                self.respond(response.to_string().into_bytes());
                let timeout = target
                    .timeout
                    .unwrap_or(self.shared.config.requests_timeout);
                let deadline = Instant::now() + timeout;
                // Each acknowledgement is relayed as it comes, as the Node adapter does.
                for receiver in waiting {
                    let shared = Arc::clone(&self.shared);
                    let channel = self.response_channel.clone();
                    let request_id = json_to_pack(&request_id);
                    tokio::spawn(async move {
                        let Ok(Ok(reply)) = tokio::time::timeout_at(deadline, receiver).await
                        else {
                            return;
                        };
                        let first = reply
                            .values()
                            .first()
                            .map(|value| to_pack(value, reply.attachments()))
                            .unwrap_or(Pack::Nil);
                        let response = Pack::Map(vec![
                            (Pack::from("type"), Pack::from(BROADCAST_ACK)),
                            (Pack::from("requestId"), request_id),
                            (Pack::from("packet"), first),
                        ]);
                        shared.publish(channel, encode(&response));
                    });
                }
            }
            _ => return None,
        }
        Some(())
    }
}

impl NodeAdapter for RedisNode {
    fn broadcast(&self, event: &str, args: &Args, target: &Target) {
        let node = &self.0;
        let message = Pack::Array(vec![
            Pack::from(node.uid()),
            node.packet(event, args),
            options_pack(target),
        ]);
        let channel = match target.rooms.as_slice() {
            [room] => format!("{}{room}#", node.channel),
            _ => node.channel.clone(),
        };
        node.shared.publish(channel, encode(&message));
    }

    fn broadcast_with_ack(&self, event: &str, args: &Args, target: &Target) -> RemoteAcks {
        let node = Arc::clone(&self.0);
        let request_id = node.shared.request_id();
        let request = Pack::Map(vec![
            (Pack::from("uid"), Pack::from(node.uid())),
            (Pack::from("requestId"), Pack::from(request_id.as_str())),
            (Pack::from("type"), Pack::from(BROADCAST)),
            (Pack::from("packet"), node.packet(event, args)),
            (Pack::from("opts"), options_pack(target)),
        ]);
        let (mut replies, pending) = node.shared.wait_for(&request_id);
        node.shared
            .publish(node.request_channel.clone(), encode(&request));
        let (sender, events) = mpsc::unbounded_channel();
        let timeout = target
            .timeout
            .unwrap_or(node.shared.config.requests_timeout);
        let deadline = Instant::now() + timeout;
        tokio::spawn(async move {
            let _pending = pending;
            while let Ok(Some((reply, attachments))) =
                tokio::time::timeout_at(deadline, replies.recv()).await
            {
                let event = match reply.get("type").and_then(Value::as_u64) {
                    Some(BROADCAST_CLIENT_COUNT) => {
                        let count = reply.get("clientCount").and_then(Value::as_u64);
                        RemoteAck::ClientCount(count.unwrap_or(0) as usize)
                    }
                    Some(BROADCAST_ACK) => {
                        let value = reply.get("packet").cloned().unwrap_or(Value::Null);
                        match Args::from_parts(vec![value], attachments) {
                            Ok(args) => RemoteAck::Ack(args),
                            Err(_) => continue,
                        }
                    }
                    _ => continue,
                };
                if sender.send(event).is_err() {
                    return;
                }
            }
        });
        let counting = Arc::clone(&self.0);
        RemoteAcks {
            servers: Box::pin(
                async move { counting.shared.numsub(&counting.request_channel).await },
            ),
            events,
        }
    }

    fn fetch_sockets(&self, target: &Target) -> BoxFuture<Vec<SocketInfo>> {
        let node = Arc::clone(&self.0);
        let options = json!({ "rooms": target.rooms, "except": target.except_all() });
        Box::pin(async move {
            let others = node
                .shared
                .numsub(&node.request_channel)
                .await
                .saturating_sub(1);
            if others == 0 {
                return Vec::new();
            }
            let request_id = node.shared.request_id();
            let (mut replies, _pending) = node.shared.wait_for(&request_id);
            let request = node.request(
                REMOTE_FETCH,
                json!({ "requestId": request_id, "opts": options }),
            );
            node.shared.publish(node.request_channel.clone(), request);
            let deadline = Instant::now() + node.shared.config.requests_timeout;
            let mut sockets = Vec::new();
            for _ in 0..others {
                let Ok(Some((reply, _))) = tokio::time::timeout_at(deadline, replies.recv()).await
                else {
                    break;
                };
                let Some(Value::Array(found)) = reply.get("sockets") else {
                    continue;
                };
                sockets.extend(found.iter().filter_map(|socket| {
                    Some(SocketInfo {
                        id: socket.get("id")?.as_str()?.to_owned(),
                        rooms: strings(socket.get("rooms")),
                        handshake: socket.get("handshake").cloned().unwrap_or(Value::Null),
                        data: socket.get("data").cloned().unwrap_or(Value::Null),
                    })
                }));
            }
            sockets
        })
    }

    fn add_sockets(&self, target: &Target, rooms: &[String]) {
        self.remote_operation(REMOTE_JOIN, target, json!({ "rooms": rooms }));
    }

    fn del_sockets(&self, target: &Target, rooms: &[String]) {
        self.remote_operation(REMOTE_LEAVE, target, json!({ "rooms": rooms }));
    }

    fn disconnect_sockets(&self, target: &Target, close: bool) {
        self.remote_operation(REMOTE_DISCONNECT, target, json!({ "close": close }));
    }

    fn server_side_emit(&self, event: &str, args: &Args) -> bool {
        let node = &self.0;
        let request = server_side_request(node, event, args, None);
        node.shared.publish(node.request_channel.clone(), request)
    }

    fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: &Args,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<Args>, BroadcastAckError>> {
        let node = Arc::clone(&self.0);
        let request_id = node.shared.request_id();
        let request = server_side_request(&node, event, args, Some(&request_id));
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let counted =
                tokio::time::timeout_at(deadline, node.shared.numsub(&node.request_channel));
            let others = counted.await.unwrap_or(1).saturating_sub(1);
            if others == 0 {
                return Ok(Vec::new());
            }
            let (mut replies, _pending) = node.shared.wait_for(&request_id);
            node.shared.publish(node.request_channel.clone(), request);
            let mut answers = Vec::new();
            while answers.len() < others {
                let Ok(Some((reply, attachments))) =
                    tokio::time::timeout_at(deadline, replies.recv()).await
                else {
                    break;
                };
                let value = reply.get("data").cloned().unwrap_or(Value::Null);
                if let Ok(args) = Args::from_parts(vec![value], attachments) {
                    answers.push(args);
                }
            }
            match others.saturating_sub(answers.len()) {
                0 => Ok(answers),
                missing => Err(BroadcastAckError::Missing {
                    replies: answers,
                    missing,
                }),
            }
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let node = Arc::clone(&self.0);
        Box::pin(async move { node.shared.numsub(&node.request_channel).await })
    }

    fn requests_timeout(&self) -> Duration {
        self.0.shared.config.requests_timeout
    }
}

impl RedisNode {
    /// Publishes a join, leave or disconnect for the other nodes' recipients of `target`.
    pub(super) fn remote_operation(&self, kind: u64, target: &Target, mut fields: Value) {
        let node = &self.0;
        if let Some(fields) = fields.as_object_mut() {
            fields.insert(
                "opts".into(),
                json!({ "rooms": target.rooms, "except": target.except_all() }),
            );
        }
        let request = node.request(kind, fields);
        node.shared.publish(node.request_channel.clone(), request);
    }
}

/// A `serverSideEmit` request: JSON, or msgpack when the arguments carry binary data.
pub(super) fn server_side_request(
    node: &RedisNamespace,
    event: &str,
    args: &Args,
    request_id: Option<&str>,
) -> Vec<u8> {
    if args.attachments().is_empty() {
        let mut data = vec![Value::from(event)];
        data.extend(args.values().iter().cloned());
        let mut fields = json!({ "data": data });
        if let (Some(fields), Some(id)) = (fields.as_object_mut(), request_id) {
            fields.insert("requestId".into(), Value::from(id));
        }
        return node.request(SERVER_SIDE_EMIT, fields);
    }
    let mut data = vec![Pack::from(event)];
    data.extend(
        args.values()
            .iter()
            .map(|value| to_pack(value, args.attachments())),
    );
    let mut request = vec![
        (Pack::from("uid"), Pack::from(node.uid())),
        (Pack::from("type"), Pack::from(SERVER_SIDE_EMIT)),
        (Pack::from("data"), Pack::Array(data)),
    ];
    if let Some(id) = request_id {
        request.push((Pack::from("requestId"), Pack::from(id)));
    }
    encode(&Pack::Map(request))
}
