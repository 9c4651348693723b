//! sessionware against tower-sessions on real stores: `RedisStore` against
//! tower-sessions-redis-store, and `SqlStore` (PostgreSQL) against
//! tower-sessions-sqlx-store, with the same axum routes and handlers as
//! `benches/rivals` (see [`routers`]).
//!
//! ```sh
//! cargo run --release -p sessionware-rival-stores -- [redis|postgres|all]
//! ```
//!
//! For each backend it measures, in process (requests go through the axum
//! `Router` with `tower::ServiceExt`, no sockets between client and layer):
//!
//! - **Throughput** of `/read`, `/write` and `/new` on a tokio multi-thread
//!   runtime (`STORES_WORKERS`, default 2 workers) with `STORES_TASKS`
//!   (default 32) tasks each sending one request after the other. For
//!   `/read` and `/write` every task has its own session (made through
//!   `/new` before the timed part); `/new` sends no cookie. Each measurement
//!   is a 300 ms warm-up and `STORES_SECS` (default 3) seconds; there are
//!   `STORES_ROUNDS` (default 3) rounds, and within a round the libraries
//!   take turns (the order rotates from round to round). The table has the
//!   medians over the rounds and the ratio sessionware / rival.
//! - **CPU time per request** during the same runs: of this process (the
//!   harness, router, layer and store client; `/proc/self/stat`), and of the
//!   server (Redis: `INFO cpu`; PostgreSQL: the backends of the benchmarked
//!   pools, found by their `application_name`, in `/proc/<pid>/stat`, so
//!   only for a server on this machine). On a shared 2-core machine these
//!   move less with the load than the request rate.
//! - **Round trips per request**, with `STORES_COUNT` (default 1,000)
//!   requests sent one at a time after a warm-up. Redis: the deltas of
//!   `INFO commandstats` (server-wide, so other clients of the same server
//!   would show up in them; the harness's own `INFO` is left out; commands
//!   that a script runs count too), and the commands the clients send,
//!   counted by a proxy between the clients and the server (see [`proxy`]).
//!   PostgreSQL: a counting proxy between the pool and the server reads the
//!   protocol messages.
//!
//! `STORES_SCENARIOS` (e.g. `read,write`) and `STORES_LIBS` (parts of the
//! library names, e.g. `sessionware,fred Client`) narrow the run, for
//! profiling one library.
//!
//! Servers: `REDIS_URL` (default `redis://127.0.0.1:6379/13`; the database
//! must be empty, since it is flushed between rounds and at the end) and
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`; the
//! tables are made for the run, `bench_sw_<pid>` and schema `bench_ts_<pid>`,
//! and dropped at the end). A server that cannot be reached is reported with a
//! `SKIPPED:` line, and the exit status stays 0.
//!
//! Both libraries use their default configuration; tower-sessions uses a
//! signed cookie (`with_signed(Key::generate())`) as in `benches/rivals`.
//! Redis: sessionware `RedisStore::connect` (one multiplexed connection)
//! against tower-sessions-redis-store on one fred `Client` (one pipelined
//! connection) and on a fred `Pool` of 6 (the size in its documentation).
//! PostgreSQL: sessionware `SqlStore::postgres` (a sqlx pool of 10) against
//! tower-sessions-sqlx-store's `PostgresStore` on a sqlx pool with the same
//! options (10 connections, 5 s acquire timeout).

mod proxy;
mod routers;

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{body::Body, Router};
use http::{HeaderValue, Request};
use tower::{Service, ServiceExt};

use routers::{make_session, ours, request, theirs};

/// Settings from the environment.
#[derive(Debug, Clone)]
struct Settings {
    rounds: usize,
    secs: f64,
    tasks: usize,
    workers: usize,
    count: u64,
    /// `STORES_SCENARIOS` (comma-separated names; default all).
    scenarios: Vec<Scenario>,
    /// `STORES_LIBS` (comma-separated parts of library names; default all).
    libs: Option<Vec<String>>,
}

fn env<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Settings {
    fn from_env() -> Self {
        Settings {
            rounds: env("STORES_ROUNDS", 3usize).max(1),
            secs: env("STORES_SECS", 3.0f64).max(0.1),
            tasks: env("STORES_TASKS", 32usize).max(1),
            workers: env("STORES_WORKERS", 2usize).max(1),
            count: env("STORES_COUNT", 1000u64).max(1),
            scenarios: match std::env::var("STORES_SCENARIOS") {
                Ok(v) => SCENARIOS.into_iter().filter(|s| v.split(',').any(|n| n.trim() == s.name())).collect(),
                Err(_) => SCENARIOS.to_vec(),
            },
            libs: std::env::var("STORES_LIBS").ok().map(|v| v.split(',').map(|p| p.trim().to_owned()).collect()),
        }
    }

    /// The libraries that `STORES_LIBS` selects.
    fn select(&self, libs: impl IntoIterator<Item = Lib>) -> Vec<Lib> {
        libs.into_iter()
            .filter(|l| self.libs.as_ref().is_none_or(|parts| parts.iter().any(|p| l.name.contains(p.as_str()))))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Read,
    Write,
    New,
}

const SCENARIOS: [Scenario; 3] = [Scenario::Read, Scenario::Write, Scenario::New];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Write => "write",
            Scenario::New => "new",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Scenario::Read => "/read",
            Scenario::Write => "/write",
            Scenario::New => "/new",
        }
    }

    fn needs_cookie(self) -> bool {
        !matches!(self, Scenario::New)
    }
}

/// One library on one store.
struct Lib {
    name: &'static str,
    router: Router,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "?".into())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// `host:port` of a `scheme://[user[:password]@]host[:port][/path]` URL.
