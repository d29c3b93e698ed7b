//! Engine.IO HTTP long-polling for the client, where a WebSocket is refused or before the
//! upgrade: one kept-alive connection polls with GETs, another carries the client's packets in
//! POSTs.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::ClientError;
use crate::Message;
use crate::events::engine::payload::{SEPARATOR, decode_payload};
use crate::events::{EnginePacket, OpenInfo};
use crate::proto::handshake::ClientRequest;

/// The largest response head read.
const MAX_HEAD: usize = 16 << 10;
/// Polled messages the GET task may hold before it waits for the driver.
const INCOMING: usize = 256;

/// What the GET task hands the driver.
pub(crate) enum Polled {
    /// A message from the server, in order.
    Message(Message),
    /// The task stopped polling, as asked through [`Polling::pauser`]: every message of the
    /// GETs made so far came before.
    Paused,
    /// The session ended: the server closed it.
    Closed,
    /// Polling failed.
    Failed(String),
}

/// A long-polling session: messages in from the GET task, messages out in POSTs.
pub(crate) struct Polling {
    host: String,
    port: u16,
    /// The request target with `transport=polling&sid=…`.
    target: String,
    headers: Vec<(String, String)>,
    /// The largest response body accepted.
    max_body: usize,
    incoming: mpsc::Receiver<Polled>,
    poller: JoinHandle<()>,
    /// `true` asks the GET task to stop polling once its request is answered; `false` resumes.
    pause: Arc<watch::Sender<bool>>,
    post: Option<HttpClient>,
    outgoing: Vec<Message>,
}

impl Polling {
    /// Opens a session at the Engine.IO endpoint of `ws_url`: the handshake GET, then the
    /// polling task.
    pub(crate) async fn open(
        ws_url: &str,
        headers: &[(String, String)],
        max_body: usize,
    ) -> Result<(Self, OpenInfo), ClientError> {
        let request = ClientRequest::new(ws_url)
            .map_err(|error| ClientError::InvalidUrl(error.to_string()))?;
        let (host, port) = (request.host().to_owned(), request.port());
        let target = request
            .resource()
            .replace("transport=websocket", "transport=polling");
        let mut http = HttpClient::connect(&host, port)
            .await
            .map_err(|error| ClientError::from(crate::Error::from(error)))?;
        let body = http
            .request("GET", &target, headers, "", max_body)
            .await
            .map_err(|error| ClientError::Handshake(error.to_string()))?;
        let mut messages = decode_payload(body.as_bytes())
            .map_err(|error| ClientError::Handshake(error.to_string()))?
            .into_iter();
        let info = match messages.next().as_ref().map(EnginePacket::decode) {
            Some(Ok(EnginePacket::Open(info))) => info,
            other => {
                return Err(ClientError::Handshake(format!(
                    "expected the open packet, got {other:?}"
                )));
            }
        };
        let target = format!("{target}&sid={}", info.sid);
        let (sender, incoming) = mpsc::channel(INCOMING);
        for message in messages {
            let _ = sender.try_send(Polled::Message(message));
        }
        let poll_target = target.clone();
        let poll_headers = headers.to_vec();
        let (pause, paused) = watch::channel(false);
        let poller = tokio::spawn(async move {
            let request = Get {
                target: &poll_target,
                headers: &poll_headers,
                max_body,
            };
            let end = match poll(&mut http, &request, &sender, paused).await {
                Ok(()) => Polled::Closed,
                Err(error) => Polled::Failed(error.to_string()),
            };
            let _ = sender.send(end).await;
        });
        let polling = Self {
            host,
            port,
            target,
            headers: headers.to_vec(),
            max_body,
            incoming,
            poller,
            pause: Arc::new(pause),
            post: None,
            outgoing: Vec::new(),
        };
        Ok((polling, info))
    }

    /// What the GET task polled next.
    pub(crate) async fn read(&mut self) -> Polled {
        self.incoming.recv().await.unwrap_or(Polled::Closed)
    }

    /// Pauses (`true`) or resumes (`false`) polling: paused, the GET task makes no new request
    /// once the one under way is answered, and reports [`Polled::Paused`].
    pub(crate) fn pauser(&self) -> Arc<watch::Sender<bool>> {
        Arc::clone(&self.pause)
    }

    /// Queues a message for the next POST.
    pub(crate) fn write(&mut self, message: Message) {
        self.outgoing.push(message);
    }

    /// POSTs the queued messages, as one payload.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let mut payload = String::new();
        for message in self.outgoing.drain(..) {
            if !payload.is_empty() {
                payload.push(SEPARATOR);
            }
            match message {
                Message::Text(text) => payload.push_str(text.as_str()),
                Message::Binary(data) => {
                    use base64::Engine as _;
                    payload.push('b');
                    base64::engine::general_purpose::STANDARD.encode_string(&data, &mut payload);
                }
            }
        }
        if self.post.is_none() {
            self.post = Some(HttpClient::connect(&self.host, self.port).await?);
        }
        let Some(post) = self.post.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        let result = post
            .request("POST", &self.target, &self.headers, &payload, self.max_body)
            .await;
        if result.is_err() {
            self.post = None;
        }
        result.map(|_| ())
    }

    /// Ends the session: a close packet, then the polling stops.
    pub(crate) async fn close(mut self) {
        self.outgoing.push(Message::text("1"));
        let _ = self.flush().await;
        self.poller.abort();
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// The polling request.
struct Get<'a> {
    target: &'a str,
    headers: &'a [(String, String)],
    max_body: usize,
}

/// Polls until the session ends (`Ok`) or a request fails, pausing when asked.
async fn poll(
    http: &mut HttpClient,
    get: &Get<'_>,
    sender: &mpsc::Sender<Polled>,
    mut paused: watch::Receiver<bool>,
) -> io::Result<()> {
    loop {
        if *paused.borrow_and_update() {
            if sender.send(Polled::Paused).await.is_err() {
                return Ok(());
            }
            if paused.wait_for(|paused| !*paused).await.is_err() {
                return Ok(());
            }
            continue;
        }
        let body = http
            .request("GET", get.target, get.headers, "", get.max_body)
            .await?;
        let messages = decode_payload(body.as_bytes())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        for message in messages {
            let closed = message.as_text() == Some("1");
            if sender.send(Polled::Message(message)).await.is_err() || closed {
                return Ok(());
            }
        }
    }
}

/// One kept-alive HTTP/1.1 connection to the server.
struct HttpClient {
    stream: TcpStream,
    host: String,
    buf: BytesMut,
}

impl HttpClient {
    async fn connect(host: &str, port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: format!("{host}:{port}"),
            buf: BytesMut::with_capacity(4096),
        })
    }

    /// Sends a request and returns the body of its `200` answer.
    async fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &str,
        max_body: usize,
    ) -> io::Result<String> {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body.as_bytes()).await?;
        self.stream.flush().await?;
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head too large",
                ));
            }
            self.fill().await?;
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let status = text.get(9..12).and_then(|code| code.parse::<u16>().ok());
        let length = text
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no content-length"))?;
        if length > max_body {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response too large",
            ));
        }
        while self.buf.len() < end + 4 + length {
            self.fill().await?;
        }
        let _ = self.buf.split_to(end + 4);
        let body = self.buf.split_to(length);
        let body = String::from_utf8(body.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response is not utf-8"))?;
        match status {
            Some(200) => Ok(body),
            _ => Err(io::Error::other(format!(
                "http {}: {body}",
                &text[..text.find('\r').unwrap_or(text.len())]
            ))),
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            )),
            _ => Ok(()),
        }
    }
}
