//! The wsio clients of both adapters against Node `ws` and Python `websockets` servers over
//! TLS, trusting only the CA made for the run. `tests/interop/tls-run` starts the servers and
//! sets `WSIO_TLS_CA`, `WSIO_TLS_NODE_URL` and `WSIO_TLS_PYTHON_URL`; without them these
//! `#[ignore]`d tests fail.
#![cfg(feature = "rustls-manual-roots")]

mod tls_support;

use tls_support::{Client, SIDES};
use wsio::tls::{Connector, rustls};
use wsio::{Message, Options};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run tests/interop/tls-run"))
}

fn options() -> Options {
    let mut roots = rustls::RootCertStore::empty();
    for cert in wsio::tls::load_certificates(env("WSIO_TLS_CA")).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut options = Options::default();
    options.tls_connector = Some(Connector::with_roots(roots));
    options.connection.max_message_size = 64 << 20;
    options
}

/// What the peers' own clients send: text, binary and 1 MiB of each.
fn messages() -> Vec<Message> {
    let big: Vec<u8> = (0..1u64 << 20)
        .map(|i| ((i * 2_654_435_761) & 0xffff_ffff) >> 13)
        .map(|byte| byte as u8)
        .collect();
    vec![
        Message::text("hello over tls"),
        Message::binary(vec![0, 1, 2, 255]),
        Message::text("abcdefghij".repeat(1 << 17)),
        Message::binary(big),
    ]
}

fn echo_against(url_variable: &str) {
    let url = env(url_variable);
    let options = options();
    for side in SIDES {
        let mut client = Client::connect(side, &url, &options)
            .unwrap_or_else(|error| panic!("{side:?} -> {url}: {error}"));
        assert!(
            client.deflate(),
            "{side:?} -> {url}: permessage-deflate negotiated"
        );
        assert_eq!(client.alpn().as_deref(), Some(&b"http/1.1"[..]));
        for message in messages() {
            assert_eq!(client.echo(message.clone()), message, "{side:?} -> {url}");
        }
        client.close();
    }
}

#[test]
#[ignore = "needs the Node ws TLS server started by tests/interop/tls-run"]
fn wsio_clients_with_node_tls_server() {
    echo_against("WSIO_TLS_NODE_URL");
}

#[test]
#[ignore = "needs the Python websockets TLS server started by tests/interop/tls-run"]
fn wsio_clients_with_python_tls_server() {
    echo_against("WSIO_TLS_PYTHON_URL");
}
