//! Engine.IO and Socket.IO decoding of a sequence of WebSocket messages never panics and fails
//! only with typed errors; every packet decoded re-encodes to messages that decode to itself.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wsio::Message;
use wsio::events::{DecodeLimits, Decoder, EnginePacket, Packet, RESERVED_EVENTS};

fuzz_target!(|input: &[u8]| {
    // Messages are separated by 0xff, which never occurs in UTF-8; a leading 0x00 makes the
    // rest a binary message, anything else is a text message when it is valid UTF-8.
    let messages = input.split(|&byte| byte == 0xff).map(|piece| match piece {
        [0x00, rest @ ..] => Message::binary(Bytes::copy_from_slice(rest)),
        _ => match std::str::from_utf8(piece) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(Bytes::copy_from_slice(piece)),
        },
    });
    let mut limits = DecodeLimits::default();
    limits.max_attachments = 4;
    limits.max_packet_size = 4096;
    let mut decoder = Decoder::new(limits);
    for message in messages {
        let decoded = match EnginePacket::decode(&message) {
            Ok(EnginePacket::Message(text)) => decoder.receive_text(text),
            Ok(EnginePacket::Binary(data)) => decoder.receive_binary(data),
            Ok(other) => {
                // Engine.IO packets other than messages re-encode to a message that decodes to
                // the same packet (not byte for byte: the open packet's JSON is re-serialised,
                // without whitespace or unknown fields).
                let encoded = other.encode();
                assert_eq!(
                    EnginePacket::decode(&encoded).as_ref(),
                    Ok(&other),
                    "engine packet does not round trip"
                );
                continue;
            }
            Err(_) => return,
        };
        match decoded {
            Ok(Some(packet)) => check(&packet, limits),
            Ok(None) => assert!(decoder.is_waiting()),
            // A server closes the connection on the first error.
            Err(_) => return,
        }
    }
});

fn check(packet: &Packet, mut limits: DecodeLimits) {
    assert!(packet.namespace().starts_with('/'));
    if let Packet::Event { event, .. } = packet {
        assert!(!RESERVED_EVENTS.contains(&event.as_str()));
    }
    // The re-encoding may be longer than what was decoded (a CONNECT_ERROR sent as a bare string
    // is written back as `{"message": ...}`), so the size limit is not what is tested here.
    let messages = packet.to_messages();
    let longest = messages.iter().map(Message::len).max().unwrap_or(0);
    limits.max_packet_size = limits.max_packet_size.max(longest);
    let mut decoder = Decoder::new(limits);
    let mut again = None;
    for message in messages {
        assert!(again.is_none(), "packet decoded before its last attachment");
        again = match EnginePacket::decode(&message) {
            Ok(EnginePacket::Message(text)) => decoder.receive_text(text),
            Ok(EnginePacket::Binary(data)) => decoder.receive_binary(data),
            other => panic!("encoded packet decodes as {other:?}"),
        }
        .unwrap_or_else(|error| panic!("re-encoded {packet:?} fails: {error}"));
    }
    assert_eq!(
        again.as_ref(),
        Some(packet),
        "round trip changed the packet"
    );
}
