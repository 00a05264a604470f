//! Load client for the engagement ingest benchmark's durability check (bench/engagement.sh).
//!
//! `cargo run --release --example ingest_client -- BASE_URL PATHS_FILE CONCURRENCY SECONDS OUT_FILE`
//!
//! Each of CONCURRENCY tasks requests the tracking paths of PATHS_FILE round robin, each
//! request with its own `x-request-id`, until SECONDS pass or the server stops answering. The
//! ids of requests answered `200` are written to OUT_FILE, one per line: every one of them must
//! be in the log (`metadata.requestId`) after the server is killed and restarted.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        anyhow::bail!("usage: ingest_client BASE_URL PATHS_FILE CONCURRENCY SECONDS OUT_FILE");
    }
    let base = args[1].trim_end_matches('/').to_string();
    let paths: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(&args[2])?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    );
    anyhow::ensure!(!paths.is_empty(), "no paths in {}", args[2]);
    let concurrency: usize = args[3].parse()?;
    let until = Instant::now() + Duration::from_secs(args[4].parse()?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let (client, base, paths) = (client.clone(), base.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            let mut failures = 0u32;
            let mut n = 0usize;
            while Instant::now() < until && failures < 20 {
                let path = &paths[(task * 7919 + n) % paths.len()];
                let id = format!("bench-{task}-{n}");
                n += 1;
                match client
                    .get(format!("{base}{path}"))
                    .header("x-request-id", &id)
                    .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench")
                    .send()
                    .await
                {
                    Ok(reply) if reply.status() == 200 => {
                        // The answer is complete once its body has arrived.
                        if reply.bytes().await.is_ok() {
                            answered.push(id);
                        }
                    }
                    Ok(_) => failures += 1,
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (answered, n)
        }));
    }
    let mut answered = Vec::new();
    let mut sent = 0;
    for task in tasks {
        let (ids, n) = task.await?;
        answered.extend(ids);
        sent += n;
    }
    std::fs::write(&args[5], answered.join("\n") + "\n")?;
    println!(
        "ingest_client: {sent} requests sent, {} answered 200",
        answered.len()
    );
    Ok(())
}
