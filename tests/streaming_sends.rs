//! Messages sent as fragments through both adapters and their write halves, with control
//! frames between the fragments (RFC 6455 §5.4, §5.5).
#![cfg(all(feature = "sync", feature = "tokio"))]

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use wsio::proto::{Event, MessageKind};
use wsio::{Error, Message, Options};

const WAIT: Duration = Duration::from_secs(5);

/// A blocking server that echoes whole messages and reports what it saw of the connection.
fn echo_server() -> (String, thread::JoinHandle<Result<Vec<Message>, Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        wsio::sync::configure_tcp(&stream, &Options::default())?;
        let mut ws = wsio::sync::accept(stream)?;
        let mut seen = Vec::new();
        while let Some(message) = ws.read()? {
            seen.push(message.clone());
            ws.send(message)?;
        }
        Ok(seen)
    });
    (format!("ws://{addr}"), handle)
}

/// Reads events up to the next message, returning the pongs seen before it.
fn pongs_then_message(
    mut read_event: impl FnMut() -> Result<Option<Event>, Error>,
) -> (usize, Message) {
    let mut pongs = 0;
    loop {
        match read_event().unwrap() {
            Some(Event::Pong(_)) => pongs += 1,
            Some(Event::Message(message)) => return (pongs, message),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn sync_fragments_with_a_ping_between_arrive_as_one_message() {
    let (url, server) = echo_server();
    let (mut ws, _) = wsio::sync::connect(&url).unwrap();
    ws.send_fragment(MessageKind::Text, "hé", false).unwrap();
    ws.ping("between").unwrap();
    // Another message cannot start before the streamed one ends.
    assert!(matches!(ws.send(Message::text("no")), Err(Error::Send(_))));
    ws.send_fragment(MessageKind::Text, "llo", true).unwrap();
    let (pongs, message) = pongs_then_message(|| ws.read_event());
    assert_eq!((pongs, message), (1, Message::text("héllo")));
    ws.close(None).unwrap();
    assert_eq!(ws.read().unwrap(), None);
    assert_eq!(server.join().unwrap().unwrap(), [Message::text("héllo")]);
}

#[test]
fn sync_close_between_fragments_ends_the_connection() {
    let (url, server) = echo_server();
    let (mut ws, _) = wsio::sync::connect(&url).unwrap();
    ws.send_fragment(MessageKind::Binary, vec![1; 1000], false)
        .unwrap();
    ws.close(None).unwrap();
    assert_eq!(ws.read().unwrap(), None);
    assert!(server.join().unwrap().unwrap().is_empty(), "no message");
}

#[test]
fn sync_writer_streams_while_the_reader_reads() {
    let (url, server) = echo_server();
    let (ws, _) = wsio::sync::connect(&url).unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    let pieces: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 10_000]).collect();
    let whole = pieces.concat();
    for (i, piece) in pieces.iter().enumerate() {
        writer
            .send_fragment(MessageKind::Binary, piece.clone(), i == pieces.len() - 1)
            .unwrap();
        if i == 4 {
            writer.ping("half way").unwrap();
        }
    }
    let (pongs, message) = pongs_then_message(|| reader.read_event());
    assert_eq!((pongs, message), (1, Message::binary(whole)));
    writer.close(None).unwrap();
    assert_eq!(reader.read().unwrap(), None);
    assert_eq!(server.join().unwrap().unwrap().len(), 1);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tokio_fragments_with_a_ping_between_arrive_as_one_message() {
    let (url, server) = echo_server();
    runtime().block_on(async {
        let (mut ws, _) = wsio::tokio::connect_async(&url).await.unwrap();
        ws.send_fragment(MessageKind::Binary, &b"ab"[..], false)
            .await
            .unwrap();
        ws.ping("between").await.unwrap();
        ws.send_fragment(MessageKind::Binary, &b"cd"[..], true)
            .await
            .unwrap();
        let mut pongs = 0;
        let message = loop {
            match tokio::time::timeout(WAIT, ws.read_event()).await.unwrap() {
                Ok(Some(Event::Pong(_))) => pongs += 1,
                Ok(Some(Event::Message(message))) => break message,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!((pongs, message), (1, Message::binary(&b"abcd"[..])));
        ws.close(None).await.unwrap();
        assert!(ws.read().await.unwrap().is_none());
    });
    assert_eq!(
        server.join().unwrap().unwrap(),
        [Message::binary(&b"abcd"[..])]
    );
}

#[test]
fn tokio_write_half_closes_between_fragments() {
    let (url, server) = echo_server();
    runtime().block_on(async {
        let (ws, _) = wsio::tokio::connect_async(&url).await.unwrap();
        let (mut read, mut write) = ws.split();
        write
            .send_fragment(MessageKind::Text, "part", false)
            .await
            .unwrap();
        write.ping("p").await.unwrap();
        write.close(None).await.unwrap();
        let mut events = Vec::new();
        while let Some(event) = tokio::time::timeout(WAIT, read.read_event())
            .await
            .unwrap()
            .unwrap()
        {
            events.push(event);
        }
        assert!(
            matches!(events.as_slice(), [Event::Pong(_), Event::Closed(_)]),
            "{events:?}"
        );
    });
    assert!(server.join().unwrap().unwrap().is_empty(), "no message");
}
