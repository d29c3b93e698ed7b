//! The Socket.IO server's HTTP front (`events::Server::handle`) over an in-memory stream, on a
//! paused clock: scripted long-polling requests (the session id of the first open filled in),
//! bodies with right, missing or wrong lengths, one request at a time. Every answer is a whole
//! HTTP/1.1 response with a documented status and a `Content-Length` that matches its body; a
//! `200` to a polling GET is a payload `decode_payload` reads; once the client has gone, the
//! connection ends.
#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use wsio::events::payload::decode_payload;
use wsio::events::{Config, Cors, Server};

#[derive(Debug, Arbitrary)]
struct Script {
    max_payload: u16,
    cors: bool,
    /// `Options::handshake_timeout`, which also bounds how long a body may take, in seconds.
    body_timeout: Option<u8>,
    requests: Vec<Req>,
}

#[derive(Debug, Arbitrary)]
struct Req {
    method: Method,
    transport: Transport,
    sid: Sid,
    eio4: bool,
    fields: Vec<(Field, String)>,
    body: Body,
    length: Length,
    close: bool,
}

#[derive(Debug, Arbitrary)]
enum Method {
    Get,
    Post,
    Options,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Transport {
    Polling,
    WebSocket,
    Other(String),
    Missing,
}

#[derive(Debug, Arbitrary)]
enum Sid {
    /// The id of the session the first open made.
    Session,
    Missing,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Field {
    Origin,
    Connection,
    Upgrade,
    SecWebSocketKey,
    SecWebSocketVersion,
    AccessControlRequestHeaders,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Body {
    /// Text records joined by the record separator.
    Records(Vec<String>),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Length {
    Exact,
    Missing,
    Value(String),
    Chunked,
}

impl Req {
    fn encode(&self, sid: Option<&str>) -> Vec<u8> {
        let method = match &self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Options => "OPTIONS",
            Method::Other(method) => method,
        };
        let mut target = String::from("/socket.io/?");
        if self.eio4 {
            target.push_str("EIO=4&");
        }
        match &self.transport {
            Transport::Polling => target.push_str("transport=polling&"),
            Transport::WebSocket => target.push_str("transport=websocket&"),
            Transport::Other(other) => target.push_str(&format!("transport={other}&")),
            Transport::Missing => {}
        }
        match (&self.sid, sid) {
            (Sid::Session, Some(sid)) => target.push_str(&format!("sid={sid}")),
            (Sid::Other(other), _) => target.push_str(&format!("sid={other}")),
            _ => {}
        }
        let mut out = format!("{method} {target} HTTP/1.1\r\nHost: a\r\n").into_bytes();
        for (field, value) in &self.fields {
            let name = match field {
                Field::Origin => "Origin",
                Field::Connection => "Connection",
                Field::Upgrade => "Upgrade",
                Field::SecWebSocketKey => "Sec-WebSocket-Key",
                Field::SecWebSocketVersion => "Sec-WebSocket-Version",
                Field::AccessControlRequestHeaders => "Access-Control-Request-Headers",
                Field::Other(name) => name,
            };
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let body = match &self.body {
            Body::Records(records) => records.join("\x1e").into_bytes(),
            Body::Raw(bytes) => bytes.clone(),
        };
        match &self.length {
            Length::Exact => {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes())
            }
            Length::Missing => {}
            Length::Value(value) => {
                out.extend_from_slice(format!("Content-Length: {value}\r\n").as_bytes())
            }
            Length::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if matches!(self.method, Method::Post | Method::Other(_)) {
            out.extend_from_slice(&body);
        }
        out
    }
}

/// An hour on the paused clock: far past every timer the server runs.
const PATIENCE: Duration = Duration::from_secs(3600);

fuzz_target!(|data: &[u8]| {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(drive(script));
});

async fn drive(script: Script) {
    let mut config = Config::default();
    config.max_payload = script.max_payload.into();
    if script.cors {
        config.cors = Some(Cors::default());
    }
    config.websocket.handshake_timeout = script
        .body_timeout
        .map(|secs| Duration::from_secs(secs.into()));
    let server = Server::new(config);
    let (mut client, stream) = tokio::io::duplex(1 << 16);
    let serving = tokio::spawn(async move { server.handle(stream).await });
    let mut sid: Option<String> = None;
    let mut buf = Vec::new();
    for request in &script.requests {
        let polling_get = matches!(request.method, Method::Get)
            && matches!(request.transport, Transport::Polling)
            && request.eio4
            && matches!(request.sid, Sid::Session)
            && sid.is_some();
        if client
            .write_all(&request.encode(sid.as_deref()))
            .await
            .is_err()
        {
            break;
        }
        let Ok(answer) = tokio::time::timeout(PATIENCE, response(&mut client, &mut buf)).await
        else {
            // The server waits for more of the body than was sent: the client gives up.
            break;
        };
        let Some((status, body)) = answer else {
            break;
        };
        if status == 101 {
            break;
        }
        if status == 200 && polling_get {
            assert!(
                decode_payload(&body).is_ok(),
                "a GET's payload does not decode: {body:?}"
            );
        }
        if sid.is_none()
            && let Some(open) = body.strip_prefix(b"0{\"sid\":\"")
            && let Some(end) = open.iter().position(|&byte| byte == b'"')
        {
            sid = Some(String::from_utf8_lossy(&open[..end]).into_owned());
        }
    }
    drop(client);
    let ended = tokio::time::timeout(PATIENCE, serving).await;
    assert!(
        ended.is_ok(),
        "the connection did not end after the client went"
    );
    // A refusal or an I/O error is a fine way for hostile input to end; a panic is not.
    let _served = ended.unwrap().expect("the serving task panicked");
}

/// Reads one response: its status and body; `None` when the server closed the connection
/// before a whole one.
async fn response(client: &mut DuplexStream, buf: &mut Vec<u8>) -> Option<(u16, Vec<u8>)> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                assert_eq!(parsed.version, Some(1), "not HTTP/1.1");
                let status = parsed.code.expect("a status");
                assert!(
                    matches!(status, 101 | 200 | 204 | 400 | 403 | 404 | 411 | 413 | 431),
                    "status {status}"
                );
                if status == 101 {
                    return Some((status, Vec::new()));
                }
                let lengths: Vec<usize> = parsed
                    .headers
                    .iter()
                    .filter(|field| field.name.eq_ignore_ascii_case("content-length"))
                    .map(|field| {
                        std::str::from_utf8(field.value)
                            .ok()
                            .and_then(|value| value.parse().ok())
                            .expect("a numeric Content-Length")
                    })
                    .collect();
                assert_eq!(lengths.len(), 1, "one Content-Length");
                let length = lengths[0];
                while buf.len() < head_len + length {
                    if read_more(client, buf).await == 0 {
                        panic!("the connection closed inside a response body");
                    }
                }
                let body = buf[head_len..head_len + length].to_vec();
                buf.drain(..head_len + length);
                return Some((status, body));
            }
            Ok(httparse::Status::Partial) => {
                if read_more(client, buf).await == 0 {
                    assert!(
                        buf.is_empty(),
                        "the connection closed inside a response head"
                    );
                    return None;
                }
            }
            Err(error) => panic!("not an HTTP response ({error}): {buf:?}"),
        }
    }
}

async fn read_more(client: &mut DuplexStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0; 4096];
    let read = client.read(&mut chunk).await.unwrap_or(0);
    buf.extend_from_slice(&chunk[..read]);
    read
}
