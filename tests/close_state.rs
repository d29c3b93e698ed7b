//! `Connection::close_state` and how the connection ended: what a driver still owes the
//! transport at each step of the closing handshake (RFC 6455 §7.1).

mod common;

use std::time::{Duration, Instant};

use common::*;
use wsio::proto::{
    CloseCode, CloseFrame, CloseState, Config, Connection, Event, OpCode, ProtocolError, Rng,
    Transmit,
};

/// Hands out everything queued; returns whether the shutdown was among it.
fn drain(conn: &mut Connection) -> bool {
    let mut shutdown = false;
    while let Some(transmit) = conn.poll_transmit() {
        shutdown |= transmit == Transmit::Shutdown;
    }
    shutdown
}

#[test]
fn server_answers_the_peer_close_then_is_terminated() {
    let mut conn = server();
    conn.receive(&client_frame(true, OpCode::Text, b"last"));
    conn.receive(&client_frame(
        true,
        OpCode::Close,
        &close_payload(1001, b"bye"),
    ));
    assert_eq!(
        conn.close_state(),
        CloseState::Open,
        "events still to hand out"
    );
    assert!(matches!(conn.poll_event(), Some(Ok(Event::Message(_)))));
    assert_eq!(conn.peer_close_frame(), None);
    assert!(matches!(conn.poll_event(), Some(Ok(Event::Closed(_)))));
    assert_eq!(conn.close_state(), CloseState::Flushing);
    assert!(conn.close_state().events_ended());
    let expected = CloseFrame::new(CloseCode::GOING_AWAY, "bye");
    assert_eq!(conn.peer_close_frame(), Some(Some(&expected)));
    assert_eq!(conn.failure(), None);
    assert!(drain(&mut conn), "echo, then the shutdown");
    assert_eq!(conn.close_state(), CloseState::Terminated);
    assert_eq!(conn.poll_event(), None);
}

#[test]
fn client_waits_for_the_server_end_of_file() {
    let mut conn = client();
    conn.receive(&server_frame(true, OpCode::Close, b""));
    conn.poll_event();
    assert_eq!(conn.peer_close_frame(), Some(None), "an empty close frame");
    assert_eq!(conn.close_state(), CloseState::Flushing);
    assert!(
        !drain(&mut conn),
        "the echo only: the client does not shut down first"
    );
    assert_eq!(conn.close_state(), CloseState::AwaitingPeerEof);
    conn.receive_eof();
    assert_eq!(conn.close_state(), CloseState::Terminated);
}

#[test]
fn client_stops_waiting_after_the_close_timeout() {
    let mut config = Config::default();
    config.keepalive_interval = None;
    config.close_timeout = Some(Duration::from_secs(2));
    let mut conn = Connection::client(config, Rng::from_seed([3; 32]));
    conn.receive(&server_frame(
        true,
        OpCode::Close,
        &close_payload(1000, b""),
    ));
    conn.poll_event();
    drain(&mut conn);
    let start = Instant::now();
    conn.handle_timeout(start);
    assert_eq!(conn.close_state(), CloseState::AwaitingPeerEof);
    let deadline = conn.poll_timeout(start).unwrap();
    assert_eq!(deadline, start + Duration::from_secs(2));
    conn.handle_timeout(deadline);
    assert_eq!(
        conn.close_state(),
        CloseState::Flushing,
        "the shutdown is queued"
    );
    assert!(drain(&mut conn));
    assert_eq!(conn.close_state(), CloseState::Terminated);
}

#[test]
fn our_close_then_the_peer_answer() {
    let mut conn = server();
    conn.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))
        .unwrap();
    assert_eq!(conn.close_state(), CloseState::CloseSent);
    assert!(!conn.close_state().events_ended());
    drain(&mut conn);
    conn.receive(&client_frame(
        true,
        OpCode::Close,
        &close_payload(1000, b""),
    ));
    assert!(matches!(conn.poll_event(), Some(Ok(Event::Closed(_)))));
    assert_eq!(conn.close_state(), CloseState::Flushing);
    assert!(drain(&mut conn));
    assert_eq!(conn.close_state(), CloseState::Terminated);
}

#[test]
fn a_failure_ends_the_events_with_its_error() {
    let mut conn = server();
    conn.receive(&client_frame(true, OpCode::Text, b"\xff"));
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::InvalidUtf8)));
    assert_eq!(conn.failure(), Some(&ProtocolError::InvalidUtf8));
    assert_eq!(conn.peer_close_frame(), None);
    assert_eq!(
        conn.close_state(),
        CloseState::Flushing,
        "close 1007 to write"
    );
    assert!(drain(&mut conn));
    assert_eq!(conn.close_state(), CloseState::Terminated);
}

#[test]
fn end_of_file_without_a_close_is_a_failure() {
    let mut conn = client();
    conn.receive_eof();
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::UnexpectedEof)));
    assert_eq!(
        conn.close_state(),
        CloseState::Terminated,
        "nothing to write"
    );
}
