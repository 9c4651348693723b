//! Time source of the layer, replaceable in tests.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
///
/// The layer reads time only through this trait, so tests can move time with
/// [`ManualClock`].
///
/// ```
/// use sessionware::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
///
/// ```
/// use sessionware::{Clock, SystemClock};
/// let a = SystemClock.now_ms();
/// assert!(SystemClock.now_ms() >= a);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to: for tests of timeouts.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use sessionware::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `now_ms`.
    ///
    /// ```
    /// # use sessionware::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new(5).now_ms(), 5);
    /// ```
    pub fn new(now_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Moves the clock forward (saturating).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::{Clock, ManualClock};
    /// let c = ManualClock::new(0);
    /// c.advance(Duration::from_millis(10));
    /// assert_eq!(c.now_ms(), 10);
    /// ```
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(ms)));
    }

    /// Sets the clock to `now_ms`.
    ///
    /// ```
    /// # use sessionware::{Clock, ManualClock};
    /// let c = ManualClock::new(0);
    /// c.set(42);
    /// assert_eq!(c.now_ms(), 42);
    /// ```
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Converts a duration to whole milliseconds, saturating.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The one home of the conversion between the stores' milliseconds and the
/// [`SystemTime`] of the handler-facing API.
pub(crate) fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Serializes a [`SystemTime`] as integer milliseconds since the Unix epoch
/// (`#[serde(serialize_with = …)]`), the JSON form of
/// [`SessionInfo`](crate::SessionInfo)'s times.
pub(crate) mod millis {
    use std::time::{SystemTime, UNIX_EPOCH};

    fn ms(t: &SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    pub(crate) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(ms(t))
    }
}
