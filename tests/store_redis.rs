//! `RedisStore` against a live Redis: the conformance suite and layout checks.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`). Without a server the
//! tests print `SKIPPED: ...` and pass, unless `SESSIONWARE_REQUIRE_STORES=1`.
#![cfg(feature = "redis")]

use std::{io::Write, sync::Arc, time::Duration};

use redis::aio::ConnectionManager;
use serde_json::value::to_raw_value;
use sessionware::{
    store::{
        conformance, Auth, ChangeSet, Leases, Login, Metadata, Record, RedisStore, Rotated, Rotation, SessionStore,
        Stored, UserIndex,
    },
    Clock, SessionId, SystemClock,
};

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A store with a prefix of its own, or `None` (after printing why) when no
/// server answers and stores are not required.
async fn store() -> Option<RedisStore> {
    let url = url();
    let err = match probe(&url).await {
        Ok(()) => match RedisStore::connect(&url).await {
            Ok(store) => {
                let prefix = format!("sw-test-{}-{:x}:", std::process::id(), rand::random::<u64>());
                return Some(store.with_prefix(&prefix).expect("valid prefix"));
            }
            Err(e) => e.to_string(),
        },
        Err(e) => e,
    };
    let host = url.rsplit('@').next().unwrap_or_default();
    if std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() == Ok("1") {
        panic!("redis store tests: no server at {host}: {err}");
    }
    // Straight to stderr: the test harness captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "SKIPPED: redis store tests (no server at {host}: {err})");
    None
}

/// One connection attempt, without the connection manager's retries.
async fn probe(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("invalid URL ({:?})", e.kind()))?;
    match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connection timed out".into()),
    }
}

async fn raw_conn() -> ConnectionManager {
    let client = redis::Client::open(url()).expect("url");
    ConnectionManager::new(client).await.expect("connect")
}

async fn keys_with_prefix(conn: &mut ConnectionManager, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

async fn cleanup(store: &RedisStore) {
    let mut conn = raw_conn().await;
    for key in keys_with_prefix(&mut conn, store.prefix()).await {
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut conn).await.expect("del");
    }
}

