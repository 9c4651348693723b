//! The stored session record and the change set one request applies to it.

use std::fmt;

use serde::{de, ser::SerializeMap, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Version of the stored record format.
///
/// ```
/// use sessionware::{Metadata, Record, RECORD_FORMAT};
/// assert_eq!(Record::new(Metadata::new(0, 1, 1)).format, RECORD_FORMAT);
/// ```
pub const RECORD_FORMAT: u8 = 1;

/// Session data: string keys mapped to JSON values, kept sorted by key.
///
/// Values stay serialized (`RawValue`), so loading a session parses nothing
/// that a handler does not read. `Debug` shows keys only, never values.
///
/// ```
/// use sessionware::Data;
/// let mut data = Data::default();
/// data.insert("n".into(), serde_json::value::to_raw_value(&5).unwrap());
/// assert_eq!(data.get("n").unwrap().get(), "5");
/// assert_eq!(format!("{data:?}"), "Data { keys: [\"n\"] }");
/// ```
#[derive(Clone, Default)]
pub struct Data(Vec<(String, Box<RawValue>)>);

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

impl Data {
    /// The raw JSON of `key`.
    ///
    /// ```
    /// # use sessionware::Data;
    /// assert!(Data::default().get("x").is_none());
    /// ```
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.position(key).ok().map(|i| &*self.0[i].1)
    }

    /// Sets `key`, returning the previous value.
    ///
    /// ```
    /// # use sessionware::Data;
    /// let mut d = Data::default();
    /// let v = serde_json::value::to_raw_value(&1).unwrap();
    /// assert!(d.insert("a".into(), v.clone()).is_none());
    /// assert!(d.insert("a".into(), v).is_some());
    /// ```
    pub fn insert(&mut self, key: String, value: Box<RawValue>) -> Option<Box<RawValue>> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    ///
    /// ```
    /// # use sessionware::Data;
    /// let mut d = Data::default();
    /// d.insert("a".into(), serde_json::value::to_raw_value(&1).unwrap());
    /// assert!(d.remove("a").is_some());
    /// assert!(d.is_empty());
    /// ```
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Removes every key.
    ///
    /// ```
    /// # use sessionware::Data;
    /// let mut d = Data::default();
    /// d.clear();
    /// assert_eq!(d.len(), 0);
    /// ```
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Number of keys.
    ///
    /// ```
    /// # use sessionware::Data;
    /// assert_eq!(Data::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no keys.
    ///
    /// ```
    /// # use sessionware::Data;
    /// assert!(Data::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keys and raw values, sorted by key.
    ///
    /// ```
    /// # use sessionware::Data;
    /// assert_eq!(Data::default().iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// An upper bound of the serialized size in bytes.
    ///
    /// ```
    /// # use sessionware::Data;
    /// assert_eq!(Data::default().encoded_len(), 2);
    /// ```
    pub fn encoded_len(&self) -> usize {
        // `{` `}` plus, per entry, quotes, colon, comma and the key's escapes.
        2 + self.0.iter().map(|(k, v)| k.len() * 2 + 4 + v.get().len()).sum::<usize>()
    }

    /// Applies one net change per key (a value, or `None` for removal).
    pub(crate) fn apply_change(&mut self, key: &str, value: Option<&RawValue>) {
        match value {
            Some(v) => {
                self.insert(key.to_string(), v.to_owned());
            }
            None => {
                self.remove(key);
            }
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data").field("keys", &self.0.iter().map(|(k, _)| k).collect::<Vec<_>>()).finish()
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of session values")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
                let mut data = Data::default();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    if data.insert(k, v).is_some() {
                        return Err(de::Error::custom("duplicate session key"));
                    }
                }
                Ok(data)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The authenticated user of a session: a reserved field that
/// [`Session::insert`](crate::Session::insert) cannot write.
///
/// ```
/// use sessionware::Auth;
/// let auth = Auth::new("alice", 0);
/// assert_eq!(auth.user, "alice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Auth {
    /// The user's identifier, as the application gave it to `login`.
    pub user: String,
    /// When the user authenticated, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Auth {
    /// A new authentication record.
    ///
    /// ```
    /// # use sessionware::Auth;
    /// assert_eq!(Auth::new("bob", 5).at_ms, 5);
    /// ```
    pub fn new(user: impl Into<String>, at_ms: u64) -> Self {
        Self { user: user.into(), at_ms }
    }
}

/// A session's metadata. Times are milliseconds since the Unix epoch.
///
/// ```
/// use sessionware::Metadata;
/// let m = Metadata::new(1_000, 60_000, 3_600_000);
/// assert_eq!(m.expires_at, 61_000);
/// assert_eq!(m.absolute_deadline, 3_601_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// When the session was created.
    pub created_at: u64,
    /// The last activity the store knows of (moved by writes and by throttled touches).
    pub last_seen: u64,
    /// The hard deadline: creation (or the last login) plus the absolute timeout.
    pub absolute_deadline: u64,
    /// When the record expires unless touched: the earlier of the idle and
    /// absolute deadlines. Stores use it as the record's TTL.
    pub expires_at: u64,
    /// The authenticated user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Whether the cookie is persistent ("remember me": it carries `Max-Age`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
    /// A random public handle naming this session in a user's session list;
    /// it is neither the ID nor its digest, and grants nothing.
    #[serde(default = "SessionHandle::generate")]
    pub handle: SessionHandle,
    /// The user agent at login, truncated to 256 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Box<str>>,
    /// The client's coarse IP at login (IPv4 /24, IPv6 /48), from the socket
    /// peer (axum's `ConnectInfo`), never from forwarding headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Box<str>>,
}

