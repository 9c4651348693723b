//! The stored session record and the change set one request applies to it.

use std::fmt;

use serde::{de, ser::SerializeMap, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::sign_in::{Assurance, AuthMethod, ProviderSession};

/// Version of the stored record format.
///
/// ```
/// use sessionware::store::{Metadata, Record, RECORD_FORMAT};
/// assert_eq!(Record::new(Metadata::new(0, 1, 1)).format, RECORD_FORMAT);
/// ```
pub const RECORD_FORMAT: u8 = 1;

/// Session data: string keys mapped to JSON values, kept sorted by key.
///
/// The entries are packed in one buffer (a length-prefixed key and its raw
/// JSON value each), so a session's data is one allocation that a store can
/// copy in one step, and values are parsed only when a handler reads them.
/// `Debug` shows keys only, never values.
///
/// ```
/// use sessionware::store::Data;
/// let mut data = Data::default();
/// data.insert("n", &serde_json::value::to_raw_value(&5).unwrap());
/// assert_eq!(data.get("n").unwrap().get(), "5");
/// assert_eq!(format!("{data:?}"), "Data { keys: [\"n\"] }");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Data {
    /// Entries sorted by key: key length (u32 LE), key, value length
    /// (u32 LE), value. Only this module writes it; the packed form is
    /// canonical, so equal data has equal bytes.
    buf: Vec<u8>,
}

/// One packed entry: its byte range in the buffer, key and raw value
/// (UTF-8 as written, checked only where text is handed out).
struct Entry<'a> {
    start: usize,
    end: usize,
    key: &'a [u8],
    value: &'a [u8],
}

impl<'a> Entry<'a> {
    fn key(&self) -> Option<&'a str> {
        std::str::from_utf8(self.key).ok()
    }
}

/// Iterates the packed entries; a malformed buffer (never written by this
/// module) ends the iteration instead of panicking.
struct Entries<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Entries<'a> {
    fn field(&mut self) -> Option<&'a [u8]> {
        let len_bytes = self.buf.get(self.at..self.at.checked_add(4)?)?;
        let len = usize::try_from(u32::from_le_bytes(len_bytes.try_into().ok()?)).ok()?;
        let from = self.at + 4;
        let bytes = self.buf.get(from..from.checked_add(len)?)?;
        self.at = from + len;
        Some(bytes)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let start = self.at;
        let parsed = self.field().and_then(|key| Some((key, self.field()?)));
        match parsed {
            Some((key, value)) => Some(Entry { start, end: self.at, key, value }),
            None => {
                self.at = self.buf.len();
                None
            }
        }
    }
}

/// A value as the `RawValue` it came from (UTF-8 and JSON are checked
/// here). Values are only ever stored from a `RawValue`, so this does not
/// fail on data this module wrote.
fn raw(value: &[u8]) -> Option<&RawValue> {
    serde_json::from_slice(value).ok()
}

fn packed_len(key: &str, value: &str) -> usize {
    8 + key.len() + value.len()
}

fn push_entry(buf: &mut Vec<u8>, key: &str, value: &str) {
    // Keys and values over 4 GiB cannot reach here: `max_data_bytes` and
    // request limits are far below; saturate rather than wrap regardless.
    buf.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(value.as_bytes());
}

