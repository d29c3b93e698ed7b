//! The Engine.IO long-polling payload codec: any body decodes to messages or a typed error,
//! and whatever decodes re-encodes, record by record, to the same bytes and the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::Message;
use wsio::events::payload::{SEPARATOR, decode_payload, push_record};
use wsio::events::{EngineError, EnginePacket};
use wsio::proto::PreparedMessage;

fuzz_target!(|body: &[u8]| {
    let messages = match decode_payload(body) {
        Ok(messages) => messages,
        Err(error) => {
            // Not UTF-8 or bad base64, or an empty record (an empty body is one).
            let text = std::str::from_utf8(body);
            match error {
                EngineError::Empty => assert!(
                    text.is_ok_and(|text| text.split(SEPARATOR).any(str::is_empty)),
                    "Empty without an empty record"
                ),
                EngineError::InvalidPayload => {}
                other => panic!("payload error {other:?}"),
            }
            return;
        }
    };
    let text = std::str::from_utf8(body).expect("a decoded payload is UTF-8");
    assert_eq!(
        messages.len(),
        text.split(SEPARATOR).count(),
        "one message per record"
    );
    for (message, record) in messages.iter().zip(text.split(SEPARATOR)) {
        match message {
            Message::Text(text) => {
                assert!(!record.starts_with('b'), "a `b` record decoded as text");
                assert_eq!(text.as_str(), record, "text record changed");
            }
            Message::Binary(_) => assert!(record.starts_with('b'), "binary without `b`"),
        }
        // Each record is one WebSocket message's worth: reading it as a packet only ever fails
        // with a typed error.
        let _ = EnginePacket::decode(message);
    }
    let mut encoded = String::new();
    for message in &messages {
        push_record(&mut encoded, &PreparedMessage::new(message.clone()));
    }
    // The base64 decoder takes only canonical padded base64, so the records come back byte for
    // byte.
    assert_eq!(
        encoded.as_bytes(),
        body,
        "payload does not re-encode to itself"
    );
    assert_eq!(
        decode_payload(encoded.as_bytes()).as_ref(),
        Ok(&messages),
        "re-encoded payload decodes differently"
    );
});
