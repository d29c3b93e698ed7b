//! Broadcasting one `PreparedMessage` to many connections through both adapters, over loopback,
//! with permessage-deflate negotiated so that the server compresses once.
#![cfg(all(feature = "tokio", feature = "sync", feature = "deflate"))]

use std::net::TcpListener as StdListener;
use std::thread;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use wsio::proto::PreparedMessage;
use wsio::proto::deflate::DeflateConfig;
use wsio::{Message, Options};

const CLIENTS: usize = 4;

fn server_options() -> Options {
    let mut deflate = DeflateConfig::default();
    // Lets the server compress a broadcast once for everyone (RFC 7692 §7.1.1.1).
    deflate.server_no_context_takeover = true;
    let mut options = Options::default();
    options.deflate = Some(deflate);
    options
}

fn updates() -> Vec<Message> {
    (0..20)
        .map(|i| {
            Message::text(format!(
                "{{\"tick\":{i},\"note\":\"{}\"}}",
                "ça va ".repeat(i * 10)
            ))
        })
        .chain([Message::binary(vec![3u8; 200_000])])
        .collect()
}

#[tokio::test]
async fn tokio_write_halves_deliver_one_prepared_message_to_every_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..CLIENTS {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = wsio::tokio::accept_with(stream, &server_options(), async |_| {
                Ok(wsio::proto::handshake::Accept::new())
            })
            .await
            .unwrap();
            assert!(
                ws.connection()
                    .deflate_params()
                    .unwrap()
                    .server_no_context_takeover()
            );
            let (reader, writer) = ws.split();
            readers.push(reader);
            writers.push(writer);
        }
        for message in updates() {
            let prepared = PreparedMessage::new(message);
            for writer in &mut writers {
                writer.send_prepared(&prepared).await.unwrap();
            }
        }
        for writer in &mut writers {
            writer.close(None).await.unwrap();
        }
        for mut reader in readers {
            while reader.next().await.is_some() {}
        }
    });
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (ws, response) = wsio::tokio::connect_async(&url).await.unwrap();
        assert!(
            response
                .extensions()
                .iter()
                .any(|e| e.name() == "permessage-deflate")
        );
        clients.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut received = Vec::new();
            while let Some(message) = ws.next().await {
                received.push(message.unwrap());
            }
            received
        }));
    }
    for client in clients {
        assert_eq!(client.await.unwrap(), updates());
    }
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server finished")
        .unwrap();
}

#[test]
fn sync_writers_deliver_one_prepared_message_to_every_client() {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        let mut writers = Vec::new();
        for _ in 0..CLIENTS {
            let (stream, _) = listener.accept().unwrap();
            wsio::sync::configure_tcp(&stream, &server_options()).unwrap();
            let ws = wsio::sync::accept_with(stream, &server_options(), |_| {
                Ok(wsio::proto::handshake::Accept::new())
            })
            .unwrap();
            let (mut reader, writer) = ws.split().unwrap();
            // The reader answers the client's close.
            thread::spawn(move || while let Ok(Some(_)) = reader.read() {});
            writers.push(writer);
        }
        for message in updates() {
            let prepared = PreparedMessage::new(message);
            for writer in &writers {
                writer.send_prepared(&prepared).unwrap();
            }
        }
        for writer in &writers {
            writer.close(None).unwrap();
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (mut ws, _) = wsio::sync::connect(&url).unwrap();
            thread::spawn(move || {
                let mut received = Vec::new();
                while let Some(message) = ws.read().unwrap() {
                    received.push(message);
                }
                received
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), updates());
    }
    server.join().unwrap();
}
