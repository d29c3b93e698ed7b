//! Interop with python-socketio (and so Flask-SocketIO's wire), both ways: its client against a
//! wsio events server (`tests/socketio-python/client.py`, every transport setting), and the
//! wsio client against its aiohttp server (`tests/socketio-python/server.py`) over WebSocket,
//! long-polling then the upgrade, and long-polling only.
//!
//! Ignored by default: `tests/socketio-python/run` installs the pinned packages into a
//! virtualenv and runs them with `SOCKETIO_PYTHON` (its interpreter) set.
#![cfg(feature = "events")]

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use wsio::events::client::{ClientBuilder, ClientError, DisconnectReason, Transport};
use wsio::events::{Args, Config, Refusal, Server};

/// Bounds every wait, the Python client's whole run included.
const LIMIT: Duration = Duration::from_secs(60);

async fn within<T>(future: impl Future<Output = T>) -> T {
    timeout(LIMIT, future).await.expect("timed out")
}

fn python() -> Command {
    let python = std::env::var("SOCKETIO_PYTHON")
        .expect("SOCKETIO_PYTHON must name the virtualenv's python: run tests/socketio-python/run");
    Command::new(python)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/socketio-python")
        .join(name)
}

/// The server `client.py` expects.
fn server() -> Server {
    let server = Server::new(Config::default());
    server.of("/").on_connection(|socket| {
        let _ = socket.emit("welcome", json!([socket.auth()["user"]]));
        socket.on("echo", |_, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(args);
            }
        });
        socket.on("ask", |socket, args, _| async move {
            let question = args.get::<String>(0).unwrap_or_default();
            let reply = socket
                .emit_with_ack_timeout("question", json!([question]), Duration::from_secs(10))
                .await;
            let answer = match reply {
                Ok(args) => Value::from(args.values().to_vec()),
                Err(error) => json!([error.to_string()]),
            };
            let _ = socket.emit("answer", answer);
        });
        socket.on("binary", |socket, args, _| async move {
            let data = args.binary_at(0).cloned().unwrap_or_default();
            let doubled: Vec<u8> = data.iter().map(|byte| byte.wrapping_mul(2)).collect();
            let mut reply = Args::new().with(json!({ "len": data.len() }));
            let blob = reply.attach(Bytes::from(doubled));
            reply.push(json!({ "nested": [blob] }));
            let _ = socket.emit("binary", reply);
        });
        socket.on("kick", |socket, _, _| async move { socket.disconnect() });
    });
    server.of("/admin").use_middleware(|socket| async move {
        match socket.auth()["token"].as_str() {
            Some("secret") => Ok(()),
            _ => Err(Refusal::new("not authorized")),
        }
    });
    server
}

#[tokio::test]
#[ignore = "needs python-socketio: run tests/socketio-python/run"]
async fn python_client_against_wsio_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = server();
    tokio::spawn(async move { server.serve(listener).await });
    let output = within(
        python()
            .arg(script("client.py"))
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("cannot start python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "client.py failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.matches("ok: ").count(),
        3,
        "one line per transport setting"
    );
}

/// A running `server.py`; dropping it closes the script's stdin and kills it.
struct PythonServer {
    _child: Child,
    _stdin: ChildStdin,
    url: String,
}