impl Data {
    fn entries(&self) -> Entries<'_> {
        Entries { buf: &self.buf, at: 0 }
    }

    /// The entry of `key`, or where it would go.
    fn find(&self, key: &str) -> Result<Entry<'_>, usize> {
        for e in self.entries() {
            match e.key.cmp(key.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(e),
                std::cmp::Ordering::Greater => return Err(e.start),
            }
        }
        Err(self.buf.len())
    }

    /// The raw JSON of `key`.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// assert!(Data::default().get("x").is_none());
    /// ```
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.find(key).ok().and_then(|e| raw(e.value))
    }

    /// Sets `key`; true if it replaced a value.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// let mut d = Data::default();
    /// let v = serde_json::value::to_raw_value(&1).unwrap();
    /// assert!(!d.insert("a", &v));
    /// assert!(d.insert("a", &v));
    /// ```
    pub fn insert(&mut self, key: &str, value: &RawValue) -> bool {
        let (start, end, replaced) = match self.find(key) {
            Ok(e) => (e.start, e.end, true),
            Err(at) => (at, at, false),
        };
        let value = value.get();
        let mut buf = Vec::with_capacity(self.buf.len() - (end - start) + packed_len(key, value));
        buf.extend_from_slice(&self.buf[..start]);
        push_entry(&mut buf, key, value);
        buf.extend_from_slice(&self.buf[end..]);
        self.buf = buf;
        replaced
    }

    /// Removes `key`; true if it was set.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// let mut d = Data::default();
    /// d.insert("a", &serde_json::value::to_raw_value(&1).unwrap());
    /// assert!(d.remove("a"));
    /// assert!(d.is_empty());
    /// ```
    pub fn remove(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(e) => {
                let range = e.start..e.end;
                self.buf.drain(range);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes every key.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// let mut d = Data::default();
    /// d.clear();
    /// assert_eq!(d.len(), 0);
    /// ```
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Number of keys.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// assert_eq!(Data::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    /// True when there are no keys.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// assert!(Data::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Keys and raw values, sorted by key.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// assert_eq!(Data::default().iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.entries().filter_map(|e| Some((e.key()?, raw(e.value)?)))
    }

    /// The keys, sorted.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// let mut d = Data::default();
    /// d.insert("b", &serde_json::value::to_raw_value(&1).unwrap());
    /// d.insert("a", &serde_json::value::to_raw_value(&2).unwrap());
    /// assert_eq!(d.keys().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries().filter_map(|e| e.key())
    }

    /// An upper bound of the serialized size in bytes.
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// assert_eq!(Data::default().encoded_len(), 2);
    /// ```
    pub fn encoded_len(&self) -> usize {
        // `{` `}` plus, per entry, quotes, colon, comma and the key's escapes.
        2 + self.entries().map(|e| e.key.len() * 2 + 4 + e.value.len()).sum::<usize>()
    }

    /// The size that [`max_data_bytes`](crate::SessionConfigBuilder::max_data_bytes)
    /// limits: the bytes of every key and every raw JSON value, added up.
    /// Every store can compute it on the merged record (Redis from field
    /// lengths, SQL from the decoded record).
    ///
    /// ```
    /// # use sessionware::store::Data;
    /// let mut d = Data::default();
    /// d.insert("ab", &serde_json::value::to_raw_value(&"xy").unwrap()); // 2 + 4 bytes
    /// assert_eq!(d.size(), 6);
    /// ```
    pub fn size(&self) -> usize {
        self.entries().map(|e| e.key.len() + e.value.len()).sum()
    }

    /// `size` after `key` were set to `value`, without setting it.
    pub(crate) fn size_with(&self, key: &str, value: &RawValue) -> usize {
        let old = self.find(key).ok().map_or(0, |e| e.key.len() + e.value.len());
        self.size() - old + key.len() + value.get().len()
    }

    /// Merges the data part of a change set (a clear first, then one net
    /// change per key): the semantics every store's `apply` has.
    ///
    /// ```
    /// # use sessionware::store::{ChangeSet, Data};
    /// let mut d = Data::default();
    /// d.insert("a", &serde_json::value::to_raw_value(&1).unwrap());
    /// let mut c = ChangeSet::new(0, 1);
    /// c.set("b", serde_json::value::to_raw_value(&2).unwrap());
    /// d.merge(&c);
    /// assert_eq!(d.keys().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn merge(&mut self, changes: &ChangeSet) {
        if changes.clear {
            self.clear();
        }
        for (k, v) in &changes.changes {
            self.apply_change(k, v.as_deref());
        }
    }

    /// Keeps only the listed keys (the login data policy).
    pub(crate) fn retain(&mut self, keep: &[String]) {
        let gone: Vec<String> = self.keys().filter(|k| !keep.iter().any(|x| x == k)).map(str::to_string).collect();
        for k in gone {
            self.remove(&k);
        }
    }

    /// Applies one net change per key (a value, or `None` for removal).
    pub(crate) fn apply_change(&mut self, key: &str, value: Option<&RawValue>) {
        match value {
            Some(v) => {
                self.insert(key, v);
            }
            None => {
                self.remove(key);
            }
        }
    }

    /// Data from key and value pairs in any order, built in one allocation
    /// (what a store uses to decode a record); `None` if a key repeats.
    ///
    /// ```
    /// use serde_json::value::to_raw_value;
    /// use sessionware::store::Data;
    /// let pairs = vec![("b".to_string(), to_raw_value(&2).unwrap()), ("a".to_string(), to_raw_value(&1).unwrap())];
    /// let data = Data::from_pairs(pairs).unwrap();
    /// assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "b"]);
    /// let twice = vec![("a".to_string(), to_raw_value(&1).unwrap()), ("a".to_string(), to_raw_value(&2).unwrap())];
    /// assert!(Data::from_pairs(twice).is_none());
    /// ```
    pub fn from_pairs(mut entries: Vec<(String, Box<RawValue>)>) -> Option<Self> {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(Self::from_sorted(&entries))
    }

    /// Data from entries sorted by key with no key twice.
    fn from_sorted(entries: &[(String, Box<RawValue>)]) -> Self {
        let mut buf = Vec::with_capacity(entries.iter().map(|(k, v)| packed_len(k, v.get())).sum());
        for (k, v) in entries {
            push_entry(&mut buf, k, v.get());
        }
        Self { buf }
    }

    /// The packed form: every entry, sorted by key, as the key's length (u32,
    /// little-endian), the key, the value's length and the value's JSON text.
    /// It is canonical (equal data, equal bytes), so a store may keep it as
    /// it is and hand it back to [`from_packed`](Self::from_packed).
    ///
    /// ```
    /// use sessionware::store::Data;
    /// let mut data = Data::default();
    /// data.insert("n", &serde_json::value::to_raw_value(&5).unwrap());
    /// assert_eq!(data.packed(), b"\x01\0\0\0n\x01\0\0\05");
    /// assert_eq!(Data::from_packed(data.packed().to_vec()), Some(data));
    /// ```
    pub fn packed(&self) -> &[u8] {
        &self.buf
    }

    /// The packed form, owned (no copy when the buffer has no spare room,
    /// as after an insert).
    ///
    /// ```
    /// use sessionware::store::Data;
    /// assert!(Data::default().into_packed().is_empty());
    /// ```
    pub fn into_packed(self) -> Box<[u8]> {
        self.buf.into_boxed_slice()
    }

    /// Data from its [`packed`](Self::packed) form, checked: `None` unless
    /// every entry is whole, its key UTF-8, its value one JSON value exactly
    /// as a `RawValue` holds it (no padding), and the keys strictly
    /// ascending: the bytes [`packed`](Self::packed) would give.
    ///
    /// ```
    /// use sessionware::store::Data;
    /// assert_eq!(Data::from_packed(Vec::new()), Some(Data::default()));
    /// assert_eq!(Data::from_packed(b"\x05\0\0\0ab".to_vec()), None); // cut short
    /// let twice = b"\x01\0\0\0a\x01\0\0\01\x01\0\0\0a\x01\0\0\02".to_vec();
    /// assert_eq!(Data::from_packed(twice), None);
    /// ```
    pub fn from_packed(buf: Vec<u8>) -> Option<Self> {
        let data = Self { buf };
        let mut previous: Option<&[u8]> = None;
        let mut end = 0;
        for e in data.entries() {
            std::str::from_utf8(e.key).ok()?;
            // A value `get` could not read (or would read as other bytes)
            // would be listed by `keys` yet be absent to every reader.
            if raw(e.value)?.get().len() != e.value.len() {
                return None;
            }
            if previous.is_some_and(|p| p >= e.key) {
                return None;
            }
            previous = Some(e.key);
            end = e.end;
        }
        // The iteration stops early at a malformed entry.
        (end == data.buf.len()).then_some(data)
    }

    /// Data from a packed form this process wrote itself (a store keeping
    /// [`packed`](Self::packed) bytes in memory), unchecked.
    pub(crate) fn from_own_packed(buf: Vec<u8>) -> Self {
        Self { buf }
    }
}

