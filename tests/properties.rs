//! Properties over arbitrary input: chunking never matters, nothing panics, and what one side
//! sends the other receives.

mod common;

use common::*;
use proptest::prelude::*;
use wsio::proto::{Config, Connection, Event, Message, OpCode, Rng, Transmit};

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,300}".prop_map(Message::text),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Message::binary),
    ]
}

/// A client frame with any opcode (reserved ones included) and small payloads.
fn any_client_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        0u8..16,
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(fin, opcode, payload)| match OpCode::from_u8(opcode) {
            Some(opcode) => client_frame(fin, opcode, &payload),
            None => {
                let mut raw = vec![0x80 | opcode, 0x80 | payload.len() as u8];
                raw.extend_from_slice(&MASK);
                raw.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
                raw
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn messages_round_trip_in_both_directions(messages in proptest::collection::vec(any_message(), 1..8), chunk in 1usize..700) {
        for (mut sender, receiver) in [
            (Connection::client(Config::default(), Rng::from_seed([3; 32])), Connection::server(Config::default())),
            (Connection::server(Config::default()), Connection::client(Config::default(), Rng::from_seed([4; 32]))),
        ] {
            for message in &messages {
                sender.send(message.clone()).unwrap();
            }
            let mut wire = Vec::new();
            while let Some(Transmit::Data(data)) = sender.poll_transmit() {
                wire.extend_from_slice(&data);
            }
            let outcome = run(receiver, &wire, chunk, false);
            prop_assert_eq!(outcome.messages(), messages.clone());
        }
    }

    #[test]
    fn chunking_never_changes_events(frames in proptest::collection::vec(any_client_frame(), 0..12), chunk in 1usize..50) {
        let input = frames.concat();
        let whole = run(server(), &input, input.len(), false);
        let pieces = run(server(), &input, chunk, false);
        prop_assert_eq!(whole.events, pieces.events);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512), chunk in 1usize..64, eof in any::<bool>()) {
        run(server(), &input, chunk, eof);
        run(client(), &input, chunk, eof);
    }

    #[test]
    fn fragmented_text_with_any_split_is_validated_like_std(
        bytes in proptest::collection::vec(any::<u8>(), 0..30),
        split in 0usize..30,
    ) {
        let split = split.min(bytes.len());
        let input = [
            client_frame(false, OpCode::Text, &bytes[..split]),
            client_frame(true, OpCode::Continuation, &bytes[split..]),
        ].concat();
        let outcome = replay(server, &input);
        match std::str::from_utf8(&bytes) {
            Ok(text) => prop_assert_eq!(outcome.events, vec![Ok(Event::Message(Message::text(text)))]),
            Err(_) => prop_assert_eq!(outcome.sent_close_code(), Some(1007)),
        }
    }
}