impl PythonServer {
    async fn start() -> Self {
        let mut child = python()
            .arg(script("server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start python");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = within(BufReader::new(stdout).lines().next_line())
            .await
            .unwrap()
            .expect("server.py printed no port");
        let port: Value = serde_json::from_str(&line).unwrap();
        Self {
            _child: child,
            _stdin: stdin,
            url: format!("http://127.0.0.1:{}", port["port"]),
        }
    }
}

/// What the client's callbacks saw, in order.
fn log() -> (
    mpsc::UnboundedSender<String>,
    mpsc::UnboundedReceiver<String>,
) {
    mpsc::unbounded_channel()
}

async fn next(log: &mut mpsc::UnboundedReceiver<String>) -> String {
    within(log.recv()).await.expect("callbacks gone")
}

#[tokio::test]
#[ignore = "needs python-socketio: run tests/socketio-python/run"]
async fn wsio_client_against_python_server() {
    let server = PythonServer::start().await;
    let modes = [
        ("websocket", false, false),
        ("polling, then the upgrade", true, true),
        ("polling only", true, false),
    ];
    for (mode, polling_first, upgrade) in modes {
        let (seen, mut log) = log();
        let (greet, answer, binary, connect, disconnect) =
            (seen.clone(), seen.clone(), seen.clone(), seen.clone(), seen);
        let (upgrading, mut upgraded) = mpsc::unbounded_channel();
        let client = within(
            ClientBuilder::new(server.url.as_str())
                .polling_first(polling_first)
                .upgrade(upgrade)
                .reconnection(false)
                .auth(json!({ "token": "letmein", "user": "rs" }))
                .on("greet", move |args, _| {
                    let blob = args.binary_at(1).map(|data| data.to_vec());
                    let user = args.value(0).cloned().unwrap_or_default();
                    greet.send(format!("greet {user} {blob:?}")).unwrap();
                })
                .on("question", |args, ack| {
                    let text: String = args.get(0).unwrap_or_default();
                    if let Some(ack) = ack {
                        ack.send(json!([format!("{}!", text.to_uppercase())]))
                            .unwrap();
                    }
                })
                .on("answer", move |args, _| {
                    answer
                        .send(format!("answer {}", Value::from(args.values().to_vec())))
                        .unwrap();
                })
                .on("binary", move |args, _| {
                    let nested = args.value(1).cloned().unwrap_or_default();
                    let blob = args.binary(&nested["nested"][0]).map(|data| data.to_vec());
                    binary
                        .send(format!("binary {} {nested} {blob:?}", args.values()[0]))
                        .unwrap();
                })
                .on_connect(move || connect.send("connect".into()).unwrap())
                .on_upgrade(move || upgrading.send(()).unwrap())
                .on_disconnect(move |reason| {
                    disconnect.send(format!("disconnect {reason:?}")).unwrap();
                })
                .connect(),
        )
        .await
        .unwrap();
        // What the connect handler emitted came before the CONNECT answer: handed out first.
        assert_eq!(next(&mut log).await, "greet \"rs\" Some([1, 2])", "{mode}");
        assert_eq!(next(&mut log).await, "connect", "{mode}");

        let mut sent = Args::from(json!(["text", 1.5, null, { "nested": [true] }]));
        let blob = sent.attach(Bytes::from_static(&[0, 255]));
        sent.push(blob);
        let back = within(client.emit_with_ack("echo", sent.clone()))
            .await
            .unwrap();
        assert_eq!(back.values(), sent.values(), "{mode}");
        assert_eq!(
            back.binary_at(4).map(|data| data.to_vec()),
            Some(vec![0, 255])
        );

        // The server's `call`, answered by the client's ack.
        client.emit("ask", json!(["why"])).unwrap();
        assert_eq!(next(&mut log).await, "answer [\"WHY!\"]", "{mode}");

        client
            .emit(
                "binary",
                Args::new().with_binary(Bytes::from_static(&[1, 2, 128])),
            )
            .unwrap();
        let got = next(&mut log).await;
        assert!(
            got.starts_with("binary {\"len\":3} {\"nested\":[{"),
            "{mode}: {got}"
        );
        assert!(got.ends_with("Some([2, 4, 0])"), "{mode}: {got}");

        let admin = within(client.socket("/admin").connect()).await.unwrap();
        let whoami = within(admin.emit_with_ack("whoami", ())).await.unwrap();
        assert_eq!(whoami.get::<String>(0).unwrap(), "/admin", "{mode}");
        assert_eq!(whoami.get::<String>(1).ok(), admin.id(), "{mode}");

        let transport = if polling_first && !upgrade {
            Transport::Polling
        } else {
            if polling_first {
                within(upgraded.recv())
                    .await
                    .expect("upgrade callback gone");
            }
            Transport::WebSocket
        };
        assert_eq!(client.transport(), Some(transport), "{mode}");

        client.emit("kick", ()).unwrap();
        assert_eq!(
            next(&mut log).await,
            format!("disconnect {:?}", DisconnectReason::IoServerDisconnect),
            "{mode}"
        );
        admin.disconnect();
    }

    // A refused connection: python-socketio's ConnectionRefusedError, typed.
    let refused = within(
        ClientBuilder::new(server.url.as_str())
            .reconnection(false)
            .auth(json!({ "token": "wrong" }))
            .connect(),
    )
    .await;
    match refused {
        Err(ClientError::ConnectRefused { message, data, .. }) => {
            assert_eq!(message, "not authorized");
            assert_eq!(data, Some(json!({ "need": "token" })));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
