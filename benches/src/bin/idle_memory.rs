//! Server memory per idle upgraded connection: a fresh server per contender and count, its
//! VmRSS before any connection and after N connections have upgraded and echoed one 20-byte
//! message each and then gone quiet.
//!
//! ```text
//! idle_memory [--quick] [--port P] [--only NAME,NAME] [COUNT...]
//!     default counts: 1000 10000 (quick: 1000); --only: those servers only
//! ```
//! Needs `ulimit -n` above COUNT + 100 in this process and in the server (`benches/run` raises
//! it). Kernel socket buffers are not in VmRSS, so this is the user-space cost only.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use wsio_benches::{
    FrameCounter, can_pin, client_upgrade, print_table, push_frame, rss_kib, spawn_server,
};

const SERVERS: &[&str] = &[
    "wsio-tokio",
    "tokio-tungstenite",
    "fastwebsockets",
    "tokio-websockets",
    "wsio-axum",
    "axum-builtin",
    "tcp-hold",
    "wsio-sync",
    "tungstenite",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let base_port: u16 = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(19_500);
    let only: Option<Vec<&str>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|names| names.split(',').collect());
    let mut counts: Vec<usize> = args
        .iter()
        .filter(|a| !a.starts_with("--") && !a.contains(|c: char| c.is_ascii_alphabetic()))
        .filter_map(|a| a.parse().ok())
        .filter(|&n| n != base_port as usize)
        .collect();
    if counts.is_empty() {
        counts = if quick {
            vec![1000]
        } else {
            vec![1000, 10_000]
        };
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cpu = can_pin().then_some(0);
    println!(
        "idle_memory: server {}, VmRSS after N upgraded connections that each echoed one \
         20-byte message, minus VmRSS before the first; KiB per connection.\n",
        if cpu.is_some() {
            "pinned to CPU 0"
        } else {
            "not pinned"
        }
    );
    let mut rows = Vec::new();
    let mut port = base_port;
    for name in SERVERS {
        if only.as_ref().is_some_and(|only| !only.contains(name)) {
            continue;
        }
        let mut row = vec![name.to_string()];
        let mut baseline_kib = None;
        for &count in &counts {
            port += 1;
            let result = measure(&runtime, name, port, count, cpu);
            eprintln!("{name} x{count}: {result:?}");
            match result {
                Ok((base, loaded)) => {
                    baseline_kib.get_or_insert(base);
                    row.push(format!(
                        "{:.1}",
                        (loaded.saturating_sub(base)) as f64 / count as f64
                    ));
                }
                Err(error) => row.push(format!("failed ({error})")),
            }
        }
        row.push(baseline_kib.map_or("–".into(), |kib| format!("{:.1}", kib as f64 / 1024.0)));
        rows.push(row);
    }
    let mut headers = vec!["server".to_string()];
    headers.extend(counts.iter().map(|n| format!("KiB/conn at {n}")));
    headers.push("RSS at start (MiB)".into());
    println!("### Memory per idle upgraded connection (server VmRSS)\n");
    print_table(&headers, &rows);
}

/// Returns the server's VmRSS (KiB) before any connection and with `count` idle ones.
fn measure(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    port: u16,
    count: usize,
    cpu: Option<usize>,
) -> Result<(u64, u64), String> {
    let mut child = spawn_server(name, port, cpu, 300).map_err(|e| e.to_string())?;
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));
    let result = (|| {
        let base = rss_kib(pid).map_err(|e| e.to_string())?;
        let streams = runtime.block_on(open(port, count))?;
        // Let the server finish whatever it does after the echo (spawned tasks, buffers).
        std::thread::sleep(Duration::from_millis(1500));
        let loaded = rss_kib(pid).map_err(|e| e.to_string())?;
        drop(streams);
        Ok((base, loaded))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Opens `count` connections, upgrades each and echoes one 20-byte message on each.
async fn open(port: u16, count: usize) -> Result<Vec<TcpStream>, String> {
    let mut frame = Vec::new();
    push_frame(&mut frame, 0x2, b"0123456789abcdefghij", true);
    let frame: Arc<[u8]> = frame.into();
    let limit = Arc::new(Semaphore::new(128));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let limit = Arc::clone(&limit);
        let frame = Arc::clone(&frame);
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("open");
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            client_upgrade(&mut stream).await?;
            stream.write_all(&frame).await?;
            let mut counter = FrameCounter::default();
            let mut buf = [0u8; 256];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::other("closed before the echo"));
                }
                if counter.feed(&buf[..n]) > 0 {
                    return Ok::<_, std::io::Error>(stream);
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut streams = Vec::with_capacity(count);
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(stream))) => streams.push(stream),
            Ok(Ok(Err(error))) => return Err(format!("after {}: {error}", streams.len())),
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("timed out".into()),
        }
    }
    Ok(streams)
}
