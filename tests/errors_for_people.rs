//! Startup errors a person can act on (issue 12, point 4): what was wrong,
//! where (the variable, the key's position, the builder setting, the host
//! and port), and what to do, in `Display` and in `Debug` (a `main` that
//! returns the error prints `Debug`); never key material or a password
//! (R36, R83). And the development presets: `SessionConfig::development()`
//! and `Keys::from_env_or_generate`.

mod common;

use common::*;
use sessionware::{ConfigError, KeyError, KeySource, Keys, PrefixRule, SameSite, SessionConfig};

/// A valid key, and one more.
const KEY_A: &str = "skTJnFDJsyhr7qq2q4xIRJ7zE0/pui5UnreW2uwweOFRogc6soezthEcTOGJRaAQgYo387IQPqFh6F0FxqerHg==";
const KEY_B: &str = "TblY9RC24NHeHjxG9IyCmW+tZ5qt9W1EguMqUi+bd0NHUt7MxIOrNtvgatW7x3RR";
const GENERATE: &str = "generate one with `openssl rand -base64 64`";

/// `Display` and `Debug` both print `expected`.
fn says(err: &impl std::fmt::Debug, display: &str, expected: &str) {
    assert_eq!(display, expected);
    assert_eq!(format!("{err:?}"), expected, "Debug reads like Display");
}

