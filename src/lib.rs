//! wsio: a WebSocket (RFC 6455) implementation built as a sans-IO core with thin adapters.
//!
//! - [`proto`]: the protocol as pure state machines, bytes in and events out, with no sockets,
//!   clocks or global randomness. Fuzz targets, benchmarks and the adapters all drive it.
//! - `sync` (feature `sync`, default): a blocking `WebSocket` over any `Read + Write`.
//! - `tokio` (feature `tokio`): a `Stream` + `Sink` over any `AsyncRead + AsyncWrite`.
//! - [`upgrade`]: the opening handshake as a sans-IO driver, for adapters of your own.
//! - `events` (feature `events`): a Socket.IO v5 / Engine.IO v4 server over the tokio adapter.
//! - `http` (feature `http`): conversions between the handshake types and the `http` crate's.
//! - `hyper` and `axum` (features `hyper`, `axum`): upgrades inside a hyper 1.x or axum 0.8
//!   server, with the handshake's checks, the limits and permessage-deflate.
//! - `tls` (feature `rustls`): `wss://` for both adapters, client and server.
//!
//! ```no_run
//! # #[cfg(feature = "sync")] {
//! let (mut ws, _) = wsio::sync::connect("ws://127.0.0.1:9002")?;
//! ws.send(wsio::Message::text("hello"))?;
//! if let Some(reply) = ws.read()? {
//!     println!("{reply:?}");
//! }
//! # }
//! # Ok::<(), wsio::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod error;
#[cfg(feature = "events")]
pub mod events;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(any(feature = "sync", feature = "tokio", feature = "deflate"))]
mod lock;
mod options;
pub mod proto;
#[cfg(feature = "sync")]
pub mod sync;
#[cfg(any(feature = "sync", feature = "tokio", feature = "rustls-manual-roots"))]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;
mod trace;
pub mod upgrade;

pub use error::Error;
pub use options::Options;
pub use proto::{CloseCode, CloseFrame, Message, Utf8Bytes};