fn host_port(url: &str, default_port: u16) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hp = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:{default_port}") };
    Some((hp, authority.to_owned()))
}

/// `url` with the host and port in `authority` replaced by `addr`.
fn via(url: &str, authority: &str, addr: std::net::SocketAddr) -> String {
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    url.replacen(authority, &format!("{userinfo}{addr}"), 1)
}

/// The first address `addr` resolves to.
async fn resolve(addr: &str) -> Result<std::net::SocketAddr, String> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))
}

/// Whether a TCP connection to `addr` opens within a second.
async fn reachable(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Session cookies for `n` tasks (`None` for `/new`).
async fn cookies_for(lib: &Lib, scenario: Scenario, n: usize) -> Result<Vec<Option<HeaderValue>>, String> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(if scenario.needs_cookie() {
            Some(make_session(&lib.router).await.map_err(|e| format!("{}: {e}", lib.name))?)
        } else {
            None
        });
    }
    Ok(v)
}

/// Runs one task per cookie, each sending requests for `path` one after the
/// other until `dur` is over; returns the completed requests and the time
/// until the last task finished.
async fn drive(
    router: &Router,
    path: &'static str,
    cookies: &[Option<HeaderValue>],
    dur: Duration,
) -> Result<(u64, Duration), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for cookie in cookies {
        let mut svc = router.clone();
        let cookie = cookie.clone();
        let stop = Arc::clone(&stop);
        set.spawn(async move {
            let mut done = 0u64;
            while !stop.load(Relaxed) {
                let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .expect("infallible")
                    .call(request(path, cookie.as_ref()))
                    .await
                    .expect("infallible");
                if !res.status().is_success() {
                    return Err(format!("{path} answered {}", res.status()));
                }
                done += 1;
            }
            Ok(done)
        });
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Relaxed);
    let mut total = 0;
    let mut error = None;
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(n) => total += n,
            Err(e) => error = error.or(Some(e)),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok((total, start.elapsed())),
    }
}

/// CPU seconds (user + system) of process `pid` (`"self"` for this one) so
/// far, from `/proc/<pid>/stat` (in clock ticks: `USER_HZ` is 100 on Linux).
fn proc_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Requests per second.
    rps: f64,
    /// CPU time of this process (harness, router, layer, store client) per
    /// request, µs.
    client_us: f64,
    /// CPU time of the store server (NaN if unknown) per request, µs.
    server_us: f64,
}