/// Collects key and value pairs in any order; a key that repeats keeps its
/// last value.
///
/// ```
/// use serde_json::value::to_raw_value;
/// use sessionware::store::Data;
/// let data: Data = [("a", 1), ("b", 2), ("a", 3)]
///     .into_iter()
///     .map(|(k, v)| (k.to_string(), to_raw_value(&v).unwrap()))
///     .collect();
/// assert_eq!(data.get("a").unwrap().get(), "3");
/// assert_eq!(data.len(), 2);
/// ```
impl FromIterator<(String, Box<RawValue>)> for Data {
    fn from_iter<I: IntoIterator<Item = (String, Box<RawValue>)>>(iter: I) -> Self {
        let mut entries: Vec<_> = iter.into_iter().collect();
        // Stable: among equal keys the later stays later, and is the one kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(String, Box<RawValue>)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        Self::from_sorted(&unique)
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data").field("keys", &self.keys().collect::<Vec<_>>()).finish()
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
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
                let mut entries: Vec<(String, Box<RawValue>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Data::from_pairs(entries).ok_or_else(|| de::Error::custom("duplicate session key"))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The authenticated user of a session: a reserved field that
/// [`Session::insert`](crate::Session::insert) cannot write.
///
/// Besides the user, the time and the credential epoch, it says how the
/// user authenticated ([`methods`](Self::methods), [`assurance`](Self::assurance))
/// and through which identity provider's session ([`provider`](Self::provider)),
/// kept out of line (one box, none for a sign-in that recorded none), so a
/// record stays as small as before for a plain sign-in.
///
/// ```
/// use sessionware::store::Auth;
/// let auth = Auth::new("alice", 0);
/// assert_eq!(auth.user, "alice");
/// assert!(auth.methods().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Auth {
    /// The user's identifier, as the application gave it to `login`.
    pub user: String,
    /// When the user authenticated, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The user's credential epoch when they signed in (see
    /// [`Cutoff`](crate::store::Cutoff)): a session signed in under an epoch
    /// lower than the user's current one is ended.
    pub epoch: u64,
    /// The methods, the level and the provider's session; `None` when all
    /// are their defaults (no method, `Aal1`, no provider).
    context: Option<Box<Context>>,
}

/// How a sign-in was made, beyond who and when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Context {
    methods: Vec<AuthMethod>,
    assurance: Assurance,
    provider: Option<ProviderSession>,
}

/// The serialized form of [`Auth`]: its fields side by side, each absent
/// while it has its default, so a sign-in without methods, level or provider
/// is written as before they existed, and such a record reads back.
#[derive(Serialize, Deserialize)]
struct AuthRepr<'a> {
    #[serde(borrow)]
    user: std::borrow::Cow<'a, str>,
    at_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    epoch: u64,
    #[serde(default, skip_serializing_if = "<[AuthMethod]>::is_empty")]
    amr: std::borrow::Cow<'a, [AuthMethod]>,
    #[serde(default, skip_serializing_if = "is_aal1")]
    aal: Assurance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idp: Option<std::borrow::Cow<'a, ProviderSession>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_aal1(a: &Assurance) -> bool {
    *a == Assurance::Aal1
}

