//! The opening handshake (RFC 6455 §4).

mod accept;
mod client;
mod error;
mod headers;
mod http;
mod server;

pub use accept::accept_key;
pub use client::{ClientRequest, Response, ResponseParser};
pub use error::{HandshakeError, UriError};
pub use headers::{ExtensionOffer, Headers};
#[cfg(feature = "events")]
pub(crate) use headers::{is_control, is_token, trim_ows};
pub use http::HandshakeLimits;
pub use server::{Accept, Reject, Request, RequestParser, reason_phrase};
