//! Keepalive, dead-peer detection and the close timeout, driven by `Instant` arguments.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wsio::proto::{Config, Connection, Event, OpCode, ProtocolError, Transmit};

fn config() -> Config {
    let mut config = Config::default();
    config.keepalive_interval = Some(Duration::from_secs(10));
    config.keepalive_timeout = Some(Duration::from_secs(5));
    config.close_timeout = Some(Duration::from_secs(3));
    config
}

fn sent_opcodes(conn: &mut Connection) -> (Vec<u8>, bool) {
    let mut opcodes = Vec::new();
    let mut shutdown = false;
    while let Some(transmit) = conn.poll_transmit() {
        match transmit {
            Transmit::Data(data) => opcodes.push(data[0] & 0x0F),
            Transmit::Shutdown => shutdown = true,
        }
    }
    (opcodes, shutdown)
}

#[test]
fn idle_connection_is_pinged_then_failed_without_an_answer() {
    let start = Instant::now();
    let mut conn = Connection::server(config());
    // The core has no clock: its timers start from the first `handle_timeout`.
    assert_eq!(conn.poll_timeout(start), Some(start), "asks for the clock");
    conn.handle_timeout(start);
    assert_eq!(
        conn.poll_timeout(start),
        Some(start + Duration::from_secs(10))
    );
    conn.handle_timeout(start + Duration::from_secs(10));
    assert_eq!(sent_opcodes(&mut conn).0, [0x9], "a ping");
    let deadline = conn.poll_timeout(start + Duration::from_secs(10)).unwrap();
    assert_eq!(deadline, start + Duration::from_secs(15));
    conn.handle_timeout(deadline);
    assert_eq!(
        conn.poll_event(),
        Some(Err(ProtocolError::KeepaliveTimeout))
    );
    assert_eq!(
        sent_opcodes(&mut conn),
        (vec![0x8], true),
        "close 1011 then shutdown"
    );
}

#[test]
fn an_answer_keeps_the_connection_alive() {
    let start = Instant::now();
    let mut conn = Connection::server(config());
    conn.handle_timeout(start);
    conn.handle_timeout(start + Duration::from_secs(10));
    sent_opcodes(&mut conn);
    conn.receive(&client_frame(true, OpCode::Pong, b""));
    assert_eq!(conn.poll_event(), Some(Ok(Event::Pong("".into()))));
    let deadline = conn.poll_timeout(start + Duration::from_secs(11)).unwrap();
    conn.handle_timeout(deadline);
    assert_eq!(conn.poll_event(), None);
    assert!(conn.is_open());
}

#[test]
fn busy_connections_are_not_pinged() {
    let start = Instant::now();
    let mut conn = Connection::server(config());
    conn.handle_timeout(start);
    conn.receive(&client_frame(true, OpCode::Text, b"traffic"));
    conn.poll_event();
    conn.handle_timeout(start + Duration::from_secs(10));
    assert!(sent_opcodes(&mut conn).0.is_empty());
}

#[test]
fn keepalive_can_be_turned_off() {
    let mut config = config();
    config.keepalive_interval = None;
    config.close_timeout = None;
    let conn = Connection::server(config);
    assert_eq!(conn.poll_timeout(Instant::now()), None);
}

#[test]
fn unanswered_close_times_out() {
    let start = Instant::now();
    let mut conn = Connection::server(config());
    conn.close(None).unwrap();
    assert_eq!(sent_opcodes(&mut conn), (vec![0x8], false));
    conn.handle_timeout(start);
    let deadline = conn.poll_timeout(start).unwrap();
    assert_eq!(deadline, start + Duration::from_secs(3));
    conn.handle_timeout(deadline);
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::CloseTimeout)));
    assert_eq!(sent_opcodes(&mut conn), (vec![], true));
    assert!(conn.is_terminated());
}

#[test]
fn client_closes_the_transport_itself_if_the_server_does_not() {
    let start = Instant::now();
    let mut conn = Connection::client(config(), wsio::proto::Rng::from_seed([0; 32]));
    conn.receive(&server_frame(true, OpCode::Close, b""));
    assert_eq!(conn.poll_event(), Some(Ok(Event::Closed(None))));
    assert_eq!(sent_opcodes(&mut conn), (vec![0x8], false));
    conn.handle_timeout(start);
    let deadline = conn.poll_timeout(start).unwrap();
    assert_eq!(deadline, start + Duration::from_secs(3));
    conn.handle_timeout(deadline);
    assert_eq!(conn.poll_event(), None, "a completed close is not an error");
    assert_eq!(sent_opcodes(&mut conn), (vec![], true));
}

/// Found by fuzzing: a close timeout and a keepalive timeout due at the same instant.
#[test]
fn close_and_keepalive_timeouts_due_together_fail_once() {
    let mut config = Config::default();
    config.keepalive_interval = Some(Duration::from_secs(30));
    config.keepalive_timeout = Some(Duration::from_secs(30));
    config.close_timeout = Some(Duration::from_secs(30));
    let mut conn = Connection::server(config);
    conn.handle_timeout(Instant::now());
    let ping_due = conn.poll_timeout(Instant::now()).unwrap();
    conn.handle_timeout(ping_due);
    conn.close(None).unwrap();
    conn.handle_timeout(ping_due);
    let due = conn.poll_timeout(ping_due).unwrap();
    assert_eq!(
        due,
        ping_due + Duration::from_secs(30),
        "pong and close deadlines coincide"
    );
    conn.handle_timeout(due);
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::CloseTimeout)));
    assert_eq!(conn.poll_event(), None);
}