/// Requests per second of `lib` on `scenario` (fresh sessions, warm-up, then
/// the measured run), and the CPU time per request of this process and of
/// the server (`server_cpu` tells the server's CPU seconds so far).
async fn throughput<C, CFut>(lib: &Lib, scenario: Scenario, s: &Settings, server_cpu: &C) -> Result<Sample, String>
where
    C: Fn() -> CFut,
    CFut: Future<Output = Result<f64, String>>,
{
    let cookies = cookies_for(lib, scenario, s.tasks).await?;
    let path = scenario.path();
    drive(&lib.router, path, &cookies, Duration::from_millis(300)).await.map_err(|e| format!("{}: {e}", lib.name))?;
    let client0 = proc_cpu("self").unwrap_or(f64::NAN);
    let server0 = server_cpu().await?;
    let (n, took) = drive(&lib.router, path, &cookies, Duration::from_secs_f64(s.secs))
        .await
        .map_err(|e| format!("{}: {e}", lib.name))?;
    let client1 = proc_cpu("self").unwrap_or(f64::NAN);
    let server1 = server_cpu().await?;
    let n = n as f64;
    Ok(Sample {
        rps: n / took.as_secs_f64(),
        client_us: (client1 - client0) / n * 1e6,
        server_us: (server1 - server0) / n * 1e6,
    })
}

/// The interleaved rounds; `reset` runs after every round (outside the
/// timed parts). Returns `[lib][scenario]` → one sample per round.
async fn rounds<F, Fut, C, CFut>(
    libs: &[Lib],
    s: &Settings,
    mut reset: F,
    server_cpu: C,
) -> Result<Vec<Vec<Vec<Sample>>>, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
    C: Fn() -> CFut,
    CFut: Future<Output = Result<f64, String>>,
{
    let mut out = vec![vec![Vec::new(); s.scenarios.len()]; libs.len()];
    for r in 0..s.rounds {
        for (si, &scenario) in s.scenarios.iter().enumerate() {
            for k in 0..libs.len() {
                let li = (k + r) % libs.len();
                let sample = throughput(&libs[li], scenario, s, &server_cpu).await?;
                out[li][si].push(sample);
            }
        }
        eprintln!("  round {}/{} done (load {})", r + 1, s.rounds, loadavg());
        reset().await?;
    }
    Ok(out)
}

fn us(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "–".into()
    }
}

/// The throughput table (medians, and each rival's ratio with its
/// per-round range), the CPU table and the per-round figures.
fn print_throughput(libs: &[Lib], s: &Settings, res: &[Vec<Vec<Sample>>]) {
    let col = |li: usize, si: usize, f: fn(&Sample) -> f64| -> Vec<f64> { res[li][si].iter().map(f).collect() };
    let mut head = format!("| scenario | {} req/s |", libs[0].name);
    let mut rule = String::from("|---|---:|");
    for lib in &libs[1..] {
        head.push_str(&format!(" {} req/s | {} / this (per-round range) |", lib.name, libs[0].name));
        rule.push_str("---:|---:|");
    }
    println!("{head}\n{rule}");
    for (si, scenario) in s.scenarios.iter().enumerate() {
        let ours = col(0, si, |x| x.rps);
        let mut line = format!("| {} | {:.0} |", scenario.name(), median(&ours));
        for li in 1..libs.len() {
            let t = col(li, si, |x| x.rps);
            let per: Vec<f64> = ours.iter().zip(&t).map(|(o, t)| o / t).collect();
            let lo = per.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = per.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            line.push_str(&format!(" {:.0} | **{:.2}** ({lo:.2}–{hi:.2}) |", median(&t), median(&ours) / median(&t)));
        }
        println!("{line}");
    }
    println!();
    println!(
        "CPU time per request, µs (medians over the rounds): \"client\" = this process (harness, router, layer, \
         store client), \"server\" = the store server's processes:\n"
    );
    let mut head = String::from("| scenario |");
    let mut rule = String::from("|---|");
    for lib in libs {
        head.push_str(&format!(" {} client | server |", lib.name));
        rule.push_str("---:|---:|");
    }
    println!("{head}\n{rule}");
    for (si, scenario) in s.scenarios.iter().enumerate() {
        let mut line = format!("| {} |", scenario.name());
        for li in 0..libs.len() {
            let c = median(&col(li, si, |x| x.client_us));
            let v = median(&col(li, si, |x| x.server_us));
            line.push_str(&format!(" {} | {} |", us(c), us(v)));
        }
        println!("{line}");
    }
    println!();
    println!("Per round (req/s, client µs, server µs):\n");
    for (li, lib) in libs.iter().enumerate() {
        for (si, scenario) in s.scenarios.iter().enumerate() {
            let v: Vec<String> = res[li][si]
                .iter()
                .map(|x| format!("{:.0} ({}, {})", x.rps, us(x.client_us), us(x.server_us)))
                .collect();
            println!("- {} {}: {}", lib.name, scenario.name(), v.join(" / "));
        }
    }
    println!();
}

