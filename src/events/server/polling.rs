//! Engine.IO HTTP long-polling: the handshake GET, the GETs that take the session's queued
//! packets, the POSTs that bring the client's, and the WebSocket upgrade of a session.
//!
//! These take what an HTTP front parsed (the session, a body) and return the response, so any
//! front can route to them: the hand-written one in `http.rs`, or a `tower::Service`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::conn::{self, BoxIo, Polling, Transport};
use super::handshake::RequestInfo;
use super::http::HttpResponse;
use super::queue::{Item, prepare};
use super::{DisconnectReason, ServerInner, lock};
use crate::Message;
use crate::events::payload::{decode_payload, push_record};
use crate::proto::handshake::{Accept, Request};

/// Opens a polling session (a GET without `sid`) and answers with its open packet.
pub(crate) async fn open(
    server: &Arc<ServerInner>,
    request: Arc<RequestInfo>,
    sid: String,
) -> HttpResponse {
    let (polling, input) = Polling::new(server, sid);
    lock(&server.sessions).insert(polling.sid.clone(), Arc::clone(&polling));
    let task_server = Arc::clone(server);
    let task_polling = Arc::clone(&polling);
    tokio::spawn(async move {
        let transport = Transport::Polling(task_polling, input);
        conn::run(&task_server, transport, request).await;
    });
    get(&polling).await
}

/// Answers a GET with the packets queued for the client, waiting for some if there are none.
///
/// Dropping the future while it waits means the client gave up on the request (its
/// connection closed): the session ends, as in socket.io.
pub(crate) async fn get(polling: &Polling) -> HttpResponse {
    if polling.conn.close_if_ping_overdue() {
        return HttpResponse::socketio_error(1, "Session ID unknown");
    }
    if polling.upgrading.load(Ordering::Acquire) {
        wait_for_upgrade(polling).await;
    }
    if polling.upgraded.load(Ordering::Acquire) {
        // The session runs on its WebSocket now: Node refuses its polling requests.
        return HttpResponse::socketio_error(3, "Bad request");
    }
    if polling.polling.swap(true, Ordering::AcqRel) {
        // A second GET while one waits: the client is broken, as socket.io judges it.
        polling.conn.close(DisconnectReason::TransportError);
        return HttpResponse::socketio_error(3, "Bad request");
    }
    let mut waiting = Waiting {
        polling,
        done: false,
    };
    let released = polling.released.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    let mut items = Vec::new();
    let taken = match polling.upgraded.load(Ordering::Acquire) {
        true => false,
        false => tokio::select! {
            () = polling.conn.queue.take(&mut items) => true,
            () = released => false,
        },
    };
    waiting.done = true;
    drop(waiting);
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
    HttpResponse::new(200, "text/plain; charset=UTF-8", payload)
}

/// A GET waiting for packets: clears the session's polling flag when it ends, and closes the
/// session when it is dropped before it had its answer.
struct Waiting<'a> {
    polling: &'a Polling,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.polling.polling.store(false, Ordering::Release);
        if !self.done {
            self.polling.conn.close(DisconnectReason::TransportClose);
        }
    }
}

/// Hands the packets of a POST body to the session.
pub(crate) async fn post(polling: &Polling, body: &[u8]) -> HttpResponse {
    if polling.conn.close_if_ping_overdue() {
        return HttpResponse::socketio_error(1, "Session ID unknown");
    }
    let Ok(messages) = decode_payload(body) else {
        polling.conn.close(DisconnectReason::ParseError);
        return HttpResponse::socketio_error(3, "Bad request");
    };
    if messages
        .iter()
        .any(|message| message.as_text() == Some("1"))
    {
        wait_for_get(polling).await;
    }
    match polling.receive(messages).await {
        true => HttpResponse::new(200, "text/html", "ok"),
        false => HttpResponse::socketio_error(1, "Session ID unknown"),
    }
}

