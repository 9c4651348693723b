//! Ergonomics of the Session API (issue 10, point 6): `Option<Session>`, the
//! narrow extractor rejection, typed values updated atomically per key
//! within a request, and the opt-in to read an undecodable value as absent.

mod common;

use std::sync::{Arc, Mutex};

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sessionware::{
    Event, EventKind, MissingSessionLayer, Session, SessionConfig, SessionError, SessionValue, SharedError, Typed,
    Undecodable,
};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
}

impl SessionValue for Cart {
    const KEY: &'static str = "cart";
}

async fn maybe(session: Option<Session>) -> Result<String, SessionError> {
    Ok(match session {
        Some(s) => format!("some:{}", s.get::<u64>("n").await?.unwrap_or(0)),
        None => "none".into(),
    })
}

async fn required(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn add(cart: Typed<Cart>, axum::extract::Path(item): axum::extract::Path<u32>) -> Result<String, SessionError> {
    Ok(cart
        .update(|c| {
            c.items.push(item);
            c.items.len()
        })
        .await?
        .to_string())
}

async fn show(session: Session) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.value::<Cart>().get().await?.map(|c| c.items)))
}

fn routes() -> Router {
    Router::new()
        .route("/maybe", get(maybe))
        .route("/required", get(required))
        .route("/cart/{item}", post(add))
        .route("/cart", get(show))
        .route("/incr", post(common::handlers::incr))
}

#[tokio::test]
async fn option_session_is_none_without_a_layer_and_some_under_one() {
    let h = Harness::new();
    let bare = routes();
    let res = send(&bare, req("GET", "/maybe", None)).await;
    assert_eq!(res.status(), StatusCode::OK, "Option<Session> never rejects");
    assert_eq!(body(res).await, "none");

    let app = routes().layer(h.layer.clone());
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/maybe", Some(&cookie))).await).await, "some:1");
    assert_eq!(body(send(&app, req("GET", "/maybe", None)).await).await, "some:0");
}

#[tokio::test]
async fn missing_layer_is_a_narrow_500_naming_the_fix() {
    let bare = routes();
    for (method, uri) in [("GET", "/required"), ("POST", "/cart/1"), ("GET", "/cart")] {
        let res = send(&bare, req(method, uri, None)).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        let shared = res.extensions().get::<SharedError>().expect("outer layers still see the error").clone();
        assert!(matches!(shared.error(), SessionError::MissingLayer));
        let text = body(res).await;
        assert_eq!(text, MissingSessionLayer::default().body_text(), "{uri}");
        assert!(text.contains("SessionLayer") && text.contains(".layer("), "the body names the fix: {text}");
    }
}

#[tokio::test]
async fn typed_values_round_trip_across_requests() {
    let h = Harness::new();
    let app = routes().layer(h.layer.clone());
    assert_eq!(body(send(&app, req("GET", "/cart", None)).await).await, "None");
    let res = send(&app, req("POST", "/cart/7", None)).await;
    let cookie = session_cookie(&res).expect("the first update creates the session");
    assert_eq!(body(res).await, "1");
    assert_eq!(body(send(&app, req("POST", "/cart/9", Some(&cookie))).await).await, "2");
    assert_eq!(body(send(&app, req("GET", "/cart", Some(&cookie))).await).await, "Some([7, 9])");

    // The typed handle and the untyped API see one value under one key.
    let app = Router::new()
        .route(
            "/raw",
            get(|s: Session| async move {
                let cart: Option<Cart> = s.get("cart").await?;
                let typed = s.typed::<Cart>("cart");
                assert_eq!(typed.key(), "cart");
                assert_eq!(typed.get().await?, cart);
                assert!(typed.remove().await?);
                assert_eq!(typed.get().await?, None);
                Ok::<_, SessionError>(format!("{:?}", cart.map(|c| c.items)))
            }),
        )
        .merge(routes())
        .layer(h.layer.clone());
    assert_eq!(body(send(&app, req("GET", "/raw", Some(&cookie))).await).await, "Some([7, 9])");
    assert_eq!(body(send(&app, req("GET", "/cart", Some(&cookie))).await).await, "None", "the removal was saved");
}