impl Serialize for Auth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use std::borrow::Cow;
        AuthRepr {
            user: Cow::Borrowed(&self.user),
            at_ms: self.at_ms,
            epoch: self.epoch,
            amr: Cow::Borrowed(self.methods()),
            aal: self.assurance(),
            idp: self.provider().map(Cow::Borrowed),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let r = AuthRepr::deserialize(deserializer)?;
        let mut auth = Self::new(r.user, r.at_ms).with_epoch(r.epoch).with_methods(r.amr.into_owned(), r.aal);
        if let Some(p) = r.idp {
            auth = auth.with_provider(p.into_owned());
        }
        Ok(auth)
    }
}

impl Auth {
    /// A new authentication record: no method recorded, `Aal1`, no provider.
    ///
    /// ```
    /// # use sessionware::store::Auth;
    /// assert_eq!(Auth::new("bob", 5).at_ms, 5);
    /// ```
    pub fn new(user: impl Into<String>, at_ms: u64) -> Self {
        Self { user: user.into(), at_ms, epoch: 0, context: None }
    }

    /// The same sign-in under the user's credential epoch `epoch`.
    ///
    /// ```
    /// # use sessionware::store::Auth;
    /// assert_eq!(Auth::new("bob", 5).with_epoch(3).epoch, 3);
    /// ```
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// The same sign-in, made with `methods` (each recorded once, in the
    /// order given) at `assurance`.
    ///
    /// ```
    /// # use sessionware::{store::Auth, Assurance, AuthMethod};
    /// let auth = Auth::new("bob", 5).with_methods(vec![AuthMethod::Password, AuthMethod::Totp], Assurance::Aal2);
    /// assert!(auth.is_multi_factor());
    /// assert_eq!(auth.methods(), [AuthMethod::Password, AuthMethod::Totp]);
    /// ```
    pub fn with_methods(mut self, methods: Vec<AuthMethod>, assurance: Assurance) -> Self {
        let mut unique: Vec<AuthMethod> = Vec::with_capacity(methods.len());
        for m in methods {
            if !unique.contains(&m) {
                unique.push(m);
            }
        }
        let provider = self.context.take().and_then(|c| c.provider);
        self.set_context(Context { methods: unique, assurance, provider });
        self
    }

