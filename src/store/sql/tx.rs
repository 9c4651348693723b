//! What the transactions of `delete`'s chain and of the revocations share:
//! [`TxError`], and running one again when PostgreSQL aborted it to break a
//! deadlock ([`retrying`]).

use super::SqlStore;
use crate::store::StoreError;

/// The longest chain of retired keys a `delete` follows (rows visited, the
/// first included), and the most hops a revocation follows from one
/// retired pointer it deleted.
pub(super) const MAX_CHAIN: usize = 16;

/// How many times a transaction runs when the database aborts it to
/// break a deadlock (two of them, or one and a
/// logout, locking the same rows in another order): an aborted transaction
/// changed nothing.
pub(super) const TX_ATTEMPTS: usize = 3;

/// An error in one of the transactions that [`TX_ATTEMPTS`] runs again.
pub(super) enum TxError {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl TxError {
    /// The database aborted the transaction (PostgreSQL: a deadlock, or a
    /// serialization failure; MySQL: a deadlock, SQLSTATE `40001`, error
    /// 1213) or gave up waiting for a lock (MySQL: error 1205, which rolls
    /// back only the statement; the transaction is rolled back when it is
    /// dropped, before the connection runs anything else): it changed
    /// nothing, and may run again.
    pub(super) fn retryable(&self) -> bool {
        match self {
            Self::Db(e) => aborted(e),
            Self::Store(_) => false,
        }
    }
}

/// See [`TxError::retryable`]: the statement (or its transaction) was
/// aborted and changed nothing.
pub(super) fn aborted(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else { return false };
    #[cfg(feature = "mysql")]
    if db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == 1205) {
        return true;
    }
    db.code().is_some_and(|c| c == "40P01" || c == "40001")
}

impl SqlStore {
    pub(super) fn tx_err(&self, e: TxError) -> StoreError {
        match e {
            TxError::Db(e) => self.err(&e),
            TxError::Store(e) => e,
        }
    }
}

/// Runs `$run` (an expression that runs one transaction and answers a
/// `Result<_, TxError>`) up to [`TX_ATTEMPTS`] times while it fails with a
/// retryable error; the error of the last attempt is mapped for the caller.
macro_rules! retrying {
    ($store:ident, $run:expr) => {{
        let mut attempt = 1;
        loop {
            match $run {
                Err(e) if attempt < TX_ATTEMPTS && e.retryable() => attempt += 1,
                done => break done.map_err(|e| $store.tx_err(e)),
            }
        }
    }};
}
pub(super) use retrying;