/// Two tasks of one request each increment `n` `ROUNDS` times, both started
/// while the session's lookup is held (so both wait for the same load, then
/// run interleaved). Task `t` yields `(round * t) % 3` times after each
/// round, so the two tasks meet at every offset: an increment with any
/// suspension point between its read and its write loses updates here.
/// `naive` reads, yields and writes (what `update` replaces).
async fn increments(naive: bool) -> u64 {
    const ROUNDS: u64 = 30;
    async fn bump(session: Session, naive: bool, t: u64) -> Result<(), SessionError> {
        let n = session.typed::<u64>("n");
        for round in 0..ROUNDS {
            if naive {
                let v = n.get().await?.unwrap_or(0);
                tokio::task::yield_now().await;
                n.insert(v + 1).await?;
            } else {
                n.update(|v| *v += 1).await?;
            }
            for _ in 0..(round * t) % 3 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/race",
            post(move |s: Session| async move {
                let (a, b) = tokio::join!(bump(s.clone(), naive, 1), bump(s.clone(), naive, 2));
                a?;
                b?;
                Ok::<_, SessionError>(())
            }),
        )
        .merge(routes())
        .layer(h.layer.clone());
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let held = hold(&h, &app, "POST", "/race", &cookie).await;
    release(&h);
    assert_eq!(held.await.unwrap().status(), StatusCode::OK);
    body(send(&app, req("GET", "/required", Some(&cookie))).await).await.parse().unwrap()
}

#[tokio::test]
async fn update_never_loses_an_increment_within_a_request() {
    // 1 from `/incr`, then 2 × 30.
    assert_eq!(increments(false).await, 61);
    // The same race with a read, a yield and a write loses increments: the
    // interleaving this test builds is one that `update` must survive.
    let naive = increments(true).await;
    assert!(naive < 61, "{naive}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_never_loses_an_increment_across_threads() {
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/spawn",
            post(|s: Session| async move {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let n = s.typed::<u64>("n");
                        tokio::spawn(async move {
                            for _ in 0..250 {
                                n.update(|v| *v += 1).await?;
                            }
                            Ok::<_, SessionError>(())
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap()?;
                }
                Ok::<_, SessionError>(())
            }),
        )
        .merge(routes())
        .layer(h.layer.clone());
    let res = send(&app, req("POST", "/spawn", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(body(send(&app, req("GET", "/required", Some(&cookie))).await).await, "1000");
}

#[tokio::test]
async fn concurrent_requests_merge_per_key_and_the_last_writer_of_a_key_wins() {
    // Documents the cross-request behaviour (R55): `update` is atomic within
    // a request only. Two requests that both update `n` from the same
    // loaded value give one increment; a key only one of them wrote is kept.
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/bump/{tag}",
            post(|s: Session, axum::extract::Path(tag): axum::extract::Path<String>| async move {
                s.typed::<u64>("n").update(|v| *v += 1).await?;
                s.insert(&tag, true).await
            }),
        )
        .merge(routes())
        .layer(h.layer.clone());
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // A has read n = 1 and is held; B updates n to 2 and commits; A then
    // updates its own view to 2 and commits.
    let a = hold(&h, &app, "POST", "/bump/a", &cookie).await;
    assert_eq!(send(&app, req("POST", "/bump/b", Some(&cookie))).await.status(), StatusCode::OK);
    release(&h);
    assert_eq!(a.await.unwrap().status(), StatusCode::OK);
    assert_eq!(body(send(&app, req("GET", "/required", Some(&cookie))).await).await, "2", "one increment is lost");
    let keys = common::app(&h.layer);
    assert_eq!(body(send(&keys, req("GET", "/keys", Some(&cookie))).await).await, "a,b,n", "both tags are kept");
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_nothing() {
    let h = Harness::new();
    let app =
        Router::new()
            .route(
                "/count",
                get(|cart: Typed<Cart>| async move {
                    Ok::<_, SessionError>(cart.update(|c| c.items.len()).await?.to_string())
                }),
            )
            .merge(routes())
            .layer(h.layer.clone());
    let cookie = session_cookie(&send(&app, req("POST", "/cart/3", None)).await).unwrap();
    let applies = h.store.count(Op::Apply);
    let res = send(&app, req("GET", "/count", Some(&cookie))).await;
    assert!(no_cookie(&res));
    assert_eq!(body(res).await, "1");
    assert_eq!(h.store.count(Op::Apply), applies, "no merge of an unchanged value over a concurrent request's");
}

#[tokio::test]
async fn a_failed_update_records_nothing() {
    let h = Harness::with_config(SessionConfig::builder().max_data_bytes(64).build().unwrap());
    let app = Router::new()
        .route(
            "/grow",
            post(|s: Session| async move {
                let cart = s.value::<Cart>();
                let too_large = cart.update(|c| c.items.extend(0..100)).await;
                assert!(matches!(too_large, Err(SessionError::TooLarge { max: 64 })), "{too_large:?}");
                let bad_key = s.typed::<u64>("").update(|v| *v += 1).await;
                assert!(matches!(bad_key, Err(SessionError::InvalidDataKey)));
                Ok::<_, SessionError>(format!("{:?}", cart.get().await?.map(|c| c.items)))
            }),
        )
        .merge(routes())
        .layer(h.layer.clone());
    let cookie = session_cookie(&send(&app, req("POST", "/cart/3", None)).await).unwrap();
    assert_eq!(body(send(&app, req("POST", "/grow", Some(&cookie))).await).await, "Some([3])");
    assert_eq!(body(send(&app, req("GET", "/cart", Some(&cookie))).await).await, "Some([3])");
}

/// A layer over `h` whose events are collected.
fn with_events(h: &Harness) -> (sessionware::SessionLayer, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    (h.layer.clone().on_event(move |e| log.lock().unwrap().push(e.clone())), events)
}

fn undecodable(events: &Mutex<Vec<Event>>) -> Vec<Option<String>> {
    events.lock().unwrap().iter().filter(|e| e.kind == EventKind::Undecodable).map(|e| e.data_key.clone()).collect()
}

/// Routes that store a cart in an old format (a string), then read it as
/// the new `Cart` in every way there is.
fn deploy_routes() -> Router {
    Router::new()
        .route("/old", post(|s: Session| async move { s.insert("cart", "secret-old-format").await }))
        .route(
            "/read-all",
            get(|s: Session| async move {
                let a = s.value::<Cart>().get().await?;
                let b = s.get::<Cart>("cart").await?;
                let c = s.take::<Cart>("cart").await?;
                Ok::<_, SessionError>(format!("{a:?} {b:?} {c:?}"))
            }),
        )
        .route(
            "/as-string",
            get(|s: Session| async move { Ok::<_, SessionError>(s.get::<String>("cart").await?.unwrap_or_default()) }),
        )
        .merge(routes())
}

#[tokio::test]
async fn lenient_mode_reads_an_undecodable_value_as_absent_with_one_event() {
    let h = Harness::with_config(SessionConfig::builder().undecodable_values(Undecodable::Absent).build().unwrap());
    let (layer, events) = with_events(&h);
    let app = deploy_routes().layer(layer);
    let cookie = session_cookie(&send(&app, req("POST", "/old", None)).await).unwrap();

    let res = send(&app, req("GET", "/read-all", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(no_cookie(&res), "reading it as absent writes nothing");
    assert_eq!(body(res).await, "None None None");
    assert_eq!(undecodable(&events), [Some("cart".to_string())], "one event per key per request");
    let logged = format!("{:?}", events.lock().unwrap());
    assert!(!logged.contains("secret-old-format"), "the event names the key, never the value");

    // Not deleted: neither by the reads nor by `take`.
    assert_eq!(body(send(&app, req("GET", "/as-string", Some(&cookie))).await).await, "secret-old-format");

    // A write of the key replaces it: the update starts from the default.
    assert_eq!(body(send(&app, req("POST", "/cart/5", Some(&cookie))).await).await, "1");
    assert_eq!(undecodable(&events).len(), 2, "another request reports it again");
    assert_eq!(body(send(&app, req("GET", "/cart", Some(&cookie))).await).await, "Some([5])");
    assert_eq!(undecodable(&events).len(), 2, "a decodable value is no event");
}

#[tokio::test]
async fn default_mode_fails_with_a_typed_error_naming_the_key() {
    let h = Harness::new();
    let (layer, events) = with_events(&h);
    let app = Router::new()
        .route(
            "/check",
            get(|s: Session| async move {
                let err = s.get::<Cart>("cart").await.unwrap_err();
                assert!(matches!(&err, SessionError::Undecodable { key, .. } if key == "cart"), "{err:?}");
                assert!(!err.to_string().contains("secret-old-format"), "the message never quotes the value");
                assert!(std::error::Error::source(&err).is_some(), "serde's error stays reachable");
                assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
                let err = s.value::<Cart>().update(|c| c.items.push(1)).await.unwrap_err();
                assert!(matches!(err, SessionError::Undecodable { .. }), "an update does not overwrite it");
                assert!(matches!(s.take::<Cart>("cart").await, Err(SessionError::Undecodable { .. })));
                Ok::<_, SessionError>("checked")
            }),
        )
        .merge(deploy_routes())
        .layer(layer);
    let cookie = session_cookie(&send(&app, req("POST", "/old", None)).await).unwrap();
    let res = send(&app, req("GET", "/cart", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "the handler's `?` answers 500");
    assert!(!body(res).await.contains("secret"));
    assert_eq!(body(send(&app, req("GET", "/check", Some(&cookie))).await).await, "checked");
    assert!(undecodable(&events).is_empty(), "no event: the handler got the error");
    assert_eq!(body(send(&app, req("GET", "/as-string", Some(&cookie))).await).await, "secret-old-format");
}
