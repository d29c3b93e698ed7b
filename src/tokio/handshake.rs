//! The opening handshake over an async stream, in both roles: I/O loops over
//! [`upgrade`](crate::upgrade)'s sans-IO handshakes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::{Accept, ClientRequest, Reject, Request};
use crate::upgrade::{Accepted, ClientHandshake, Connected, HANDSHAKE_CHUNK, ServerHandshake};

/// Runs a handshake step within the handshake timeout.
///
/// The step is boxed: its state (parser, timer, response) takes a few KiB, and a caller that
/// awaited it inline would keep that much room in its task for the whole connection.
pub(super) fn within<T, F>(
    timeout: Option<Duration>,
    future: F,
) -> Pin<Box<impl Future<Output = Result<T, Error>>>>
where
    F: Future<Output = Result<T, Error>>,
{
    Box::pin(async move {
        match timeout {
            Some(timeout) => tokio::time::timeout(timeout, future)
                .await
                .unwrap_or_else(|_| {
                    #[cfg(feature = "tracing")]
                    crate::trace::handshake_timeout();
                    Err(Error::HandshakeTimeout)
                }),
            None => future.await,
        }
    })
}

/// Reads the request, lets `decide` answer it and writes the answer; returns the connection and
/// the bytes that followed the request.
pub(super) async fn server_handshake<S, F>(
    stream: &mut S,
    options: &Options,
    decide: F,
) -> Result<Accepted, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
{
    let mut handshake = ServerHandshake::new(options);
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let pending = loop {
        let received = match stream.read(&mut buf).await? {
            0 => return Err(handshake.receive_eof()),
            n => handshake.receive(&buf[..n]),
        };
        match received {
            Ok(Some(pending)) => break pending,
            Ok(None) => {}
            Err(refusal) => {
                // Best effort: the peer may already be gone.
                let _ = reply(stream, &refusal.response()).await;
                return Err(refusal.into());
            }
        }
    };
    let answer = decide(pending.request()).await;
    match pending.decide(answer) {
        Ok(accepted) => {
            stream.write_all(&accepted.response).await?;
            stream.flush().await?;
            Ok(accepted)
        }
        Err(refusal) => {
            let _ = reply(stream, &refusal.response()).await;
            Err(refusal.into())
        }
    }
}

/// Writes a refusal and shuts the stream down: the response ends with the connection.
async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, response: &[u8]) -> std::io::Result<()> {
    stream.write_all(response).await?;
    stream.shutdown().await
}

/// Writes the request and reads the response.
pub(super) async fn client_handshake<S>(
    stream: &mut S,
    request: &ClientRequest,
    options: &Options,
) -> Result<Connected, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut handshake = ClientHandshake::new(request, options)?;
    while let Some(bytes) = handshake.poll_transmit() {
        stream.write_all(&bytes).await?;
    }
    stream.flush().await?;
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    loop {
        let received = match stream.read(&mut buf).await? {
            0 => return Err(handshake.receive_eof()),
            n => handshake.receive(&buf[..n])?,
        };
        if let Some(connected) = received {
            return Ok(connected);
        }
    }
}