/// Runs `f` with a subscriber that captures every log line.
fn logs_of(f: impl FnOnce()) -> String {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(capture.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    capture.text()
}

#[test]
fn a_bad_key_is_named_by_its_position_and_the_fix_is_given() {
    // R36: the text of the bad key never appears, only its position.
    let err = Keys::from_base64_list(&format!("{KEY_A}, hunter2 is no key!")).unwrap_err();
    assert_eq!(err, KeyError::Base64 { key: KeySource::List { position: 2 } });
    says(
        &err,
        &err.to_string(),
        &format!("key 2 of the list is not valid base64 (keys are base64, separated by commas): {GENERATE}"),
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let err = Keys::from_base64_list(&format!("{KEY_A},,{KEY_B}, c2hvcnQ=")).unwrap_err();
    assert_eq!(err, KeyError::TooShort { key: KeySource::List { position: 3 }, len: 5 });
    says(
        &err,
        &err.to_string(),
        &format!(
            "key 3 of the list is 5 bytes long (base64-decoded); a key needs at least 32 random bytes: {GENERATE}"
        ),
    );
    assert!(!format!("{err} {err:?}").contains("c2hvcnQ"));

    let patterned = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ";
    let err = Keys::from_base64_list(patterned).unwrap_err();
    says(
        &err,
        &err.to_string(),
        &format!("key 1 of the list is not random (too few distinct byte values): {GENERATE}"),
    );

    let err = Keys::from_base64_list(&format!("{KEY_A}, {KEY_B}, {KEY_A}")).unwrap_err();
    assert_eq!(err, KeyError::DuplicateKeyId { first: 1, second: 3, var: None });
    says(
        &err,
        &err.to_string(),
        "keys 1 and 3 of the key ring are the same key: list each key once (the first signs, the others only verify)",
    );

    let err = Keys::from_base64_list(" , ").unwrap_err();
    says(&err, &err.to_string(), &format!("the key ring holds no key: give at least one; {GENERATE}"));

    // A key alone is "the key".
    let err = sessionware::Key::from_base64("!!").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the key is not valid base64 (keys are base64, separated by commas): {GENERATE}")
    );
}

/// `openssl rand -base64 64`, the command every message suggests, breaks
/// its output into two lines; `export VAR="$(…)"` keeps the break.
#[test]
fn the_suggested_command_makes_a_key_that_parses() {
    let wrapped = format!("{}\n{}\n", &KEY_A[..64], &KEY_A[64..]);
    let ring = Keys::from_base64_list(&format!("{wrapped},{KEY_B}")).unwrap();
    assert_eq!(ring.len(), 2);
    let id = sessionware::SessionId::generate().unwrap();
    assert_eq!(ring.sign("sid", &id), Keys::from_base64_list(KEY_A).unwrap().sign("sid", &id));
}

#[test]
fn environment_errors_name_the_variable() {
    let var = "SESSIONWARE_T12_MISSING";
    let err = Keys::from_env(var).unwrap_err();
    assert_eq!(err, KeyError::MissingEnv(var.into()));
    says(
        &err,
        &err.to_string(),
        "environment variable SESSIONWARE_T12_MISSING is not set: set it to one or more base64 keys separated by \
         commas, such as `export SESSIONWARE_T12_MISSING=\"$(openssl rand -base64 64)\"`; for development only, \
         Keys::from_env_or_generate(\"SESSIONWARE_T12_MISSING\") generates a key instead (sessions then end when the \
         process does)",
    );

    let var = "SESSIONWARE_T12_SHORT";
    std::env::set_var(var, format!("{KEY_A},c2hvcnQ="));
    let err = Keys::from_env(var).unwrap_err();
    assert_eq!(err, KeyError::TooShort { key: KeySource::Env { var: var.into(), position: 2 }, len: 5 });
    says(
        &err,
        &err.to_string(),
        &format!(
            "key 2 of SESSIONWARE_T12_SHORT is 5 bytes long (base64-decoded); a key needs at least 32 random bytes: \
             {GENERATE}"
        ),
    );
    assert!(!format!("{err} {err:?}").contains("c2hvcnQ") && !format!("{err:?}").contains(&KEY_A[..20]));

    let var = "SESSIONWARE_T12_DUP";
    std::env::set_var(var, format!("{KEY_B},{KEY_B}"));
    let err = Keys::from_env(var).unwrap_err();
    assert_eq!(
        err.to_string(),
        "keys 1 and 2 of SESSIONWARE_T12_DUP are the same key: list each key once (the first signs, the others only \
         verify)"
    );

    let var = "SESSIONWARE_T12_EMPTY";
    std::env::set_var(var, "");
    let err = Keys::from_env(var).unwrap_err();
    assert_eq!(err, KeyError::Empty { var: Some(var.into()) });
    assert_eq!(err.to_string(), format!("SESSIONWARE_T12_EMPTY holds no key: give at least one; {GENERATE}"));
}

#[cfg(unix)]
#[test]
fn a_variable_that_is_not_unicode_is_not_called_unset() {
    use std::os::unix::ffi::OsStrExt;
    let var = "SESSIONWARE_T12_BYTES";
    std::env::set_var(var, std::ffi::OsStr::from_bytes(b"\xff\xfe"));
    let err = Keys::from_env(var).unwrap_err();
    assert_eq!(err, KeyError::EnvNotUnicode(var.into()));
    assert_eq!(
        err.to_string(),
        format!(
            "environment variable SESSIONWARE_T12_BYTES is not valid unicode: set it to base64 keys separated by \
             commas; {GENERATE}"
        )
    );
    // Never replaced by a generated key either.
    assert_eq!(Keys::from_env_or_generate(var).unwrap_err(), KeyError::EnvNotUnicode(var.into()));
}

#[test]
fn from_env_or_generate_reads_generates_once_with_a_warning_and_never_hides_a_bad_value() {
    // Set: exactly the keys of the variable.
    let set = "SESSIONWARE_T12_OR_SET";
    std::env::set_var(set, format!("{KEY_A},{KEY_B}"));
    let id = sessionware::SessionId::generate().unwrap();
    let ring = Keys::from_env_or_generate(set).unwrap();
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.sign("sid", &id), Keys::from_base64_list(KEY_A).unwrap().sign("sid", &id));

    // Unset: a fresh key each call, and one warning per process that says
    // what it costs and how to make a key.
    let unset = "SESSIONWARE_T12_OR_UNSET";
    let mut rings = Vec::new();
    let logs = logs_of(|| {
        rings.push(Keys::from_env_or_generate(unset).unwrap());
        rings.push(Keys::from_env_or_generate(unset).unwrap());
    });
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(logs.contains("SESSIONWARE_T12_OR_UNSET is not set"), "{logs}");
    assert!(logs.contains("every session ends when the process does"), "{logs}");
    assert!(logs.contains("export SESSIONWARE_T12_OR_UNSET=\"$(openssl rand -base64 64)\""), "{logs}");
    assert_eq!(rings[0].len(), 1);
    assert_ne!(rings[0].sign("sid", &id), rings[1].sign("sid", &id), "a fresh key");

    // Set but invalid: the error, never a generated key.
    let invalid = "SESSIONWARE_T12_OR_INVALID";
    std::env::set_var(invalid, "my-password");
    let err = Keys::from_env_or_generate(invalid).unwrap_err();
    assert_eq!(err, KeyError::Base64 { key: KeySource::Env { var: invalid.into(), position: 1 } });
    assert!(!err.to_string().contains("my-password"));
    // Set but empty: an error too (a deploy that forgot the value).
    std::env::set_var(invalid, "");
    assert_eq!(Keys::from_env_or_generate(invalid).unwrap_err(), KeyError::Empty { var: Some(invalid.into()) });
}

