//! The Socket.IO client against the wsio events server in-process: emits with retries, and
//! long-polling upgraded to WebSocket.
#![cfg(feature = "events")]

mod events_support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsio::events::client::{Client, ClientBuilder, ClientError, Transport};
use wsio::events::{Refusal, Server};

use events_support::{WAIT, config, start};

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.expect("timed out")
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    within(receiver.recv()).await.expect("channel closed")
}

fn builder(addr: SocketAddr) -> ClientBuilder {
    ClientBuilder::new(format!("http://{addr}"))
        .reconnection(false)
        .connect_timeout(WAIT)
}

/// A server whose `flaky` event is acknowledged only from its `failures + 1`-th attempt on
/// (per first argument), and which logs the key of every attempt.
fn flaky_server(failures: u32) -> (Server, Arc<Mutex<Vec<i64>>>) {
    let server = Server::new(config());
    let log = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(std::collections::HashMap::<i64, u32>::new()));
    let seen = Arc::clone(&log);
    server.of("/").on_connection(move |socket| {
        let (seen, attempts) = (Arc::clone(&seen), Arc::clone(&attempts));
        socket.on("flaky", move |_, args, ack| {
            let key = args.get::<i64>(0).unwrap();
            let ack = ack.expect("every attempt asks for an ack");
            seen.lock().unwrap().push(key);
            let tries = {
                let mut attempts = attempts.lock().unwrap();
                let tries = attempts.entry(key).or_default();
                *tries += 1;
                *tries
            };
            if tries > failures {
                ack.send(json!([key, tries])).unwrap();
            }
            async {}
        });
    });
    (server, log)
}

#[tokio::test]
async fn retries_resend_until_answered() {
    let (server, log) = flaky_server(2);
    let addr = start(&server).await;
    let client = builder(addr)
        .retries(3)
        .ack_timeout(Duration::from_millis(150))
        .connect()
        .await
        .unwrap();
    let reply = within(client.emit_with_ack("flaky", json!([7])))
        .await
        .unwrap();
    assert_eq!(
        reply.get::<u32>(1).unwrap(),
        3,
        "answered at the third attempt"
    );
    assert_eq!(*log.lock().unwrap(), [7, 7, 7]);
}

#[tokio::test]
async fn retries_exhausted_is_a_typed_error() {
    let (server, log) = flaky_server(u32::MAX);
    let addr = start(&server).await;
    let client = builder(addr).connect().await.unwrap();
    let timeout = Duration::from_millis(80);
    let error = within(client.emit_with_ack_retries("flaky", json!([1]), timeout, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::RetriesExhausted { attempts: 3, timeout: t } if t == timeout),
        "{error:?}"
    );
    assert_eq!(log.lock().unwrap().len(), 3);
    // The queue moves on: the next emit is sent.
    let error = within(client.emit_with_ack_retries("flaky", json!([2]), timeout, 0))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ClientError::RetriesExhausted { attempts: 1, .. }
    ));
    assert_eq!(log.lock().unwrap().last(), Some(&2));
}

#[tokio::test]
async fn retried_emits_go_one_at_a_time_in_order() {
    let (server, log) = flaky_server(1);
    let addr = start(&server).await;
    let client = builder(addr)
        .retries(1)
        .ack_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    // Plain emits join the queue too, asking for an ack.
    client.emit("flaky", json!([1])).unwrap();
    let second = client.emit_with_ack("flaky", json!([2]));
    let third = client.emit_with_ack("flaky", json!([3]));
    let (second, third) = within(async { tokio::join!(second, third) }).await;
    assert_eq!(second.unwrap().get::<i64>(0).unwrap(), 2);
    assert_eq!(third.unwrap().get::<i64>(0).unwrap(), 3);
    assert_eq!(*log.lock().unwrap(), [1, 1, 2, 2, 3, 3]);
}