    /// The same sign-in, linked to the identity provider's session `provider`.
    ///
    /// ```
    /// # use sessionware::{store::Auth, ProviderSession};
    /// let auth = Auth::new("bob", 5).with_provider(ProviderSession::new("https://idp", Some("s1")));
    /// assert_eq!(auth.provider().and_then(|p| p.sid.as_deref()), Some("s1"));
    /// ```
    pub fn with_provider(mut self, provider: ProviderSession) -> Self {
        let mut context = self.context.take().map(|c| *c).unwrap_or_default();
        context.provider = Some(provider);
        self.set_context(context);
        self
    }

    /// Keeps `context` out of line, or nothing when it is all defaults (so
    /// equal sign-ins compare equal, however they were built).
    fn set_context(&mut self, context: Context) {
        self.context = (context != Context::default()).then(|| Box::new(context));
    }

    /// How the user authenticated, in the order the methods were used (a
    /// step-up adds one); empty for a sign-in that recorded none.
    ///
    /// ```
    /// # use sessionware::{store::Auth, Assurance, AuthMethod};
    /// let auth = Auth::new("bob", 5).with_methods(vec![AuthMethod::WebAuthn], Assurance::Aal2);
    /// assert_eq!(auth.methods(), [AuthMethod::WebAuthn]);
    /// ```
    pub fn methods(&self) -> &[AuthMethod] {
        self.context.as_ref().map_or(&[], |c| &c.methods)
    }

    /// The assurance level the sign-in reached (`Aal1` when none was
    /// recorded).
    ///
    /// ```
    /// # use sessionware::{store::Auth, Assurance};
    /// assert_eq!(Auth::new("bob", 5).assurance(), Assurance::Aal1);
    /// ```
    pub fn assurance(&self) -> Assurance {
        self.context.as_ref().map_or(Assurance::Aal1, |c| c.assurance)
    }

    /// The identity provider's session the sign-in came from, if recorded
    /// (for a back-channel logout).
    ///
    /// ```
    /// # use sessionware::store::Auth;
    /// assert!(Auth::new("bob", 5).provider().is_none());
    /// ```
    pub fn provider(&self) -> Option<&ProviderSession> {
        self.context.as_ref().and_then(|c| c.provider.as_ref())
    }

