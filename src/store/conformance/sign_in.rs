//! Conformance of the sign-in record's authentication context: the
//! methods, the assurance level and the identity provider's session
//! survive every store operation, and a back-channel logout
//! ([`UserIndex::delete_provider_sessions`]) ends exactly the linked
//! sessions.

use std::sync::Arc;

use super::{
    change, fresh_key, handles, live_record, now, ok, raw,
    rotation::{live, rotate, successor_key},
    unique_user, MINUTE,
};
use crate::{
    store::UserIndex, Assurance, Auth, AuthMethod, ChangeSet, Login, ProviderSession, Record, Rotated, Rotation,
};

/// Runs the sign-in checks against a store with a per-user index.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::sign_in::run(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run(store: Arc<dyn UserIndex>) {
    sign_in_context_round_trips(&*store).await;
    provider_logout_ends_only_linked_sessions(&*store).await;
}

/// A sign-in with every field of the authentication context set.
fn full_auth(user: &str) -> Auth {
    let methods = vec![AuthMethod::Password, AuthMethod::Totp, AuthMethod::Other("smart card \u{e9}\"".into())];
    Auth::new(user, now())
        .with_epoch(3)
        .with_methods(methods, Assurance::Aal3)
        .with_provider(ProviderSession::new("https://idp.example.com/\u{e9}", Some("sid \"1\"")))
}

fn signed_in(auth: Auth) -> Record {
    let mut r = live_record();
    r.meta.auth = Some(auth);
    r
}

/// The methods, the level and the provider's session survive `create`,
/// `lookup`, `apply`, the listing of the user's sessions, and a rotation
/// (kept as they are by a renewal, replaced by a login's, as a step-up
/// does); a sign-in without them reads back without them.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::sign_in::sign_in_context_round_trips(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn sign_in_context_round_trips(store: &dyn UserIndex) {
    let user = unique_user("mfa");
    let key = fresh_key();
    let auth = full_auth(&user);
    ok(store.create(&key, &signed_in(auth.clone()), now()).await, "create").await;
    assert_eq!(live(store, &key).await.meta.auth.as_ref(), Some(&auth), "the sign-in reads back as written");
    assert!(ok(store.apply(&key, &change("k", Some(raw(1))), now()).await, "apply").await);
    assert_eq!(live(store, &key).await.meta.auth.as_ref(), Some(&auth), "a write keeps the sign-in");
    let listed = ok(store.list_user(&user, now(), usize::MAX).await, "list_user").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].auth.as_ref(), Some(&auth), "the listing carries the sign-in");

    // A renewal keeps the sign-in as stored.
    let renewed = successor_key(store, &key);
    let t = now();
    let r = Rotation::new(t, ChangeSet::new(t, t + 30 * MINUTE));
    assert_eq!(rotate(store, &key, &renewed, &r).await, Rotated::Done);
    let next = live(store, &renewed).await;
    assert_eq!(next.meta.auth.as_ref(), Some(&auth), "a renewal keeps the sign-in");

    // A step-up: a login of the same user with one more method.
    let stepped = successor_key(store, &renewed);
    let t = now();
    let mut methods = auth.methods().to_vec();
    methods.push(AuthMethod::WebAuthn);
    let mut up = auth.clone().with_methods(methods, Assurance::Aal3);
    up.at_ms = t;
    let mut r = Rotation::new(t, ChangeSet::new(t, t + 30 * MINUTE));
    r.login = Some(Login::new(up.clone(), next.meta.absolute_deadline));
    assert_eq!(rotate(store, &renewed, &stepped, &r).await, Rotated::Done);
    let after = live(store, &stepped).await;
    assert_eq!(after.meta.auth.as_ref(), Some(&up), "a login's rotation writes its sign-in whole");
    assert_eq!(after.data.get("k").map(|v| v.get()), Some("1"), "the data stays");

    // A plain sign-in reads back plain.
    let plain_key = fresh_key();
    let plain = Auth::new(&user, now());
    ok(store.create(&plain_key, &signed_in(plain.clone()), now()).await, "create").await;
    let read = live(store, &plain_key).await.meta.auth;
    assert_eq!(read.as_ref(), Some(&plain));
    assert!(read.is_some_and(|a| a.methods().is_empty() && a.assurance() == Assurance::Aal1 && a.provider().is_none()));

    ok(store.delete_user(&user, None, now()).await, "delete_user").await;
    assert!(handles(store, &user).await.is_empty());
}

/// A back-channel logout ends the user's sessions linked to the provider's
/// session (one renewed since it was listed included), and no other: not
/// the user's sessions from another provider session, another provider or
/// a password, and not another user's session with the same `sid`. A
/// logout without `sid` ends every session of the user at that provider.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::sign_in::provider_logout_ends_only_linked_sessions(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn provider_logout_ends_only_linked_sessions(store: &dyn UserIndex) {
    const IDP: &str = "https://idp.example.com";
    let (user, other_user) = (unique_user("oidc"), unique_user("oidc-other"));
    let linked = |user: &str, issuer: &str, sid: Option<&str>| {
        signed_in(
            Auth::new(user, now())
                .with_methods(vec![AuthMethod::Federated], Assurance::Aal1)
                .with_provider(ProviderSession::new(issuer, sid)),
        )
    };
    let create = |record: Record| async move {
        let key = fresh_key();
        ok(store.create(&key, &record, now()).await, "create").await;
        key
    };
    let first = create(linked(&user, IDP, Some("s1"))).await;
    let renewed_old = create(linked(&user, IDP, Some("s1"))).await;
    let other_sid = create(linked(&user, IDP, Some("s2"))).await;
    let other_idp = create(linked(&user, "https://other.example.com", Some("s1"))).await;
    let password = create(signed_in(Auth::new(&user, now()))).await;
    let someone_else = create(linked(&other_user, IDP, Some("s1"))).await;

    // One linked session is renewed before the logout: it ends under its new key.
    let renewed = successor_key(store, &renewed_old);
    let t = now();
    let r = Rotation::new(t, ChangeSet::new(t, t + 30 * MINUTE));
    assert_eq!(rotate(store, &renewed_old, &renewed, &r).await, Rotated::Done);

    let ended =
        ok(store.delete_provider_sessions(&user, IDP, Some("s1"), now()).await, "delete_provider_sessions").await;
    assert_eq!(ended, 2, "both sessions linked to the provider's session end");
    for key in [&first, &renewed] {
        assert!(ok(store.load(key, now()).await, "load").await.is_none(), "a linked session ended");
    }
    for key in [&other_sid, &other_idp, &password, &someone_else] {
        assert!(ok(store.load(key, now()).await, "load").await.is_some(), "an unlinked session stays");
    }
    let again =
        ok(store.delete_provider_sessions(&user, IDP, Some("s1"), now()).await, "delete_provider_sessions").await;
    assert_eq!(again, 0, "a repeated logout ends nothing more");

    // Without `sid`: every session of the user at that provider.
    let ended = ok(store.delete_provider_sessions(&user, IDP, None, now()).await, "delete_provider_sessions").await;
    assert_eq!(ended, 1);
    assert!(ok(store.load(&other_sid, now()).await, "load").await.is_none());
    for key in [&other_idp, &password, &someone_else] {
        assert!(
            ok(store.load(key, now()).await, "load").await.is_some(),
            "another provider's or a password session stays"
        );
    }
    ok(store.delete_user(&user, None, now()).await, "delete_user").await;
    ok(store.delete_user(&other_user, None, now()).await, "delete_user").await;
}