/// A random public name for a session in its user's session list.
///
/// It is neither the session ID nor its digest: knowing it grants nothing,
/// and revoking by handle is limited to the caller's own sessions.
///
/// ```
/// use sessionware::SessionHandle;
/// let h = SessionHandle::generate();
/// assert_eq!(SessionHandle::parse(&h.to_string()), Some(h));
/// assert!(SessionHandle::parse("nope").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionHandle([u8; 16]);

impl SessionHandle {
    /// 128 random bits.
    ///
    /// ```
    /// # use sessionware::SessionHandle;
    /// assert_ne!(SessionHandle::generate(), SessionHandle::generate());
    /// ```
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Parses the canonical text form (22 base64url characters).
    ///
    /// ```
    /// # use sessionware::SessionHandle;
    /// assert!(SessionHandle::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        crate::SessionId::parse(text).map(|id| Self(*id.as_bytes()))
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl Serialize for SessionHandle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionHandle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| de::Error::custom("invalid session handle"))
    }
}

impl Metadata {
    /// Metadata of a session created at `now` with the given timeouts (ms).
    ///
    /// ```
    /// # use sessionware::Metadata;
    /// assert_eq!(Metadata::new(0, 10, 5).expires_at, 5);
    /// ```
    pub fn new(now: u64, idle_ms: u64, absolute_ms: u64) -> Self {
        let absolute_deadline = now.saturating_add(absolute_ms);
        Self {
            created_at: now,
            last_seen: now,
            absolute_deadline,
            expires_at: now.saturating_add(idle_ms).min(absolute_deadline),
            auth: None,
            persistent: false,
            handle: SessionHandle::generate(),
            user_agent: None,
            ip: None,
        }
    }

    /// The authenticated user, if any.
    ///
    /// ```
    /// # use sessionware::Metadata;
    /// assert!(Metadata::new(0, 1, 1).user().is_none());
    /// ```
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.user.as_str())
    }
}

/// A stored session: format version, metadata and data.
///
/// ```
/// use sessionware::{Metadata, Record};
/// let record = Record::new(Metadata::new(0, 1_000, 2_000));
/// let json = serde_json::to_string(&record).unwrap();
/// let back: Record = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, record);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// Format version ([`RECORD_FORMAT`]).
    #[serde(rename = "v")]
    pub format: u8,
    /// Metadata.
    #[serde(rename = "m")]
    pub meta: Metadata,
    /// Data.
    #[serde(rename = "d")]
    pub data: Data,
}

impl Record {
    /// An empty record.
    ///
    /// ```
    /// # use sessionware::{Metadata, Record};
    /// assert!(Record::new(Metadata::new(0, 1, 1)).data.is_empty());
    /// ```
    pub fn new(meta: Metadata) -> Self {
        Self { format: RECORD_FORMAT, meta, data: Data::default() }
    }

    /// True when the record is expired at `now`.
    ///
    /// ```
    /// # use sessionware::{Metadata, Record};
    /// let r = Record::new(Metadata::new(0, 10, 100));
    /// assert!(!r.is_expired(9));
    /// assert!(r.is_expired(10));
    /// ```
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.meta.expires_at || now >= self.meta.absolute_deadline
    }

    /// Merges a change set into this record: the semantics every store's
    /// `apply` must have (see [`SessionStore::apply`](crate::SessionStore::apply)).
    ///
    /// ```
    /// # use sessionware::{ChangeSet, Metadata, Record};
    /// let mut r = Record::new(Metadata::new(0, 10, 100));
    /// let mut c = ChangeSet::new(5, 15);
    /// c.set("k", serde_json::value::to_raw_value(&1).unwrap());
    /// r.apply(&c);
    /// assert_eq!(r.data.get("k").unwrap().get(), "1");
    /// assert_eq!(r.meta.expires_at, 15);
    /// ```
    pub fn apply(&mut self, changes: &ChangeSet) {
        if changes.clear {
            self.data.clear();
        }
        for (k, v) in &changes.changes {
            self.data.apply_change(k, v.as_deref());
        }
        self.meta.last_seen = self.meta.last_seen.max(changes.last_seen);
        self.meta.expires_at = changes.expires_at.min(self.meta.absolute_deadline);
        if let Some(p) = changes.persistent {
            self.meta.persistent = p;
        }
    }
}

