//! RFC 6455 §5.5.1, §7: the closing handshake, close codes and the end of the transport.

mod common;

use common::*;
use wsio::proto::{
    CloseCode, CloseFrame, Event, Message, OpCode, ProtocolError, SendError, Transmit,
};

#[test]
fn peer_close_is_echoed_and_the_server_shuts_down_first() {
    let outcome = replay(
        server,
        &client_frame(true, OpCode::Close, &close_payload(4000, b"bye")),
    );
    assert_eq!(
        outcome.events,
        [Ok(Event::Closed(Some(CloseFrame::new(
            CloseCode(4000),
            "bye"
        ))))]
    );
    assert_eq!(outcome.sent_close_code(), Some(4000));
    assert!(outcome.shutdown);
}

#[test]
fn empty_close_is_echoed_empty() {
    let outcome = replay(server, &client_frame(true, OpCode::Close, b""));
    assert_eq!(outcome.events, [Ok(Event::Closed(None))]);
    assert_eq!(outcome.sent.len(), 1);
    assert!(outcome.sent[0].payload.is_empty());
}

#[test]
fn client_waits_for_the_server_to_close_the_transport() {
    let outcome = replay(
        client,
        &server_frame(true, OpCode::Close, &close_payload(1000, b"")),
    );
    assert_eq!(outcome.sent_close_code(), Some(1000));
    assert!(
        !outcome.shutdown,
        "the client leaves the TCP close to the server"
    );
    let after_eof = run(
        client(),
        &server_frame(true, OpCode::Close, &close_payload(1000, b"")),
        100,
        true,
    );
    assert!(after_eof.shutdown);
    assert!(after_eof.error().is_none());
}

#[test]
fn invalid_close_codes_fail_with_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let outcome = replay(
            server,
            &client_frame(true, OpCode::Close, &close_payload(code, b"")),
        );
        assert_eq!(
            outcome.error(),
            Some(&ProtocolError::InvalidCloseCode(code)),
            "code {code}"
        );
        assert_eq!(outcome.sent_close_code(), Some(1002));
    }
}

#[test]
fn valid_close_codes_are_accepted() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let outcome = replay(
            server,
            &client_frame(true, OpCode::Close, &close_payload(code, b"")),
        );
        assert_eq!(
            outcome.events,
            [Ok(Event::Closed(Some(CloseFrame::new(
                CloseCode(code),
                ""
            ))))]
        );
    }
}

#[test]
fn one_byte_close_payload_fails_with_1002() {
    let outcome = replay(server, &client_frame(true, OpCode::Close, &[0x03]));
    assert_eq!(outcome.error(), Some(&ProtocolError::CloseFrameTooShort));
    assert_eq!(outcome.sent_close_code(), Some(1002));
}

#[test]
fn invalid_utf8_close_reason_fails_with_1007() {
    let outcome = replay(
        server,
        &client_frame(
            true,
            OpCode::Close,
            &close_payload(1000, &[0xce, 0xba, 0xed, 0xa0, 0x80]),
        ),
    );
    assert_eq!(outcome.error(), Some(&ProtocolError::InvalidCloseReason));
    assert_eq!(outcome.sent_close_code(), Some(1007));
}

#[test]
fn nothing_is_sent_after_our_close() {
    let mut conn = server();
    conn.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))
        .unwrap();
    assert_eq!(conn.send(Message::text("late")), Err(SendError::Closed));
    assert_eq!(conn.ping("late"), Err(SendError::Closed));
    assert_eq!(conn.close(None), Err(SendError::Closed));
    // A ping arriving while our close is in flight is reported but not answered.
    conn.receive(&client_frame(true, OpCode::Ping, b"p"));
    let outcome = run(
        conn,
        &client_frame(true, OpCode::Close, &close_payload(1000, b"")),
        3,
        false,
    );
    assert_eq!(
        outcome.sent.len(),
        1,
        "only our close frame: {:?}",
        outcome.sent
    );
    assert_eq!(
        outcome.events,
        [
            Ok(Event::Ping("p".into())),
            Ok(Event::Closed(Some(CloseFrame::new(CloseCode::NORMAL, ""))))
        ]
    );
    assert!(outcome.shutdown);
}

