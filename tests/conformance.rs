//! The store conformance suite against the embedded MemoryStore.

use std::{sync::Arc, time::Duration};

use sessionware::{
    store::{conformance, MemoryStore, Metadata, Record, SessionStore, WhenFull},
    Clock, ManualClock, SessionId,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance::run_all(Arc::new(MemoryStore::default())).await;
}

#[tokio::test]
async fn memory_store_sweeps_expired_records_by_itself() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::builder().sweep_interval(Duration::from_secs(1)).build();
    for _ in 0..1000 {
        let key = SessionId::generate().unwrap().storage_key();
        store.create(&key, &Record::new(Metadata::new(1_000_000, 60_000, 120_000)), clock.now_ms()).await.unwrap();
    }
    assert_eq!(store.len(), 1000);
    clock.advance(Duration::from_secs(61));
    // Writes trigger per-shard sweeps: after enough new sessions every shard has swept.
    for _ in 0..2000 {
        let key = SessionId::generate().unwrap().storage_key();
        store.create(&key, &Record::new(Metadata::new(1_061_000, 60_000, 120_000)), clock.now_ms()).await.unwrap();
    }
    assert_eq!(store.len(), 2000, "the expired thousand were swept without a manual call");
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.sweep_expired(clock.now_ms()), 2000);
    assert!(store.is_empty());
}

#[tokio::test]
async fn memory_store_capacity_frees_expired_first() {
    let clock = ManualClock::new(0);
    let store = MemoryStore::builder().max_sessions(10).when_full(WhenFull::Refuse).build();
    let record = Record::new(Metadata::new(0, 1_000, 2_000));
    for _ in 0..10 {
        store.create(&SessionId::generate().unwrap().storage_key(), &record, clock.now_ms()).await.unwrap();
    }
    let extra = SessionId::generate().unwrap().storage_key();
    assert!(store.create(&extra, &record, clock.now_ms()).await.is_err(), "full");
    clock.advance(Duration::from_secs(5));
    let fresh = Record::new(Metadata::new(5_000, 1_000, 2_000));
    // Each full create sweeps its own shard; keep trying fresh keys until one
    // lands in a shard holding expired records.
    let mut created = false;
    for _ in 0..200 {
        if store.create(&SessionId::generate().unwrap().storage_key(), &fresh, clock.now_ms()).await.is_ok() {
            created = true;
            break;
        }
    }
    assert!(created, "expired records make room");
}