    /// True when the sign-in reached [`Assurance::Aal2`] or more.
    ///
    /// ```
    /// # use sessionware::store::Auth;
    /// assert!(!Auth::new("bob", 5).is_multi_factor());
    /// ```
    pub fn is_multi_factor(&self) -> bool {
        self.assurance().is_multi_factor()
    }

    /// Whether `method` was used.
    ///
    /// ```
    /// # use sessionware::{store::Auth, Assurance, AuthMethod};
    /// let auth = Auth::new("bob", 5).with_methods(vec![AuthMethod::Password], Assurance::Aal1);
    /// assert!(auth.used(&AuthMethod::Password) && !auth.used(&AuthMethod::Totp));
    /// ```
    pub fn used(&self, method: &AuthMethod) -> bool {
        self.methods().contains(method)
    }

    /// The heap bytes the sign-in holds beyond the user (a store's memory
    /// accounting).
    pub(crate) fn extra_heap_len(&self) -> usize {
        self.context.as_ref().map_or(0, |c| {
            std::mem::size_of::<Context>()
                + c.methods.iter().map(|m| std::mem::size_of::<AuthMethod>() + m.heap_len()).sum::<usize>()
                + c.provider.as_ref().map_or(0, ProviderSession::heap_len)
        })
    }
}

/// A session's metadata. Times are milliseconds since the Unix epoch.
///
/// ```
/// use sessionware::store::Metadata;
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
    /// peer (axum's `ConnectInfo`); from `X-Forwarded-For` only when the
    /// peer is a [trusted proxy](crate::SessionConfigBuilder::trusted_proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Box<str>>,
    /// The storage key this record was rotated from, until the first
    /// request that presents the new ID clears it
    /// ([`ChangeSet::close_overlap`]). Meanwhile a logout on the old ID ends
    /// this session too (its client may not have seen the new ID yet), and
    /// within a periodic renewal's overlap the old ID is an alias of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<crate::StorageKey>,
    /// When the session's current ID was issued by a rotation; `None` while
    /// it still has the ID it was created with (then `created_at` counts).
    /// Periodic renewal measures the ID's age from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<u64>,
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
    /// 128 random bits, from the same pool of OS randomness as session IDs
    /// (`rand`'s thread generator if the OS source fails).
    ///
    /// ```
    /// # use sessionware::SessionHandle;
    /// assert_ne!(SessionHandle::generate(), SessionHandle::generate());
    /// ```
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        if crate::id::os_random(&mut bytes).is_err() {
            bytes = rand::random();
        }
        Self(bytes)
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
    /// # use sessionware::store::Metadata;
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
            predecessor: None,
            renewed_at: None,
        }
    }

    /// When the session's current ID was issued: its last rotation, or its creation.
    ///
    /// ```
    /// # use sessionware::store::Metadata;
    /// let mut m = Metadata::new(5, 10, 20);
    /// assert_eq!(m.id_issued_at(), 5);
    /// m.renewed_at = Some(8);
    /// assert_eq!(m.id_issued_at(), 8);
    /// ```
    pub fn id_issued_at(&self) -> u64 {
        self.renewed_at.unwrap_or(self.created_at)
    }

    /// The authenticated user, if any.
    ///
    /// ```
    /// # use sessionware::store::Metadata;
    /// assert!(Metadata::new(0, 1, 1).user().is_none());
    /// ```
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.user.as_str())
    }
}

