//! The HTTP long-polling payload of Engine.IO v4: packets joined by the record separator
//! `\x1e`, a binary packet written as `b` and its base64.
//!
//! Each record is what one WebSocket message carries, so a payload converts to and from the
//! messages [`EnginePacket::decode`](super::EnginePacket::decode) reads.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::EngineError;
use crate::Message;
use crate::proto::{MessageKind, PreparedMessage};

/// The record separator between the packets of a payload.
pub const SEPARATOR: char = '\x1e';

/// Splits a request body into the messages its packets would be over WebSocket.
pub fn decode_payload(body: &[u8]) -> Result<Vec<Message>, EngineError> {
    let text = std::str::from_utf8(body).map_err(|_| EngineError::InvalidPayload)?;
    text.split(SEPARATOR)
        .map(|record| match record.strip_prefix('b') {
            Some(base64) => STANDARD
                .decode(base64)
                .map(Message::binary)
                .map_err(|_| EngineError::InvalidPayload),
            None if record.is_empty() => Err(EngineError::Empty),
            None => Ok(Message::text(record)),
        })
        .collect()
}

/// Appends one message to a response payload, separated from the records before it.
pub fn push_record(payload: &mut String, message: &PreparedMessage) {
    if !payload.is_empty() {
        payload.push(SEPARATOR);
    }
    match message.kind() {
        MessageKind::Text => payload.push_str(&String::from_utf8_lossy(message.payload())),
        MessageKind::Binary => {
            payload.push('b');
            STANDARD.encode_string(message.payload(), payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_on_the_separator_with_binary_in_base64() {
        let body = "42[\"hello\"]\x1e451-[\"b\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID\x1e3";
        assert_eq!(
            decode_payload(body.as_bytes()).unwrap(),
            [
                Message::text("42[\"hello\"]"),
                Message::text("451-[\"b\",{\"_placeholder\":true,\"num\":0}]"),
                Message::binary(vec![1, 2, 3]),
                Message::text("3"),
            ]
        );
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        assert_eq!(decode_payload(b""), Err(EngineError::Empty));
        assert_eq!(decode_payload(b"40\x1e"), Err(EngineError::Empty));
        assert_eq!(decode_payload(b"b!!"), Err(EngineError::InvalidPayload));
        assert_eq!(
            decode_payload(&[0x34, 0xff]),
            Err(EngineError::InvalidPayload)
        );
    }

    #[test]
    fn messages_encode_as_records() {
        let mut payload = String::new();
        push_record(
            &mut payload,
            &PreparedMessage::new(Message::text("40{\"sid\":\"x\"}")),
        );
        push_record(
            &mut payload,
            &PreparedMessage::new(Message::binary(vec![1, 2, 3])),
        );
        push_record(&mut payload, &PreparedMessage::new(Message::text("2")));
        assert_eq!(payload, "40{\"sid\":\"x\"}\x1ebAQID\x1e2");
        let decoded = decode_payload(payload.as_bytes()).unwrap();
        assert_eq!(decoded[1], Message::binary(vec![1, 2, 3]));
    }
}