#[test]
fn host_prefix_errors_say_which_rule_and_what_to_do() {
    let err = SessionConfig::builder().cookie_name("__Host-sid").dangerous_insecure_cookies().build().unwrap_err();
    assert_eq!(err, ConfigError::HostPrefix { name: "__Host-sid".into(), rule: PrefixRule::Secure });
    says(
        &err,
        &err.to_string(),
        "the cookie name \"__Host-sid\" starts with __Host-, which browsers accept only with the Secure attribute, \
         and dangerous_insecure_cookies() (or development()) drops it: for plain-HTTP development, use \
         SessionConfig::builder().development() and leave cookie_name unset (the name becomes \"sid\"), or choose a \
         name without the prefix, such as \"sid\"",
    );

    let err = SessionConfig::builder().path("/app").build().unwrap_err();
    says(
        &err,
        &err.to_string(),
        "the cookie name \"__Host-sid\" starts with __Host-, which browsers accept only with Path=/, and path() sets \
         another path: keep the default path, or call cookie_name(\"__Secure-sid\") for a cookie scoped to a path",
    );

    let err = SessionConfig::builder().cookie_name("__Host-app").domain("example.com").build().unwrap_err();
    assert_eq!(err, ConfigError::HostPrefix { name: "__Host-app".into(), rule: PrefixRule::NoDomain });
    says(
        &err,
        &err.to_string(),
        "the cookie name \"__Host-app\" starts with __Host-, which browsers accept only with no Domain attribute, \
         and domain() sets one: drop domain() for a host-only cookie (the safer choice), or call \
         cookie_name(\"__Secure-sid\") to share it with subdomains",
    );
}

#[test]
fn other_cookie_errors_say_what_to_do() {
    let err = SessionConfig::builder().cookie_name("__Secure-sid").development().build().unwrap_err();
    says(
        &err,
        &err.to_string(),
        "the cookie name \"__Secure-sid\" starts with __Secure-, which browsers accept only with the Secure \
         attribute, and dangerous_insecure_cookies() (or development()) drops it: for plain-HTTP development, use \
         SessionConfig::builder().development() and leave cookie_name unset (the name becomes \"sid\"), or choose a \
         name without the prefix",
    );

    let err = SessionConfig::builder().cookie_name("sid").domain("example.com").build().unwrap_err();
    says(
        &err,
        &err.to_string(),
        "domain() shares the cookie with subdomains, which needs a __Secure- cookie name (the name is \"sid\"): call \
         cookie_name(\"__Secure-sid\"), or drop domain() for a host-only cookie",
    );

    let err = SessionConfig::builder().same_site(SameSite::None).build().unwrap_err();
    says(
        &err,
        &err.to_string(),
        "same_site(SameSite::None) sends the cookie on cross-site requests, which needs Secure (no \
         dangerous_insecure_cookies() or development()) and the explicit opt-in allow_cross_site(); keep \
         SameSite::Lax (the default) unless the site is embedded in others",
    );

    let err = SessionConfig::builder().cookie_name("my session").build().unwrap_err();
    says(
        &err,
        &err.to_string(),
        "invalid cookie name (cookie_name): it must be 1 to 64 letters, digits or `!#$%&'*+-.^_`|~`, such as \
         \"__Host-sid\" or \"sid\"",
    );

    let err = SessionConfig::builder().development().partitioned().build().unwrap_err();
    says(
        &err,
        &err.to_string(),
        "partitioned() needs the Secure attribute, which dangerous_insecure_cookies() (or development()) drops: use \
         one or the other",
    );
}