/// A stored session: format version, metadata and data.
///
/// ```
/// use sessionware::store::{Metadata, Record};
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
    /// # use sessionware::store::{Metadata, Record};
    /// assert!(Record::new(Metadata::new(0, 1, 1)).data.is_empty());
    /// ```
    pub fn new(meta: Metadata) -> Self {
        Self { format: RECORD_FORMAT, meta, data: Data::default() }
    }

    /// True when the record is expired at `now`.
    ///
    /// ```
    /// # use sessionware::store::{Metadata, Record};
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
    /// # use sessionware::store::{ChangeSet, Metadata, Record};
    /// let mut r = Record::new(Metadata::new(0, 10, 100));
    /// let mut c = ChangeSet::new(5, 15);
    /// c.set("k", serde_json::value::to_raw_value(&1).unwrap());
    /// r.apply(&c);
    /// assert_eq!(r.data.get("k").unwrap().get(), "1");
    /// assert_eq!(r.meta.expires_at, 15);
    /// ```
    pub fn apply(&mut self, changes: &ChangeSet) {
        self.data.merge(changes);
        self.meta.last_seen = self.meta.last_seen.max(changes.last_seen);
        self.meta.expires_at = changes.expires_at.min(self.meta.absolute_deadline);
        if let Some(p) = changes.persistent {
            self.meta.persistent = p;
        }
        if changes.close_overlap {
            self.meta.predecessor = None;
        }
    }

    /// [`apply`](Self::apply), refused with [`StoreError::TooLarge`](crate::StoreError::TooLarge)
    /// (and the record left as it was) when the merged data would exceed
    /// [`ChangeSet::max_data_bytes`]: the cap holds on the merged record,
    /// whatever concurrent writers added.
    ///
    /// ```
    /// # use sessionware::store::{ChangeSet, Metadata, Record};
    /// let mut r = Record::new(Metadata::new(0, 10, 100));
    /// let mut c = ChangeSet::new(5, 15);
    /// c.set("k", serde_json::value::to_raw_value(&"0123456789").unwrap());
    /// c.max_data_bytes = 8;
    /// assert!(r.try_apply(&c).is_err());
    /// assert!(r.data.is_empty());
    /// ```
    pub fn try_apply(&mut self, changes: &ChangeSet) -> Result<(), crate::StoreError> {
        if changes.max_data_bytes > 0 && changes.touches_data() {
            let mut merged = self.data.clone();
            merged.merge(changes);
            if merged.size() > changes.max_data_bytes {
                return Err(crate::StoreError::TooLarge);
            }
        }
        self.apply(changes);
        Ok(())
    }
}

/// What one request changed: applied atomically, per key, by the store.
///
/// Keys the request did not touch are left as they are in the store, so two
/// concurrent requests that write different keys both keep their writes.
///
/// ```
/// use sessionware::store::ChangeSet;
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
    /// End the overlap of a periodic renewal: clear
    /// [`Metadata::predecessor`], so the retired ID is no session any more.
    pub close_overlap: bool,
    /// The most bytes ([`Data::size`]) the merged data may hold; `0`: no
    /// cap. A store refuses a change that would pass it with
    /// [`StoreError::TooLarge`](crate::StoreError::TooLarge) and changes
    /// nothing, so concurrent writers cannot grow a record past it.
    pub max_data_bytes: usize,
}

impl ChangeSet {
    /// An empty change set that only moves the activity times.
    ///
    /// ```
    /// # use sessionware::store::ChangeSet;
    /// assert!(ChangeSet::new(1, 2).is_empty());
    /// ```
    pub fn new(last_seen: u64, expires_at: u64) -> Self {
        Self { last_seen, expires_at, ..Self::default() }
    }

