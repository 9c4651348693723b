//! Per-request cost of sessionware and tower-sessions under axum, in process.
//!
//! The routers are finalized with `with_state(())`, as `axum::serve` does
//! for every connection, so handlers are not turned into routes (and layers
//! not re-applied) per request. Every request goes through a prepared axum `Router` service
//! (`ready().await?.call(req)`, the same as `oneshot` minus the clone) inside
//! one tokio current-thread runtime; no sockets. Scenarios (criterion groups),
//! each with the same routes and handlers for both libraries:
//!
//! - `bare`: no layer, handler returns `"ok"`; `bare_cookie`: the same with a
//!   `Cookie` header of a session cookie's length. The overhead of each
//!   scenario that sends a cookie is taken against `bare_cookie`, of the
//!   others against `bare`: carrying the header costs the same with or
//!   without a layer; both also run with `noop-layer`, the same routes under
//!   a layer that does nothing, which is what axum's `Router::layer` costs
//!   any middleware before it does any work;
//! - `untouched`: layer present, a valid session cookie is sent, the handler
//!   ignores the session; `untouched_nocookie`: the same without a cookie;
//! - `read`: session with `n = 1` exists, handler reads `n`;
//! - `write`: reads `n`, writes `n + 1`;
//! - `new`: no cookie, handler inserts `n = 1` (a new session per request;
//!   the store is replaced, untimed, every 50,000 requests so it stays small);
//! - `renew`: `renew()` / `cycle_id()`; each request sends the cookie the
//!   previous response set.
//!
//! Run: `cargo bench -p sessionware-rivals --bench layer -- --warm-up-time 1 --measurement-time 3`
//! (those are also the defaults). A table (median per request, overhead vs
//! bare, our overhead / theirs) is printed at the end.
//!
//! Then an interleaved cross-check runs (skip it with `LAYER_ROUNDS=0`): 30
//! rounds, each sending 20,000 requests per scenario to bare, sessionware and
//! tower-sessions one after the other; per round the overheads are taken
//! against that round's bare run, and the medians over the rounds are
//! printed. On a shared machine whose load drifts, that is steadier than
//! criterion runs made minutes apart.

use std::time::{Duration, Instant};

use axum::{body::Body, Router};
use criterion::{BenchmarkId, Criterion};
use http::HeaderValue;
use http::Request;

use sessionware_rivals::{make_session, request, summary, Lib};
use tower::{Service, ServiceExt};

/// Requests per store in the `new` scenario before the store is replaced.
const NEW_CHUNK: u64 = 50_000;
/// Requests per library and scenario in one interleaved round.
const PER_ROUND: u64 = 20_000;

#[derive(Clone, Copy)]
enum Scenario {
    Bare,
    BareCookie,
    Untouched,
    UntouchedNoCookie,
    Read,
    Write,
    New,
    Renew,
}

impl Scenario {
    fn group(self) -> &'static str {
        match self {
            Scenario::Bare => "bare",
            Scenario::BareCookie => "bare_cookie",
            Scenario::Untouched => "untouched",
            Scenario::UntouchedNoCookie => "untouched_nocookie",
            Scenario::Read => "read",
            Scenario::Write => "write",
            Scenario::New => "new",
            Scenario::Renew => "renew",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Scenario::Bare | Scenario::BareCookie | Scenario::Untouched | Scenario::UntouchedNoCookie => "/plain",
            Scenario::Read => "/read",
            Scenario::Write => "/write",
            Scenario::New => "/new",
            Scenario::Renew => "/renew",
        }
    }

    fn needs_cookie(self) -> bool {
        matches!(self, Scenario::BareCookie | Scenario::Untouched | Scenario::Read | Scenario::Write | Scenario::Renew)
    }

    /// The bare run this scenario's overhead is taken against: the same
    /// request, cookie or not, without a layer.
    fn baseline(self) -> Scenario {
        if self.needs_cookie() {
            Scenario::BareCookie
        } else {
            Scenario::Bare
        }
    }
}

