//! sessionware read cost with 1,000 vs 1,000,000 sessions in its `MemoryStore`.
//!
//! Both stores are filled through `SessionStore::create` (data `n = 1`); the
//! requests read `n` through the layer (`/read`), cycling over the cookies of
//! 1,000 different sessions so that the big store is not read from a hot
//! cache line. Run:
//! `cargo bench -p sessionware-rivals --bench scaling -- --warm-up-time 1 --measurement-time 3`
//!
//! After criterion, the same requests run interleaved (1k, 1M, 1k, 1M, ...,
//! 30 rounds of 20,000 requests each) and the median of the per-round ratios
//! is printed: on a shared machine whose load drifts, that ratio is steadier
//! than two criterion runs made one after the other.

use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{BenchmarkId, Criterion};
use http::Request;
use sessionware_rivals::{populate, request, summary};
use tower::{Service, ServiceExt};

const LIVE: usize = 1_000;
const ROUNDS: usize = 30;
const PER_ROUND: usize = 20_000;

/// Sends `iters` `/read` requests cycling over `cookies`; returns the time.
async fn reads(router: &axum::Router, cookies: &[http::HeaderValue], iters: usize) -> Duration {
    let mut svc = router.clone();
    let start = Instant::now();
    for i in 0..iters {
        let req = request("/read", Some(&cookies[i % cookies.len()]));
        let res: http::Response<Body> = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .expect("infallible")
            .call(req)
            .await
            .expect("infallible");
        assert!(res.status().is_success());
        std::hint::black_box(res);
    }
    start.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn benches(c: &mut Criterion, rt: &tokio::runtime::Runtime, stores: &[(&str, populate::Populated)]) {
    let mut group = c.benchmark_group("scaling");
    for (name, p) in stores {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(rt).iter_custom(|iters| reads(&p.router, &p.cookies, iters as usize));
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let stores: Vec<(&str, populate::Populated)> = [("1k", 1_000usize), ("1M", 1_000_000usize)]
        .into_iter()
        .map(|(name, total)| {
            let p = rt.block_on(populate::populated(LIVE, total - LIVE, populate::LIVE_IDLE_MS));
            assert_eq!(p.store.len(), total);
            (name, p)
        })
        .collect();
    benches(&mut c, &rt, &stores);
    c.final_summary();
    let dir = summary::criterion_dir();
    let k = summary::median_ns(&dir, "scaling", "1k");
    let m = summary::median_ns(&dir, "scaling", "1M");
    if let (Some((k, _)), Some((m, _))) = (k, m) {
        println!("\n## Scaling (median per /read request)\n");
        println!(
            "| sessions | µs/request |\n|---:|---:|\n| 1,000 | {:.3} |\n| 1,000,000 | {:.3} |",
            k / 1000.0,
            m / 1000.0
        );
        println!("\n1M / 1k = {:.3} (target ≤ 1.20)", m / k);
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let (mut small, mut big, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..ROUNDS {
            let a =
                reads(&stores[0].1.router, &stores[0].1.cookies, PER_ROUND).await.as_nanos() as f64 / PER_ROUND as f64;
            let b =
                reads(&stores[1].1.router, &stores[1].1.cookies, PER_ROUND).await.as_nanos() as f64 / PER_ROUND as f64;
            small.push(a);
            big.push(b);
            ratio.push(b / a);
        }
    });
    println!(
        "\ninterleaved, {ROUNDS} rounds of {PER_ROUND}: 1k {:.3} µs, 1M {:.3} µs, median 1M/1k ratio {:.3}",
        median(&mut small) / 1000.0,
        median(&mut big) / 1000.0,
        median(&mut ratio)
    );
}
