//! The connection pool of a [`SqlStore`]: connecting to PostgreSQL,
//! SQLite or MySQL/MariaDB, running a statement on whichever pool it is, and mapping errors
//! (with the URL's password scrubbed).

use std::{sync::Arc, time::Duration};

use super::SqlStore;
use crate::store::StoreError;

#[cfg(feature = "mysql")]
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

#[derive(Clone)]
pub(super) enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    #[cfg(feature = "mysql")]
    Mysql(MySqlPool),
}

/// Runs `$body` with `$p` bound to the pool, whatever the backend: the body's
/// tokens are compiled once per backend.
macro_rules! dispatch {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres($p) => $body,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($p) => $body,
            #[cfg(feature = "mysql")]
            Pool::Mysql($p) => $body,
        }
    };
}
pub(super) use dispatch;

/// Connects a pool (10 connections, 5 s acquire timeout) to the PostgreSQL
/// database at `url`; `secret` is scrubbed from its errors.
#[cfg(feature = "postgres")]
pub(super) async fn postgres(url: &str, secret: Option<&str>) -> Result<PgPool, StoreError> {
    // No ping when a connection leaves the pool (`test_before_acquire`,
    // on by default in sqlx): it costs a round trip per statement. A
    // connection that died while idle (server restart, idle timeout of
    // a proxy) fails its next statement instead, which surfaces as
    // `StoreError::Backend` (the layer fails closed: an error, never a
    // fresh session), and sqlx closes it rather than return it to the
    // pool, whose ping on release fails; the next acquisition opens a
    // new connection.
    let options: PgConnectOptions = url.parse().map_err(|e| invalid_url("PostgreSQL", &e, secret))?;
    let address = crate::error::host_port(options.get_host(), options.get_port());
    let connected = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await;
    match connected {
        Ok(pool) => Ok(pool),
        Err(e) => Err(connect_err("PostgreSQL", address, &why(e, &options).await, secret)),
    }
}

/// Connects a pool (10 connections, 5 s acquire timeout) to the MySQL or
/// MariaDB database at `url` (`mysql://user:password@host:3306/db`; a
/// `mariadb://` scheme is taken for `mysql://`); `secret` is scrubbed from
/// its errors. No ping on acquire, as for PostgreSQL.
#[cfg(feature = "mysql")]
pub(super) async fn mysql(url: &str, secret: Option<&str>) -> Result<MySqlPool, StoreError> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let options: MySqlConnectOptions = url.parse().map_err(|e| invalid_url("MySQL", &e, secret))?;
    let address = crate::error::host_port(options.get_host(), options.get_port());
    let connected = MySqlPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await;
    match connected {
        Ok(pool) => Ok(pool),
        Err(e) => Err(connect_err("MySQL", address, &why(e, &options).await, secret)),
    }
}

/// Whether a statement failed on a duplicate key (MySQL's `INSERT`
/// without `ON CONFLICT`).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(super) fn duplicate_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Opens (and creates if missing) the SQLite database at `path` (a plain
/// path or a `sqlite:` URL), in WAL mode, with a 5 s busy timeout.
#[cfg(feature = "sqlite")]
pub(super) async fn sqlite(path: &str) -> Result<SqlitePool, StoreError> {
    let options = if path.starts_with("sqlite:") {
        path.parse::<SqliteConnectOptions>().map_err(|e| invalid_url("SQLite", &e, None))?
    } else {
        SqliteConnectOptions::new().filename(path)
    };
    let options =
        options.create_if_missing(true).journal_mode(SqliteJournalMode::Wal).busy_timeout(Duration::from_secs(5));
    // A SQLite connection is a file handle in this process: there is no
    // peer to lose, so the pool skips its ping on acquire (a hop to the
    // connection's worker thread per statement).
    let address = options.get_filename().display().to_string();
    SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| connect_err("SQLite", address, &e, None))
}

impl SqlStore {
    pub(super) fn err(&self, e: &sqlx::Error) -> StoreError {
        db_err(e, self.secret.as_deref())
    }
}

/// The password of a `scheme://user:password@host` or `...?password=` URL,
/// to scrub it from errors.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(super) fn url_password(url: &str) -> Option<Arc<str>> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let in_userinfo = authority
        .split('/')
        .next()
        .and_then(|a| a.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password);
    let in_query = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("password=")));
    in_userinfo.or(in_query).filter(|p| !p.is_empty()).map(Arc::from)
}

/// The error of a URL sqlx cannot parse (the URL itself is never in it).
#[cfg_attr(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")), allow(dead_code))]
fn invalid_url(store: &'static str, e: &sqlx::Error, secret: Option<&str>) -> StoreError {
    let expected = match store {
        "PostgreSQL" => "postgres://user:password@host:5432/database",
        "MySQL" => "mysql://user:password@host:3306/database",
        _ => "a file path or sqlite://path",
    };
    StoreError::Backend(format!("the {store} URL is not valid ({}): expected {expected}", scrub(e, secret)))
}

/// The error of a failed connection to `address` (never the URL), with the
/// password scrubbed from the driver's text.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")), allow(dead_code))]
fn connect_err(store: &'static str, address: String, e: &sqlx::Error, secret: Option<&str>) -> StoreError {
    StoreError::Connect(Box::new(crate::store::ConnectError::new(store, address, scrub(e, secret))))
}

/// Why a pool could not connect: a pool that retried until its acquire
/// timeout says only "pool timed out", so on that error one direct attempt
/// (at most 5 s, only on this failure path) finds the driver's reason, such
/// as "Connection refused".
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn why<O>(e: sqlx::Error, options: &O) -> sqlx::Error
where
    O: sqlx::ConnectOptions,
    O::Connection: Sized,
{
    if matches!(e, sqlx::Error::PoolTimedOut) {
        if let Ok(Err(direct)) = tokio::time::timeout(Duration::from_secs(5), options.connect()).await {
            return direct;
        }
    }
    e
}

/// The driver's text of `e`, with `secret` replaced.
fn scrub(e: &sqlx::Error, secret: Option<&str>) -> String {
    let text = e.to_string();
    match secret {
        Some(s) => text.replace(s, "<redacted>"),
        None => text,
    }
}

pub(super) fn db_err(e: &sqlx::Error, secret: Option<&str>) -> StoreError {
    let mut text = format!("sql: {e}");
    if let Some(s) = secret {
        text = text.replace(s, "<redacted>");
    }
    StoreError::Backend(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_for_scrubbing() {
        assert_eq!(url_password("postgres://u:s3cret@h/db").as_deref(), Some("s3cret"));
        assert_eq!(url_password("postgres://u:p@ss@h:5432/db?x=1").as_deref(), Some("p@ss"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://h/db?sslmode=disable&password=xyz").as_deref(), Some("xyz"));
        assert_eq!(url_password("mysql://root:pw@127.0.0.1:3306/test").as_deref(), Some("pw"));
        let e = db_err(&sqlx::Error::Protocol("auth failed for s3cret".into()), Some("s3cret"));
        assert!(!e.to_string().contains("s3cret"));
    }
}
