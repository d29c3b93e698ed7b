//! A Socket.IO client: joins a server, prints the events it names, sends one and prints the
//! acknowledgement.
//!
//! ```text
//! cargo run --example events_client -- URL [EVENT [JSON_ARGS]] [--listen NAME]...
//! cargo run --example events_client -- http://127.0.0.1:3000/chat message '["hi"]' --listen message
//! ```
//!
//! It runs until Ctrl-C, reconnecting when the server goes away.

use std::time::Duration;

use serde_json::Value;
use wsio::events::Args;
use wsio::events::client::{ClientBuilder, ClientError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut listen = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen.extend(args.next()),
            _ => positional.push(arg),
        }
    }
    let Some(url) = positional.first() else {
        eprintln!("usage: events_client URL [EVENT [JSON_ARGS]] [--listen NAME]...");
        std::process::exit(2);
    };

    let mut builder = ClientBuilder::new(url.as_str())
        .on_connect(|| println!("connected"))
        .on_disconnect(|reason| println!("disconnected: {reason}"))
        .on_reconnect(|attempt| println!("reconnected (attempt {attempt})"))
        .on_connect_error(|error| println!("connect error: {error}"));
    for name in listen {
        let label = name.clone();
        builder = builder.on(name, move |args, ack| {
            println!("{label}: {}", readable(&args));
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        });
    }
    let client = builder.connect().await?;
    println!("socket id {}", client.id().unwrap_or_default());

    if let Some(event) = positional.get(1) {
        let args: Value = match positional.get(2) {
            Some(json) => serde_json::from_str(json)?,
            None => Value::Array(Vec::new()),
        };
        match client
            .emit_with_ack_timeout(event, args, Duration::from_secs(5))
            .await
        {
            Ok(reply) => println!("ack: {}", readable(&reply)),
            Err(ClientError::AckTimeout(_)) => println!("no ack within 5 s"),
            Err(error) => return Err(error.into()),
        }
    }

    tokio::signal::ctrl_c().await?;
    client.disconnect();
    Ok(())
}

/// The arguments as JSON, each binary attachment shown as `"<N bytes>"` where its placeholder
/// stands.
fn readable(args: &Args) -> Value {
    fn show(args: &Args, value: &Value) -> Value {
        if let Some(data) = args.binary(value) {
            return Value::String(format!("<{} bytes>", data.len()));
        }
        match value {
            Value::Array(items) => items.iter().map(|item| show(args, item)).collect(),
            Value::Object(fields) => fields
                .iter()
                .map(|(key, item)| (key.clone(), show(args, item)))
                .collect(),
            other => other.clone(),
        }
    }
    args.values()
        .iter()
        .map(|value| show(args, value))
        .collect()
}
