//! Tail latency of sessionware while a million sessions expire.
//!
//! Usage: `expiry [BULK] [REQUESTS]` (defaults 1,000,000 and 200,000).
//!
//! A `MemoryStore` on a manual clock holds 1,000 live sessions (idle 1 h)
//! whose cookies are read, plus BULK sessions with a 100 s idle timeout.
//! Requests go through the layer on a current-thread runtime; each request's
//! latency is recorded. Phases:
//!
//! 1. `steady`: nothing has expired; 9 of 10 requests read a live session
//!    (`/read`), 1 of 10 creates a session (`/new`).
//! 2. `expiring`: the clock jumps 120 s, so the BULK sessions are all
//!    expired; same mix. Reads never sweep; each shard's first `create`
//!    sweeps that shard (about BULK/64 records) under its lock.
//! 3. `sweeper`: the store is filled again and the clock jumps past their
//!    expiry, then a second thread runs `MemoryStore::sweep_expired` (shard
//!    by shard) while this thread only reads; the reads that overlap the
//!    sweep are reported.

use std::time::Instant;

use axum::{body::Body, Router};
use http::{HeaderValue, Request};
use sessionware_rivals::{populate, request};
use tower::{Service, ServiceExt};

const LIVE: usize = 1_000;
const BULK_IDLE_MS: u64 = 100_000;

struct Lat(Vec<u64>);

impl Lat {
    fn line(&mut self, what: &str) -> String {
        let v = &mut self.0;
        if v.is_empty() {
            return format!("| {what} | 0 | – | – | – | – |");
        }
        v.sort_unstable();
        let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0;
        format!(
            "| {what} | {} | {:.2} | {:.2} | {:.2} | {:.1} |",
            v.len(),
            q(0.50),
            q(0.99),
            q(0.999),
            *v.last().unwrap_or(&0) as f64 / 1000.0
        )
    }
}

async fn one(svc: &mut Router, path: &'static str, cookie: Option<&HeaderValue>) -> u64 {
    let start = Instant::now();
    let res = ServiceExt::<Request<Body>>::ready(svc).await.expect("infallible").call(request(path, cookie)).await;
    let ns = start.elapsed().as_nanos() as u64;
    assert!(res.expect("infallible").status().is_success(), "{path}");
    ns
}

/// `requests` requests, 1 in 10 creating a session; returns (reads, creates).
async fn mixed(router: &Router, cookies: &[HeaderValue], requests: usize) -> (Lat, Lat) {
    let mut svc = router.clone();
    let (mut reads, mut creates) = (Vec::with_capacity(requests), Vec::with_capacity(requests / 10 + 1));
    for i in 0..requests {
        if i % 10 == 9 {
            creates.push(one(&mut svc, "/new", None).await);
        } else {
            reads.push(one(&mut svc, "/read", Some(&cookies[i % cookies.len()])).await);
        }
    }
    (Lat(reads), Lat(creates))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bulk: usize = args.next().map(|s| s.parse().expect("BULK")).unwrap_or(1_000_000);
    let requests: usize = args.next().map(|s| s.parse().expect("REQUESTS")).unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    rt.block_on(async {
        let t = Instant::now();
        let p = populate::populated(LIVE, bulk, BULK_IDLE_MS).await;
        eprintln!("filled {} sessions in {:.1?}", p.store.len(), t.elapsed());
        // Warm-up (not recorded).
        let _ = mixed(&p.router, &p.cookies, 20_000).await;

        println!("| phase / request | count | p50 µs | p99 µs | p99.9 µs | max µs |");
        println!("|---|---:|---:|---:|---:|---:|");

        p.clock.set(p.t0 + 1_000);
        let (mut r, mut c) = mixed(&p.router, &p.cookies, requests).await;
        println!("{}", r.line("steady / read"));
        println!("{}", c.line("steady / new"));

        let held = p.store.len();
        p.clock.set(p.t0 + 120_000);
        let t = Instant::now();
        let (mut r, mut c) = mixed(&p.router, &p.cookies, requests).await;
        let took = t.elapsed();
        println!("{}", r.line("expiring / read"));
        println!("{}", c.line("expiring / new"));
        let after = p.store.len();

        // Phase 3: a second thread sweeps while this one reads.
        let now = p.t0 + 120_000;
        populate::add(&p.store, bulk, now, BULK_IDLE_MS, 0).await;
        let refilled = p.store.len();
        p.clock.set(now + 120_000);
        let store = p.store.clone();
        let sweeper = std::thread::spawn(move || {
            let t = Instant::now();
            let removed = store.sweep_expired(now + 120_000);
            (removed, t.elapsed())
        });
        let mut svc = p.router.clone();
        let mut during = Vec::new();
        let mut i = 0usize;
        while !sweeper.is_finished() {
            during.push(one(&mut svc, "/read", Some(&p.cookies[i % p.cookies.len()])).await);
            i += 1;
        }
        let (removed, sweep_took) = sweeper.join().expect("sweeper");
        let mut after_sweep = Vec::with_capacity(requests);
        for j in 0..requests {
            after_sweep.push(one(&mut svc, "/read", Some(&p.cookies[j % p.cookies.len()])).await);
        }
        println!("{}", Lat(during).line("sweeper thread running / read"));
        println!("{}", Lat(after_sweep).line("after the sweep / read"));

        println!();
        println!(
            "expiring phase: store held {held} records before, {after} after ({requests} requests in {took:.2?})"
        );
        println!(
            "sweeper phase: refilled to {refilled}; sweep_expired removed {removed} in {sweep_took:.2?} on another thread"
        );
        drop(p);
    });
}
