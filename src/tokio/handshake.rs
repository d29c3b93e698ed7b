//! The opening handshake over an async stream, in both roles.

use super::*;

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
                .unwrap_or(Err(Error::HandshakeTimeout)),
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
) -> Result<(Connection, Bytes), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
{
    let mut parser = RequestParser::new(options.handshake.clone());
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let request = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, "eof during the handshake").into(),
            );
        }
        match parser.receive(&buf[..n]) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(error) => {
                // Best effort: the peer may already be gone.
                let _ = reply(stream, &error.response().encode()).await;
                return Err(error.into());
            }
        }
    };
    let accept = match decide(&request).await {
        Ok(accept) => accept,
        Err(reject) => {
            reply(stream, &reject.encode()).await?;
            return Err(Error::Rejected(reject.status()));
        }
    };
    let (response, conn) = match upgrade::server(options, &request, accept) {
        Ok(accepted) => accepted,
        Err(error) => {
            let _ = reply(stream, &error.response().encode()).await;
            return Err(error.into());
        }
    };
    stream.write_all(&response).await?;
    stream.flush().await?;
    Ok((conn, request.into_leftover()))
}

/// Writes a refusal and shuts the stream down: the response ends with the connection.
pub(super) async fn reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &[u8],
) -> io::Result<()> {
    stream.write_all(response).await?;
    stream.shutdown().await
}

pub(super) async fn client_handshake<S>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocketStream<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rng = Rng::from_os();
    let (bytes, mut parser) = upgrade::client_request(options, request)?.encode(&mut rng);
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let response = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(parser.receive_eof().into());
        }
        if let Some(response) = parser.receive(&buf[..n])? {
            break response;
        }
    };
    let conn = upgrade::client(options, &response, rng)?;
    let mut ws = WebSocketStream::from_connection(stream, conn, options);
    ws.core.conn.receive(response.leftover());
    Ok((ws, response))
}
