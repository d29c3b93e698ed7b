//! Protocol conformance of the events server: what a Node socket.io 4.x server does with the
//! same bytes, checked on the raw Engine.IO / Socket.IO text.
#![cfg(feature = "events")]

mod events_support;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use wsio::events::{DisconnectReason, EnginePacket, Server, Socket};
use wsio::proto::handshake::ClientRequest;
use wsio::{Message, Options};

use events_support::{Client, WAIT, config, start};

type Watch = mpsc::UnboundedReceiver<(Socket, Option<DisconnectReason>)>;

async fn recv<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .unwrap()
        .unwrap()
}

/// The next text message the server sent, pings answered and skipped.
async fn text(client: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, client.ws.read())
            .await
            .expect("nothing arrived in time")
            .expect("read failed")
            .expect("connection closed");
        match message.as_text() {
            Some("2") => client.send_raw(Message::text("3")).await,
            Some(text) => return text.to_owned(),
            None => panic!("expected text, got {message:?}"),
        }
    }
}

/// A server whose namespaces `/` and `/custom` acknowledge `echo` with its arguments and
/// report each socket and the reason it left. With `greet`, their connection handler emits the
/// auth payload as an `auth` event.
fn echo_server(greet: bool) -> (Server, Watch, Watch) {
    let server = Server::new(config());
    let mut watches = Vec::new();
    for name in ["/", "/custom"] {
        let (sender, receiver) = mpsc::unbounded_channel();
        watches.push(receiver);
        server.of(name).on_connection(move |socket| {
            if greet {
                let _ = socket.emit("auth", json!([socket.auth()]));
            }
            socket.on("echo", |_, args, ack| async move {
                if let Some(ack) = ack {
                    let _ = ack.send(args);
                }
            });
            let _ = sender.send((socket.clone(), None));
            let sender = sender.clone();
            socket.on_disconnect(move |socket, reason| {
                let _ = sender.send((socket, Some(reason)));
                async {}
            });
        });
    }
    let custom = watches.pop().unwrap();
    let root = watches.pop().unwrap();
    (server, root, custom)
}

#[tokio::test]
async fn auth_is_an_empty_object_when_absent_and_keeps_its_key_order() {
    let (server, ..) = echo_server(true);
    let addr = start(&server).await;
    let cases = [
        ("40", "42[\"auth\",{}]"),
        (
            r#"40{"token":"123","b":1,"a":2}"#,
            r#"42["auth",{"token":"123","b":1,"a":2}]"#,
        ),
        ("40/custom,", "42/custom,[\"auth\",{}]"),
        (
            r#"40/custom,{"z":"abc","y":null}"#,
            r#"42/custom,["auth",{"z":"abc","y":null}]"#,
        ),
    ];
    for (connect, auth) in cases {
        let mut client = Client::connect(addr).await;
        client.send_raw(Message::text(connect)).await;
        let reply = text(&mut client).await;
        let prefix = &connect[..connect.find('{').unwrap_or(connect.len())];
        assert!(reply.starts_with(prefix), "{reply} for {connect}");
        let handshake: serde_json::Value = serde_json::from_str(&reply[prefix.len()..]).unwrap();
        assert_eq!(handshake.as_object().unwrap().len(), 1, "{reply}");
        assert!(handshake["sid"].is_string(), "{reply}");
        assert_eq!(text(&mut client).await, auth);
    }
}

#[tokio::test]
async fn json_objects_keep_their_key_order_end_to_end() {
    let (server, ..) = echo_server(true);
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.send_raw(Message::text("40")).await;
    text(&mut client).await;
    text(&mut client).await;
    let args = r#"[{"zeta":1,"alpha":{"y":[{"k":0,"c":1}],"b":true},"mid":"x"},3]"#;
    client
        .send_raw(Message::text(format!(r#"4217["echo",{}"#, &args[1..])))
        .await;
    assert_eq!(text(&mut client).await, format!("4317{args}"));
}

/// A stream that records where the writer flushed: each entry is what was written between
/// two flushes.
struct Recorder {
    inner: DuplexStream,
    pending: Vec<u8>,
    flushed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.pending.extend_from_slice(&buf[..n]);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        if poll.is_ready() && !this.pending.is_empty() {
            let written = std::mem::take(&mut this.pending);
            this.flushed.lock().unwrap().push(written);
        }
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn connect_reply_is_flushed_before_what_the_connection_handler_emits() {
    let server = Server::new(config());
    server.of("/").on_connection(|socket| {
        let _ = socket.emit("welcome", json!(["first"]));
        let _ = socket.emit("welcome", json!(["second"]));
    });
    let (client_end, server_end) = tokio::io::duplex(64 << 10);
    let flushed = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        inner: server_end,
        pending: Vec::new(),
        flushed: Arc::clone(&flushed),
    };
    let serving = server.clone();
    tokio::spawn(async move { serving.handle(recorder).await });
    let request =
        ClientRequest::new("ws://127.0.0.1/socket.io/?EIO=4&transport=websocket").unwrap();
    let (mut ws, _) = wsio::tokio::client_async(client_end, &request, &Options::default())
        .await
        .unwrap();
    let open = tokio::time::timeout(WAIT, ws.read())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        EnginePacket::decode(&open.unwrap()),
        Ok(EnginePacket::Open(_))
    ));
    ws.send(Message::text("40")).await.unwrap();
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let message = tokio::time::timeout(WAIT, ws.read()).await.unwrap();
        texts.push(message.unwrap().unwrap().as_text().unwrap().to_owned());
    }
    assert!(texts[0].starts_with("40{\"sid\":"), "{texts:?}");
    assert_eq!(
        texts[1..],
        ["42[\"welcome\",\"first\"]", "42[\"welcome\",\"second\"]"]
    );
    let flushed = flushed.lock().unwrap().clone();
    let reply = flushed
        .iter()
        .position(|write| contains(write, b"40{\"sid\":"))
        .expect("the CONNECT reply was flushed");
    assert!(
        !contains(&flushed[reply], b"welcome"),
        "the CONNECT reply shares its write with the handler's emits"
    );
    assert!(
        flushed[reply + 1..]
            .iter()
            .any(|write| contains(write, b"first"))
    );
}

