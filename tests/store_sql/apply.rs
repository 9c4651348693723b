//! `apply` on the SQL stores as a user relies on it (PostgreSQL runs it as
//! one statement that merges the JSON in the server; the others merge in
//! Rust): values come back byte for byte; the result is
//! [`Record::try_apply`]'s (data, size cap, flags, times); rows as the
//! current release writes them are read, written, rotated and deleted; and
//! a write queued behind a held row lock loses no concurrent write, never
//! writes to a row that a rotation retired and never brings back a deleted
//! one.

use serde_json::value::RawValue;

use super::*;

/// Raw JSON values whose text a JSON parser would rewrite: number forms,
/// string escapes, nested key order and spacing, keys repeated inside a
/// value.
const VALUES: &[&str] = &[
    "1.0",
    "1e2",
    "1E+2",
    "-0",
    "0.1000",
    "123456789012345678901234567890",
    r#""\u00e9""#,
    "\"é\"",
    r#""\/""#,
    r#""\ud83d\ude00""#,
    r#""a\"b\\c\n""#,
    r#"{"z":1,"a":[1,2.50]}"#,
    r#"{ "sp" : [ 1 , 2 ] }"#,
    r#"{"dup":1,"dup":2}"#,
    "[]",
    "{}",
    "null",
    "true",
];

/// Keys that need escaping in JSON, and an empty one.
const KEYS: &[&str] = &["n", "q\"uote", "back\\slash", "é", "new\nline", "", "ctl\u{1}", "cart"];

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("raw JSON")
}

/// A live session with a predecessor (so that closing the overlap changes
/// something), created at `now`.
fn seeded(now: u64) -> Record {
    let mut r = record_at(now);
    r.meta.predecessor = Some(key());
    r
}