#[test]
fn messages_still_arrive_after_our_close() {
    let mut conn = server();
    conn.close(None).unwrap();
    let input = concat(&[
        client_frame(true, OpCode::Text, b"in flight"),
        client_frame(true, OpCode::Close, b""),
    ]);
    let outcome = run(conn, &input, 2, false);
    assert_eq!(
        outcome.events,
        [
            Ok(Event::Message(Message::text("in flight"))),
            Ok(Event::Closed(None))
        ]
    );
}

#[test]
fn invalid_close_commands_are_refused() {
    let mut conn = server();
    assert_eq!(
        conn.close(Some(CloseFrame::new(CloseCode::NO_STATUS, ""))),
        Err(SendError::InvalidCloseCode(1005))
    );
    let long = "x".repeat(124);
    assert_eq!(
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL, long))),
        Err(SendError::ControlPayloadTooLong(126))
    );
    assert_eq!(
        conn.ping(vec![0; 126]),
        Err(SendError::ControlPayloadTooLong(126))
    );
    assert!(conn.is_open());
}

#[test]
fn eof_without_close_is_abnormal() {
    let outcome = run(
        server(),
        &client_frame(true, OpCode::Text, b"hi"),
        100,
        true,
    );
    assert_eq!(outcome.messages(), [Message::text("hi")]);
    assert_eq!(outcome.error(), Some(&ProtocolError::UnexpectedEof));
    assert_eq!(
        ProtocolError::UnexpectedEof.close_code(),
        CloseCode::ABNORMAL
    );
    assert!(outcome.sent.is_empty(), "1006 is never sent");
}

#[test]
fn eof_mid_frame_is_abnormal() {
    let frame = client_frame(true, OpCode::Binary, &[0; 1000]);
    let outcome = run(server(), &frame[..500], 100, true);
    assert_eq!(outcome.error(), Some(&ProtocolError::UnexpectedEof));
}

#[test]
fn full_handshake_between_a_pair() {
    let mut client = client();
    let mut server = server();
    client
        .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "leaving")))
        .unwrap();
    let shuttle = |from: &mut wsio::proto::Connection, to: &mut wsio::proto::Connection| {
        let mut shut = false;
        while let Some(transmit) = from.poll_transmit() {
            match transmit {
                Transmit::Data(data) => to.receive(&data),
                Transmit::Shutdown => shut = true,
            }
        }
        shut
    };
    assert!(!shuttle(&mut client, &mut server));
    assert_eq!(
        server.poll_event(),
        Some(Ok(Event::Closed(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "leaving"
        )))))
    );
    assert!(
        shuttle(&mut server, &mut client),
        "server shuts down after echoing"
    );
    assert_eq!(
        client.poll_event(),
        Some(Ok(Event::Closed(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "leaving"
        )))))
    );
    client.receive_eof();
    assert!(shuttle(&mut client, &mut server));
    assert!(client.is_terminated());
    assert!(server.is_terminated());
}

#[test]
fn a_message_arriving_with_the_close_can_still_be_answered() {
    let mut conn = server();
    conn.receive(&concat(&[
        client_frame(true, OpCode::Text, b"last words"),
        client_frame(true, OpCode::Close, &close_payload(1000, b"")),
    ]));
    let Some(Ok(Event::Message(message))) = conn.poll_event() else {
        panic!("message first")
    };
    conn.send(message).unwrap();
    assert_eq!(
        conn.poll_event(),
        Some(Ok(Event::Closed(Some(CloseFrame::new(
            CloseCode::NORMAL,
            ""
        )))))
    );
    let outcome = run(conn, &[], 1, false);
    let opcodes: Vec<_> = outcome.sent.iter().map(|frame| frame.opcode).collect();
    assert_eq!(opcodes, [OpCode::Text, OpCode::Close]);
    assert!(outcome.shutdown);
}
