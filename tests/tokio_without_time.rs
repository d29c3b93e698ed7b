//! The tokio adapter on a runtime built without tokio's time driver, and outside any runtime.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use wsio::proto::handshake::ClientRequest;
use wsio::{CloseCode, CloseFrame, Error, Message, Options};

/// Runs `test` on a current-thread runtime with I/O and no timer, failing if it takes longer
/// than a few seconds (the runtime has no timer to bound it with).
fn on_runtime_without_time<F>(test: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let (done, finished) = mpsc::channel();
    let runner = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(test());
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(10)) {
        // A panic in the test closes the channel: report it as the panic it was.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = runner.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test did not finish in time"),
    }
}

#[test]
fn echo_and_close_without_the_time_driver() {
    on_runtime_without_time(|| async {
        let options = Options::default().without_timeouts();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let server_options = options.clone();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = wsio::tokio::accept_with(stream, &server_options, async |_: &_| {
                Ok(wsio::proto::handshake::Accept::new())
            })
            .await?;
            while let Some(message) = ws.read().await? {
                ws.send(message).await?;
            }
            Ok::<_, Error>(ws.close_frame().map(|frame| frame.code))
        });
        let request = ClientRequest::new(&url).unwrap();
        let (ws, _) = wsio::tokio::connect_async_with(request, &options)
            .await
            .unwrap();
        let (mut read, mut write) = ws.split();
        write.send(Message::text("hello")).await.unwrap();
        assert_eq!(read.next().await.unwrap().unwrap(), Message::text("hello"));
        write.ping("p").await.unwrap();
        write
            .close(Some(CloseFrame::new(CloseCode(4001), "")))
            .await
            .unwrap();
        assert!(read.read().await.unwrap().is_none());
        assert_eq!(server.await.unwrap().unwrap(), Some(CloseCode(4001)));
    });
}

#[test]
fn timeouts_outside_a_runtime_are_a_typed_error() {
    let (client_io, _server_io) = tokio::io::duplex(1024);
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let options = Options::default();
    let mut handshake = pin!(wsio::tokio::client_async(client_io, &request, &options));
    let polled = handshake
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert!(
        matches!(polled, Poll::Ready(Err(Error::NoTimer))),
        "{polled:?}"
    );
}
