//! A plain request loop for profilers (perf, callgrind), without criterion.
//!
//! Usage: `profile sessionware|tower-sessions|bare|noop-layer SCENARIO [ITERS]` where
//! SCENARIO is `plain` (untouched, cookie sent), `nocookie` (untouched, no
//! cookie), `read`, `write`, `new`, `renew` (each request sends the cookie
//! the previous response set); `bare` is sent the same requests (a
//! cookie of the same length where the scenario has one);
//! ITERS defaults to 1,000,000. Prints ns/request at the end.
//!
//! `valgrind --tool=callgrind target/release/profile sessionware read 100000`

use std::time::Instant;

use axum::body::Body;
use http::Request;
use sessionware_rivals::{dummy_cookie, make_session, request, Lib};
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
                "usage: profile sessionware|tower-sessions|bare|noop-layer plain|nocookie|read|write|new|renew [ITERS]"
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
        Some("renew") => "/renew",
        _ => {
            eprintln!("unknown scenario");
            std::process::exit(2)
        }
    };
    let iters: u64 = args.next().map(|s| s.parse().expect("ITERS")).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let router = lib.router();
        // Bare gets a cookie of the same length, so differences are the layer's.
        let renew = scenario.as_deref() == Some("renew") && matches!(lib, Lib::Ours | Lib::Theirs);
        let mut cookie = match (scenario.as_deref(), lib) {
            (Some("new" | "nocookie"), _) => None,
            (_, Lib::Bare | Lib::Noop) => Some(dummy_cookie()),
            _ => Some(make_session(&router).await),
        };
        let mut svc = router.clone();
        let start = Instant::now();
        for _ in 0..iters {
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
