//! Socket.IO v5 packets: `<type>[<attachments>-][<namespace>,][<ack id>][<json>]`.
//!
//! The codec is pure: [`Packet::encode`] turns a packet into text plus binary attachments, and
//! [`Decoder`] turns the text and then the attachments back into a packet, with bounded sizes
//! and typed errors for everything else.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::binary::Args;
use crate::Message;

/// Event names that socket.io reserves for its own events; a packet using one is refused.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The namespace a packet without one belongs to.
pub const DEFAULT_NAMESPACE: &str = "/";

/// One Socket.IO packet, its binary attachments included.
///
/// `BINARY_EVENT` and `BINARY_ACK` are not separate variants: an [`Event`](Self::Event) or
/// [`Ack`](Self::Ack) whose [`Args`] carry attachments is encoded as the binary type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Packet {
    /// `0`: the client asks to join a namespace (with an optional auth object), or the server
    /// accepts (with `{"sid": …}`).
    Connect {
        /// The namespace, starting with `/`.
        namespace: String,
        /// The auth payload or the server's answer; always a JSON object.
        data: Option<Map<String, Value>>,
    },
    /// `1`: either side leaves a namespace.
    Disconnect {
        /// The namespace, starting with `/`.
        namespace: String,
    },
    /// `2` or `5`: an event with its arguments, asking for an acknowledgement when `ack` is set.
    Event {
        /// The namespace, starting with `/`.
        namespace: String,
        /// The event name, never one of [`RESERVED_EVENTS`].
        event: String,
        /// The arguments after the name.
        args: Args,
        /// The id the acknowledgement must carry.
        ack: Option<u64>,
    },
    /// `3` or `6`: the acknowledgement of event `id`.
    Ack {
        /// The namespace, starting with `/`.
        namespace: String,
        /// The id of the event acknowledged.
        id: u64,
        /// The arguments of the acknowledgement.
        args: Args,
    },
    /// `4`: the server refuses a namespace connection.
    ConnectError {
        /// The namespace, starting with `/`.
        namespace: String,
        /// Why; `{"message": …}` on the wire.
        message: String,
        /// Extra data for the client (`{"data": …}` on the wire).
        data: Option<Value>,
    },
}

/// A packet encoded for the wire: the text, then one binary message per attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    /// The Socket.IO text, without Engine.IO's `4` prefix.
    pub text: String,
    /// The attachments, sent in this order after the text.
    pub attachments: Vec<Bytes>,
}

/// Limits the decoder enforces; the defaults match socket.io's `maxHttpBufferSize` (1 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// The largest packet text, and the largest attachment, in bytes.
    pub max_packet_size: usize,
    /// The most attachments one packet may announce.
    pub max_attachments: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_packet_size: 1_000_000,
            max_attachments: 64,
        }
    }
}

/// Why a packet could not be decoded. The peer sent it: the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The text is empty.
    #[error("empty socket.io packet")]
    Empty,
    /// The first character is not a packet type `0`..=`6`.
    #[error("unknown socket.io packet type {0:?}")]
    UnknownType(char),
    /// The text or an attachment exceeds [`DecodeLimits::max_packet_size`].
    #[error("socket.io packet of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The size received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A binary packet without a valid `<count>-` prefix.
    #[error("invalid attachment count")]
    InvalidAttachmentCount,
    /// More attachments than [`DecodeLimits::max_attachments`].
    #[error("{count} attachments exceed the limit of {limit}")]
    TooManyAttachments {
        /// The count announced.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The acknowledgement id does not fit in 64 bits.
    #[error("acknowledgement id too large")]
    AckIdTooLarge,
    /// The payload is not JSON (or nests too deeply, or holds a number out of range).
    #[error("invalid json payload: {0}")]
    InvalidJson(String),
    /// The payload has the wrong shape for the packet type.
    #[error("invalid payload for packet type {0}")]
    InvalidPayload(u8),
    /// An event whose first argument is neither a string nor a number.
    #[error("event name is not a string or a number")]
    InvalidEventName,
    /// An event named like one of socket.io's own.
    #[error("reserved event name {0:?}")]
    ReservedEventName(String),
    /// An acknowledgement id on a packet type that takes none, or none on an `ACK`.
    #[error("acknowledgement id not allowed here, or missing")]
    InvalidAckId,
    /// `{"_placeholder":true}` without a valid `num`.
    #[error("invalid attachment placeholder")]
    InvalidPlaceholder,
    /// A placeholder pointing past the attachments.
    #[error("placeholder {index} out of range for {count} attachments")]
    PlaceholderOutOfRange {
        /// The placeholder's `num`.
        index: usize,
        /// The attachments received.
        count: usize,
    },
    /// A text packet arrived while attachments were still expected.
    #[error("text packet while waiting for attachments")]
    UnexpectedText,
    /// A binary message arrived when no attachment was expected.
    #[error("unexpected binary attachment")]
    UnexpectedBinary,
}

