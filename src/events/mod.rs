//! Socket.IO v5 over Engine.IO v4: WebSocket and HTTP long-polling (feature `events`).
//!
//! The codec is pure, like [`proto`](crate::proto): [`EnginePacket`] reads and writes the
//! Engine.IO framing of one WebSocket message, and [`Decoder`] / [`Packet::encode`] the
//! Socket.IO packets inside it, binary attachments included. Event arguments are [`Args`]:
//! JSON values whose binary parts are placeholders pointing at attachments.
//!
//! ```
//! use wsio::events::{Args, Decoder, EnginePacket, Packet};
//!
//! let packet = Packet::Event {
//!     namespace: "/chat".into(),
//!     event: "message".into(),
//!     args: Args::new().with("hello").with_binary(vec![1, 2, 3]),
//!     ack: Some(7),
//! };
//! let messages = packet.to_messages(); // one text message, then one binary
//!
//! let mut decoder = Decoder::default();
//! let mut decoded = None;
//! for message in &messages {
//!     decoded = match EnginePacket::decode(message)? {
//!         EnginePacket::Message(text) => decoder.receive_text(text)?,
//!         EnginePacket::Binary(data) => decoder.receive_binary(data)?,
//!         other => unreachable!("{other:?}"),
//!     };
//! }
//! assert_eq!(decoded, Some(packet));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The server ([`Server`]) speaks Engine.IO v4 at `/socket.io/`, over WebSocket
//! (`transport=websocket`) and HTTP long-polling (`transport=polling`, socket.io-client's
//! default first transport), and upgrades a polling session to WebSocket when the client
//! probes for it. Each session has one bounded outgoing queue, whatever its transport: a
//! WebSocket writer task drains it, or each polling GET takes what it holds; a broadcast
//! (encoded once, its `Bytes` shared by every recipient) never waits on a slow client: see
//! [`Config::queue_limit`] for the policy. The server pings every [`Config::ping_interval`] and
//! drops a client that does not answer within [`Config::ping_timeout`]. [`Server::serve`]
//! runs it on its own port; with the `hyper` feature, `Server::service` mounts it on a hyper or
//! axum app instead (a `tower::Service`, see `SocketIoService`).
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use wsio::events::{Refusal, Server};
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::default();
//! let chat = server.of("/");
//! chat.authorize(|auth| async move {
//!     match auth["token"].as_str() {
//!         Some(_) => Ok(()),
//!         None => Err(Refusal::new("token required")),
//!     }
//! });
//! chat.on_connection(|socket| {
//!     socket.join("lobby");
//!     socket.on("message", |socket, args, ack| async move {
//!         // To everyone else in the lobby, then acknowledge to the sender.
//!         let _ = socket.to("lobby").emit("message", args);
//!         if let Some(ack) = ack {
//!             let _ = ack.send(json!(["delivered"]));
//!         }
//!     });
//!     socket.on("ask", |socket, _, _| async move {
//!         let reply = socket.emit_with_ack_timeout("question", json!(["ready?"]), Duration::from_secs(5));
//!         if let Ok(answer) = reply.await {
//!             println!("{} answered {:?}", socket.id(), answer.values());
//!         }
//!     });
//!     socket.on_disconnect(|socket, reason| async move {
//!         println!("{} left: {reason}", socket.id());
//!     });
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! server.serve(listener).await
//! # }
//! ```

mod binary;
pub mod client;
mod engine;
mod packet;
mod server;

pub use binary::Args;
pub use engine::{EngineError, EnginePacket, OpenInfo, payload};
pub use packet::{
    DEFAULT_NAMESPACE, DecodeError, DecodeLimits, Decoder, EncodedPacket, Packet, RESERVED_EVENTS,
};
#[cfg(feature = "hyper")]
pub use server::SocketIoService;
pub use server::{
    AckError, AckSender, Broadcast, BroadcastAckError, Config, Cors, DisconnectReason, EmitError,
    Extensions, Handshake, HttpResponse, Namespace, Refusal, Remote, ServeError, Server, Socket,
};
pub use server::{Adapter, FetchedSocket, ServerAck};
#[cfg(feature = "redis")]
pub use server::{RedisAdapter, RedisAdapterConfig, RedisAdapterError, RedisStats};
