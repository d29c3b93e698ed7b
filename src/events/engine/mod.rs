//! Engine.IO v4 packets, over WebSocket and in HTTP long-polling payloads.
//!
//! Over WebSocket each message is one packet: a text message starts with the packet type as
//! one ASCII digit (`0` open … `6` noop) followed by its data, and a binary message is a
//! `message` packet whose data is the raw bytes. Long-polling carries the same packets as the
//! records of a payload ([`payload`]), a binary one as `b` and its base64.

pub mod payload;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Message;

/// One Engine.IO packet, borrowing its text from the WebSocket message it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnginePacket<'a> {
    /// `0`: the handshake the server sends first.
    Open(OpenInfo),
    /// `1`: the peer closes the session.
    Close,
    /// `2`: a heartbeat ping; the data is empty, or `probe` during a transport upgrade.
    Ping(&'a str),
    /// `3`: the answer to a ping, echoing its data.
    Pong(&'a str),
    /// `4`: a text message: one encoded Socket.IO packet.
    Message(&'a str),
    /// A binary message: one Socket.IO attachment.
    Binary(Bytes),
    /// `5`: completes a transport upgrade.
    Upgrade,
    /// `6`: does nothing (used by long-polling during upgrades).
    Noop,
}

/// The data of the `open` packet: the session id and the heartbeat the server runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInfo {
    /// The Engine.IO session id.
    pub sid: String,
    /// Transports the client may upgrade to: `["websocket"]` for a long-polling session,
    /// empty over WebSocket.
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the client has to answer a ping.
    pub ping_timeout: u64,
    /// The largest message, in bytes, the server accepts.
    pub max_payload: u64,
}

/// Why a WebSocket message is not an Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A text message with nothing in it.
    #[error("empty engine.io packet")]
    Empty,
    /// The first character is not a packet type `0`..=`6`.
    #[error("unknown engine.io packet type {0:?}")]
    UnknownType(char),
    /// Data where the packet type takes none.
    #[error("unexpected data after engine.io packet type {0}")]
    UnexpectedData(u8),
    /// The `open` packet's JSON is not a handshake.
    #[error("invalid engine.io open packet: {0}")]
    InvalidOpen(String),
    /// A long-polling payload that is not UTF-8, or a `b` record that is not base64.
    #[error("invalid engine.io payload")]
    InvalidPayload,
}

impl<'a> EnginePacket<'a> {
    /// Decodes the packet a WebSocket message carries.
    pub fn decode(message: &'a Message) -> Result<Self, EngineError> {
        match message {
            Message::Binary(data) => Ok(Self::Binary(data.clone())),
            Message::Text(text) => Self::decode_text(text.as_str()),
        }
    }

    /// Decodes a text message's content.
    pub fn decode_text(text: &'a str) -> Result<Self, EngineError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(EngineError::Empty)?;
        let data = chars.as_str();
        let no_data = |packet: Self, digit: u8| match data.is_empty() {
            true => Ok(packet),
            false => Err(EngineError::UnexpectedData(digit)),
        };
        match kind {
            '0' => serde_json::from_str(data)
                .map(Self::Open)
                .map_err(|error| EngineError::InvalidOpen(error.to_string())),
            '1' => no_data(Self::Close, 1),
            '2' => Ok(Self::Ping(data)),
            '3' => Ok(Self::Pong(data)),
            '4' => Ok(Self::Message(data)),
            '5' => no_data(Self::Upgrade, 5),
            '6' => no_data(Self::Noop, 6),
            other => Err(EngineError::UnknownType(other)),
        }
    }

    /// Encodes the packet as the WebSocket message that carries it.
    pub fn encode(&self) -> Message {
        let text = match self {
            Self::Binary(data) => return Message::Binary(data.clone()),
            Self::Open(info) => {
                // Serializing a struct of strings and integers cannot fail.
                let json = serde_json::to_string(info).unwrap_or_default();
                format!("0{json}")
            }
            Self::Close => "1".to_owned(),
            Self::Ping(data) => format!("2{data}"),
            Self::Pong(data) => format!("3{data}"),
            Self::Message(data) => format!("4{data}"),
            Self::Upgrade => "5".to_owned(),
            Self::Noop => "6".to_owned(),
        };
        Message::text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_from_the_protocol_document() {
        let text = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let packet = EnginePacket::decode_text(text).unwrap();
        let EnginePacket::Open(info) = &packet else {
            panic!("not an open packet: {packet:?}");
        };
        assert_eq!(info.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!((info.ping_interval, info.ping_timeout), (25000, 20000));
        assert_eq!(info.max_payload, 1_000_000);
        assert_eq!(packet.encode(), Message::text(text));
    }

    #[test]
    fn open_packet_with_whitespace_or_unknown_fields_reads_and_re_encodes_canonically() {
        // Found by the socketio_packet fuzz target: the JSON is re-serialised, not copied.
        let canonical = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000}"#;
        for text in [
            "0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":100000\r}",
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000,"extra":1}"#,
        ] {
            let packet = EnginePacket::decode_text(text).unwrap();
            assert_eq!(packet.encode(), Message::text(canonical));
            assert_eq!(EnginePacket::decode_text(canonical), Ok(packet));
        }
    }

    #[test]
    fn text_packets_by_type_digit() {
        let cases = [
            ("1", EnginePacket::Close),
            ("2", EnginePacket::Ping("")),
            ("2probe", EnginePacket::Ping("probe")),
            ("3", EnginePacket::Pong("")),
            ("4hello", EnginePacket::Message("hello")),
            ("5", EnginePacket::Upgrade),
            ("6", EnginePacket::Noop),
        ];
        for (text, expected) in cases {
            assert_eq!(EnginePacket::decode_text(text), Ok(expected.clone()));
            assert_eq!(expected.encode(), Message::text(text));
        }
    }

    #[test]
    fn binary_message_is_raw_data() {
        let message = Message::binary(vec![1, 2, 3]);
        let packet = EnginePacket::decode(&message).unwrap();
        assert_eq!(packet, EnginePacket::Binary(Bytes::from_static(&[1, 2, 3])));
        assert_eq!(packet.encode(), message);
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        assert_eq!(EnginePacket::decode_text(""), Err(EngineError::Empty));
        assert_eq!(
            EnginePacket::decode_text("7"),
            Err(EngineError::UnknownType('7'))
        );
        assert_eq!(
            EnginePacket::decode_text("b4AQI="),
            Err(EngineError::UnknownType('b'))
        );
        assert_eq!(
            EnginePacket::decode_text("1x"),
            Err(EngineError::UnexpectedData(1))
        );
        assert!(matches!(
            EnginePacket::decode_text("0{}"),
            Err(EngineError::InvalidOpen(_))
        ));
    }
}
