//! Helpers for tests that run their own `redis-server` processes
//! (`tests/redis_cluster.rs`, `tests/redis_faults.rs`).
#![allow(dead_code)]

use std::{
    fs,
    io::Write,
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

/// Whether `program --version` runs; the error otherwise.
pub fn installed(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{program} --version` exited with {s}")),
        Err(e) => Err(format!("`{program}` not found: {e}")),
    }
}

/// `Ok(())` when every program runs; `Err(())` after printing `SKIPPED`
/// (panics instead under `SESSIONWARE_REQUIRE_STORES=1`).
pub fn programs_or_skip(what: &str, programs: &[&str]) -> Result<(), ()> {
    let Err(err) = programs.iter().try_for_each(|p| installed(p)) else { return Ok(()) };
    if std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() == Ok("1") {
        panic!("{what}: {err}");
    }
    // Straight to stderr: the test harness captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what} ({err})");
    Err(())
}

/// A fresh, empty directory under the system temp directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sessionware-{tag}-{}-{:x}", std::process::id(), rand::random::<u64>()));
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A port that is free now and not in `taken`; with `bus`, its cluster bus
/// port (`+10000`) is free too.
pub fn free_port(taken: &[u16], bus: bool) -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 10_000;
        if taken.contains(&port) {
            continue;
        }
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && (!bus || free(port + 10_000)) {
            return port;
        }
    }
    panic!("no free port found");
}

pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// One command on a fresh connection, `None` if the server does not answer.
pub fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let client = redis::Client::open(url(port)).ok()?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    cmd.query(&mut conn).ok()
}