/// A server that echoes each `tock` as a `tick` and counts the `tock`s it saw out of order;
/// with `beats`, it also sends that many `beat`s from the connection on, one every 2 ms, so
/// packets are on their way whenever the upgrade happens.
fn echo_server(beats: u32) -> (Server, Arc<AtomicU32>, Arc<AtomicU32>) {
    let server = Server::new(config());
    let received = Arc::new(AtomicU32::new(0));
    let disorder = Arc::new(AtomicU32::new(0));
    let (count, wrong) = (Arc::clone(&received), Arc::clone(&disorder));
    server.of("/").on_connection(move |socket| {
        let (count, wrong) = (Arc::clone(&count), Arc::clone(&wrong));
        socket.on("tock", move |socket, args, _| {
            let i = args.get::<u32>(0).unwrap();
            if count.fetch_add(1, Ordering::SeqCst) != i {
                wrong.fetch_add(1, Ordering::SeqCst);
            }
            socket.emit("tick", json!([i])).unwrap();
            async {}
        });
        socket.on("sync", |_, _, ack| async move {
            ack.unwrap().send(()).unwrap();
        });
        let socket = socket.clone();
        tokio::spawn(async move {
            for i in 0..beats {
                if socket.emit("beat", json!([i])).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
    });
    (server, received, disorder)
}

/// How many `beat`s the upgrade tests' server sends.
const BEATS: u32 = 300;

/// Emits `tock`s (with a round trip every 8) until the upgrade happened and 64 more went out,
/// then checks both directions arrived complete and in order; returns the count.
async fn stream_across_the_upgrade(
    client: &wsio::events::client::Client,
    ticks: &mut mpsc::UnboundedReceiver<u32>,
    upgraded: &mut mpsc::UnboundedReceiver<()>,
) -> u32 {
    let mut upgraded_at = None;
    let mut sent = 0;
    while upgraded_at.is_none_or(|at| sent < at + 64) {
        assert!(sent < 20_000, "no upgrade");
        client.emit("tock", json!([sent])).unwrap();
        sent += 1;
        if sent % 8 == 0 {
            within(client.emit_with_ack("sync", ())).await.unwrap();
        }
        if upgraded_at.is_none() && upgraded.try_recv().is_ok() {
            upgraded_at = Some(sent);
        }
    }
    assert!(upgraded_at.unwrap() > 0);
    for expected in 0..sent {
        assert_eq!(next(ticks).await, expected, "ticks in order, none lost");
    }
    sent
}

/// Connects with polling first and streams both ways across the upgrade to WebSocket (see
/// `stream_across_the_upgrade`), then checks that no packet was lost or reordered either way.
async fn upgrade_while_streaming(
    addr: SocketAddr,
    received: &AtomicU32,
    disorder: &AtomicU32,
) -> Client {
    let (tick_sender, mut ticks) = mpsc::unbounded_channel();
    let (beat_sender, mut beats) = mpsc::unbounded_channel();
    let (upgrade_sender, mut upgraded) = mpsc::unbounded_channel();
    let client = builder(addr)
        .polling_first(true)
        .on("tick", move |args, _| {
            tick_sender.send(args.get::<u32>(0).unwrap()).unwrap();
        })
        .on("beat", move |args, _| {
            beat_sender.send(args.get::<u32>(0).unwrap()).unwrap();
        })
        .on_upgrade(move || upgrade_sender.send(()).unwrap())
        .connect()
        .await
        .unwrap();
    let sent = stream_across_the_upgrade(&client, &mut ticks, &mut upgraded).await;
    for expected in 0..BEATS {
        assert_eq!(
            next(&mut beats).await,
            expected,
            "beats in order, none lost"
        );
    }
    assert_eq!(client.transport(), Some(Transport::WebSocket));
    assert_eq!(received.load(Ordering::SeqCst), sent);
    assert_eq!(disorder.load(Ordering::SeqCst), 0, "tocks in order");
    client
}

#[tokio::test]
async fn polling_first_upgrades_without_losing_or_reordering_packets() {
    let (server, received, disorder) = echo_server(BEATS);
    let addr = start(&server).await;
    let client = upgrade_while_streaming(addr, &received, &disorder).await;
    // The session is the same one: the socket id did not change, the heartbeat goes on.
    let id = client.id().unwrap();
    within(client.emit_with_ack("sync", ())).await.unwrap();
    assert_eq!(client.id().unwrap(), id);
}

#[tokio::test]
async fn upgrade_off_stays_on_polling() {
    let (server, _, _) = echo_server(0);
    let addr = start(&server).await;
    let client = builder(addr)
        .polling_first(true)
        .upgrade(false)
        .connect()
        .await
        .unwrap();
    for _ in 0..3 {
        within(client.emit_with_ack("sync", ())).await.unwrap();
    }
    assert_eq!(client.transport(), Some(Transport::Polling));
}

#[tokio::test]
async fn fallback_session_upgrades_when_the_server_takes_a_websocket_for_it() {
    // The handshake over WebSocket is refused, the upgrade of a polling session is not.
    let (server, _, _) = echo_server(0);
    let (refused_sender, mut refused) = mpsc::unbounded_channel();
    server.allow_request(move |request| {
        let websocket = request.query_param("transport") == Some("websocket");
        if websocket {
            refused_sender.send(()).unwrap();
        }
        async move {
            match websocket {
                true => Err(Refusal::new("no websocket handshake")),
                false => Ok(()),
            }
        }
    });
    let addr = start(&server).await;
    let (tick_sender, mut ticks) = mpsc::unbounded_channel();
    let (upgrade_sender, mut upgraded) = mpsc::unbounded_channel();
    let client = builder(addr)
        .polling_fallback(true)
        .on("tick", move |args, _| {
            tick_sender.send(args.get::<u32>(0).unwrap()).unwrap();
        })
        .on_upgrade(move || upgrade_sender.send(()).unwrap())
        .connect()
        .await
        .unwrap();
    next(&mut refused).await;
    stream_across_the_upgrade(&client, &mut ticks, &mut upgraded).await;
    assert_eq!(client.transport(), Some(Transport::WebSocket));
}

/// A proxy to `target`: with `refuse`, it answers `400` to every request for a WebSocket
/// (reported on the channel); it passes everything else through, holding each chunk the
/// server sends on a long-polling connection for `poll_latency`.
async fn proxy(
    target: SocketAddr,
    refuse: bool,
    poll_latency: Duration,
) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(relay(inbound, target, refuse, poll_latency, sender));
        }
    });
    (addr, receiver)
}

