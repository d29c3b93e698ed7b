//! RFC 6455 §5.5.1: the close frame sent in answer to the peer's repeats its code and reason.

mod common;

use common::*;
use wsio::proto::{CloseCode, CloseFrame, Event, OpCode};

/// The payloads of the close frames an outcome sent.
fn sent_closes(outcome: &Outcome) -> Vec<Vec<u8>> {
    outcome
        .sent
        .iter()
        .filter(|frame| frame.opcode == OpCode::Close)
        .map(|frame| frame.payload.to_vec())
        .collect()
}

#[test]
fn server_echoes_the_code_and_reason() {
    let payload = close_payload(4000, b"bye");
    let outcome = replay(server, &client_frame(true, OpCode::Close, &payload));
    assert_eq!(
        outcome.events,
        [Ok(Event::Closed(Some(CloseFrame::new(
            CloseCode(4000),
            "bye"
        ))))]
    );
    assert_eq!(sent_closes(&outcome), [payload]);
}

#[test]
fn client_echoes_the_code_and_reason() {
    let payload = close_payload(1001, "going away: caf\u{e9}".as_bytes());
    let outcome = replay(client, &server_frame(true, OpCode::Close, &payload));
    assert_eq!(sent_closes(&outcome), [payload], "unmasked by the decoder");
}

#[test]
fn the_longest_reason_is_echoed_whole() {
    let payload = close_payload(1000, &[b'x'; 123]);
    let outcome = replay(server, &client_frame(true, OpCode::Close, &payload));
    assert_eq!(sent_closes(&outcome), [payload]);
}

#[test]
fn an_empty_close_is_echoed_empty() {
    let outcome = replay(server, &client_frame(true, OpCode::Close, b""));
    assert_eq!(sent_closes(&outcome), [Vec::<u8>::new()]);
}

#[test]
fn the_answer_to_our_close_is_not_echoed() {
    let mut conn = server();
    conn.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))
        .unwrap();
    let payload = close_payload(1000, b"ok");
    let outcome = run(
        conn,
        &client_frame(true, OpCode::Close, &payload),
        64,
        false,
    );
    assert_eq!(sent_closes(&outcome), [close_payload(1000, b"done")]);
    assert!(outcome.shutdown);
}