/// R14: the insecure mode is explicit, drops `Secure` only, and the
/// default name follows it; a chosen prefixed name still fails above.
#[tokio::test]
async fn the_development_preset_is_one_call_and_warns_once() {
    let mut configs = Vec::new();
    let logs = logs_of(|| {
        configs.push(SessionConfig::development());
        configs.push(
            SessionConfig::builder().development().idle_timeout(std::time::Duration::from_secs(60)).build().unwrap(),
        );
    });
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(logs.contains("development preset") && logs.contains("never use it in production"), "{logs}");
    for config in &configs {
        assert_eq!(config.cookie_name(), "sid");
    }
    assert_eq!(configs[1].idle_timeout().as_secs(), 60, "the other settings stay the builder's");

    // The cookie the layer sets: `sid`, no Secure, the other attributes kept.
    let h = Harness::with_config(configs.remove(0));
    let res = send(&app(&h.layer), req("POST", "/incr", None)).await;
    let set = &set_cookies(&res)[0];
    assert_eq!(set.name(), "sid");
    assert_eq!(set.secure(), None);
    assert_eq!(set.http_only(), Some(true));
    assert_eq!(set.same_site(), Some(SameSite::Lax.into()));
    assert_eq!(set.path(), Some("/"));

    // `dangerous_insecure_cookies()` alone no longer trips over a name the
    // user never chose; a chosen name is kept.
    assert_eq!(SessionConfig::builder().dangerous_insecure_cookies().build().unwrap().cookie_name(), "sid");
    let chosen = SessionConfig::builder().cookie_name("dev_sid").development().build().unwrap();
    assert_eq!(chosen.cookie_name(), "dev_sid");
    // Secure by default, still.
    assert_eq!(SessionConfig::default().cookie_name(), "__Host-sid");
}

/// R83: a password in the URL never appears in a connection error, which
/// names the host and port and says what to check. Port 1 refuses at once.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_connection_error_names_the_host_and_never_the_password() {
    use sessionware::store::{RedisStore, StoreError};
    let err = RedisStore::connect("redis://app:hunter2pw@127.0.0.1:1/0").await.unwrap_err();
    let StoreError::Connect(c) = &err else { panic!("a connection error: {err}") };
    assert_eq!((c.store, c.address.as_str()), ("Redis", "127.0.0.1:1"));
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2pw"), "{text}");
    assert!(err.to_string().starts_with("could not connect to the Redis session store at 127.0.0.1:1 ("), "{err}");
    assert!(err.to_string().contains("is the server running") && err.to_string().contains("REDIS_URL"), "{err}");
    assert_eq!(format!("{err:?}"), err.to_string());

    let err = RedisStore::connect_cluster(&["redis://:hunter2pw@127.0.0.1:1", "redis://:hunter2pw@[::1]:2"])
        .await
        .unwrap_err();
    let StoreError::Connect(c) = &err else { panic!("a connection error: {err}") };
    assert_eq!(c.address, "127.0.0.1:1, [::1]:2");
    assert!(!format!("{err} {err:?}").contains("hunter2pw"), "{err}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_postgres_connection_error_names_the_host_and_never_the_password() {
    use sessionware::store::{SqlStore, StoreError};
    let err = SqlStore::postgres("postgres://app:hunter2pw@127.0.0.1:1/test").await.unwrap_err();
    let StoreError::Connect(c) = &err else { panic!("a connection error: {err}") };
    assert_eq!((c.store, c.address.as_str()), ("PostgreSQL", "127.0.0.1:1"));
    // The driver's reason, not the pool's "timed out".
    assert!(err.to_string().contains("(error communicating with database: Connection refused"), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2pw"), "{err}");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    // A URL sqlx cannot parse: said so, without the URL.
    let err = SqlStore::postgres("postgres://app:hunter2pw@127.0.0.1:notaport/test").await.unwrap_err();
    assert!(err.to_string().contains("the PostgreSQL URL is not valid"), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2pw"), "{err}");
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn a_mysql_connection_error_names_the_host_and_never_the_password() {
    use sessionware::store::{SqlStore, StoreError};
    let err = SqlStore::mysql("mysql://app:hunter2pw@127.0.0.1:1/test").await.unwrap_err();
    let StoreError::Connect(c) = &err else { panic!("a connection error: {err}") };
    assert_eq!((c.store, c.address.as_str()), ("MySQL", "127.0.0.1:1"));
    assert!(err.to_string().contains("Connection refused"), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2pw"), "{err}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_error_names_the_file() {
    use sessionware::store::{SqlStore, StoreError};
    let err = SqlStore::sqlite("/nonexistent-sessionware-dir/sessions.db").await.unwrap_err();
    let StoreError::Connect(c) = &err else { panic!("a connection error: {err}") };
    assert_eq!((c.store, c.address.as_str()), ("SQLite", "/nonexistent-sessionware-dir/sessions.db"));
    assert!(
        err.to_string().ends_with("does the directory exist, and may this process create and write the file there?"),
        "{err}"
    );
}

/// Hot path: store errors travel in every commit future; the connection
/// error (boxed) does not make them larger than before it: a tag and a
/// `String` (32 bytes on 64-bit targets).
#[test]
fn store_errors_stay_small() {
    let before = std::mem::size_of::<String>() + std::mem::size_of::<usize>();
    assert!(std::mem::size_of::<sessionware::store::StoreError>() <= before);
}
