//! The wire format of Node's `@socket.io/redis-adapter`: its request kinds, msgpack and JSON
//! messages, and the conversions between msgpack and JSON with binary placeholders.

use std::time::Duration;

use bytes::Bytes;
use rmpv::Value as Pack;
use serde_json::{Map, Value, json};

use crate::events::Args;
use crate::events::server::adapter::Target;

/// An answer to a request: its JSON and the binary data its placeholders point at.
pub(super) type Reply = (Value, Vec<Bytes>);

// The request kinds of @socket.io/redis-adapter, by number.
pub(super) const SOCKETS: u64 = 0;
pub(super) const ALL_ROOMS: u64 = 1;
pub(super) const REMOTE_JOIN: u64 = 2;
pub(super) const REMOTE_LEAVE: u64 = 3;
pub(super) const REMOTE_DISCONNECT: u64 = 4;
pub(super) const REMOTE_FETCH: u64 = 5;
pub(super) const SERVER_SIDE_EMIT: u64 = 6;
pub(super) const BROADCAST: u64 = 7;
pub(super) const BROADCAST_CLIENT_COUNT: u64 = 8;
pub(super) const BROADCAST_ACK: u64 = 9;

/// socket.io's packet type of an event.
pub(super) const EVENT: u64 = 2;
/// socket.io's packet type of an event with binary data.
pub(super) const BINARY_EVENT: u64 = 5;
/// How deep a msgpack message may nest before it is refused.
const MAX_DEPTH: usize = 64;

/// `{rooms, except, flags}` as the Node adapter publishes them.
pub(super) fn options_pack(target: &Target) -> Pack {
    let strings = |items: &[String]| {
        Pack::Array(items.iter().map(|item| Pack::from(item.as_str())).collect())
    };
    let mut flags = Vec::new();
    if target.volatile {
        flags.push((Pack::from("volatile"), Pack::from(true)));
    }
    if target.uncompressed {
        flags.push((Pack::from("compress"), Pack::from(false)));
    }
    if let Some(timeout) = target.timeout {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        flags.push((Pack::from("timeout"), Pack::from(millis)));
    }
    Pack::Map(vec![
        (Pack::from("rooms"), strings(&target.rooms)),
        (Pack::from("except"), strings(&target.except_all())),
        (Pack::from("flags"), Pack::Map(flags)),
    ])
}

/// The recipients named by `{rooms, except, flags}`.
pub(super) fn target_of(options: &Value) -> Target {
    let flags = options.get("flags");
    let flag = |name| flags.and_then(|flags| flags.get(name));
    Target {
        rooms: strings(options.get("rooms")),
        except: strings(options.get("except")),
        skip: None,
        volatile: flag("volatile").and_then(Value::as_bool).unwrap_or(false),
        local: false,
        timeout: flag("timeout")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
        uncompressed: flag("compress").and_then(Value::as_bool) == Some(false),
    }
}

/// The strings (and numbers, which socket.io allows as room names) of a JSON array.
pub(super) fn strings(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .collect()
}

/// An event packet `{type, data: [event, ...args], nsp}` from msgpack: its name, arguments
/// and namespace.
pub(super) fn event_of(packet: Pack) -> Option<(String, Args, String)> {
    let mut attachments = Vec::new();
    let packet = pack_to_json(packet, &mut attachments)?;
    let nsp = packet
        .get("nsp")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    let (event, args) = event_of_json(&packet, attachments)?;
    Some((event, args, nsp))
}

/// An event packet already turned into JSON with placeholders.
pub(super) fn event_of_json(packet: &Value, attachments: Vec<Bytes>) -> Option<(String, Args)> {
    let kind = packet.get("type").and_then(Value::as_u64)?;
    if kind != EVENT && kind != BINARY_EVENT {
        return None;
    }
    let Some(Value::Array(data)) = packet.get("data") else {
        return None;
    };
    let (event, args) = data.split_first()?;
    let event = event.as_str()?.to_owned();
    let args = Args::from_parts(args.to_vec(), attachments).ok()?;
    Some((event, args))
}

/// A message on a request or response channel: JSON when it starts with `{`, msgpack
/// otherwise.
pub(super) fn parse(payload: &[u8]) -> Option<Reply> {
    if payload.first() == Some(&b'{') {
        let value = serde_json::from_slice(payload).ok()?;
        return Some((value, Vec::new()));
    }
    let mut attachments = Vec::new();
    let value = pack_to_json(decode(payload)?, &mut attachments)?;
    Some((value, attachments))
}