/// Sends `count` requests one at a time after `warm` untimed ones, with
/// `before`/`after` taken around the counted part.
async fn sequential<T, F, Fut>(
    lib: &Lib,
    scenario: Scenario,
    warm: u64,
    count: u64,
    mut probe: F,
) -> Result<(T, T), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let cookie = cookies_for(lib, scenario, 1).await?.pop().flatten();
    let path = scenario.path();
    let one = |router: Router, cookie: Option<HeaderValue>| async move {
        let res = router.oneshot(request(path, cookie.as_ref())).await.expect("infallible");
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("{path} answered {}", res.status()))
        }
    };
    for _ in 0..warm {
        one(lib.router.clone(), cookie.clone()).await?;
    }
    let before = probe().await?;
    for _ in 0..count {
        one(lib.router.clone(), cookie.clone()).await?;
    }
    let after = probe().await?;
    Ok((before, after))
}

fn print_header(backend: &str, url_shown: &str, s: &Settings) {
    println!("## {backend} ({url_shown})\n");
    println!(
        "{} rounds x {} s (+300 ms warm-up) per library and scenario, {} tasks, tokio multi-thread runtime with {} \
         workers; medians over the rounds. Load average at start: {}\n",
        s.rounds,
        s.secs,
        s.tasks,
        s.workers,
        loadavg()
    );
}

// ---------------------------------------------------------------------------
// Redis

mod redis_side {
    use super::*;
    use tower_sessions_redis_store::fred::prelude::{Builder, ClientLike, Config, ServerInterface};
    use tower_sessions_redis_store::fred::types::{CustomCommand, InfoKind};
    use tower_sessions_redis_store::RedisStore as TheirRedisStore;

    type Client = tower_sessions_redis_store::fred::prelude::Client;

    async fn fred_client(config: &Config) -> Result<Client, String> {
        let client = Builder::from_config(config.clone()).build().map_err(|e| e.to_string())?;
        client.init().await.map_err(|e| e.to_string())?;
        Ok(client)
    }

    async fn flushdb(admin: &Client) -> Result<(), String> {
        admin
            .custom::<(), ()>(CustomCommand::new_static("FLUSHDB", None, false), vec![])
            .await
            .map_err(|e| format!("FLUSHDB: {e}"))
    }