/// What one request changed: applied atomically, per key, by the store.
///
/// Keys the request did not touch are left as they are in the store, so two
/// concurrent requests that write different keys both keep their writes.
///
/// ```
/// use sessionware::ChangeSet;
/// let mut c = ChangeSet::new(0, 10);
/// c.remove("a");
/// assert!(!c.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Remove every key before applying `changes`.
    pub clear: bool,
    /// Net change per key, in key order of first change: `Some` sets, `None` removes.
    pub changes: Vec<(String, Option<Box<RawValue>>)>,
    /// New last-activity time.
    pub last_seen: u64,
    /// New expiry (the store caps it at the record's absolute deadline).
    pub expires_at: u64,
    /// New persistence flag, if changed.
    pub persistent: Option<bool>,
}

impl ChangeSet {
    /// An empty change set that only moves the activity times.
    ///
    /// ```
    /// # use sessionware::ChangeSet;
    /// assert!(ChangeSet::new(1, 2).is_empty());
    /// ```
    pub fn new(last_seen: u64, expires_at: u64) -> Self {
        Self { last_seen, expires_at, ..Self::default() }
    }

    /// Records a set of `key`.
    ///
    /// ```
    /// # use sessionware::ChangeSet;
    /// let mut c = ChangeSet::new(0, 1);
    /// c.set("a", serde_json::value::to_raw_value(&true).unwrap());
    /// assert_eq!(c.changes.len(), 1);
    /// ```
    pub fn set(&mut self, key: &str, value: Box<RawValue>) {
        self.record(key, Some(value));
    }

    /// Records a removal of `key`.
    ///
    /// ```
    /// # use sessionware::ChangeSet;
    /// let mut c = ChangeSet::new(0, 1);
    /// c.remove("a");
    /// assert!(c.changes[0].1.is_none());
    /// ```
    pub fn remove(&mut self, key: &str) {
        self.record(key, None);
    }

    /// Records a clear: earlier per-key changes are dropped.
    ///
    /// ```
    /// # use sessionware::ChangeSet;
    /// let mut c = ChangeSet::new(0, 1);
    /// c.remove("a");
    /// c.clear();
    /// assert!(c.clear && c.changes.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.clear = true;
        self.changes.clear();
    }

    /// True when it changes no data and no flag.
    ///
    /// ```
    /// # use sessionware::ChangeSet;
    /// assert!(ChangeSet::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        !self.clear && self.changes.is_empty() && self.persistent.is_none()
    }

    fn record(&mut self, key: &str, value: Option<Box<RawValue>>) {
        if let Some(slot) = self.changes.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.changes.push((key.to_string(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<T: Serialize>(v: T) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    #[test]
    fn merge_keeps_untouched_keys_and_applies_net_changes() {
        let mut r = Record::new(Metadata::new(0, 100, 1000));
        r.data.insert("keep".into(), raw(1));
        r.data.insert("gone".into(), raw(2));
        let mut c = ChangeSet::new(50, 150);
        c.set("new", raw(3));
        c.set("gone", raw(4));
        c.remove("gone");
        r.apply(&c);
        assert_eq!(r.data.get("keep").unwrap().get(), "1");
        assert!(r.data.get("gone").is_none());
        assert_eq!(r.data.get("new").unwrap().get(), "3");
        assert_eq!(r.meta.last_seen, 50);
    }

    #[test]
    fn expiry_never_passes_the_absolute_deadline() {
        let mut r = Record::new(Metadata::new(0, 100, 1000));
        r.apply(&ChangeSet::new(990, 1090));
        assert_eq!(r.meta.expires_at, 1000);
    }

    #[test]
    fn deeply_nested_record_is_an_error_not_a_crash() {
        let depth = 100_000;
        let json = format!(
            "{{\"v\":1,\"m\":{{\"created_at\":0,\"last_seen\":0,\"absolute_deadline\":9,\"expires_at\":9}},\"d\":{{\"x\":{}{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        // The value stays raw (skipped iteratively, no recursion); reading it
        // as a typed value hits serde_json's recursion limit: an error, never
        // a stack overflow.
        let record: Record = serde_json::from_str(&json).unwrap();
        let raw = record.data.get("x").unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(raw.get()).is_err());
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(serde_json::from_str::<Data>(r#"{"a":1,"a":2}"#).is_err());
    }

    #[test]
    fn debug_shows_no_values() {
        let mut d = Data::default();
        d.insert("token".into(), raw("s3cr3t"));
        assert!(!format!("{d:?}").contains("s3cr3t"));
    }
}