/// Before a close from the client ends the session, gives a GET sent just before it a moment to
/// start waiting, so that it is released with a noop (as Node answers it: the client sent the
/// GET first) rather than refused for a session the close ended. Requests on two connections
/// reach the server's tasks in no set order: the multi-threaded runtime even runs the task
/// woken last first. socket.io's own test suite sends the two at once.
async fn wait_for_get(polling: &Polling) {
    tokio::task::yield_now().await;
    for _ in 0..CLOSE_GRACE_MILLIS {
        if polling.polling.load(Ordering::Acquire) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How long (in milliseconds) a close from the client waits for a GET sent with it.
const CLOSE_GRACE_MILLIS: u32 = 5;

/// A GET that arrives while a WebSocket probes the session's upgrade gives the `5` that may
/// have been sent just before it a moment to complete the upgrade, so that it is refused as
/// a request for an upgraded session (the client sent the `5` first) rather than answered
/// from the queue. Clients that follow the protocol stop polling once the probe is answered.
async fn wait_for_upgrade(polling: &Polling) {
    let released = polling.released.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    if !polling.upgraded.load(Ordering::Acquire) {
        let grace = Duration::from_millis(UPGRADE_GRACE_MILLIS);
        let _ = tokio::time::timeout(grace, released).await;
    }
}

/// How long (in milliseconds) a GET during an upgrade waits for the upgrade to complete.
const UPGRADE_GRACE_MILLIS: u64 = 5;

/// A POST body the server refused to read: too large, or without a length. The session ends.
pub(crate) fn refuse_body(polling: &Polling, response: HttpResponse) -> HttpResponse {
    polling.conn.close(DisconnectReason::TransportError);
    response
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
    let accept = async |_: &Request| Ok(Accept::new());
    match crate::tokio::accept_with(stream, options, accept).await {
        Ok(ws) => {
            probe(server, polling, ws).await;
            Ok(())
        }
        Err(error) => {
            // No upgrade under way after all: a later probe may try again.
            polling.upgrading.store(false, Ordering::Release);
            Err(error)
        }
    }
}

/// Runs the upgrade probe on a WebSocket whose handshake is done (see [`upgrade`]), and hands
/// it to the session when the client completes the upgrade.
pub(crate) async fn probe(server: &ServerInner, polling: Arc<Polling>, mut ws: WebSocket) {
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
        return;
    }
    server.forget_session(&polling.sid);
    polling.upgraded.store(true, Ordering::Release);
    polling.released.notify_waiters();
    polling.upgrade(ws).await;
}

/// A WebSocket taking over a polling session, over any stream.
pub(crate) type WebSocket = crate::tokio::WebSocketStream<BoxIo>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::server::queue::Push;
    use crate::events::{Config, Server};

    #[tokio::test]
    async fn a_get_given_up_before_its_answer_ends_the_session() {
        let server = Server::new(Config::default());
        let (polling, _input) = Polling::new(&server.inner, "sid".into());
        // Nothing is queued, so the GET waits until it is dropped.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), get(&polling)).await;
        assert!(gave_up.is_err());
        assert!(!polling.polling.load(Ordering::Acquire));
        let packet = prepare(vec![Message::text("42[\"x\"]")]);
        assert_eq!(polling.conn.push(packet, false), Push::Closed);
    }

    #[tokio::test]
    async fn a_get_takes_every_queued_packet_as_records() {
        let server = Server::new(Config::default());
        let (polling, _input) = Polling::new(&server.inner, "sid".into());
        polling
            .conn
            .push(prepare(vec![Message::text("40{}")]), false);
        polling.conn.push(
            prepare(vec![
                Message::text("451-[\"b\",{\"_placeholder\":true,\"num\":0}]"),
                Message::binary(vec![0xff]),
            ]),
            false,
        );
        let response = get(&polling).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            &response.body[..],
            b"40{}\x1e451-[\"b\",{\"_placeholder\":true,\"num\":0}]\x1eb/w=="
        );
        // Taken and written: a volatile packet may go again.
        let volatile = prepare(vec![Message::text("42[\"v\"]")]);
        assert_eq!(polling.conn.push(volatile, true), Push::Queued);
    }
}