    /// `INFO commandstats` as command → calls (the `info` command left out).
    async fn commandstats(admin: &Client) -> Result<BTreeMap<String, u64>, String> {
        let text: String = admin.info(Some(InfoKind::CommandStats)).await.map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else { continue };
            let Some((name, stats)) = rest.split_once(':') else { continue };
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|v| v.parse().ok());
            if let (Some(calls), false) = (calls, name == "info") {
                out.insert(name.to_owned(), calls);
            }
        }
        Ok(out)
    }

    /// The three routers on the Redis server at `url`.
    async fn make_libs(url: &str) -> Result<[Lib; 3], String> {
        let config = Config::from_url(url).map_err(|e| format!("{url}: {e}"))?;
        let ours_store = sessionware::store::RedisStore::connect(url).await.map_err(|e| format!("sessionware: {e}"))?;
        let client = fred_client(&config).await?;
        let pool = Builder::from_config(config).build_pool(6).map_err(|e| e.to_string())?;
        pool.init().await.map_err(|e| e.to_string())?;
        Ok([
            Lib { name: "sessionware", router: ours::router(ours_store) },
            Lib { name: "tower-sessions (fred Client)", router: theirs::router(TheirRedisStore::new(client)) },
            Lib { name: "tower-sessions (fred Pool 6)", router: theirs::router(TheirRedisStore::new(pool)) },
        ])
    }

    /// The Redis server's CPU seconds so far (`INFO cpu`).
    async fn server_cpu(admin: &Client) -> Result<f64, String> {
        let text: String = admin.info(Some(InfoKind::Cpu)).await.map_err(|e| e.to_string())?;
        let get = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<f64>().ok());
        Ok(get("used_cpu_sys:").unwrap_or(f64::NAN) + get("used_cpu_user:").unwrap_or(f64::NAN))
    }

    /// `after - before` per command, divided by `count`, as
    /// `(total, "name x.xx, ...")`.
    fn per_request(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, count: u64) -> (f64, String) {
        let mut total = 0;
        let mut parts = Vec::new();
        for (name, &calls) in after {
            let d = calls - before.get(name).copied().unwrap_or(0);
            if d > 0 {
                total += d;
                parts.push(format!("{name} {:.2}", d as f64 / count as f64));
            }
        }
        (total as f64 / count as f64, parts.join(", "))
    }

    pub async fn run(s: &Settings) -> Result<(), String> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/13".into());
        let Some((addr, authority)) = host_port(&url, 6379) else {
            return Err(format!("cannot read REDIS_URL {url:?}"));
        };
        if let Err(e) = reachable(&addr).await {
            println!("SKIPPED: Redis benchmark: no Redis server at {addr} ({e})");
            return Ok(());
        }
        let config = Config::from_url(&url).map_err(|e| format!("REDIS_URL: {e}"))?;
        let admin = match tokio::time::timeout(Duration::from_secs(5), fred_client(&config)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                println!("SKIPPED: Redis benchmark: cannot connect to {addr} ({e})");
                return Ok(());
            }
            Err(_) => {
                println!("SKIPPED: Redis benchmark: connecting to {addr} timed out");
                return Ok(());
            }
        };
        let keys: u64 = admin.dbsize().await.map_err(|e| e.to_string())?;
        if keys != 0 {
            println!(
                "SKIPPED: Redis benchmark: the database of {url} holds {keys} keys; the benchmark flushes its \
                 database, so give it an empty one (REDIS_URL=redis://host:port/<db>)"
            );
            return Ok(());
        }
        let result = measure(s, &url, &authority, &addr, &admin).await;
        let flushed = flushdb(&admin).await;
        result.and(flushed)
    }

    async fn measure(s: &Settings, url: &str, authority: &str, addr: &str, admin: &Client) -> Result<(), String> {
        let version = admin
            .info::<String>(Some(InfoKind::Server))
            .await
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("redis_version:").map(str::to_owned)))
            .unwrap_or_default();
        let libs = s.select(make_libs(url).await?);
        if libs.is_empty() || s.scenarios.is_empty() {
            println!("Redis: nothing selected (STORES_LIBS, STORES_SCENARIOS)");
            return Ok(());
        }
        print_header("Redis", &format!("{url}, Redis {version}"), s);
        let res = rounds(&libs, s, || flushdb(admin), || server_cpu(admin)).await?;
        print_throughput(&libs, s, &res);

        // Commands per request: sent by the client (proxy) and run by the
        // server (commandstats, scripts' commands included).
        let (proxy, counts) = proxy::start::<proxy::Resp>(resolve(addr).await?).await.map_err(|e| e.to_string())?;
        let counted = s.select(make_libs(&via(url, authority, proxy)).await?);
        println!(
            "Redis commands per request ({} requests one at a time after 100 warm-up ones). \"sent\" = commands \
             the client sent (one round trip each), counted by a proxy; \"run\" = `INFO commandstats` deltas, which \
             also count the commands a script runs:\n",
            s.count
        );
        let mut head = String::from("| scenario |");
        let mut rule = String::from("|---|");
        for lib in &counted {
            head.push_str(&format!(" {} sent | run |", lib.name));
            rule.push_str("---|---|");
        }
        println!("{head}\n{rule}");
        for &scenario in &s.scenarios {
            let mut line = format!("| {} |", scenario.name());
            for lib in &counted {
                let probe = || async { Ok((counts.snapshot(), commandstats(admin).await?)) };
                let ((sent0, run0), (sent1, run1)) = sequential(lib, scenario, 100, s.count, probe).await?;
                let (sent, sent_parts) = per_request(&sent0, &sent1, s.count);
                let (run, run_parts) = per_request(&run0, &run1, s.count);
                line.push_str(&format!(" **{sent:.2}** ({sent_parts}) | {run:.2} ({run_parts}) |"));
            }
            println!("{line}");
        }
        println!("\nLoad average at end: {}\n", loadavg());
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL

mod pg_side {
    use super::*;
    use sqlx::postgres::{PgPool, PgPoolOptions};
    use tower_sessions_sqlx_store::PostgresStore;

    async fn pool(url: &str) -> Result<PgPool, String> {
        PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| e.to_string())
    }

    /// The routers of both libraries on the database at `url`.
    async fn make_libs(url: &str, table: &str, schema: &str) -> Result<[Lib; 2], String> {
        let ours_store = sessionware::store::SqlStore::postgres(url)
            .await
            .and_then(|s| s.with_table(table))
            .map_err(|e| format!("sessionware: {e}"))?;
        let theirs_store = PostgresStore::new(pool(url).await?).with_schema_name(schema)?;
        Ok([
            Lib { name: "sessionware", router: ours::router(ours_store) },
            Lib { name: "tower-sessions-sqlx-store", router: theirs::router(theirs_store) },
        ])
    }

    /// The `application_name` of the benchmarked pools, to find their
    /// backends in `pg_stat_activity`.
    const APP: &str = "sessionware-rival-stores";

    /// `url` with `param` added to its query.
    fn with_param(url: &str, param: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{param}")
    }

    /// CPU seconds so far of the server backends of the benchmarked pools
    /// (NaN when the server's processes are not visible in `/proc`).
    async fn backend_cpu(admin: &PgPool) -> Result<f64, String> {
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(APP)
            .fetch_all(admin)
            .await
            .map_err(|e| e.to_string())?;
        let cpu: Vec<f64> = pids.iter().filter_map(|p| proc_cpu(&p.to_string())).collect();
        Ok(if cpu.is_empty() { f64::NAN } else { cpu.iter().sum() })
    }

    async fn exec(admin: &PgPool, sql: &str) -> Result<(), String> {
        sqlx::raw_sql(sql).execute(admin).await.map(|_| ()).map_err(|e| format!("{sql}: {e}"))
    }

    /// `url` through the proxy at `addr`, with TLS off.
    fn via_proxy(url: &str, authority: &str, addr: std::net::SocketAddr) -> String {
        with_param(&via(url, authority, addr), "sslmode=disable")
    }

    pub async fn run(s: &Settings) -> Result<(), String> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let Some((addr, authority)) = host_port(&url, 5432) else {
            return Err(format!("cannot read DATABASE_URL {url:?}"));
        };
        if let Err(e) = reachable(&addr).await {
            println!("SKIPPED: PostgreSQL benchmark: no server at {addr} ({e})");
            return Ok(());
        }
        let admin = match pool(&url).await {
            Ok(p) => p,
            Err(e) => {
                println!("SKIPPED: PostgreSQL benchmark: cannot connect to {url} ({e})");
                return Ok(());
            }
        };
        let version: String =
            sqlx::query_scalar("SHOW server_version").fetch_one(&admin).await.map_err(|e| e.to_string())?;
        let pid = std::process::id();
        let table = format!("bench_sw_{pid}");
        let schema = format!("bench_ts_{pid}");
        let drop_all =
            format!("DROP TABLE IF EXISTS \"{table}\", \"{table}_locks\", \"{table}_cutoffs\"; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        let result = measure(s, &url, &authority, &addr, &admin, &table, &schema, &version).await;
        let dropped = exec(&admin, &drop_all).await;
        result.and(dropped)
    }

    #[allow(clippy::too_many_arguments)]
    async fn measure(
        s: &Settings,
        url: &str,
        authority: &str,
        addr: &str,
        admin: &PgPool,
        table: &str,
        schema: &str,
        version: &str,
    ) -> Result<(), String> {
        let libs = s.select(make_libs(&with_param(url, &format!("application_name={APP}")), table, schema).await?);
        if libs.is_empty() || s.scenarios.is_empty() {
            println!("PostgreSQL: nothing selected (STORES_LIBS, STORES_SCENARIOS)");
            return Ok(());
        }
        sessionware::store::SqlStore::from_postgres_pool(admin.clone())
            .with_table(table)
            .map_err(|e| e.to_string())?
            .migrate()
            .await
            .map_err(|e| format!("sessionware migrate: {e}"))?;
        PostgresStore::new(admin.clone())
            .with_schema_name(schema)?
            .migrate()
            .await
            .map_err(|e| format!("tower-sessions-sqlx-store migrate: {e}"))?;
        let truncate = format!("TRUNCATE \"{table}\", \"{schema}\".\"session\"");

        print_header("PostgreSQL", &format!("{url}, PostgreSQL {version}"), s);
        let res = rounds(&libs, s, || exec(admin, &truncate), || backend_cpu(admin)).await?;
        print_throughput(&libs, s, &res);

        // Round trips, through the counting proxy.
        let upstream = resolve(addr).await?;
        let (proxy, counts) = proxy::start::<proxy::Pg>(upstream).await.map_err(|e| e.to_string())?;
        let counted = s.select(make_libs(&via_proxy(url, authority, proxy), table, schema).await?);
        println!(
            "PostgreSQL round trips per request ({} requests one at a time after 100 warm-up ones, counted by a \
             protocol proxy; round trips = Syncs + simple queries; pings = Syncs with nothing before them: sqlx \
             pings a connection when it leaves the pool, `test_before_acquire`, and when it goes back):\n",
            s.count
        );
        let mut head = String::from("| scenario |");
        let mut rule = String::from("|---|");
        for lib in &counted {
            head.push_str(&format!(" {} |", lib.name));
            rule.push_str("---|");
        }
        println!("{head}\n{rule}");
        for &scenario in &s.scenarios {
            let mut line = format!("| {} |", scenario.name());
            for lib in &counted {
                let c = Arc::clone(&counts);
                let (before, after) =
                    sequential(lib, scenario, 100, s.count, move || std::future::ready(Ok(c.snapshot()))).await?;
                let d = after.since(&before);
                let per = |x: u64| x as f64 / s.count as f64;
                line.push_str(&format!(
                    " **{:.2}** (statements {:.2}, pings {:.2}, BEGIN {:.2}, COMMIT/ROLLBACK {:.2}, prepares {:.2}) |",
                    per(d.round_trips()),
                    per(d.executes),
                    per(d.pings),
                    per(d.begins),
                    per(d.ends),
                    per(d.parses),
                ));
            }
            println!("{line}");
        }
        println!("\nLoad average at end: {}\n", loadavg());
        exec(admin, &truncate).await
    }
}

fn main() -> ExitCode {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if !matches!(which.as_str(), "all" | "redis" | "postgres") {
        eprintln!("usage: stores [redis|postgres|all]");
        return ExitCode::from(2);
    }
    let s = Settings::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        if which != "postgres" {
            redis_side::run(&s).await.map_err(|e| format!("Redis benchmark: {e}"))?;
        }
        if which != "redis" {
            pg_side::run(&s).await.map_err(|e| format!("PostgreSQL benchmark: {e}"))?;
        }
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