/// Sends `iters` requests and returns the time they took (setup excluded).
async fn run(lib: Lib, scenario: Scenario, iters: u64) -> Duration {
    let path = scenario.path();
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        // A fresh router (fresh store and key) per chunk; only `new` needs
        // more than one chunk.
        let chunk = if matches!(scenario, Scenario::New) { left.min(NEW_CHUNK) } else { left };
        let router: Router = lib.router();
        let mut cookie: Option<HeaderValue> = match (scenario.needs_cookie(), lib) {
            (false, _) => None,
            (true, Lib::Bare | Lib::Noop) => Some(sessionware_rivals::dummy_cookie()),
            (true, _) => Some(make_session(&router).await),
        };
        let renew = matches!(scenario, Scenario::Renew);
        let mut svc = router.clone();
        let start = Instant::now();
        for _ in 0..chunk {
            let req = request(path, cookie.as_ref());
            let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                .await
                .expect("infallible")
                .call(req)
                .await
                .expect("infallible");
            assert!(res.status().is_success(), "{} {path}: {}", lib.name(), res.status());
            if renew {
                cookie = Some(sessionware_rivals::cookie_from(&res).expect("renewal sets a cookie"));
            }
            std::hint::black_box(res);
        }
        total += start.elapsed();
        left -= chunk;
        // The router (and the store with up to NEW_CHUNK sessions) is
        // dropped here, outside the timed section.
        drop((svc, router));
    }
    total
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let scenarios = [
        Scenario::Bare,
        Scenario::BareCookie,
        Scenario::Untouched,
        Scenario::UntouchedNoCookie,
        Scenario::Read,
        Scenario::Write,
        Scenario::New,
        Scenario::Renew,
    ];
    for scenario in scenarios {
        let mut group = c.benchmark_group(scenario.group());
        let libs: &[Lib] = if matches!(scenario, Scenario::Bare | Scenario::BareCookie) {
            &[Lib::Bare, Lib::Noop]
        } else {
            &[Lib::Ours, Lib::Theirs]
        };
        for &lib in libs {
            group.bench_function(BenchmarkId::from_parameter(lib.name()), |b| {
                b.to_async(&rt).iter_custom(|iters| run(lib, scenario, iters));
            });
        }
        group.finish();
    }
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
    println!("\n## Summary (median per request; {})\n", dir.display());
    print!("{}", summary::table(&dir));
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rounds: usize = std::env::var("LAYER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    if rounds > 0 {
        interleaved(rounds);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// The interleaved cross-check (see the module docs).
fn interleaved(rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let scenarios = [
        Scenario::Untouched,
        Scenario::UntouchedNoCookie,
        Scenario::Read,
        Scenario::Write,
        Scenario::New,
        Scenario::Renew,
    ];
    let ns = |d: Duration| d.as_nanos() as f64 / PER_ROUND as f64;
    // Per scenario: bare, ours, theirs, ours - bare, theirs - bare, ratio.
    let mut cols: Vec<[Vec<f64>; 6]> = scenarios.iter().map(|_| Default::default()).collect();
    rt.block_on(async {
        for _ in 0..rounds {
            for (i, &s) in scenarios.iter().enumerate() {
                let bare = ns(run(Lib::Bare, s.baseline(), PER_ROUND).await);
                let ours = ns(run(Lib::Ours, s, PER_ROUND).await);
                let theirs = ns(run(Lib::Theirs, s, PER_ROUND).await);
                let c = &mut cols[i];
                c[0].push(bare);
                c[1].push(ours);
                c[2].push(theirs);
                c[3].push(ours - bare);
                c[4].push(theirs - bare);
                c[5].push((ours - bare) / (theirs - bare));
            }
        }
    });
    println!("\n## Interleaved cross-check ({rounds} rounds x {PER_ROUND} requests; medians over rounds)\n");
    println!("| scenario | bare µs | sessionware µs | overhead µs | tower-sessions µs | overhead µs | ours / theirs (overhead) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, s) in scenarios.iter().enumerate() {
        let c = &mut cols[i];
        let m: Vec<f64> = c.iter_mut().map(|v| median(v)).collect();
        println!(
            "| {} | {:.3} | {:.3} | {:+.3} | {:.3} | {:+.3} | {:.2} |",
            s.group(),
            m[0] / 1000.0,
            m[1] / 1000.0,
            m[3] / 1000.0,
            m[2] / 1000.0,
            m[4] / 1000.0,
            m[5]
        );
    }
}
