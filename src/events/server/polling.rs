//! Engine.IO HTTP long-polling: the handshake GET, the GETs that take the session's queued
//! packets, the POSTs that bring the client's, and the WebSocket upgrade of a session.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{self, BoxIo, Polling, Transport};
use super::handshake::RequestInfo;
use super::http::{Head, HttpConn, HttpResponse};
use super::queue::{Item, prepare};
use super::{DisconnectReason, ServerInner, lock};
use crate::Message;
use crate::events::payload::{decode_payload, push_record};
use crate::proto::handshake::{Accept, Request};

/// The answer to a polling request, or `None` when the client left before it.
pub(crate) type Answer = Option<HttpResponse>;

/// Opens a polling session (a GET without `sid`) and answers with its open packet.
pub(crate) async fn open<S>(
    server: &Arc<ServerInner>,
    http: &mut HttpConn<S>,
    head: &Head,
    request: Arc<RequestInfo>,
    sid: String,
) -> Answer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (polling, input) = Polling::new(server, sid);
    lock(&server.sessions).insert(polling.sid.clone(), Arc::clone(&polling));
    let task_server = Arc::clone(server);
    let task_polling = Arc::clone(&polling);
    tokio::spawn(async move {
        let transport = Transport::Polling(task_polling, input);
        conn::run(&task_server, transport, request).await;
    });
    get(&polling, http, head).await
}

/// Answers a GET with the packets queued for the client, waiting for some if there are none.
pub(crate) async fn get<S>(polling: &Polling, http: &mut HttpConn<S>, head: &Head) -> Answer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    http.consume(head);
    if polling.polling.swap(true, Ordering::AcqRel) {
        // A second GET while one waits: the client is broken, as socket.io judges it.
        polling.conn.close(DisconnectReason::TransportError);
        return Some(HttpResponse::socketio_error(3, "Bad request"));
    }
    let released = polling.released.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    let mut items = Vec::new();
    let taken = match polling.upgraded.load(Ordering::Acquire) {
        true => Some(false),
        false => tokio::select! {
            () = polling.conn.queue.take(&mut items) => Some(true),
            () = released => Some(false),
            () = http.closed() => None,
        },
    };
    polling.polling.store(false, Ordering::Release);
    let Some(taken) = taken else {
        // The client gave up on the request: the session is gone with it.
        polling.conn.close(DisconnectReason::TransportClose);
        return None;
    };
    let mut payload = String::new();
    for item in items {
        match item {
            Item::Packet(messages) => {
                for message in messages.iter() {
                    push_record(&mut payload, message);
                }
            }
            Item::Flush => {}
            Item::Close if polling.client_closed() => {}
            Item::Close => {
                let close = prepare(vec![Message::text("1")]);
                push_record(&mut payload, &close[0]);
            }
        }
    }
    if taken {
        polling.conn.queue.written();
    }
    if payload.is_empty() {
        // Released by an upgrade or a close: a noop ends the request.
        payload.push('6');
    }
    Some(HttpResponse::new(200, "text/plain; charset=UTF-8", payload))
}

/// Hands a POST's packets to the session.
pub(crate) async fn post<S>(
    server: &ServerInner,
    polling: &Polling,
    http: &mut HttpConn<S>,
    head: &Head,
) -> Result<Answer, std::io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = match http.read_body(head, server.config.max_payload).await? {
        Ok(body) => body,
        Err(response) => {
            polling.conn.close(DisconnectReason::TransportError);
            return Ok(Some(response));
        }
    };
    let Ok(messages) = decode_payload(&body) else {
        polling.conn.close(DisconnectReason::ParseError);
        return Ok(Some(HttpResponse::socketio_error(3, "Bad request")));
    };
    match polling.receive(messages).await {
        true => Ok(Some(HttpResponse::new(200, "text/html", "ok"))),
        false => Ok(Some(HttpResponse::socketio_error(1, "Session ID unknown"))),
    }
}

/// Takes a polling session over to a WebSocket: the probe (`2probe` answered `3probe`, with a
/// noop to release a waiting GET), then `5`, after which the session reads and writes only
/// the WebSocket and its id no longer answers HTTP requests.
pub(crate) async fn upgrade(
    server: &ServerInner,
    polling: Arc<Polling>,
    stream: BoxIo,
    options: &crate::Options,
) -> Result<(), crate::Error> {
    let mut ws =
        crate::tokio::accept_with(stream, options, async |_: &Request| Ok(Accept::new())).await?;
    let probe = async {
        let text = |message: Option<Message>| message.and_then(|m| m.as_text().map(str::to_owned));
        if text(ws.read().await?).as_deref() != Some("2probe") {
            return Ok(false);
        }
        ws.send(Message::text("3probe")).await?;
        polling.conn.push(prepare(vec![Message::text("6")]), false);
        Ok::<_, crate::Error>(text(ws.read().await?).as_deref() == Some("5"))
    };
    let upgraded = tokio::time::timeout(server.config.upgrade_timeout, probe).await;
    if !matches!(upgraded, Ok(Ok(true))) {
        polling.upgrading.store(false, Ordering::Release);
        let _ = ws.close(None).await;
        return Ok(());
    }
    server.forget_session(&polling.sid);
    polling.upgraded.store(true, Ordering::Release);
    polling.released.notify_waiters();
    polling.upgrade(ws).await;
    Ok(())
}
