//! A plain request loop for profilers (perf, callgrind), without criterion.
//!
//! Usage: `profile sessionware|tower-sessions|bare|noop-layer SCENARIO [ITERS]` where
//! SCENARIO is `plain` (untouched, cookie sent), `nocookie` (untouched, no
//! cookie), `read`, `write`, `new`, `renew` (each request sends the cookie
//! the previous response set), `renew-steady` (see below); `bare` is sent
//! the same requests (a cookie of the same length where the scenario has
//! one); ITERS defaults to 1,000,000. Prints ns/request at the end.
//!
//! `renew-steady` is `renew` on a server that has been renewing for a while:
//! sessionware's store and layer share a `ManualClock` that moves
//! [`STEADY_STEP_MS`] per request (500 renewals per clock second), and
//! `STEADY_WARM` requests (default 200,000, 400 clock seconds) run untimed
//! before the ITERS timed ones, so retired pointers (kept 2 minutes) expire
//! and are swept at the rate they are made and the store works on memory
//! it has used before. Every library gets the same untimed warm-up.
//!
//! `valgrind --tool=callgrind target/release/profile sessionware read 100000`

use std::time::Instant;

use axum::body::Body;
use http::Request;
use sessionware::ManualClock;
use sessionware_rivals::{dummy_cookie, make_session, ours, request, Lib};

/// Clock time between two `renew-steady` requests.
const STEADY_STEP_MS: u64 = 2;
use tower::{Service, ServiceExt};

fn main() {
    let mut args = std::env::args().skip(1);
    let lib = match args.next().as_deref() {
        Some("sessionware") => Lib::Ours,
        Some("tower-sessions") => Lib::Theirs,
        Some("bare") => Lib::Bare,
        Some("noop-layer") => Lib::Noop,
        _ => {
            eprintln!(
                "usage: profile sessionware|tower-sessions|bare|noop-layer plain|nocookie|read|write|new|renew|renew-steady [ITERS]"
            );
            std::process::exit(2)
        }
    };
    let scenario = args.next();
    let path: &'static str = match scenario.as_deref() {
        Some("plain" | "nocookie") => "/plain",
        Some("read") => "/read",
        Some("write") => "/write",
        Some("new") => "/new",
        Some("renew" | "renew-steady") => "/renew",
        _ => {
            eprintln!("unknown scenario");
            std::process::exit(2)
        }
    };
    let iters: u64 = args.next().map(|s| s.parse().expect("ITERS")).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let steady = scenario.as_deref() == Some("renew-steady");
        let clock = (steady && lib == Lib::Ours).then(|| ManualClock::new(sessionware_rivals::populate::now_ms()));
        let router = match &clock {
            Some(clock) => {
                let store = ours::MemoryStore::builder().build();
                let keys = ours::Keys::generate().expect("OS RNG");
                ours::router_with(ours::SessionLayer::new(store, keys).with_clock(clock.clone()))
            }
            None => lib.router(),
        };
        let warm: u64 = if steady {
            std::env::var("STEADY_WARM").ok().map(|s| s.parse().expect("STEADY_WARM")).unwrap_or(200_000)
        } else {
            0
        };
        let step = std::time::Duration::from_millis(STEADY_STEP_MS);
        // Bare gets a cookie of the same length, so differences are the layer's.
        let renew =
            matches!(scenario.as_deref(), Some("renew" | "renew-steady")) && matches!(lib, Lib::Ours | Lib::Theirs);
        let mut cookie = match (scenario.as_deref(), lib) {
            (Some("new" | "nocookie"), _) => None,
            (_, Lib::Bare | Lib::Noop) => Some(dummy_cookie()),
            _ => Some(make_session(&router).await),
        };
        let mut svc = router.clone();
        let mut start = Instant::now();
        for i in 0..warm + iters {
            if i == warm {
                start = Instant::now();
            }
            if let Some(clock) = &clock {
                clock.advance(step);
            }
            let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                .await
                .expect("infallible")
                .call(request(path, cookie.as_ref()))
                .await
                .expect("infallible");
            assert!(res.status().is_success());
            if renew {
                cookie = Some(sessionware_rivals::cookie_from(&res).expect("renewal sets a cookie"));
            }
            std::hint::black_box(res);
        }
        let ns = start.elapsed().as_nanos() as f64 / iters as f64;
        println!("{} {path}: {ns:.0} ns/request over {iters}", lib.name());
    });
}