async fn relay(
    mut inbound: TcpStream,
    target: SocketAddr,
    refuse: bool,
    poll_latency: Duration,
    refused: mpsc::UnboundedSender<String>,
) {
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match inbound.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    let websocket = line.contains("transport=websocket");
    if websocket && refuse {
        let _ = refused.send(line);
        let refusal = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let _ = inbound.write_all(refusal.as_bytes()).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    if outbound.write_all(&head).await.is_err() {
        return;
    }
    if websocket || poll_latency.is_zero() {
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        return;
    }
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let upstream = async { tokio::io::copy(&mut client_read, &mut server_write).await };
    let downstream = async {
        let mut buf = [0; 16384];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            tokio::time::sleep(poll_latency).await;
            client_write.write_all(&buf[..n]).await?;
        }
    };
    let _ = tokio::join!(upstream, downstream);
}

#[tokio::test]
async fn slow_polling_answers_still_come_before_the_websocket() {
    // Polled answers arrive late: the last GET, released when the server answers the probe,
    // lands after `3probe`; the client must read it before it switches to the WebSocket.
    let (server, received, disorder) = echo_server(BEATS);
    let (addr, _) = proxy(start(&server).await, false, Duration::from_millis(30)).await;
    upgrade_while_streaming(addr, &received, &disorder).await;
}

#[tokio::test]
async fn a_refused_upgrade_is_tried_once_and_polling_goes_on() {
    let (server, received, disorder) = echo_server(0);
    let (addr, mut refused) = proxy(start(&server).await, true, Duration::ZERO).await;
    let (tick_sender, mut ticks) = mpsc::unbounded_channel();
    let client = builder(addr)
        .polling_fallback(true)
        .on("tick", move |args, _| {
            tick_sender.send(args.get::<u32>(0).unwrap()).unwrap();
        })
        .connect()
        .await
        .unwrap();
    let handshake = next(&mut refused).await;
    assert!(!handshake.contains("sid="), "{handshake}");
    let probe = next(&mut refused).await;
    assert!(
        probe.contains("sid="),
        "the upgrade asks for the session: {probe}"
    );
    // Polling goes on; a client that retried the upgrade in a loop would be refused again.
    for i in 0..200 {
        client.emit("tock", json!([i])).unwrap();
        if i % 20 == 19 {
            within(client.emit_with_ack("sync", ())).await.unwrap();
        }
    }
    for expected in 0..200 {
        assert_eq!(next(&mut ticks).await, expected);
    }
    let server_sid = client.id().unwrap();
    within(client.emit_with_ack("sync", ())).await.unwrap();
    assert_eq!(client.id().unwrap(), server_sid);
    assert_eq!(client.transport(), Some(Transport::Polling));
    assert_eq!(received.load(Ordering::SeqCst), 200);
    assert_eq!(disorder.load(Ordering::SeqCst), 0);
    assert!(refused.try_recv().is_err(), "no second upgrade attempt");
}