/// Every value of [`VALUES`] set by `apply` (under the keys of [`KEYS`] and
/// more), kept through later merges, and read back exactly as written.
async fn values_come_back_byte_for_byte(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let k = key();
    let mut record = seeded(now);
    record.data.insert("created", &raw(r#"{"b":1.50,"a":1e2}"#));
    assert!(store.create(&k, &record, now).await.expect("create"));
    let mut written = std::collections::BTreeMap::new();
    written.insert("created".to_owned(), r#"{"b":1.50,"a":1e2}"#.to_owned());
    for (i, value) in VALUES.iter().enumerate() {
        let name = format!("{}{i}", KEYS[i % KEYS.len()]);
        let mut c = ChangeSet::new(now, now + MINUTE);
        c.set(&name, raw(value));
        c.max_data_bytes = 64 * 1024;
        assert!(store.apply(&k, &c, now).await.expect("apply"), "{name:?}");
        written.insert(name, (*value).to_owned());
    }
    let mut c = ChangeSet::new(now, now + MINUTE);
    c.remove("greeting");
    assert!(store.apply(&k, &c, now).await.expect("apply"));
    // A key with a NUL (which a PostgreSQL text cannot hold), then one more
    // write while it is stored.
    for name in ["nul\0", "after nul"] {
        let mut c = ChangeSet::new(now, now + MINUTE);
        c.set(name, raw("1.0"));
        assert!(store.apply(&k, &c, now).await.expect("apply"), "{name:?}");
        written.insert(name.to_owned(), "1.0".to_owned());
    }
    let data = store.load(&k, now).await.expect("load").expect("live").data;
    let got: Vec<(String, String)> = data.iter().map(|(k, v)| (k.to_owned(), v.get().to_owned())).collect();
    let want: Vec<(String, String)> = written.into_iter().collect();
    assert_eq!(got, want, "every value, byte for byte");
    store.delete(&k, now).await.expect("delete");
}

/// A change set drawn at random: sets and removals over [`KEYS`], a clear
/// now and then, flags, times, and a cap at the merged size, one byte
/// under it, small, large, or none.
fn random_changes(model: &Record, now: u64) -> ChangeSet {
    let pick = |n: usize| rand::random_range(0..n);
    let mut c =
        ChangeSet::new(now - MINUTE + rand::random_range(0..2 * MINUTE), now + rand::random_range(1..60) * MINUTE);
    if pick(8) == 0 {
        c.clear();
    }
    for _ in 0..pick(4) {
        let name = KEYS[pick(KEYS.len())];
        if pick(3) == 0 {
            c.remove(name);
        } else {
            c.set(name, raw(VALUES[pick(VALUES.len())]));
        }
    }
    c.persistent = [None, None, Some(true), Some(false)][pick(4)];
    c.close_overlap = pick(4) == 0;
    let mut merged = model.data.clone();
    merged.merge(&c);
    c.max_data_bytes = match pick(5) {
        0 => merged.size(),
        1 => merged.size().saturating_sub(1),
        2 => 1 + pick(40),
        3 => 64 * 1024,
        _ => 0,
    };
    c
}

/// The store's answer and the record it holds afterwards are those of
/// [`Record::try_apply`] on the same record, change set after change set:
/// the same data (compared in its packed form, so values byte for byte),
/// the same refusals at the cap (`TooLarge`, nothing written), the same
/// flags and times.
async fn merge_is_try_apply(store: &SqlStore, rounds: usize) {
    let now = SystemClock.now_ms();
    let k = key();
    let mut model = seeded(now);
    assert!(store.create(&k, &model, now).await.expect("create"));
    let (mut applied, mut refused) = (0, 0);
    for round in 0..rounds {
        let c = random_changes(&model, now);
        let mut next = model.clone();
        let expected = next.try_apply(&c);
        match (store.apply(&k, &c, now).await, expected) {
            (Ok(true), Ok(())) => applied += 1,
            (Err(StoreError::TooLarge), Err(StoreError::TooLarge)) => refused += 1,
            (got, want) => panic!("round {round}: the store answered {got:?}, try_apply {want:?} for {c:?}"),
        }
        // Refused, `try_apply` left it as it was.
        model = next;
        let stored = store.load(&k, now).await.expect("load").expect("live");
        assert_eq!(stored.data.packed(), model.data.packed(), "round {round}: data ({c:?})");
        assert_eq!(stored.data.size(), model.data.size(), "round {round}: size");
        assert_eq!(stored.meta.persistent, model.meta.persistent, "round {round}: persistent");
        assert_eq!(stored.meta.predecessor, model.meta.predecessor, "round {round}: predecessor");
        assert_eq!(stored.meta.last_seen, model.meta.last_seen, "round {round}: last_seen");
        assert_eq!(stored.meta.expires_at, model.meta.expires_at, "round {round}: expires_at");
        assert_eq!(stored.meta.handle, model.meta.handle, "round {round}: handle");
        if model.meta.predecessor.is_none() && rand::random_range(0..4) == 0 {
            // An overlap to close again: the same session, recreated with a predecessor.
            store.delete(&k, now).await.expect("delete");
            model.meta.predecessor = Some(key());
            assert!(store.create(&k, &model, now).await.expect("create"));
        }
    }
    assert!(applied > rounds / 4 && refused > 0, "{applied} applied, {refused} refused");
    store.delete(&k, now).await.expect("delete");
}

/// Near the store's record size, a write lands whole or fails with
/// `Codec` and leaves the row as it was: never a record the store then
/// refuses to read.
async fn writes_near_the_record_size(store: &SqlStore) {
    let max = 600;
    let small = store.clone().with_max_record_bytes(max);
    let now = SystemClock.now_ms();
    let (mut landed, mut refused) = (0, 0);
    for filler in 200..400 {
        let mut record = record_at(now);
        record.data.insert("f", &raw(&format!("\"{}\"", "x".repeat(filler))));
        if serde_json::to_string(&record).expect("json").len() > max {
            break;
        }
        let k = key();
        assert!(small.create(&k, &record, now).await.expect("create"));
        let mut c = ChangeSet::new(now, now + MINUTE);
        c.set("k", raw("12345"));
        c.max_data_bytes = 64 * 1024;
        let applied = small.apply(&k, &c, now).await;
        let stored = small.load(&k, now).await.expect("the row stays readable").expect("live");
        match applied {
            Ok(true) => {
                landed += 1;
                assert_eq!(stored.data.get("k").map(RawValue::get), Some("12345"));
            }
            Err(StoreError::Codec(_)) => {
                refused += 1;
                assert_eq!(stored.data, record.data, "refused: the row as it was");
            }
            other => panic!("filler {filler}: {other:?}"),
        }
        store.delete(&k, now).await.expect("delete");
    }
    assert!(landed > 0 && refused > 0, "{landed} landed, {refused} refused");
}

/// Near the data cap, with a large value set, the store refuses exactly
/// where `try_apply` does, and writes nothing then.
async fn writes_near_the_data_cap(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let (mut landed, mut refused) = (0, 0);
    for filler in (500..800).step_by(7) {
        let mut record = record_at(now);
        record.data.insert("f", &raw(&format!("\"{}\"", "x".repeat(filler))));
        let k = key();
        assert!(store.create(&k, &record, now).await.expect("create"));
        let mut c = ChangeSet::new(now, now + MINUTE);
        c.set("big", raw(&format!("\"{}\"", "y".repeat(300))));
        c.max_data_bytes = 1_000;
        let mut model = record.clone();
        let expected = model.try_apply(&c);
        match (store.apply(&k, &c, now).await, expected) {
            (Ok(true), Ok(())) => landed += 1,
            (Err(StoreError::TooLarge), Err(StoreError::TooLarge)) => refused += 1,
            (got, want) => panic!("filler {filler}: the store answered {got:?}, try_apply {want:?}"),
        }
        let stored = store.load(&k, now).await.expect("load").expect("live");
        assert_eq!(stored.data, model.data, "filler {filler}");
        store.delete(&k, now).await.expect("delete");
    }
    assert!(landed > 0 && refused > 0, "{landed} landed, {refused} refused");
}

/// A row of a record format this release does not know (a later
/// release's, during a rolling upgrade) is refused and never rewritten.
async fn rows_of_another_format_are_left_alone(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let record = record_at(now);
    let text = serde_json::to_string(&record).expect("json").replacen("{\"v\":1,", "{\"v\":2,", 1);
    let k = key();
    insert_raw(store, &k, &record, &text).await;
    assert!(matches!(store.load(&k, now).await, Err(StoreError::Codec(_))));
    let mut c = ChangeSet::new(now, now + MINUTE);
    c.set("n", raw("1"));
    assert!(matches!(store.apply(&k, &c, now).await, Err(StoreError::Codec(_))));
    assert_eq!(raw_row(store, &k).await.expect("row").4, text, "the row as it was");
    store.delete(&k, now).await.expect("delete");
}

/// Inserts a row with raw SQL (`text` as its record).
async fn insert_raw(store: &SqlStore, k: &StorageKey, record: &Record, text: &str) {
    let t = store.table();
    let m = &record.meta;
    let (expires_at, deadline, last_seen) = (to_i64(m.expires_at), to_i64(m.absolute_deadline), to_i64(m.last_seen));
    let (user, handle) = (m.user().map(str::to_owned), m.handle.to_string());
    let columns = "id, expires_at, absolute_deadline, last_seen, user_id, handle, record";
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        let sql = format!("INSERT INTO \"{t}\" ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
        let q = sqlx::query(&sql).bind(k.as_bytes().as_slice()).bind(expires_at).bind(deadline).bind(last_seen);
        q.bind(user).bind(handle).bind(text).execute(pool).await.expect("insert");
        return;
    }
    #[cfg(feature = "sqlite")]
    if let Some(pool) = store.sqlite_pool() {
        let sql = format!("INSERT INTO \"{t}\" ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)");
        let q = sqlx::query(&sql).bind(k.as_bytes().as_slice()).bind(expires_at).bind(deadline).bind(last_seen);
        q.bind(user).bind(handle).bind(text).execute(pool).await.expect("insert");
        return;
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        let sql = format!("INSERT INTO `{t}` ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)");
        let q = sqlx::query(&sql).bind(k.as_bytes().as_slice()).bind(expires_at).bind(deadline).bind(last_seen);
        q.bind(user.map(String::into_bytes)).bind(handle.into_bytes()).bind(text).execute(pool).await.expect("insert");
        return;
    }
    panic!("no pool");
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).expect("time")
}

/// A row that the current release wrote (its text as `serde_json` writes a
/// record: sorted data, the metadata's times as of its last write) is
/// loaded, written (sets, a removal, a flag), touched, rotated and deleted
/// like any other.
async fn rows_of_the_current_release(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let user = unique("release");
    let mut record = user_record_at(now, &user);
    record.meta.persistent = true;
    record.data.insert("cart", &raw(r#"{"items":[1,2.50],"sum":3.5e0}"#));
    record.data.insert("n", &raw("1.0"));
    let text = format!(
        r#"{{"v":1,"m":{{"created_at":{now},"last_seen":{now},"absolute_deadline":{deadline},"expires_at":{expires},"auth":{{"user":"{user}","at_ms":{now}}},"persistent":true,"handle":"{handle}"}},"d":{{"cart":{{"items":[1,2.50],"sum":3.5e0}},"greeting":"hello","n":1.0}}}}"#,
        deadline = record.meta.absolute_deadline,
        expires = record.meta.expires_at,
        handle = record.meta.handle,
    );
    assert_eq!(text, serde_json::to_string(&record).expect("json"), "the text the current release writes");
    let k = key();
    insert_raw(store, &k, &record, &text).await;
    assert_eq!(store.load(&k, now).await.expect("load").expect("live"), record);

    let mut c = ChangeSet::new(now + 1, now + 10 * MINUTE);
    c.set("n", raw("2.0"));
    c.remove("greeting");
    c.persistent = Some(false);
    c.max_data_bytes = 64 * 1024;
    assert!(store.apply(&k, &c, now + 1).await.expect("apply"));
    record.apply(&c);
    assert!(store.touch(&k, now + 2, now + 20 * MINUTE).await.expect("touch"));
    record.meta.last_seen = now + 2;
    record.meta.expires_at = now + 20 * MINUTE;
    assert_eq!(store.load(&k, now + 2).await.expect("load").expect("live"), record);
    assert_eq!(store.list_user(&user, now + 2, 10).await.expect("list_user").len(), 1);

    let next = key();
    assert_eq!(store.rotate(&k, &next, &plain_rotation(now + 3)).await.expect("rotate"), Rotated::Done);
    let successor = store.load(&next, now + 3).await.expect("load").expect("successor");
    assert_eq!(successor.data, record.data);
    assert_eq!(successor.data.get("cart").map(RawValue::get), Some(r#"{"items":[1,2.50],"sum":3.5e0}"#));
    store.delete(&k, now + 4).await.expect("delete");
    assert!(store.load(&next, now + 4).await.expect("load").is_none(), "a logout on the old key ended its successor");
}

/// Every check above, on one store.
async fn apply_checks(store: &SqlStore) {
    values_come_back_byte_for_byte(store).await;
    merge_is_try_apply(store, 150).await;
    rows_of_the_current_release(store).await;
    writes_near_the_record_size(store).await;
    writes_near_the_data_cap(store).await;
    rows_of_another_format_are_left_alone(store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_apply_is_try_apply_byte_for_byte() {
    let Some(pg) = pg::store().await else { return };
    apply_checks(&pg.store).await;
    pg.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_apply_is_try_apply_byte_for_byte() {
    let Some(my) = my::store().await else { return };
    apply_checks(&my.store).await;
    my.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_apply_is_try_apply_byte_for_byte() {
    let lite = Lite::new().await;
    apply_checks(&lite.store).await;
    lite.drop().await;
}

/// What a write queued behind a held row lock ends with.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug, Clone, Copy)]
enum Queued {
    /// Behind another write of another key: both land.
    Write,
    /// Behind a rotation: the write finds the key retired, writes nothing
    /// (the pointer stays a pointer), and the successor lacks it.
    Rotation,
    /// Ahead of a rotation: the write lands, and the successor has it.
    BeforeRotation,
    /// Behind a logout: the write finds nothing, and creates nothing.
    Delete,
}

/// A third connection holds the row's lock while two calls queue for it in
/// a known order (see [`waiters`]); then it lets go.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn write_queued_on_a_held_row(store: &SqlStore, queued: Queued) {
    let now = SystemClock.now_ms();
    let (k, next) = (key(), key());
    assert!(store.create(&k, &record_at(now), now).await.expect("create"));
    let write = |name: &'static str| {
        let store = store.clone();
        async move {
            let mut c = ChangeSet::new(now, now + MINUTE);
            c.set(name, raw("1.0"));
            c.max_data_bytes = 64 * 1024;
            store.apply(&k, &c, SystemClock.now_ms()).await.expect("apply")
        }
    };
    let rotate = || {
        let store = store.clone();
        async move { store.rotate(&k, &next, &plain_rotation(now)).await.expect("rotate") == Rotated::Done }
    };
    let delete = || {
        let store = store.clone();
        async move { store.delete(&k, SystemClock.now_ms()).await.is_ok() }
    };
    let held = Held::lock(store, &k).await;
    let first = match queued {
        Queued::Write => tokio::spawn(write("first")),
        Queued::Rotation => tokio::spawn(rotate()),
        Queued::BeforeRotation => tokio::spawn(write("early")),
        Queued::Delete => tokio::spawn(delete()),
    };
    waiters(store, 1).await;
    let second = match queued {
        Queued::BeforeRotation => tokio::spawn(rotate()),
        _ => tokio::spawn(write("late")),
    };
    waiters(store, 2).await;
    held.release().await;
    let (first, second) = (first.await.expect("task"), second.await.expect("task"));
    let what = format!("{queued:?}");
    match queued {
        Queued::Write => {
            assert!(first && second, "{what}: both writes land");
            let data = store.load(&k, now).await.expect("load").expect("live").data;
            let keys: Vec<&str> = data.keys().collect();
            assert_eq!(keys, ["first", "greeting", "late"], "{what}: the second write read the first");
        }
        Queued::Rotation => {
            assert!(first, "{what}: the rotation is done");
            assert!(!second, "{what}: a write to a retired key is refused");
            let (_, deadline, _, _, text) = raw_row(store, &k).await.expect("the pointer");
            assert_eq!(deadline, 0, "{what}: the row is still the pointer");
            assert!(text.starts_with("{\"r\":"), "{what}: the pointer's text is untouched: {text}");
            let data = store.load(&next, now).await.expect("load").expect("successor").data;
            assert!(data.get("late").is_none(), "{what}");
        }
        Queued::BeforeRotation => {
            assert!(first && second, "{what}: the write landed first, then the rotation");
            let data = store.load(&next, now).await.expect("load").expect("successor").data;
            assert_eq!(data.get("early").map(RawValue::get), Some("1.0"), "{what}: and is in the successor");
        }
        Queued::Delete => {
            assert!(first, "{what}: the logout is done");
            assert!(!second, "{what}: a write after a logout is refused");
            assert!(raw_row(store, &k).await.is_none(), "{what}: and brings nothing back");
        }
    }
    for k in [&k, &next] {
        store.delete(k, SystemClock.now_ms()).await.expect("delete");
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_queued_on_a_held_row() {
    let Some(pg) = pg::store().await else { return };
    for queued in [Queued::Write, Queued::Rotation, Queued::BeforeRotation, Queued::Delete] {
        write_queued_on_a_held_row(&pg.store, queued).await;
    }
    pg.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_writes_queued_on_a_held_row() {
    let Some(my) = my::store().await else { return };
    for queued in [Queued::Write, Queued::Rotation, Queued::BeforeRotation, Queued::Delete] {
        write_queued_on_a_held_row(&my.store, queued).await;
    }
    my.drop().await;
}
