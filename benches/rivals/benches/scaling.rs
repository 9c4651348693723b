//! sessionware read cost with 1,000 vs 1,000,000 sessions in its `MemoryStore`.
//!
//! Both stores are filled through `SessionStore::create` (data `n = 1`); the
//! requests read `n` through the layer (`/read`), cycling over the cookies of
//! 1,000 different sessions so that the big store is not read from a hot
//! cache line. Run:
//! `cargo bench -p sessionware-rivals --bench scaling -- --warm-up-time 1 --measurement-time 3`

use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{BenchmarkId, Criterion};
use http::Request;
use sessionware_rivals::{populate, request, summary};
use tower::{Service, ServiceExt};

const LIVE: usize = 1_000;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("scaling");
    for (name, total) in [("1k", 1_000usize), ("1M", 1_000_000usize)] {
        let p = rt.block_on(populate::populated(LIVE, total - LIVE, populate::LIVE_IDLE_MS));
        assert_eq!(p.store.len(), total);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let mut svc = p.router.clone();
                let cookies = &p.cookies;
                async move {
                    let start = Instant::now();
                    for i in 0..iters as usize {
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
            });
        });
        drop(p);
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    let dir = summary::criterion_dir();
    let k = summary::median_ns(&dir, "scaling", "1k");
    let m = summary::median_ns(&dir, "scaling", "1M");
    if let (Some((k, _)), Some((m, _))) = (k, m) {
        println!("\n## Scaling (median per /read request)\n");
        println!("| sessions | µs/request |\n|---:|---:|\n| 1,000 | {:.3} |\n| 1,000,000 | {:.3} |", k / 1000.0, m / 1000.0);
        println!("\n1M / 1k = {:.3} (target ≤ 1.20)", m / k);
    }
}