    /// Records a set of `key`.
    ///
    /// ```
    /// # use sessionware::store::ChangeSet;
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
    /// # use sessionware::store::ChangeSet;
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
    /// # use sessionware::store::ChangeSet;
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
    /// # use sessionware::store::ChangeSet;
    /// assert!(ChangeSet::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        !self.touches_data() && self.persistent.is_none() && !self.close_overlap
    }

    /// True when it sets, removes or clears data.
    ///
    /// ```
    /// # use sessionware::store::ChangeSet;
    /// let mut c = ChangeSet::new(0, 1);
    /// assert!(!c.touches_data());
    /// c.persistent = Some(true);
    /// assert!(!c.touches_data());
    /// c.clear();
    /// assert!(c.touches_data());
    /// ```
    pub fn touches_data(&self) -> bool {
        self.clear || !self.changes.is_empty()
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
        r.data.insert("keep", &raw(1));
        r.data.insert("gone", &raw(2));
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
    fn a_sign_in_written_before_its_authentication_context_still_reads() {
        // The JSON of a record of the format before methods, levels and
        // providers existed (what the SQL stores hold).
        let old = r#"{"v":1,"m":{"created_at":1,"last_seen":2,"absolute_deadline":9,"expires_at":9,"auth":{"user":"alice","at_ms":5,"epoch":2},"handle":"AAAAAAAAAAAAAAAAAAAAAA"},"d":{"k":1}}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        let auth = record.meta.auth.clone().unwrap();
        assert_eq!(auth, Auth::new("alice", 5).with_epoch(2));
        assert!(auth.methods().is_empty() && auth.provider().is_none());
        assert_eq!(auth.assurance(), Assurance::Aal1);
        // A sign-in without the context is written as before, byte for byte.
        assert_eq!(serde_json::to_string(&record).unwrap(), old);
        // With it: the new fields, and a reader of the old format ignores them.
        let mut record = record;
        record.meta.auth = Some(
            auth.with_methods(vec![AuthMethod::Password, AuthMethod::Totp], Assurance::Aal2)
                .with_provider(ProviderSession::new("https://idp", Some("s"))),
        );
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""amr":["password","totp"],"aal":2,"idp":{"iss":"https://idp","sid":"s"}"#), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(serde_json::from_str::<Data>(r#"{"a":1,"a":2}"#).is_err());
    }

    proptest::proptest! {
        /// The packed data behaves like a sorted map of key to raw JSON,
        /// and survives a JSON round trip.
        #[test]
        fn packed_data_matches_a_map(ops in proptest::collection::vec((0u8..3, "[a-d\u{e9}\"]{0,3}", proptest::num::i64::ANY), 0..40)) {
            let mut data = Data::default();
            let mut model = std::collections::BTreeMap::<String, String>::new();
            for (op, key, n) in ops {
                match op {
                    0 | 1 => {
                        let v = raw(n);
                        proptest::prop_assert_eq!(data.insert(&key, &v), model.insert(key.clone(), v.get().to_string()).is_some());
                    }
                    _ => proptest::prop_assert_eq!(data.remove(&key), model.remove(&key).is_some()),
                }
                proptest::prop_assert_eq!(data.len(), model.len());
                let got: Vec<(String, String)> = data.iter().map(|(k, v)| (k.to_string(), v.get().to_string())).collect();
                let want: Vec<(String, String)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                proptest::prop_assert_eq!(&got, &want);
                for (k, v) in &model {
                    proptest::prop_assert_eq!(data.get(k).map(RawValue::get), Some(v.as_str()));
                }
                let back: Data = serde_json::from_str(&serde_json::to_string(&data).unwrap()).unwrap();
                proptest::prop_assert_eq!(&back, &data);
                proptest::prop_assert!(data.encoded_len() >= serde_json::to_string(&data).unwrap().len());
            }
        }

        /// A packed buffer that this module did not write is refused by
        /// `from_packed`, or read without panicking when taken unchecked.
        #[test]
        fn garbage_packed_data_does_not_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Some(d) = Data::from_packed(bytes.clone()) {
                proptest::prop_assert_eq!(Data::from_packed(d.packed().to_vec()), Some(d));
            }
            let d = Data::from_own_packed(bytes);
            let _ = (d.len(), d.iter().count(), d.get("a"), d.encoded_len(), format!("{d:?}"));
            let mut d = d;
            d.insert("a", &raw(1));
            d.remove("b");
        }
    }

    #[test]
    fn size_with_predicts_the_size_after_an_insert() {
        let mut d = Data::default();
        d.insert("a", &raw("x"));
        let v = raw("longer value");
        let predicted = d.size_with("a", &v);
        d.insert("a", &v);
        assert_eq!(predicted, d.size());
    }

    #[test]
    fn debug_shows_no_values() {
        let mut d = Data::default();
        d.insert("token", &raw("s3cr3t"));
        assert!(!format!("{d:?}").contains("s3cr3t"));
    }
}
