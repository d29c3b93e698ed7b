//! A raw HTTP/1.1 client for the long-polling tests: requests written by hand, so that a test
//! controls every byte, and responses read off one connection kept alive across requests.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// A response: status, whether the server keeps the connection, headers and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub keep_alive: bool,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header called `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The socket.io JSON error body: code and message.
    pub fn error(&self) -> (i64, String) {
        let body: Value = serde_json::from_str(&self.body).expect("a JSON error body");
        let message = body["message"].as_str().expect("an error message");
        (
            body["code"].as_i64().expect("an error code"),
            message.to_owned(),
        )
    }

    /// The code of the socket.io JSON error body.
    pub fn error_code(&self) -> i64 {
        self.error().0
    }
}

/// One HTTP/1.1 connection, kept alive across requests unless the server closes it.
pub struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Writes a request with a text body; the response is read with [`response`](Self::response).
    pub async fn send(&mut self, method: &str, target: &str, body: &str) {
        self.send_with(method, target, &[], body).await;
    }

    /// [`send`](Self::send) with extra headers.
    pub async fn send_with(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        let mut extra = String::new();
        for (name, value) in headers {
            extra.push_str(&format!("{name}: {value}\r\n"));
        }
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads the next response, which must have a `Content-Length` body.
    pub async fn response(&mut self) -> Response {
        tokio::time::timeout(WAIT, self.read_response())
            .await
            .expect("no response in time")
    }

    async fn read_response(&mut self) -> Response {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        while self.buf.len() < end + 4 + length {
            self.fill().await;
        }
        let body = String::from_utf8(self.buf[end + 4..end + 4 + length].to_vec()).unwrap();
        self.buf.drain(..end + 4 + length);
        Response {
            status,
            keep_alive: header("connection").as_deref() == Some("keep-alive"),
            headers,
            body,
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0; 4096];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a whole response");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Sends a request and reads its response.
    pub async fn request(&mut self, method: &str, target: &str, body: &str) -> Response {
        self.send(method, target, body).await;
        self.response().await
    }
}

/// A request on a connection of its own.
pub async fn request(addr: SocketAddr, method: &str, target: &str, body: &str) -> Response {
    Http::connect(addr)
        .await
        .request(method, target, body)
        .await
}
