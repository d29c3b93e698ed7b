//! What both adapters do between the parsed handshake and the connection: extension
//! negotiation and building the [`Connection`], in one place so neither adapter holds any.

use bytes::Bytes;

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::{Accept, ClientRequest, HandshakeError, Request, Response};
use crate::proto::{Connection, Rng};

/// Negotiates extensions on top of the application's `accept` and returns the 101 response and
/// the server connection.
pub(crate) fn server(
    options: &Options,
    request: &Request,
    accept: Accept,
) -> Result<(Bytes, Connection), HandshakeError> {
    let conn = Connection::server(options.connection.clone());
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate
        && let Some((params, header)) = config.negotiate(request.extensions())
    {
        let accept = accept.header("Sec-WebSocket-Extensions", &header)?;
        return Ok((request.accept(&accept)?, conn.with_deflate(params)));
    }
    Ok((request.accept(&accept)?, conn))
}

/// The request to send: the application's, plus our extension offers.
pub(crate) fn client_request(
    options: &Options,
    request: &ClientRequest,
) -> Result<ClientRequest, Error> {
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate {
        return Ok(request.clone().extension(&config.offer())?);
    }
    let _ = options;
    Ok(request.clone())
}

/// Checks the extensions the server accepted and returns the client connection.
pub(crate) fn client(
    options: &Options,
    response: &Response,
    rng: Rng,
) -> Result<Connection, Error> {
    let conn = Connection::client(options.connection.clone(), rng);
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate
        && let Some(params) = config.accept_response(response.extensions())?
    {
        return Ok(conn.with_deflate(params));
    }
    let _ = response;
    Ok(conn)
}
