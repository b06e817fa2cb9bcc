//! Embedded API server throughput and footprint: creates N ConfigMaps through the real
//! kube client, then measures get, server-side apply and list (paged and whole) in
//! requests/s with bounded concurrency, how long a watch takes to replay every object,
//! and the process's resident memory per 1,000 stored objects (VmRSS before/after the
//! creates, so it includes the watch history the store keeps). Prints a table and writes
//! `bench-results/apiserver.csv`.
//!
//! `cargo bench --bench apiserver -- [--objects 10000] [--concurrency 8]`
//! Numbers are for comparison between runs on one machine, never assertions.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use mcp_operator::apiserver::{ApiServer, ApiServerOptions};
use serde_json::json;

struct Args {
    objects: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut args = Args {
        objects: 10_000,
        concurrency: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> usize { it.next().and_then(|v| v.parse().ok()).unwrap_or(0) };
        match flag.as_str() {
            "--objects" => args.objects = value().max(1),
            "--concurrency" => args.concurrency = value().max(1),
            // `cargo bench` passes `--bench`; anything else is ignored too.
            _ => {}
        }
    }
    args
}

/// A ConfigMap of ~0.5 KiB, a typical small object.
fn config_map(i: usize, revision: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:06}"), "labels": {"app": "bench", "shard": (i % 16).to_string()}},
        "data": {"revision": revision.to_string(), "payload": "x".repeat(384)},
    }))
    .expect("valid ConfigMap")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One measured operation.
struct Row {
    operation: String,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Runs `count` requests made by `make` with `concurrency` in flight.
async fn measure<F, Fut>(operation: &str, count: usize, concurrency: usize, make: F) -> Row
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|i| {
            let request = make(i);
            async move {
                let began = Instant::now();
                request.await;
                began.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Row {
        operation: operation.to_owned(),
        requests: count,
        elapsed: start.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let n = args.objects;
    let c = args.concurrency;
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("server starts");
    let api: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    // Warm up connections and allocator before the memory baseline.
    api.list(&ListParams::default().limit(1))
        .await
        .expect("list");
    let rss_before = rss_kib();

    let mut rows = Vec::new();
    rows.push(
        measure(&format!("create ({n})"), n, c, |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &config_map(i, 0))
                    .await
                    .expect("create");
            }
        })
        .await,
    );
    let rss_after = rss_kib();
    let per_thousand_mib =
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / (n as f64 / 1000.0);

    let gets = n.min(5_000);
    rows.push(
        measure("get", gets, c, |i| {
            let api = api.clone();
            async move {
                api.get(&format!("cm-{:06}", (i * 7919) % n))
                    .await
                    .expect("get");
            }
        })
        .await,
    );
    let applies = n.min(5_000);
    rows.push(
        measure("apply (server-side, changed)", applies, c, |i| {
            let api = api.clone();
            async move {
                let name = format!("cm-{:06}", (i * 7919) % n);
                let object = config_map((i * 7919) % n, i + 1);
                api.patch(
                    &name,
                    &PatchParams::apply("bench").force(),
                    &Patch::Apply(&object),
                )
                .await
                .expect("apply");
            }
        })
        .await,
    );
    rows.push(
        measure(&format!("list all {n} (one request)"), 10, 1, |_| {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.expect("list");
                assert_eq!(list.items.len(), n);
            }
        })
        .await,
    );
    let pages = n.div_ceil(500);
    let mut paged = measure(&format!("list page of 500 ({pages} pages)"), 1, 1, |_| {
        let api = api.clone();
        async move {
            let mut params = ListParams::default().limit(500);
            let mut seen = 0;
            loop {
                let page = api.list(&params).await.expect("list page");
                seen += page.items.len();
                match page.metadata.continue_.filter(|t| !t.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
            assert_eq!(seen, n);
        }
    })
    .await;
    paged.requests = pages;
    paged.latencies = vec![paged.elapsed / u32::try_from(pages).unwrap_or(1)];
    rows.push(paged);
    rows.push(
        measure(&format!("list shard=3 (~{} of {n})", n / 16), 50, c, |_| {
            let api = api.clone();
            async move {
                api.list(&ListParams::default().labels("shard=3"))
                    .await
                    .expect("list by label");
            }
        })
        .await,
    );
    let started = Instant::now();
    let replayed = api
        .watch(&WatchParams::default().timeout(120), "0")
        .await
        .expect("watch")
        .take(n)
        .try_fold(0usize, |count, event| async move {
            Ok(count + usize::from(matches!(event, WatchEvent::Added(_))))
        })
        .await
        .expect("watch events");
    let watch_elapsed = started.elapsed();
    assert_eq!(replayed, n);
    rows.push(Row {
        operation: format!("watch from 0: {n} ADDED events"),
        requests: n,
        elapsed: watch_elapsed,
        latencies: vec![watch_elapsed],
    });

    println!("\nembedded API server, {n} ConfigMaps (~0.5 KiB each), concurrency {c}\n");
    println!("| operation | requests | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut csv = String::from("operation,requests,per_second,p50_ms,p99_ms\n");
    for row in &rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} |",
            row.operation,
            row.requests,
            row.per_second(),
            row.percentile(0.5),
            row.percentile(0.99)
        );
        let _ = writeln!(
            csv,
            "{},{},{:.1},{:.3},{:.3}",
            row.operation,
            row.requests,
            row.per_second(),
            row.percentile(0.5),
            row.percentile(0.99)
        );
    }
    println!(
        "\nresident memory: {:.1} MiB before, {:.1} MiB after {n} creates: {per_thousand_mib:.2} MiB per 1,000 objects (objects + watch history + client)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    let _ = writeln!(csv, "rss_mib_per_1000_objects,{n},{per_thousand_mib:.3},,");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    if std::fs::create_dir_all(&out).is_ok()
        && std::fs::write(out.join("apiserver.csv"), csv).is_ok()
    {
        println!("wrote {}/apiserver.csv", out.display());
    }
}