impl Packet {
    /// The namespace the packet belongs to.
    pub fn namespace(&self) -> &str {
        match self {
            Self::Connect { namespace, .. }
            | Self::Disconnect { namespace }
            | Self::Event { namespace, .. }
            | Self::Ack { namespace, .. }
            | Self::ConnectError { namespace, .. } => namespace,
        }
    }

    /// Encodes the packet.
    pub fn encode(&self) -> EncodedPacket {
        let mut text = String::new();
        let attachments = self.encode_into(&mut text);
        EncodedPacket { text, attachments }
    }

    /// Encodes the packet as the WebSocket messages that carry it over Engine.IO: the text
    /// (behind the `4` of a `message` packet), then each attachment as a binary message.
    pub fn to_messages(&self) -> Vec<Message> {
        let mut text = String::from("4");
        let attachments = self.encode_into(&mut text);
        let mut messages = Vec::with_capacity(1 + attachments.len());
        messages.push(Message::text(text));
        messages.extend(attachments.into_iter().map(Message::Binary));
        messages
    }

    /// Appends the packet's text to `out` and returns its attachments.
    fn encode_into(&self, out: &mut String) -> Vec<Bytes> {
        let (kind, attachments) = match self {
            Self::Connect { .. } => (b'0', &[][..]),
            Self::Disconnect { .. } => (b'1', &[][..]),
            Self::Event { args, .. } if args.attachments().is_empty() => (b'2', &[][..]),
            Self::Event { args, .. } => (b'5', args.attachments()),
            Self::Ack { args, .. } if args.attachments().is_empty() => (b'3', &[][..]),
            Self::Ack { args, .. } => (b'6', args.attachments()),
            Self::ConnectError { .. } => (b'4', &[][..]),
        };
        out.push(char::from(kind));
        if !attachments.is_empty() {
            out.push_str(&attachments.len().to_string());
            out.push('-');
        }
        let namespace = self.namespace();
        if namespace != DEFAULT_NAMESPACE {
            out.push_str(namespace);
            out.push(',');
        }
        match self {
            Self::Connect { data, .. } => {
                if let Some(data) = data {
                    push_json(out, data);
                }
            }
            Self::Disconnect { .. } => {}
            Self::Event {
                event, args, ack, ..
            } => {
                if let Some(id) = ack {
                    out.push_str(&id.to_string());
                }
                out.push('[');
                push_json(out, event);
                for value in args.values() {
                    out.push(',');
                    push_json(out, value);
                }
                out.push(']');
            }
            Self::Ack { id, args, .. } => {
                out.push_str(&id.to_string());
                push_json(out, args.values());
            }
            Self::ConnectError { message, data, .. } => {
                let mut object = Map::new();
                object.insert("message".into(), Value::String(message.clone()));
                if let Some(data) = data {
                    object.insert("data".into(), data.clone());
                }
                push_json(out, &object);
            }
        }
        attachments.to_vec()
    }
}

/// Decodes packets from the text and binary messages of one connection, in order.
///
/// A binary packet announces its attachment count; the decoder then takes that many
/// [`receive_binary`](Self::receive_binary) calls before it hands the packet out.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: DecodeLimits,
    partial: Option<Partial>,
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
struct Partial {
    header: Header,
    expected: usize,
    attachments: Vec<Bytes>,
}

impl Decoder {
    /// Returns a decoder enforcing `limits`.
    pub fn new(limits: DecodeLimits) -> Self {
        Self {
            limits,
            partial: None,
        }
    }

    /// Decodes a packet's text: returns the packet, or `None` when attachments must follow.
    pub fn receive_text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if self.partial.is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        check_size(text.len(), &self.limits)?;
        let (header, expected) = Header::parse(text, &self.limits)?;
        if expected == 0 {
            return header.finish(Vec::new()).map(Some);
        }
        self.partial = Some(Partial {
            header,
            expected,
            attachments: Vec::with_capacity(expected),
        });
        Ok(None)
    }

    /// Takes the next attachment: returns the packet once the last one has arrived.
    pub fn receive_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let Some(partial) = self.partial.as_mut() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        check_size(data.len(), &self.limits)?;
        partial.attachments.push(data);
        if partial.attachments.len() < partial.expected {
            return Ok(None);
        }
        let Some(Partial {
            header,
            attachments,
            ..
        }) = self.partial.take()
        else {
            return Err(DecodeError::UnexpectedBinary);
        };
        header.finish(attachments).map(Some)
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_waiting(&self) -> bool {
        self.partial.is_some()
    }
}

/// A packet's text, parsed, before its attachments are joined to it.
#[derive(Debug)]
struct Header {
    kind: u8,
    namespace: String,
    ack: Option<u64>,
    payload: Option<Value>,
}

