//! RFC 6455 §5: framing rules, each violation with its close code.

mod common;

use common::*;
use wsio::proto::{CloseCode, Event, Message, OpCode, ProtocolError};

#[test]
fn masked_text_frame_from_rfc_5_7() {
    let outcome = replay(
        server,
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(outcome.messages(), [Message::text("Hello")]);
    assert!(outcome.sent.is_empty());
}

#[test]
fn fragmented_unmasked_text_from_rfc_5_7() {
    let outcome = replay(
        client,
        &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
    );
    assert_eq!(outcome.messages(), [Message::text("Hello")]);
}

#[test]
fn sixteen_and_sixty_four_bit_lengths() {
    let medium = vec![0x61; 256];
    let large = vec![0x62; 65536];
    let input = concat(&[
        client_frame(true, OpCode::Binary, &medium),
        client_frame(true, OpCode::Binary, &large),
    ]);
    let outcome = replay(server, &input);
    assert_eq!(
        outcome.messages(),
        [Message::binary(medium), Message::binary(large)]
    );
}

fn assert_fails(
    make: fn() -> wsio::proto::Connection,
    input: &[u8],
    error: ProtocolError,
    code: CloseCode,
) {
    let outcome = replay(make, input);
    assert_eq!(outcome.error(), Some(&error));
    assert_eq!(error.close_code(), code);
    assert_eq!(
        outcome.sent_close_code(),
        Some(code.0),
        "close frame with the code"
    );
    assert!(outcome.shutdown, "transport shut down after failing");
}

#[test]
fn violations_fail_with_1002() {
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (
            vec![0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
            ProtocolError::UnmaskedClientFrame,
        ),
        (vec![0xC1, 0x80, 0, 0, 0, 0], ProtocolError::ReservedBits),
        (vec![0xA1, 0x80, 0, 0, 0, 0], ProtocolError::ReservedBits),
        (vec![0x91, 0x80, 0, 0, 0, 0], ProtocolError::ReservedBits),
        (
            vec![0x83, 0x80, 0, 0, 0, 0],
            ProtocolError::ReservedOpCode(3),
        ),
        (
            vec![0x87, 0x80, 0, 0, 0, 0],
            ProtocolError::ReservedOpCode(7),
        ),
        (
            vec![0x8B, 0x80, 0, 0, 0, 0],
            ProtocolError::ReservedOpCode(0xB),
        ),
        (
            vec![0x8F, 0x80, 0, 0, 0, 0],
            ProtocolError::ReservedOpCode(0xF),
        ),
        (
            client_frame(false, OpCode::Ping, b"x"),
            ProtocolError::FragmentedControlFrame,
        ),
        (
            client_frame(true, OpCode::Ping, &[0; 126]),
            ProtocolError::ControlFrameTooLong,
        ),
        (
            client_frame(true, OpCode::Continuation, b"x"),
            ProtocolError::UnexpectedContinuation,
        ),
        (
            concat(&[
                client_frame(false, OpCode::Text, b"a"),
                client_frame(true, OpCode::Text, b"b"),
            ]),
            ProtocolError::ExpectedContinuation,
        ),
        (
            vec![0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4],
            ProtocolError::NonMinimalLength,
        ),
        (
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
            ProtocolError::LengthMsbSet,
        ),
    ];
    for (input, error) in cases {
        assert_fails(server, &input, error, CloseCode::PROTOCOL_ERROR);
    }
}

#[test]
fn masked_server_frame_fails_a_client() {
    assert_fails(
        client,
        &client_frame(true, OpCode::Text, b"hi"),
        ProtocolError::MaskedServerFrame,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn frames_before_a_violation_are_delivered() {
    let input = concat(&[
        client_frame(true, OpCode::Text, b"first"),
        vec![0x83, 0x80, 0, 0, 0, 0],
    ]);
    let outcome = replay(server, &input);
    assert_eq!(outcome.messages(), [Message::text("first")]);
    assert_eq!(outcome.error(), Some(&ProtocolError::ReservedOpCode(3)));
}

#[test]
fn nothing_is_read_after_a_failure() {
    let input = concat(&[
        vec![0x83, 0x80, 0, 0, 0, 0],
        client_frame(true, OpCode::Text, b"late"),
    ]);
    let outcome = replay(server, &input);
    assert!(outcome.messages().is_empty());
    assert_eq!(outcome.events.len(), 1);
}

#[test]
fn huge_declared_frame_fails_with_1009_before_buffering() {
    let outcome = replay(server, &[0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert_eq!(outcome.sent_close_code(), Some(1009));
    assert!(
        matches!(outcome.error(), Some(ProtocolError::FrameTooBig { size, .. }) if *size == 1 << 62)
    );
}

#[test]
fn pings_are_answered_and_reported() {
    let outcome = replay(server, &client_frame(true, OpCode::Ping, b"are you there"));
    assert_eq!(outcome.events, [Ok(Event::Ping("are you there".into()))]);
    assert_eq!(outcome.sent.len(), 1);
    assert_eq!(outcome.sent[0].opcode, OpCode::Pong);
    assert_eq!(&outcome.sent[0].payload[..], b"are you there");
}

#[test]
fn a_burst_of_pings_keeps_a_bounded_number_of_pongs_ending_with_the_latest() {
    let input: Vec<u8> = (0..1000u32)
        .flat_map(|i| client_frame(true, OpCode::Ping, &i.to_be_bytes()))
        .collect();
    let outcome = run(server(), &input, input.len(), false);
    let pongs: Vec<_> = outcome
        .sent
        .iter()
        .filter(|frame| frame.opcode == OpCode::Pong)
        .collect();
    assert_eq!(pongs.len(), 16);
    assert_eq!(&pongs[15].payload[..], 999u32.to_be_bytes());
}

#[test]
fn pongs_are_reported() {
    let outcome = replay(server, &client_frame(true, OpCode::Pong, b"beat"));
    assert_eq!(outcome.events, [Ok(Event::Pong("beat".into()))]);
    assert!(outcome.sent.is_empty());
}

#[test]
fn client_masks_everything_it_sends() {
    let mut conn = client();
    conn.send(Message::text("Hello")).unwrap();
    let wsio::proto::Transmit::Data(wire) = conn.poll_transmit().unwrap() else {
        panic!()
    };
    assert_eq!(wire[1] & 0x80, 0x80);
    let outcome = run(server(), &wire, wire.len(), false);
    assert_eq!(outcome.messages(), [Message::text("Hello")]);
}

#[test]
fn messages_before_a_violation_can_still_be_answered() {
    let mut conn = server();
    conn.receive(&concat(&[
        client_frame(true, OpCode::Text, b"echo me"),
        vec![0xC1, 0x80, 0, 0, 0, 0],
    ]));
    let Some(Ok(Event::Message(message))) = conn.poll_event() else {
        panic!("message first")
    };
    conn.send(message).unwrap();
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::ReservedBits)));
    let outcome = run(conn, &[], 1, false);
    let opcodes: Vec<_> = outcome.sent.iter().map(|frame| frame.opcode).collect();
    assert_eq!(opcodes, [OpCode::Text, OpCode::Close]);
    assert_eq!(outcome.sent_close_code(), Some(1002));
    assert!(outcome.shutdown);
}