#[tokio::test]
async fn packets_before_connect_close_the_connection() {
    let (server, ..) = echo_server(false);
    let addr = start(&server).await;
    for packet in [
        "42[\"echo\"]",
        "43[]",
        "41",
        "44{\"message\":\"x\"}",
        "42/custom,[\"echo\"]",
    ] {
        let mut client = Client::connect(addr).await;
        client.send_raw(Message::text(packet)).await;
        client.closed().await;
    }
}

#[tokio::test]
async fn packets_for_a_namespace_never_joined_close_with_a_parse_error() {
    let (server, mut sockets, _) = echo_server(false);
    let addr = start(&server).await;
    for packet in [
        "42/custom,[\"echo\"]",
        "41/custom,",
        "43/custom,1[]",
        "44{}",
    ] {
        let mut client = Client::connect(addr).await;
        client.join("/", None).await;
        recv(&mut sockets).await;
        client.send_raw(Message::text(packet)).await;
        let (_, reason) = recv(&mut sockets).await;
        assert_eq!(reason, Some(DisconnectReason::ParseError), "{packet}");
        client.closed().await;
    }
}

#[tokio::test]
async fn packets_after_leaving_a_namespace_close_the_connection() {
    let (server, mut sockets, mut custom) = echo_server(false);
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    client.join("/custom", None).await;
    recv(&mut sockets).await;
    recv(&mut custom).await;
    client.send_raw(Message::text("41/custom,")).await;
    let (_, reason) = recv(&mut custom).await;
    assert_eq!(reason, Some(DisconnectReason::ClientNamespaceDisconnect));
    // The connection stays for `/`.
    client.send_raw(Message::text("423[\"echo\",1]")).await;
    assert_eq!(text(&mut client).await, "433[1]");
    client.send_raw(Message::text("42/custom,[\"echo\"]")).await;
    let (_, reason) = recv(&mut sockets).await;
    assert_eq!(reason, Some(DisconnectReason::ParseError));
    client.closed().await;
}

#[tokio::test]
async fn a_second_connect_for_a_joined_namespace_closes_the_connection() {
    // Node's socket.io closes the client on a CONNECT for a namespace it is connected to.
    let (server, mut sockets, _) = echo_server(false);
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    let (first, _) = recv(&mut sockets).await;
    client.send_raw(Message::text("40")).await;
    let (socket, reason) = recv(&mut sockets).await;
    assert_eq!(socket.id(), first.id());
    assert_eq!(reason, Some(DisconnectReason::ParseError));
    client.closed().await;
}

#[tokio::test]
async fn a_ping_from_the_client_closes_the_session() {
    // Engine.IO v4: the server pings, the client answers; a client ping is a protocol error.
    let (server, mut sockets, _) = echo_server(false);
    let addr = start(&server).await;
    for ping in ["2", "2probe"] {
        let mut client = Client::connect(addr).await;
        client.join("/", None).await;
        recv(&mut sockets).await;
        client.send_raw(Message::text(ping)).await;
        let (_, reason) = recv(&mut sockets).await;
        assert_eq!(reason, Some(DisconnectReason::TransportError), "{ping}");
        client.closed().await;
    }
}

#[tokio::test]
async fn numeric_event_names_reach_the_handler_of_their_decimal_string() {
    let server = Server::new(config());
    let (sender, mut seen) = mpsc::unbounded_channel();
    server.of("/").on_connection(move |socket| {
        let sender = sender.clone();
        socket.on("42", move |_, args, ack| {
            let _ = sender.send(args.values().to_vec());
            async move {
                if let Some(ack) = ack {
                    let _ = ack.send(json!(["ok"]));
                }
            }
        });
    });
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    client.send_raw(Message::text("429[42,\"x\"]")).await;
    assert_eq!(recv(&mut seen).await, [json!("x")]);
    assert_eq!(text(&mut client).await, "439[\"ok\"]");
}

#[tokio::test]
async fn an_ack_without_its_array_closes_with_a_parse_error() {
    let (server, mut sockets, _) = echo_server(false);
    let addr = start(&server).await;
    let mut client = Client::connect(addr).await;
    client.join("/", None).await;
    recv(&mut sockets).await;
    client.send_raw(Message::text("431")).await;
    let (_, reason) = recv(&mut sockets).await;
    assert_eq!(reason, Some(DisconnectReason::ParseError));
    client.closed().await;
}
