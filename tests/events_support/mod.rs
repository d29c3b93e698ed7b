//! A minimal Socket.IO client over the wsio tokio adapter, built on the events codec, and a
//! server started on a loopback port.
#![allow(dead_code)]

pub mod http;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::net::TcpListener;
use wsio::Message;
use wsio::events::{Args, Config, Decoder, EnginePacket, OpenInfo, Packet, Server};
use wsio::proto::handshake::ClientRequest;
use wsio::tokio::WebSocketStream;

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(5);

/// Starts `server` on a loopback port.
pub async fn start(server: &Server) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = server.clone();
    tokio::spawn(async move { server.serve(listener).await });
    addr
}

/// A config with a short heartbeat, for tests.
pub fn config() -> Config {
    let mut config = Config::default();
    config.ping_interval = Duration::from_millis(200);
    config.ping_timeout = Duration::from_millis(200);
    config
}

pub struct Client {
    pub ws: WebSocketStream<wsio::tokio::MaybeTlsStream>,
    pub open: OpenInfo,
    decoder: Decoder,
    /// Answer pings with pongs (a live client) or not (a dead one).
    pub answer_pings: bool,
}

/// What the client read.
#[derive(Debug)]
pub enum Incoming {
    Packet(Packet),
    Ping,
    Closed,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, "", &[]).await
    }

    /// Connects with `query` (`&name=value…`) appended to the URL and extra `headers`.
    pub async fn connect_with(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Self {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
        let mut request = ClientRequest::new(&url).unwrap();
        for (name, value) in headers {
            request = request.header(name, value).unwrap();
        }
        let (mut ws, _) = wsio::tokio::connect_async_with(request, &wsio::Options::default())
            .await
            .unwrap();
        let message = tokio::time::timeout(WAIT, ws.read())
            .await
            .unwrap()
            .unwrap();
        let message = message.expect("open packet");
        let EnginePacket::Open(open) = EnginePacket::decode(&message).unwrap() else {
            panic!("expected the open packet, got {message:?}");
        };
        Self {
            ws,
            open,
            decoder: Decoder::default(),
            answer_pings: true,
        }
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    pub async fn send(&mut self, packet: &Packet) {
        for message in packet.to_messages() {
            self.ws.send(message).await.unwrap();
        }
    }

    /// Reads the next Socket.IO packet, a ping (when not answering them) or the close.
    pub async fn next(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.next_inner())
            .await
            .expect("nothing arrived in time")
    }

    async fn next_inner(&mut self) -> Incoming {
        loop {
            let Ok(Some(message)) = self.ws.read().await else {
                return Incoming::Closed;
            };
            let decoded = match EnginePacket::decode(&message).unwrap() {
                EnginePacket::Message(text) => self.decoder.receive_text(text).unwrap(),
                EnginePacket::Binary(data) => self.decoder.receive_binary(data).unwrap(),
                EnginePacket::Ping(_) if self.answer_pings => {
                    self.ws.send(Message::text("3")).await.unwrap();
                    None
                }
                EnginePacket::Ping(_) => return Incoming::Ping,
                other => panic!("unexpected engine packet {other:?}"),
            };
            if let Some(packet) = decoded {
                return Incoming::Packet(packet);
            }
        }
    }

    pub async fn packet(&mut self) -> Packet {
        match self.next().await {
            Incoming::Packet(packet) => packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Joins `namespace` and returns the socket id.
    pub async fn join(&mut self, namespace: &str, auth: Option<Value>) -> String {
        let data = auth.map(|auth| match auth {
            Value::Object(map) => map,
            other => panic!("auth must be an object: {other}"),
        });
        self.send(&Packet::Connect {
            namespace: namespace.into(),
            data,
        })
        .await;
        match self.packet().await {
            Packet::Connect {
                namespace: joined,
                data: Some(data),
            } if joined == namespace => data["sid"].as_str().unwrap().to_owned(),
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    pub async fn emit(&mut self, namespace: &str, event: &str, args: Args, ack: Option<u64>) {
        self.send(&Packet::Event {
            namespace: namespace.into(),
            event: event.into(),
            args,
            ack,
        })
        .await;
    }

    /// Reads packets until an event, returning its name and arguments.
    pub async fn event(&mut self) -> (String, Args, Option<u64>) {
        match self.packet().await {
            Packet::Event {
                event, args, ack, ..
            } => (event, args, ack),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Waits for the connection to close.
    pub async fn closed(&mut self) {
        loop {
            if let Incoming::Closed = self.next().await {
                return;
            }
        }
    }
}

pub fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