impl Header {
    /// Parses the text and returns the header with the number of attachments announced.
    fn parse(text: &str, limits: &DecodeLimits) -> Result<(Self, usize), DecodeError> {
        let mut rest = text;
        let kind = match rest.chars().next() {
            None => return Err(DecodeError::Empty),
            Some(digit @ '0'..='6') => digit as u8 - b'0',
            Some(other) => return Err(DecodeError::UnknownType(other)),
        };
        rest = &rest[1..];
        let mut attachments = 0;
        if kind == 5 || kind == 6 {
            let (digits, after) = split_digits(rest);
            let after = after
                .strip_prefix('-')
                .filter(|_| !digits.is_empty())
                .ok_or(DecodeError::InvalidAttachmentCount)?;
            // An absurd count fails the limit check, not the parse.
            attachments = digits.parse::<usize>().unwrap_or(usize::MAX);
            if attachments > limits.max_attachments {
                return Err(DecodeError::TooManyAttachments {
                    count: attachments,
                    limit: limits.max_attachments,
                });
            }
            rest = after;
        }
        let mut namespace = DEFAULT_NAMESPACE;
        if rest.starts_with('/') {
            (namespace, rest) = rest.split_once(',').unwrap_or((rest, ""));
        }
        let (digits, after) = split_digits(rest);
        let ack = match digits.is_empty() {
            true => None,
            false => Some(
                digits
                    .parse::<u64>()
                    .map_err(|_| DecodeError::AckIdTooLarge)?,
            ),
        };
        let payload = match after.is_empty() {
            true => None,
            false => Some(
                serde_json::from_str(after)
                    .map_err(|error| DecodeError::InvalidJson(error.to_string()))?,
            ),
        };
        let header = Self {
            kind,
            namespace: namespace.to_owned(),
            ack,
            payload,
        };
        Ok((header, attachments))
    }

    /// Checks the payload's shape for the packet type and builds the packet.
    fn finish(self, attachments: Vec<Bytes>) -> Result<Packet, DecodeError> {
        let Self {
            kind,
            namespace,
            ack,
            payload,
        } = self;
        let invalid = DecodeError::InvalidPayload(kind);
        let binary = kind == 5 || kind == 6;
        if ack.is_some() && !matches!(kind, 2 | 3 | 5 | 6) {
            return Err(DecodeError::InvalidAckId);
        }
        if !binary && !attachments.is_empty() {
            return Err(DecodeError::UnexpectedBinary);
        }
        match kind {
            0 => match payload {
                None => Ok(Packet::Connect {
                    namespace,
                    data: None,
                }),
                Some(Value::Object(data)) => Ok(Packet::Connect {
                    namespace,
                    data: Some(data),
                }),
                Some(_) => Err(invalid),
            },
            1 => match payload {
                None => Ok(Packet::Disconnect { namespace }),
                Some(_) => Err(invalid),
            },
            2 | 5 => {
                let Some(Value::Array(mut values)) = payload else {
                    return Err(invalid);
                };
                if values.is_empty() {
                    return Err(invalid);
                }
                // socket.io-parser accepts a number as the name, which a JavaScript listener
                // sees as its decimal string.
                let event = match values.remove(0) {
                    Value::String(event) if RESERVED_EVENTS.contains(&event.as_str()) => {
                        return Err(DecodeError::ReservedEventName(event));
                    }
                    Value::String(event) => event,
                    Value::Number(number) => number.to_string(),
                    _ => return Err(DecodeError::InvalidEventName),
                };
                let args = Args::from_parts(values, attachments)?;
                Ok(Packet::Event {
                    namespace,
                    event,
                    args,
                    ack,
                })
            }
            3 | 6 => {
                let id = ack.ok_or(DecodeError::InvalidAckId)?;
                // The payload is mandatory: an array, possibly empty.
                let Some(Value::Array(values)) = payload else {
                    return Err(invalid);
                };
                let args = Args::from_parts(values, attachments)?;
                Ok(Packet::Ack {
                    namespace,
                    id,
                    args,
                })
            }
            _ => {
                let (message, data) = match payload {
                    Some(Value::String(message)) => (message, None),
                    Some(Value::Object(mut object)) => {
                        let message = match object.remove("message") {
                            Some(Value::String(message)) => message,
                            None => String::new(),
                            Some(_) => return Err(invalid),
                        };
                        (message, object.remove("data"))
                    }
                    _ => return Err(invalid),
                };
                Ok(Packet::ConnectError {
                    namespace,
                    message,
                    data,
                })
            }
        }
    }
}

/// Splits the leading ASCII digits off `text`.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn check_size(size: usize, limits: &DecodeLimits) -> Result<(), DecodeError> {
    match size > limits.max_packet_size {
        true => Err(DecodeError::TooLarge {
            size,
            limit: limits.max_packet_size,
        }),
        false => Ok(()),
    }
}

/// Appends `value` as JSON. Serializing JSON values, strings and string-keyed maps cannot
/// fail, so the error branch is unreachable.
fn push_json(out: &mut String, value: &(impl serde::Serialize + ?Sized)) {
    if let Ok(json) = serde_json::to_string(value) {
        out.push_str(&json);
    }
}

#[cfg(test)]
mod tests;
