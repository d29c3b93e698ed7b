//! Sends each line of stdin as a text message and prints what comes back.
//!
//! `cargo run --example client -- ws://127.0.0.1:9002`

use std::io::BufRead;
use std::thread;

use wsio::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9002".into());
    let (ws, response) = wsio::sync::connect(&url)?;
    eprintln!("connected to {url} (status {})", response.status());
    let (mut reader, writer) = ws.split()?;
    let printer = thread::spawn(move || {
        loop {
            match reader.read() {
                Ok(Some(Message::Text(text))) => println!("< {text}"),
                Ok(Some(Message::Binary(data))) => println!("< {} bytes of binary", data.len()),
                Ok(None) => {
                    eprintln!("closed: {:?}", reader.close_frame());
                    break;
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    break;
                }
            }
        }
    });
    for line in std::io::stdin().lock().lines() {
        writer.send(Message::text(line?))?;
    }
    writer.close(None)?;
    printer.join().expect("printer thread");
    Ok(())
}
