//! The Autobahn|Testsuite client loop: runs every case of a `wstest -m fuzzingserver` against
//! this crate's client, echoing each message back, then asks for the reports.
//!
//! `cargo run --release --example autobahn_client -- [--sync] [--no-deflate] [URL] [AGENT]`
//!
//! permessage-deflate is offered unless `--no-deflate`.
//!
//! URL defaults to ws://127.0.0.1:9001; AGENT to `wsio-tokio` (`wsio-sync` with `--sync`).

use wsio::Options;
use wsio::proto::handshake::ClientRequest;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sync = false;
    let mut deflate = true;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--sync" => sync = true,
            "--no-deflate" => deflate = false,
            "-h" | "--help" => {
                println!("usage: autobahn_client [--sync] [--no-deflate] [URL] [AGENT]");
                return Ok(());
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let base = positional
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/').to_owned();
    let agent = positional
        .next()
        .unwrap_or_else(|| if sync { "wsio-sync" } else { "wsio-tokio" }.into());
    let mut options = Options::default();
    // Autobahn's 9.* cases send up to 16 MiB messages; its cases never idle long.
    options.connection.max_message_size = 64 << 20;
    if !deflate {
        options.deflate = None;
    }
    if sync {
        run_blocking(&base, &agent, &options)
    } else {
        tokio::runtime::Runtime::new()?.block_on(run_tokio(&base, &agent, &options))
    }
}

fn case_url(base: &str, case: u32, agent: &str) -> String {
    format!("{base}/runCase?case={case}&agent={agent}")
}

fn run_blocking(
    base: &str,
    agent: &str,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let count = case_count_blocking(base, options)?;
    println!("{count} cases");
    for case in 1..=count {
        let request = ClientRequest::new(&case_url(base, case, agent))?;
        match wsio::sync::connect_with(request, options) {
            Ok((mut ws, _)) => {
                let result: Result<(), wsio::Error> = (|| {
                    while let Some(message) = ws.read()? {
                        ws.send(message)?;
                    }
                    Ok(())
                })();
                if let Err(error) = result {
                    println!("case {case}: {error}");
                }
            }
            Err(error) => println!("case {case}: connect failed: {error}"),
        }
    }
    let request = ClientRequest::new(&format!("{base}/updateReports?agent={agent}"))?;
    let (mut ws, _) = wsio::sync::connect_with(request, options)?;
    ws.close(None)?;
    while ws.read()?.is_some() {}
    println!("reports updated for {agent}");
    Ok(())
}

fn case_count_blocking(base: &str, options: &Options) -> Result<u32, Box<dyn std::error::Error>> {
    let request = ClientRequest::new(&format!("{base}/getCaseCount"))?;
    let (mut ws, _) = wsio::sync::connect_with(request, options)?;
    let message = ws.read()?.ok_or("closed before the case count")?;
    let count = message
        .as_text()
        .ok_or("case count is not text")?
        .trim()
        .parse()?;
    while ws.read()?.is_some() {}
    Ok(count)
}

async fn run_tokio(
    base: &str,
    agent: &str,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let count = case_count_tokio(base, options).await?;
    println!("{count} cases");
    for case in 1..=count {
        let request = ClientRequest::new(&case_url(base, case, agent))?;
        match wsio::tokio::connect_async_with(request, options).await {
            Ok((mut ws, _)) => {
                let result: Result<(), wsio::Error> = async {
                    while let Some(message) = ws.read().await? {
                        ws.send(message).await?;
                    }
                    Ok(())
                }
                .await;
                if let Err(error) = result {
                    println!("case {case}: {error}");
                }
            }
            Err(error) => println!("case {case}: connect failed: {error}"),
        }
    }
    let request = ClientRequest::new(&format!("{base}/updateReports?agent={agent}"))?;
    let (mut ws, _) = wsio::tokio::connect_async_with(request, options).await?;
    ws.close(None).await?;
    while ws.read().await?.is_some() {}
    println!("reports updated for {agent}");
    Ok(())
}

async fn case_count_tokio(
    base: &str,
    options: &Options,
) -> Result<u32, Box<dyn std::error::Error>> {
    let request = ClientRequest::new(&format!("{base}/getCaseCount"))?;
    let (mut ws, _) = wsio::tokio::connect_async_with(request, options).await?;
    let message = ws.read().await?.ok_or("closed before the case count")?;
    let count = message
        .as_text()
        .ok_or("case count is not text")?
        .trim()
        .parse()?;
    while ws.read().await?.is_some() {}
    Ok(count)
}