pub(super) fn decode(payload: &[u8]) -> Option<Pack> {
    let mut reader = payload;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH).ok()?;
    reader.is_empty().then_some(value)
}

pub(super) fn encode(value: &Pack) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// msgpack to JSON; binary data becomes placeholders pointing into `attachments`. `None`
/// for what JSON cannot hold (a map key that is not a string or number).
pub(super) fn pack_to_json(value: Pack, attachments: &mut Vec<Bytes>) -> Option<Value> {
    Some(match value {
        Pack::Nil => Value::Null,
        Pack::Boolean(value) => Value::Bool(value),
        Pack::Integer(value) => match (value.as_u64(), value.as_i64()) {
            (Some(value), _) => Value::from(value),
            (None, Some(value)) => Value::from(value),
            (None, None) => Value::Null,
        },
        Pack::F32(value) => serde_json::Number::from_f64(f64::from(value))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Pack::F64(value) => serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Pack::String(text) => Value::String(text.into_str()?),
        Pack::Binary(data) => {
            attachments.push(Bytes::from(data));
            json!({ "_placeholder": true, "num": attachments.len() - 1 })
        }
        Pack::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| pack_to_json(item, attachments))
                .collect::<Option<_>>()?,
        ),
        Pack::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Pack::String(key) => key.into_str()?,
                    Pack::Integer(key) => key.to_string(),
                    _ => return None,
                };
                map.insert(key, pack_to_json(value, attachments)?);
            }
            Value::Object(map)
        }
        // notepack writes dates and the like as extensions; JSON has nothing for them.
        Pack::Ext(..) => Value::Null,
    })
}

/// JSON with placeholders to msgpack: each placeholder becomes its binary data.
pub(super) fn to_pack(value: &Value, attachments: &[Bytes]) -> Pack {
    if let Value::Object(map) = value
        && map.get("_placeholder") == Some(&Value::Bool(true))
        && let Some(data) = map
            .get("num")
            .and_then(Value::as_u64)
            .and_then(|num| attachments.get(usize::try_from(num).ok()?))
    {
        return Pack::Binary(data.to_vec());
    }
    match value {
        Value::Array(items) => Pack::Array(
            items
                .iter()
                .map(|item| to_pack(item, attachments))
                .collect(),
        ),
        Value::Object(map) => Pack::Map(
            map.iter()
                .map(|(key, value)| (Pack::from(key.as_str()), to_pack(value, attachments)))
                .collect(),
        ),
        other => json_to_pack(other),
    }
}

/// Plain JSON to msgpack.
pub(super) fn json_to_pack(value: &Value) -> Pack {
    match value {
        Value::Null => Pack::Nil,
        Value::Bool(value) => Pack::from(*value),
        Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(value), _, _) => Pack::from(value),
            (None, Some(value), _) => Pack::from(value),
            (None, None, Some(value)) => Pack::from(value),
            _ => Pack::Nil,
        },
        Value::String(text) => Pack::from(text.as_str()),
        Value::Array(items) => Pack::Array(items.iter().map(json_to_pack).collect()),
        Value::Object(map) => Pack::Map(
            map.iter()
                .map(|(key, value)| (Pack::from(key.as_str()), json_to_pack(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trips_between_msgpack_and_placeholders() {
        let args = Args::new().with("a").with_binary(vec![1, 2, 3]);
        let packed: Vec<Pack> = args
            .values()
            .iter()
            .map(|value| to_pack(value, args.attachments()))
            .collect();
        assert_eq!(packed[1], Pack::Binary(vec![1, 2, 3]));
        let mut attachments = Vec::new();
        let back = pack_to_json(Pack::Array(packed), &mut attachments).unwrap();
        let Value::Array(values) = back else {
            panic!("not an array")
        };
        assert_eq!(Args::from_parts(values, attachments).unwrap(), args);
    }

    #[test]
    fn malformed_messages_do_not_parse() {
        assert!(parse(b"{not json").is_none());
        assert!(parse(&[0xa5, b'a']).is_none());
        // A map whose key is an array, and trailing bytes.
        assert!(parse(&[0x81, 0x90, 0x01]).is_none());
        assert!(decode(&[0x01, 0x02]).is_none());
        // Nesting deeper than the limit.
        assert!(decode(&[0x91; 1000]).is_none());
    }
}
