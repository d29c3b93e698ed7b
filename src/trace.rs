//! Connection lifecycle events for the `tracing` feature: handshakes, closes, failures and
//! timeouts, each at debug level and once per connection, never per message.
//!
//! Without the feature there is nothing here but [`debug!`], which then expands to `()`.

#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
use crate::proto::{CloseFrame, ProtocolError, Role};

/// `tracing::debug!` with the target `wsio` with the feature, nothing without it. Only for
/// statements: the arguments are not evaluated when the feature is off.
#[cfg(feature = "tracing")]
macro_rules! debug {
    ($($arg:tt)*) => {
        ::tracing::debug!(target: "wsio", $($arg)*)
    };
}

/// `tracing::debug!` with the feature, nothing without it. Only for statements: the arguments
/// are not evaluated when the feature is off.
#[cfg(not(feature = "tracing"))]
macro_rules! debug {
    ($($arg:tt)*) => {
        ()
    };
}

pub(crate) use debug;

/// We started the closing handshake with `frame` (`None`: a close frame without a code).
#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
pub(crate) fn close_sent(role: Role, frame: Option<&CloseFrame>) {
    debug!(
        role = role_name(role),
        code = frame.map(|frame| frame.code.0),
        reason = frame.map(|frame| frame.reason.as_str()),
        "close sent"
    );
}

/// The peer's close frame arrived (`None`: it had no code); the core answers it.
#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
pub(crate) fn close_received(role: Role, frame: Option<&CloseFrame>) {
    debug!(
        role = role_name(role),
        code = frame.map(|frame| frame.code.0),
        reason = frame.map(|frame| frame.reason.as_str()),
        "close received"
    );
}

/// The connection failed: the peer broke the protocol, ended the transport early or stopped
/// answering. `code` is the close code it fails with (sent when it may be).
#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
pub(crate) fn failed(role: Role, error: &ProtocolError) {
    let role = role_name(role);
    let code = error.close_code().0;
    match error {
        ProtocolError::KeepaliveTimeout => debug!(role, code, "keepalive timeout"),
        ProtocolError::CloseTimeout => debug!(role, code, "close timeout"),
        _ => debug!(role, code, error = %error, "protocol error"),
    }
}

/// A write waited longer than the write timeout; the connection is over.
#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
pub(crate) fn write_timeout(role: Role) {
    debug!(role = role_name(role), "write timeout");
}

/// The opening handshake did not complete within [`Options::handshake_timeout`].
///
/// [`Options::handshake_timeout`]: crate::Options::handshake_timeout
#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
pub(crate) fn handshake_timeout() {
    debug!("handshake timeout");
}

/// The role as a field value.
#[cfg(all(feature = "tracing", any(feature = "sync", feature = "tokio")))]
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Server => "server",
    }
}
