//! The benchmark routes over HTTP/1.1 on one tokio worker (current-thread
//! runtime), for `benches/http.sh`.
//!
//! Usage: `server bare|sessionware|tower-sessions [PORT]` (default 3000),
//! listening on 127.0.0.1 only. Prints `listening on ADDR` when ready.
//!
//! The sessionware store's session cap is raised to 10 million (default one
//! million) so that a long new-session run never meets it; nothing else
//! differs from the defaults.

use sessionware_rivals::{bare, ours, theirs};

fn main() {
    let mut args = std::env::args().skip(1);
    let lib = args.next().unwrap_or_else(|| {
        eprintln!("usage: server bare|sessionware|tower-sessions [PORT]");
        std::process::exit(2)
    });
    let port: u16 = args.next().map(|s| s.parse().expect("PORT")).unwrap_or(3000);
    let router = match lib.as_str() {
        "bare" => bare::router(),
        "sessionware" => {
            let store = ours::MemoryStore::builder().max_sessions(10_000_000).build();
            ours::router_with(ours::layer_on(store).0)
        }
        "tower-sessions" => theirs::router(),
        other => {
            eprintln!("unknown library {other:?}");
            std::process::exit(2)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("listening on {}", listener.local_addr().expect("addr"));
        axum::serve(listener, router).await.expect("serve");
    });
}