fn record_now() -> Record {
    let mut r = Record::new(Metadata::new(SystemClock.now_ms(), 60_000, 3_600_000));
    r.data.insert("greeting", &to_raw_value("hello").expect("json"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_conformance() {
    let Some(store) = store().await else { return };
    conformance::run_all(Arc::new(store.clone())).await;
    cleanup(&store).await;
}

#[tokio::test]
async fn redis_user_index_and_lease_keys_reveal_no_id_or_user() {
    let Some(store) = store().await else { return };
    let id = SessionId::generate().expect("rng");
    let key = id.storage_key();
    let user = "alice@example.com";
    let mut record = record_now();
    record.meta.auth = Some(sessionware::store::Auth::new(user, SystemClock.now_ms()));
    assert!(store.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    assert!(store.try_lock(&key, "token", 60_000, SystemClock.now_ms()).await.expect("lock"));

    let mut conn = raw_conn().await;
    let mut keys = keys_with_prefix(&mut conn, store.prefix()).await;
    keys.sort();
    let hex = key.to_hex();
    let mut expected =
        vec![store.redis_key(&key), format!("{}{{{hex}}}:lock", store.prefix()), store.user_index_key(user)];
    expected.sort();
    assert_eq!(keys, expected);
    for k in &keys {
        assert!(!k.contains(&id.expose_secret()) && !k.contains(user), "{k}");
    }
    // Session and lease share the hash tag, hence the cluster slot.
    let tag = format!("{{{hex}}}");
    assert_eq!(keys.iter().filter(|k| k.find('{').map(|i| &k[i..i + tag.len()]) == Some(tag.as_str())).count(), 2);
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(store.user_index_key(user))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("zrange");
    assert_eq!(members, vec![hex]);
    let listed = store.list_user(user, SystemClock.now_ms(), usize::MAX).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, record.meta.handle);
    store.unlock(&key, "token", SystemClock.now_ms()).await.expect("unlock");
    store.delete(&key, SystemClock.now_ms()).await.expect("delete");
    // The stale member is dropped by the next listing.
    assert!(store.list_user(user, SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty());
    let mut conn = raw_conn().await;
    assert!(keys_with_prefix(&mut conn, store.prefix()).await.is_empty(), "nothing is left behind");
}

#[tokio::test]
async fn redis_keys_hold_the_digest_never_the_id() {
    let Some(store) = store().await else { return };
    let id = SessionId::generate().expect("rng");
    let secret = id.expose_secret();
    let key = id.storage_key();
    assert!(store.create(&key, &record_now(), SystemClock.now_ms()).await.expect("create"));

    let mut conn = raw_conn().await;
    let keys = keys_with_prefix(&mut conn, store.prefix()).await;
    assert_eq!(keys, vec![format!("{}{{{}}}", store.prefix(), key.to_hex())]);
    for k in &keys {
        assert!(!k.contains(&secret), "a Redis key holds the raw session ID");
        let value = value(&mut conn, k).await.expect("a record");
        assert!(!value.windows(secret.len()).any(|w| w == secret.as_bytes()), "a record holds the raw session ID");
        // The TTL runs out at expires_at, counted from the request's time.
        let record = store.load(&key, SystemClock.now_ms()).await.expect("load").expect("live");
        assert_ttl(&mut conn, k, record.meta.expires_at - record.meta.created_at).await;
    }
    cleanup(&store).await;
}

#[tokio::test]
async fn redis_ttl_moves_with_touch_and_apply() {
    let Some(store) = store().await else { return };
    let key = SessionId::generate().expect("rng").storage_key();
    let record = record_now();
    assert!(store.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    let mut conn = raw_conn().await;
    let rkey = store.redis_key(&key);
    // The request's time runs 10 minutes behind the server's clock: the TTL
    // is still counted from it (with PEXPIREAT the key would be gone at once).
    let now = SystemClock.now_ms() - 600_000;
    assert!(store.touch(&key, now, now + 120_000).await.expect("touch"));
    assert_ttl(&mut conn, &rkey, 120_000).await;
    let mut c = ChangeSet::new(now, now + 240_000);
    c.set("x", to_raw_value(&1).expect("json"));
    c.persistent = Some(true);
    assert!(store.apply(&key, &c, now).await.expect("apply"));
    assert_ttl(&mut conn, &rkey, 240_000).await;
    let loaded = store.load(&key, now).await.expect("load").expect("live");
    assert!(loaded.meta.persistent);
    assert_eq!(loaded.data.get("greeting").map(|v| v.get()), Some("\"hello\""));
    cleanup(&store).await;
}

/// The apply script sends its removals, then its writes, in commands of at
/// most 1000 arguments: change sets larger than that, with a clear, land whole.
#[tokio::test]
async fn redis_large_change_sets_land_whole() {
    let Some(store) = store().await else { return };
    let key = SessionId::generate().expect("rng").storage_key();
    let mut record = record_now();
    for i in 0..1_500 {
        record.data.insert(&format!("old{i}"), &to_raw_value(&i).expect("json"));
    }
    assert!(store.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    let now = SystemClock.now_ms();
    // Removals only: 1,200 keys.
    let mut c = ChangeSet::new(now, now + 60_000);
    for i in 0..1_200 {
        c.remove(&format!("old{i}"));
    }
    assert!(store.apply(&key, &c, SystemClock.now_ms()).await.expect("apply"));
    let loaded = store.load(&key, SystemClock.now_ms()).await.expect("load").expect("live");
    assert_eq!(loaded.data.len(), 301);
    assert_eq!(loaded.data.get("old1200").map(|v| v.get()), Some("1200"));
    // A clear, then 1,500 sets, some of them of cleared keys.
    let mut c = ChangeSet::new(now, now + 60_000);
    c.clear();
    for i in 1_000..2_500 {
        c.set(&format!("old{i}"), to_raw_value(&format!("new{i}")).expect("json"));
    }
    assert!(store.apply(&key, &c, SystemClock.now_ms()).await.expect("apply"));
    let loaded = store.load(&key, SystemClock.now_ms()).await.expect("load").expect("live");
    assert_eq!(loaded.data.len(), 1_500);
    assert!(loaded.data.get("greeting").is_none());
    assert_eq!(loaded.data.get("old1499").map(|v| v.get()), Some("\"new1499\""));
    assert_eq!(loaded.data.get("old2499").map(|v| v.get()), Some("\"new2499\""));
    cleanup(&store).await;
}

#[tokio::test]
async fn redis_store_checks_expiry_with_its_own_clock() {
    // Redis has not expired the key yet, but the application's clock says the
    // record is past its expires_at (clock skew): it is gone for every call.
    let Some(store) = store().await else { return };
    let key = SessionId::generate().expect("rng").storage_key();
    let record = record_now();
    assert!(store.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    let skewed = record.meta.expires_at;
    assert!(store.load(&key, skewed).await.expect("load").is_none());
    assert!(!store.apply(&key, &ChangeSet::new(0, u64::MAX), skewed).await.expect("apply"));
    assert!(!store.touch(&key, skewed, u64::MAX).await.expect("touch"));
    // ...and `create` may replace it.
    assert!(store.create(&key, &record, skewed).await.expect("create"));
    cleanup(&store).await;
}

#[tokio::test]
async fn redis_store_refuses_oversized_records() {
    let Some(store) = store().await else { return };
    let store = store.with_max_record_bytes(1_000);
    let key = SessionId::generate().expect("rng").storage_key();
    let mut record = record_now();
    record.data.insert("big", &to_raw_value(&"x".repeat(2_000)).expect("json"));
    assert!(matches!(
        store.create(&key, &record, SystemClock.now_ms()).await,
        Err(sessionware::store::StoreError::Codec(_))
    ));
    // Written by a store with a larger cap, refused when read.
    let big = store.clone().with_max_record_bytes(1 << 20);
    assert!(big.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    assert!(matches!(store.load(&key, SystemClock.now_ms()).await, Err(sessionware::store::StoreError::Codec(_))));
    cleanup(&store).await;
}

/// Logins of one user while listings of that user run: a listing may see a
/// member whose session is not written yet and drop it as stale; the store
/// puts it back, so the index still holds every live session at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_logins_racing_listings_stay_indexed() {
    let Some(store) = store().await else { return };
    let user = format!("race-{:x}", rand::random::<u64>());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listers: Vec<_> = (0..4)
        .map(|_| {
            let (store, user, done) = (store.clone(), user.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut n = 0u32;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let logins: Vec<_> = (0..100)
        .map(|i| {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move {
                let key = SessionId::generate().expect("rng").storage_key();
                let mut r = record_now();
                r.meta.auth = Some(sessionware::store::Auth::new(&user, SystemClock.now_ms()));
                assert!(store.create(&key, &r, SystemClock.now_ms()).await.expect("create"));
                if i % 3 == 0 {
                    store.delete(&key, SystemClock.now_ms()).await.expect("delete");
                    None
                } else {
                    Some(r.meta.handle.to_string())
                }
            })
        })
        .collect();
    let mut live = std::collections::BTreeSet::new();
    for t in logins {
        live.extend(t.await.expect("task"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut listings = 0;
    for t in listers {
        listings += t.await.expect("task");
    }
    let listed: std::collections::BTreeSet<String> = store
        .list_user(&user, SystemClock.now_ms(), usize::MAX)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.handle.to_string())
        .collect();
    assert_eq!(listed, live, "the index holds every live session after {listings} racing listings");
    assert_eq!(store.delete_user(&user, None, SystemClock.now_ms()).await.expect("delete_user"), live.len());
    cleanup(&store).await;
}

fn raw(json: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json.to_string()).expect("json")
}

/// The raw value under `key` (a string in the layout of this release).
async fn value(conn: &mut ConnectionManager, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.expect("get")
}

/// Asserts that `key`'s TTL is `want` ms, less the time the test took since
/// the write (at most 2 s).
async fn assert_ttl(conn: &mut ConnectionManager, key: &str, want: u64) {
    let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(conn).await.expect("pttl");
    let ttl = u64::try_from(ttl).expect("a key with a TTL");
    assert!(ttl <= want && ttl + 2_000 > want, "TTL {ttl} ms, want {want} ms");
}

/// The rotation script builds exactly the record that the reference merge
/// (`Rotation::successor`) builds from the stored record, values byte for
/// byte, for plain, data, clear, retain, login, overlap and persistence
/// rotations; the successor's TTL is its `expires_at`, the retired key is
/// a pointer (and nothing else) with its TTL at `until`.
#[tokio::test]
async fn redis_rotation_matches_the_reference_merge() {
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let now = SystemClock.now_ms();
    let variants: Vec<(&str, Rotation)> = {
        let mut v = Vec::new();
        v.push(("plain", Rotation::new(now, ChangeSet::new(now, now + 60_000))));
        let mut c = ChangeSet::new(now - 5, now + 90_000);
        c.set("n", raw("1.000000000000000000001"));
        c.remove("greeting");
        c.persistent = Some(true);
        let mut r = Rotation::new(now, c);
        r.overlap_until = now + 30_000;
        r.retired_until = now + 10_000; // shorter than the overlap: the overlap wins
        v.push(("data, persistence and overlap", r));
        let mut c = ChangeSet::new(now + 7, now + 60_000);
        c.clear();
        c.set("fresh", raw("{\"b\":1,  \"a\":[2]}"));
        v.push(("clear", Rotation::new(now, c)));
        let mut c = ChangeSet::new(now, now + 7_200_000);
        c.set("new", raw("true"));
        let mut r = Rotation::new(now, c);
        r.retain = Some(vec!["cart".into(), "missing".into()]);
        let mut login = Login::new(Auth::new("bob", now), now + 1_000_000);
        login.user_agent = Some("agent/1.0".into());
        login.ip = Some("10.0.0.0".into());
        r.login = Some(login);
        v.push(("retain and login, idle deadline capped by the new absolute one", r));
        v
    };
    for anonymous in [true, false] {
        for (what, rotation) in &variants {
            let old = SessionId::generate().expect("rng").storage_key();
            let new = SessionId::generate().expect("rng").storage_key();
            let mut record = record_now();
            record.data.insert("cart", &raw("[1,2,3]"));
            if !anonymous {
                record.meta.auth = Some(sessionware::store::Auth::new("alice", now));
                record.meta.user_agent = Some("old agent".into());
            }
            assert!(store.create(&old, &record, SystemClock.now_ms()).await.expect("create"));
            // A write after "our" request loaded: the rotation builds on it.
            let mut other = ChangeSet::new(now, now + 60_000);
            other.set("other", raw("7"));
            assert!(store.apply(&old, &other, SystemClock.now_ms()).await.expect("apply"));
            let current = store.load(&old, SystemClock.now_ms()).await.expect("load").expect("live");
            let want = rotation.successor(&current, &old).expect("within the cap");

            assert_eq!(store.rotate(&old, &new, rotation).await.expect("rotate"), Rotated::Done, "{what}");
            let got = store.load(&new, SystemClock.now_ms()).await.expect("load").expect("live successor");
            assert_eq!(got, want, "{what} (anonymous: {anonymous})");
            let new_key = store.redis_key(&new);
            assert_ttl(&mut conn, &new_key, want.meta.expires_at - rotation.now).await;

            let retired = rotation.retired(new);
            assert_eq!(
                store.lookup(&old, SystemClock.now_ms()).await.expect("lookup"),
                Some(Stored::Retired(retired)),
                "{what}"
            );
            let old_key = store.redis_key(&old);
            let pointer = value(&mut conn, &old_key).await.expect("a pointer");
            let holds = |text: &str| pointer.windows(text.len()).any(|w| w == text.as_bytes());
            assert!(!holds("cart") && !holds("[1,2,3]") && !holds("alice"), "{what}: a pointer, no session data");
            assert_ttl(&mut conn, &old_key, retired.until - rotation.now).await;
            // Past `until` (by the store's clock), the pointer is gone.
            let later = retired.until;
            assert!(store.lookup(&old, later).await.expect("lookup").is_none(), "{what}");
            store.delete(&old, SystemClock.now_ms()).await.expect("delete");
            assert!(
                store.lookup(&new, SystemClock.now_ms()).await.expect("lookup").is_none(),
                "{what}: delete follows the pointer"
            );
        }
    }
    cleanup(&store).await;
}

/// `apply`'s cap holds on the merged data (`Data::size`), whichever key the
/// change set touches: before, among or after the stored keys, with a
/// clear, a removal, or a value that grows; a refused change changes
/// nothing.
#[tokio::test]
async fn redis_apply_cap_counts_the_data() {
    let Some(store) = store().await else { return };
    let key = SessionId::generate().expect("rng").storage_key();
    let mut record = record_now();
    for k in ["b", "d", "f", "h"] {
        record.data.insert(k, &raw("\"0123456789\"")); // 1 + 12 bytes each
    }
    assert!(store.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    let now = SystemClock.now_ms();
    let change = |ops: &[(&str, Option<&str>)], clear: bool, cap: usize| {
        let mut c = ChangeSet::new(now, now + 60_000);
        if clear {
            c.clear();
        }
        for (k, v) in ops {
            match v {
                Some(v) => c.set(k, raw(v)),
                None => c.remove(k),
            }
        }
        c.max_data_bytes = cap;
        c
    };
    let data = || async { store.load(&key, SystemClock.now_ms()).await.expect("load").expect("live").data };
    let mut want = data().await;
    let cases: Vec<(&str, ChangeSet)> = vec![
        ("a new key first", change(&[("a", Some("[1]"))], false, 0)),
        ("a new key in the middle", change(&[("e", Some("true"))], false, 0)),
        ("a new key last", change(&[("z", Some("\"tail\""))], false, 0)),
        ("a value grows", change(&[("d", Some("\"01234567890123456789\""))], false, 0)),
        ("a removal and a set", change(&[("b", None), ("c", Some("3"))], false, 0)),
        ("a clear and a set", change(&[("x", Some("1")), ("greeting", Some("2"))], true, 0)),
    ];
    for (what, c) in &cases {
        let fits = want.clone();
        let mut merged = fits.clone();
        merged.merge(c);
        let size = merged.size();
        // One byte short: refused, nothing changed.
        let mut short = c.clone();
        short.max_data_bytes = size - 1;
        assert!(
            matches!(
                store.apply(&key, &short, SystemClock.now_ms()).await,
                Err(sessionware::store::StoreError::TooLarge)
            ),
            "{what}"
        );
        assert_eq!(data().await, fits, "{what}: nothing changed");
        // Exactly at the cap: applied.
        let mut exact = c.clone();
        exact.max_data_bytes = size;
        assert!(store.apply(&key, &exact, SystemClock.now_ms()).await.expect("apply"), "{what}");
        assert_eq!(data().await, merged, "{what}");
        want = merged;
    }
    cleanup(&store).await;
}

/// `delete` follows at most 16 keys along a chain of rotations.
#[tokio::test]
async fn redis_delete_follows_at_most_16_keys() {
    let Some(store) = store().await else { return };
    let keys: Vec<_> = (0..18).map(|_| SessionId::generate().expect("rng").storage_key()).collect();
    assert!(store.create(&keys[0], &record_now(), SystemClock.now_ms()).await.expect("create"));
    for pair in keys.windows(2) {
        let now = SystemClock.now_ms();
        let rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
        assert_eq!(store.rotate(&pair[0], &pair[1], &rotation).await.expect("rotate"), Rotated::Done);
    }
    store.delete(&keys[0], SystemClock.now_ms()).await.expect("delete");
    for (i, key) in keys.iter().enumerate() {
        let stored = store.lookup(key, SystemClock.now_ms()).await.expect("lookup");
        match i {
            0..=15 => assert!(stored.is_none(), "key {i} is deleted"),
            16 => assert!(matches!(stored, Some(Stored::Retired(_))), "key {i} is past the bound"),
            _ => assert!(matches!(stored, Some(Stored::Live(_))), "key {i} is past the bound"),
        }
    }
    store.delete(&keys[16], SystemClock.now_ms()).await.expect("delete");
    assert!(store.lookup(&keys[17], SystemClock.now_ms()).await.expect("lookup").is_none());
    cleanup(&store).await;
}

/// `delete` follows a pointer only while it is live by the store's clock
/// (Redis' TTL may lag), and ends the successor only while it is unused.
#[tokio::test]
async fn redis_delete_follows_live_pointers_to_unused_successors() {
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let rotate = |old, new| {
        let store = store.clone();
        async move {
            let now = SystemClock.now_ms();
            let rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
            assert_eq!(store.rotate(&old, &new, &rotation).await.expect("rotate"), Rotated::Done);
            rotation.retired(new)
        }
    };
    let keys: Vec<_> = (0..3).map(|_| SessionId::generate().expect("rng").storage_key()).collect();
    assert!(store.create(&keys[0], &record_now(), SystemClock.now_ms()).await.expect("create"));
    let retired = rotate(keys[0], keys[1]).await;
    // Past `until` by the store's clock, before Redis expires the pointer.
    let later = retired.until;
    store.delete(&keys[0], later).await.expect("delete");
    assert!(value(&mut conn, &store.redis_key(&keys[0])).await.is_none(), "the pointer itself is deleted");
    assert!(
        store.load(&keys[1], SystemClock.now_ms()).await.expect("load").is_some(),
        "an expired pointer ends nothing"
    );
    // A successor that was used (its first request closed the overlap) is
    // not ended either.
    let _ = rotate(keys[1], keys[2]).await;
    let now = SystemClock.now_ms();
    let mut used = ChangeSet::new(now, now + 60_000);
    used.close_overlap = true;
    assert!(store.apply(&keys[2], &used, now).await.expect("apply"));
    store.delete(&keys[1], SystemClock.now_ms()).await.expect("delete");
    assert!(store.lookup(&keys[1], SystemClock.now_ms()).await.expect("lookup").is_none(), "the pointer is gone");
    assert!(store.load(&keys[2], SystemClock.now_ms()).await.expect("load").is_some(), "a used successor survives");
    store.delete(&keys[2], SystemClock.now_ms()).await.expect("delete");
    cleanup(&store).await;
}

/// A user index that holds a retired member (a listing or revocation that
/// read the index before a rotation) reaches the session it became, lists
/// it once, indexes it if it was not, and ends it (counted once); a login
/// rotation to another user puts the session out of the first user's reach.
#[tokio::test]
async fn redis_revocations_follow_retired_members_of_the_same_user() {
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let (alice, bob) = (format!("alice-{:x}", rand::random::<u64>()), format!("bob-{:x}", rand::random::<u64>()));
    let index = store.user_index_key(&alice);
    let members = |conn: &ConnectionManager| {
        let (index, mut conn) = (index.clone(), conn.clone());
        async move {
            let mut m: Vec<String> =
                redis::cmd("ZRANGE").arg(index).arg(0).arg(-1).query_async(&mut conn).await.expect("zrange");
            m.sort();
            m
        }
    };
    let zadd = |conn: &ConnectionManager, member: String| {
        let (index, mut conn) = (index.clone(), conn.clone());
        async move {
            let () =
                redis::cmd("ZADD").arg(index).arg(MAX_SCORE).arg(member).query_async(&mut conn).await.expect("zadd");
        }
    };
    const MAX_SCORE: u64 = (1 << 53) - 1;
    let now = SystemClock.now_ms();
    let mut record = record_now();
    record.meta.auth = Some(Auth::new(&alice, now));
    let (a, b) = (SessionId::generate().expect("rng").storage_key(), SessionId::generate().expect("rng").storage_key());
    assert!(store.create(&a, &record, SystemClock.now_ms()).await.expect("create"));
    let rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
    assert_eq!(store.rotate(&a, &b, &rotation).await.expect("rotate"), Rotated::Done);
    assert_eq!(members(&conn).await, [b.to_hex()]);
    // Both the retired and the live member: listed once.
    zadd(&conn, a.to_hex()).await;
    let listed = store.list_user(&alice, SystemClock.now_ms(), usize::MAX).await.expect("list");
    assert_eq!(listed.len(), 1, "one session, listed once");
    assert_eq!(listed[0].handle, record.meta.handle);
    assert_eq!(members(&conn).await, [b.to_hex()], "the retired member is dropped");
    // Only the retired member: followed, and the successor indexed again.
    let () = redis::cmd("ZREM").arg(&index).arg(b.to_hex()).query_async(&mut conn).await.expect("zrem");
    zadd(&conn, a.to_hex()).await;
    assert_eq!(
        store.list_user(&alice, SystemClock.now_ms(), usize::MAX).await.expect("list").len(),
        1,
        "reached through the retired member"
    );
    assert_eq!(members(&conn).await, [b.to_hex()], "the successor is indexed again");
    // A revocation through the retired member alone ends it, once.
    let () = redis::cmd("ZREM").arg(&index).arg(b.to_hex()).query_async(&mut conn).await.expect("zrem");
    zadd(&conn, a.to_hex()).await;
    assert_eq!(store.delete_user(&alice, None, SystemClock.now_ms()).await.expect("delete_user"), 1);
    assert!(store.load(&b, SystemClock.now_ms()).await.expect("load").is_none(), "the renewed session is ended");
    assert!(members(&conn).await.is_empty(), "neither member is left");

    // A login rotation to bob: alice's stale member reaches bob's session,
    // which she neither lists nor ends.
    let (c, d) = (SessionId::generate().expect("rng").storage_key(), SessionId::generate().expect("rng").storage_key());
    assert!(store.create(&c, &record, SystemClock.now_ms()).await.expect("create"));
    let mut login = Rotation::new(now, ChangeSet::new(now, now + 60_000));
    login.login = Some(Login::new(Auth::new(&bob, now), now + 3_600_000));
    assert_eq!(store.rotate(&c, &d, &login).await.expect("rotate"), Rotated::Done);
    zadd(&conn, c.to_hex()).await;
    assert!(
        store.list_user(&alice, SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty(),
        "bob's session is not alice's"
    );
    zadd(&conn, c.to_hex()).await;
    assert_eq!(store.delete_user(&alice, None, SystemClock.now_ms()).await.expect("delete_user"), 0);
    zadd(&conn, c.to_hex()).await;
    assert!(!store
        .delete_by_handle(&alice, &record.meta.handle, SystemClock.now_ms())
        .await
        .expect("delete_by_handle"));
    assert!(
        store.load(&d, SystemClock.now_ms()).await.expect("load").is_some(),
        "bob's session survives alice's revocations"
    );
    assert_eq!(store.list_user(&bob, SystemClock.now_ms(), usize::MAX).await.expect("list").len(), 1);
    assert_eq!(store.delete_user(&bob, None, SystemClock.now_ms()).await.expect("delete_user"), 1);
    cleanup(&store).await;
}

/// Alice's "log out other devices" racing a login rotation of one of her
/// sessions to bob: the revocation ends it before the rotation (which then
/// creates nothing) or not at all; bob's session is never ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revocations_racing_a_login_rotation_spare_the_new_user() {
    let Some(store) = store().await else { return };
    for i in 0..100 {
        let (alice, bob) = (format!("alice-{i}"), format!("bob-{i}"));
        let now = SystemClock.now_ms();
        let mut record = record_now();
        record.meta.auth = Some(Auth::new(&alice, now));
        let (c, d) =
            (SessionId::generate().expect("rng").storage_key(), SessionId::generate().expect("rng").storage_key());
        assert!(store.create(&c, &record, SystemClock.now_ms()).await.expect("create"));
        let mut login = Rotation::new(now, ChangeSet::new(now, now + 60_000));
        login.login = Some(Login::new(Auth::new(&bob, now), now + 3_600_000));
        let (s1, s2) = (store.clone(), store.clone());
        let revoke =
            tokio::spawn(async move { s1.delete_user(&alice, None, SystemClock.now_ms()).await.expect("delete_user") });
        let rotate = tokio::spawn(async move {
            for _ in 0..i % 5 {
                tokio::task::yield_now().await;
            }
            s2.rotate(&c, &d, &login).await.expect("rotate")
        });
        let ended = revoke.await.expect("task");
        match rotate.await.expect("task") {
            Rotated::Done => {
                assert_eq!(ended, 0, "round {i}: the revocation came after the login");
                assert!(
                    store.load(&d, SystemClock.now_ms()).await.expect("load").is_some(),
                    "round {i}: bob's session was ended"
                );
            }
            Rotated::Gone => assert_eq!(ended, 1, "round {i}"),
            other => panic!("round {i}: {other:?}"),
        }
    }
    cleanup(&store).await;
}

/// Writes a session the way sessionware 0.1 did (layout 1): a hash with
/// the metadata fields and one `d:<key>` field per value, and a TTL.
async fn write_v1_record(
    conn: &mut ConnectionManager,
    rkey: &str,
    meta: &str,
    (last_seen, expires_at, deadline): (u64, u64, u64),
    predecessor: Option<&str>,
    data: &[(&str, &str)],
) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(rkey).arg("v").arg(1).arg("meta").arg(meta);
    cmd.arg("last_seen").arg(last_seen).arg("expires_at").arg(expires_at).arg("absolute_deadline").arg(deadline);
    cmd.arg("persistent").arg(0);
    if let Some(p) = predecessor {
        cmd.arg("predecessor").arg(p);
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    cmd.arg("size").arg(size);
    for (k, v) in data {
        cmd.arg(format!("d:{k}")).arg(*v);
    }
    let () = cmd.query_async(conn).await.expect("hset");
    let () = redis::cmd("PEXPIRE")
        .arg(rkey)
        .arg(expires_at - SystemClock.now_ms())
        .query_async(conn)
        .await
        .expect("pexpire");
}

/// The type of the value under `key` (`hash` for layout 1, `string` for
/// this release's).
async fn key_type(conn: &mut ConnectionManager, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query_async(conn).await.expect("type")
}

/// Sessions written by sessionware 0.1 (layout 1: a hash per session, a
/// hash per retired pointer) keep working after the upgrade: they are read
/// as they are, and rewritten in this release's layout, TTL kept, by the
/// first write, which then applies as usual; rotations, listings,
/// revocations and deletes (along pointers of either layout) work on them.
#[tokio::test]
async fn redis_sessions_of_0_1_keep_working() {
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let now = SystemClock.now_ms();
    let times = (now, now + 600_000, now + 3_600_000);
    let handle = sessionware::SessionHandle::generate();
    let anonymous = format!(r#"{{"created_at":{now},"handle":"{handle}"}}"#);

    // An anonymous session: read, applied to, touched, rotated, deleted.
    let (a, b) = (SessionId::generate().expect("rng").storage_key(), SessionId::generate().expect("rng").storage_key());
    let a_key = store.redis_key(&a);
    write_v1_record(&mut conn, &a_key, &anonymous, times, None, &[("cart", "[1, 2,3]"), ("n", "1.50")]).await;
    let loaded = store.load(&a, SystemClock.now_ms()).await.expect("load").expect("live");
    assert_eq!((loaded.meta.created_at, loaded.meta.expires_at, loaded.meta.handle), (now, now + 600_000, handle));
    assert_eq!(loaded.data.get("cart").map(|v| v.get()), Some("[1, 2,3]"), "byte for byte");
    assert_eq!(key_type(&mut conn, &a_key).await, "hash", "a read rewrites nothing");
    let mut c = ChangeSet::new(now, now + 900_000);
    c.set("n", raw("2"));
    c.set("new", raw("true"));
    assert!(store.apply(&a, &c, SystemClock.now_ms()).await.expect("apply"));
    assert_eq!(key_type(&mut conn, &a_key).await, "string", "rewritten by the first write");
    assert_ttl(&mut conn, &a_key, 900_000).await;
    let applied = store.load(&a, SystemClock.now_ms()).await.expect("load").expect("live");
    let mut want = loaded.clone();
    want.apply(&c);
    assert_eq!(applied, want);
    assert!(store.touch(&a, SystemClock.now_ms(), now + 1_200_000).await.expect("touch"));
    let rotation = Rotation::new(now, ChangeSet::new(now, now + 600_000));
    assert_eq!(store.rotate(&a, &b, &rotation).await.expect("rotate"), Rotated::Done);
    let successor = store.load(&b, SystemClock.now_ms()).await.expect("load").expect("live");
    assert_eq!((successor.meta.handle, successor.data.clone()), (handle, applied.data));
    store.delete(&a, SystemClock.now_ms()).await.expect("delete");
    assert!(store.lookup(&b, SystemClock.now_ms()).await.expect("lookup").is_none(), "the unused successor ends too");

    // A rotation of 0.1 (its pointer and its successor, both hashes),
    // rotated, touched, then logged out through the old ID.
    let (c_old, c_new) =
        (SessionId::generate().expect("rng").storage_key(), SessionId::generate().expect("rng").storage_key());
    let pointer_key = store.redis_key(&c_old);
    let () = redis::cmd("HSET")
        .arg(&pointer_key)
        .arg("retired")
        .arg(c_new.to_hex())
        .arg("at")
        .arg(now)
        .arg("overlap_until")
        .arg(now)
        .arg("until")
        .arg(now + 120_000)
        .query_async(&mut conn)
        .await
        .expect("hset");
    write_v1_record(&mut conn, &store.redis_key(&c_new), &anonymous, times, Some(&c_old.to_hex()), &[("k", "1")]).await;
    assert_eq!(
        store.lookup(&c_old, SystemClock.now_ms()).await.expect("lookup"),
        Some(Stored::Retired(sessionware::store::Retired::new(c_new, now, now, now + 120_000)))
    );
    let elsewhere = SessionId::generate().expect("rng").storage_key();
    assert!(matches!(store.rotate(&c_old, &elsewhere, &rotation).await.expect("rotate"), Rotated::Retired(_)));
    assert_eq!(
        store.load(&c_new, SystemClock.now_ms()).await.expect("load").expect("live").meta.predecessor,
        Some(c_old)
    );
    store.delete(&c_old, SystemClock.now_ms()).await.expect("delete");
    assert!(store.lookup(&c_old, SystemClock.now_ms()).await.expect("lookup").is_none());
    assert!(
        store.lookup(&c_new, SystemClock.now_ms()).await.expect("lookup").is_none(),
        "followed through a 0.1 pointer"
    );

    // A signed-in session in a user index of 0.1 (the index layout is
    // unchanged): listed, then revoked.
    let user = format!("legacy-{:x}", rand::random::<u64>());
    let d = SessionId::generate().expect("rng").storage_key();
    let signed_in = format!(r#"{{"created_at":{now},"auth":{{"user":"{user}","at_ms":{now}}},"handle":"{handle}"}}"#);
    write_v1_record(&mut conn, &store.redis_key(&d), &signed_in, times, None, &[("k", "1")]).await;
    let () = redis::cmd("ZADD")
        .arg(store.user_index_key(&user))
        .arg(times.2)
        .arg(d.to_hex())
        .query_async(&mut conn)
        .await
        .expect("zadd");
    let listed = store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].auth, Some(Auth::new(&user, now)));
    assert_eq!(store.delete_user(&user, None, SystemClock.now_ms()).await.expect("delete_user"), 1);
    assert!(store.lookup(&d, SystemClock.now_ms()).await.expect("lookup").is_none());
    cleanup(&store).await;
}

/// A value under a session key that is not a record of this layout
/// (garbage, cut short, a length that points past the end) is a
/// `StoreError::Codec` for whatever reads it, never a panic or a session;
/// a write leaves it as it is.
#[tokio::test]
async fn redis_corrupted_records_are_codec_errors() {
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let key = SessionId::generate().expect("rng").storage_key();
    let rkey = store.redis_key(&key);
    let mut record = record_now();
    record.meta.auth = Some(Auth::new("alice", SystemClock.now_ms()));
    assert!(store.create(&key, &record, SystemClock.now_ms()).await.expect("create"));
    let good = value(&mut conn, &rkey).await.expect("a record");
    fn is_codec<T>(r: Result<T, sessionware::store::StoreError>) -> bool {
        matches!(r, Err(sessionware::store::StoreError::Codec(_)))
    }
    let mut huge_identity = good.clone();
    huge_identity[63..67].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut huge_entry = good.clone();
    let data_at = good.len() - (4 + "greeting".len() + 4 + "\"hello\"".len());
    huge_entry[data_at..data_at + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let cut = good[..good.len() - 3].to_vec();
    let mut bad_time = good.clone();
    bad_time[5] = b'x';
    let now = SystemClock.now_ms();
    let mut change = ChangeSet::new(now, now + 60_000);
    change.set("n", raw("1"));
    // How `apply` meets it: the scripts read the header's times as strings
    // and check lengths, not digits.
    enum Apply {
        NoSession,
        Codec,
        NotTried,
    }
    for (what, bad, apply) in [
        ("garbage", b"garbage".to_vec(), Apply::NoSession),
        ("cut short", cut, Apply::Codec),
        ("identity length", huge_identity, Apply::Codec),
        ("entry length", huge_entry, Apply::Codec),
        ("time", bad_time, Apply::NotTried),
    ] {
        let () = redis::cmd("SET").arg(&rkey).arg(&bad).arg("KEEPTTL").query_async(&mut conn).await.expect("set");
        assert!(is_codec(store.lookup(&key, SystemClock.now_ms()).await), "{what}: lookup");
        let applied = match apply {
            Apply::NoSession => matches!(store.apply(&key, &change, SystemClock.now_ms()).await, Ok(false)),
            Apply::Codec => is_codec(store.apply(&key, &change, SystemClock.now_ms()).await),
            Apply::NotTried => true,
        };
        assert!(applied, "{what}: apply");
        let other = SessionId::generate().expect("rng").storage_key();
        let rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
        assert!(is_codec(store.rotate(&key, &other, &rotation).await), "{what}: rotate");
        assert_eq!(value(&mut conn, &rkey).await.as_deref(), Some(bad.as_slice()), "{what}: unchanged");
        assert!(store.lookup(&other, SystemClock.now_ms()).await.expect("lookup").is_none(), "{what}");
        // A listing skips it.
        assert!(store.list_user("alice", SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty(), "{what}");
    }
    store.delete(&key, SystemClock.now_ms()).await.expect("delete");
    assert!(value(&mut conn, &rkey).await.is_none());
    cleanup(&store).await;
}

/// Counts commands per operation with `INFO commandstats`.
///
/// `cargo test --features redis --test store_redis -- --ignored --nocapture redis_round_trips`
/// (run it alone: other clients' commands would be counted too).
#[tokio::test]
#[ignore = "measurement; run alone with --ignored --nocapture"]
async fn redis_round_trips() {
    let Some(store) = store().await else { return };
    let key = SessionId::generate().expect("rng").storage_key();
    let mut conn = raw_conn().await;
    // Load the scripts first so that EVALSHA never misses.
    let warm = store.clone();
    let warm_key = SessionId::generate().expect("rng").storage_key();
    warm.create(&warm_key, &record_now(), SystemClock.now_ms()).await.expect("create");
    warm.apply(&warm_key, &ChangeSet::new(0, 1), SystemClock.now_ms()).await.expect("apply");
    warm.touch(&warm_key, 0, 1).await.expect("touch");
    let warm_new = SessionId::generate().expect("rng").storage_key();
    let t = SystemClock.now_ms();
    warm.rotate(&warm_key, &warm_new, &Rotation::new(t, ChangeSet::new(t, t + 60_000))).await.expect("rotate");
    warm.delete(&warm_key, SystemClock.now_ms()).await.expect("delete");

    async fn stats(conn: &mut ConnectionManager) -> std::collections::BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.expect("info");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_string(), calls.parse().ok()?))
            })
            .collect()
    }
    fn report(
        name: &str,
        before: &std::collections::BTreeMap<String, u64>,
        after: &std::collections::BTreeMap<String, u64>,
    ) {
        let mut diff: Vec<String> = Vec::new();
        for (cmd, calls) in after {
            let d = calls - before.get(cmd).copied().unwrap_or(0);
            // The INFO call that took `before` is counted in `after`.
            let d = if cmd == "info" { d.saturating_sub(1) } else { d };
            if d > 0 {
                diff.push(format!("{cmd}={d}"));
            }
        }
        eprintln!("{name}: {}", diff.join(" "));
    }
    macro_rules! measure {
        ($name:expr, $op:expr) => {{
            let before = stats(&mut conn).await;
            $op.await.expect($name);
            let after = stats(&mut conn).await;
            report($name, &before, &after);
        }};
    }
    let now = SystemClock.now_ms();
    let mut change = ChangeSet::new(now, now + 60_000);
    change.set("a", to_raw_value(&1).expect("json"));
    change.set("b", to_raw_value(&2).expect("json"));
    change.remove("greeting");
    measure!("create", store.create(&key, &record_now(), SystemClock.now_ms()));
    measure!("load", store.load(&key, SystemClock.now_ms()));
    measure!("apply (2 sets, 1 removal)", store.apply(&key, &change, SystemClock.now_ms()));
    measure!("touch", store.touch(&key, now, now + 60_000));
    measure!("delete", store.delete(&key, SystemClock.now_ms()));
    measure!("try_lock", store.try_lock(&key, "t", 10_000, SystemClock.now_ms()));
    measure!("unlock", store.unlock(&key, "t", SystemClock.now_ms()));
    let user = format!("user-{:x}", rand::random::<u64>());
    let mut authed = record_now();
    authed.meta.auth = Some(sessionware::store::Auth::new(&user, now));
    let keys: Vec<_> = (0..3).map(|_| SessionId::generate().expect("rng").storage_key()).collect();
    measure!("create (authenticated)", store.create(&keys[0], &authed, SystemClock.now_ms()));
    for k in &keys[1..] {
        let mut r = authed.clone();
        r.meta.handle = sessionware::SessionHandle::generate();
        store.create(k, &r, SystemClock.now_ms()).await.expect("create");
    }
    measure!("list_user (3 sessions)", store.list_user(&user, SystemClock.now_ms(), usize::MAX));
    measure!("delete_by_handle", store.delete_by_handle(&user, &authed.meta.handle, SystemClock.now_ms()));
    measure!("delete_user (2 sessions)", store.delete_user(&user, None, SystemClock.now_ms()));

    let rotation = Rotation::new(now, change.clone());
    let keys: Vec<_> = (0..4).map(|_| SessionId::generate().expect("rng").storage_key()).collect();
    store.create(&keys[0], &record_now(), SystemClock.now_ms()).await.expect("create");
    measure!("rotate (anonymous, 2 sets, 1 removal)", store.rotate(&keys[0], &keys[1], &rotation));
    measure!("rotate (retired key)", store.rotate(&keys[0], &keys[2], &rotation));
    measure!("delete (retired key and its successor)", store.delete(&keys[0], SystemClock.now_ms()));
    measure!("rotate (gone)", store.rotate(&keys[0], &keys[2], &rotation));
    let mut login = rotation.clone();
    login.login = Some(Login::new(Auth::new(&user, now), now + 3_600_000));
    store.create(&keys[2], &record_now(), SystemClock.now_ms()).await.expect("create");
    measure!("rotate (login)", store.rotate(&keys[2], &keys[3], &login));
    cleanup(&store).await;
}

/// Cutoffs on Redis: a record of layout 1 (written by sessionware 0.1,
/// without its user's digest) is still ended by its user's cutoff (read by
/// a second call), and a cutoff key only ever gains lifetime; user names
/// never appear in key names.
#[tokio::test]
async fn redis_cutoffs_reach_records_of_0_1_and_only_grow() {
    use sessionware::store::{Cutoffs, Scope};
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let now = SystemClock.now_ms();
    let user = format!("cut-legacy-{:x}@example.com", rand::random::<u64>());
    let key = SessionId::generate().expect("rng").storage_key();
    let handle = sessionware::SessionHandle::generate();
    let meta =
        format!(r#"{{"created_at":{now},"auth":{{"user":"{user}","at_ms":{}}},"handle":"{handle}"}}"#, now - 1_000);
    write_v1_record(&mut conn, &store.redis_key(&key), &meta, (now, now + 60_000, now + 3_600_000), None, &[]).await;
    assert!(store.load(&key, now).await.expect("load").is_some());

    store.cut(Scope::User(&user), now, now + 60_000, now).await.expect("cut");
    assert!(store.load(&key, now).await.expect("load").is_none(), "the legacy record is ended by the cutoff");

    let keys = keys_with_prefix(&mut conn, store.prefix()).await;
    assert!(keys.iter().all(|k| !k.contains(&user)), "user names never appear in key names: {keys:?}");
    let cut_key = keys.iter().find(|k| k.contains("{cutoffs}:user:")).expect("the user's cutoff key");
    let first: i64 = redis::cmd("PTTL").arg(cut_key).query_async(&mut conn).await.expect("pttl");
    assert!(first > 50_000 && first <= 60_000, "kept until keep_until: {first} ms");
    store.cut(Scope::User(&user), now - 10, now + 1_000, now).await.expect("cut");
    let second: i64 = redis::cmd("PTTL").arg(cut_key).query_async(&mut conn).await.expect("pttl");
    assert!(second > 50_000, "a shorter keep_until never shortens the key's life: {second} ms");
    assert_eq!(store.cutoff(Some(&user), now).await.expect("cutoff").user, now, "nor moves the time back");
    cleanup(&store).await;
}

/// The per-user limit on Redis: a limited login counts the user's sessions
/// only once it holds the user's login lease. The test holds the lease
/// while the login waits, adds a session of the user, then lets go: the
/// login sees it and is refused (it would be admitted had it counted first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limited_logins_count_only_under_the_users_login_lease() {
    use sessionware::store::{LimitPolicy, SessionLimit};
    use std::num::NonZeroUsize;
    let Some(store) = store().await else { return };
    let mut conn = raw_conn().await;
    let now = SystemClock.now_ms();
    let user = format!("limited-{:x}", rand::random::<u64>());
    let signed_in = |at: u64| {
        let mut r = record_now();
        r.meta.auth = Some(Auth::new(user.as_str(), at));
        r
    };
    let first = SessionId::generate().expect("rng").storage_key();
    assert!(store.create(&first, &signed_in(now), now).await.expect("create"));
    let anonymous = SessionId::generate().expect("rng").storage_key();
    assert!(store.create(&anonymous, &record_now(), now).await.expect("create"));
    let lease = format!("{}:login", store.user_index_key(&user));
    let _: () =
        redis::cmd("SET").arg(&lease).arg("held").arg("PX").arg(10_000).query_async(&mut conn).await.expect("set");

    let login = {
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move {
            let new = loop {
                let key = SessionId::generate().expect("rng").storage_key();
                if store.accepts_successor(&anonymous, &key) {
                    break key;
                }
            };
            let mut rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
            let mut login = Login::new(Auth::new(user.as_str(), now), now + 3_600_000);
            login.limit = Some(SessionLimit::new(NonZeroUsize::new(2).expect("2"), LimitPolicy::RefuseNew));
            rotation.login = Some(login);
            store.rotate(&anonymous, &new, &rotation).await.expect("rotate")
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!login.is_finished(), "the login waits for the user's login lease");
    let second = SessionId::generate().expect("rng").storage_key();
    assert!(store.create(&second, &signed_in(now), now).await.expect("create"));
    let _: () = redis::cmd("DEL").arg(&lease).query_async(&mut conn).await.expect("del");
    assert_eq!(login.await.expect("task"), Rotated::Refused, "counted under the lease: two others, limit two");
    assert!(store.load(&anonymous, now).await.expect("load").is_some(), "a refusal changes nothing");
    cleanup(&store).await;
}
