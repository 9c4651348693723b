//! Heap bytes per session held by each library's `MemoryStore`.
//!
//! Usage: `memory sessionware|tower-sessions [N]` (N defaults to 100,000).
//! Run one library per process so the two never share an allocator state.
//!
//! N requests without a cookie go through the layer to a handler that
//! inserts `n = 1` (each creates one session); the router, and with it the
//! store, stays alive. A counting global allocator reports the growth of live
//! heap bytes over those requests:
//!
//! - `requested`: the sizes the program asked for;
//! - `usable`: what glibc actually reserved for them (`malloc_usable_size`),
//!   plus 8 bytes of chunk header per live block (glibc's in-use overhead);
//! - `rss`: the growth of the resident set (`/proc/self/statm`), which also
//!   holds allocator free lists and fragmentation.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, Ordering},
};

use axum::{body::Body, Router};
use http::Request;
use sessionware_rivals::{ours, request, theirs};
use tower::{Service, ServiceExt};

struct Counting;

static REQUESTED: AtomicIsize = AtomicIsize::new(0);
static USABLE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

extern "C" {
    // glibc: the usable size of a block returned by malloc/posix_memalign.
    fn malloc_usable_size(ptr: *mut u8) -> usize;
    // glibc: gives free heap memory back to the OS (top of the heap, and
    // whole free pages inside it).
    fn malloc_trim(pad: usize) -> i32;
}

fn usable(ptr: *mut u8) -> isize {
    if ptr.is_null() {
        0
    } else {
        // SAFETY: `ptr` was just returned by (or is about to be given back
        // to) the system allocator, which is glibc malloc on this target.
        unsafe { malloc_usable_size(ptr) as isize }
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters move.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            REQUESTED.fetch_add(layout.size() as isize, Ordering::Relaxed);
            USABLE.fetch_add(usable(p), Ordering::Relaxed);
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            REQUESTED.fetch_add(layout.size() as isize, Ordering::Relaxed);
            USABLE.fetch_add(usable(p), Ordering::Relaxed);
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        USABLE.fetch_sub(usable(ptr), Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(ptr);
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            REQUESTED.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
            USABLE.fetch_add(usable(p) - before, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, Debug)]
struct Snapshot {
    requested: isize,
    usable: isize,
    blocks: isize,
    rss: isize,
}

fn rss_bytes() -> isize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn snapshot() -> Snapshot {
    Snapshot {
        requested: REQUESTED.load(Ordering::Relaxed),
        usable: USABLE.load(Ordering::Relaxed),
        blocks: BLOCKS.load(Ordering::Relaxed),
        rss: rss_bytes(),
    }
}

async fn fill(router: &Router, n: usize) {
    let mut svc = router.clone();
    for _ in 0..n {
        let res = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .expect("infallible")
            .call(request("/new", None))
            .await
            .expect("infallible");
        assert!(res.status().is_success() && res.headers().contains_key(http::header::SET_COOKIE));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lib = args.next().unwrap_or_else(|| {
        eprintln!("usage: memory sessionware|tower-sessions [N]");
        std::process::exit(2)
    });
    let n: usize = args.next().map(|s| s.parse().expect("N")).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    rt.block_on(async {
        // Both routers and stores are built (and one request served) before
        // the baseline, so only the sessions count.
        let (router, ours_store) = match lib.as_str() {
            "sessionware" => {
                let (layer, store) = ours::layer();
                (ours::router_with(layer), Some(store))
            }
            "tower-sessions" => {
                let (layer, _store) = theirs::layer();
                (theirs::router_with(layer), None)
            }
            other => panic!("unknown library {other:?}"),
        };
        let mut svc = router.clone();
        let _ = ServiceExt::<Request<Body>>::ready(&mut svc).await.unwrap().call(request("/plain", None)).await;

        let before = snapshot();
        fill(&router, n).await;
        let after = snapshot();

        if let Some(store) = &ours_store {
            assert_eq!(store.len(), n, "sessionware store holds every session");
        }
        let per = |a: isize, b: isize| (b - a) as f64 / n as f64;
        let glibc = per(before.usable + 8 * before.blocks, after.usable + 8 * after.blocks);
        println!("library: {lib}");
        println!("sessions: {n}");
        println!("requested bytes/session: {:.1}", per(before.requested, after.requested));
        println!("malloc bytes/session (usable + 8 B header): {glibc:.1}");
        println!("heap blocks/session: {:.2}", per(before.blocks, after.blocks));
        println!("rss bytes/session: {:.1}", per(before.rss, after.rss));
        println!(
            "totals: requested {:+} B, malloc {:+} B, rss {:+} B",
            after.requested - before.requested,
            (after.usable + 8 * after.blocks) - (before.usable + 8 * before.blocks),
            after.rss - before.rss
        );
        // Free blocks that glibc keeps in its bins are resident too: after
        // a trim, what stays is what the live blocks (and their pages) hold.
        unsafe { malloc_trim(0) };
        println!("rss bytes/session after malloc_trim: {:.1}", per(before.rss, rss_bytes()));
        // Keep the store alive until the numbers are out.
        drop((svc, router, ours_store));
    });
}
