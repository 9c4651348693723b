//! Review of stores v2 (issue 9, point 2): `Data::from_packed` is public and
//! "checked". Fuzzed against the rest of `Data`'s API.

use proptest::prelude::*;
use serde_json::value::{to_raw_value, RawValue};
use sessionware::store::{ChangeSet, Data};

fn pack(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (k, v) in entries {
        buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
        buf.extend_from_slice(k);
        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        buf.extend_from_slice(v);
    }
    buf
}

/// Keys and values near the valid ones: short, sometimes not UTF-8,
/// values sometimes not JSON or padded.
fn entry() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let key = prop_oneof!["[a-d]{0,3}".prop_map(String::into_bytes), proptest::collection::vec(any::<u8>(), 0..4),];
    let value = prop_oneof![
        4 => (0u32..1000).prop_map(|n| n.to_string().into_bytes()),
        1 => "\"[a-z]{0,4}\"".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..5),
        1 => (0u32..100).prop_map(|n| format!(" {n} ").into_bytes()),
    ];
    (key, value)
}

/// Everything `Data` offers, on data `from_packed` accepted.
fn exercise(data: &Data) {
    let _ = data.size();
    let _ = data.encoded_len();
    let _ = data.len();
    let _ = serde_json::to_string(data).unwrap();
    for k in data.keys() {
        let _ = data.get(k);
    }
    let mut d = data.clone();
    let v = to_raw_value(&7).unwrap();
    d.insert("b", &v);
    assert_eq!(d.get("b").map(RawValue::get), Some("7"));
    assert_eq!(Data::from_packed(d.packed().to_vec()).as_ref(), Some(&d), "an insert keeps the form valid");
    d.remove("a");
    assert!(d.get("a").is_none());
    let mut c = ChangeSet::new(0, 1);
    c.set("c", to_raw_value(&"x").unwrap());
    c.remove("b");
    d.merge(&c);
    assert_eq!(d.get("c").map(RawValue::get), Some("\"x\""));
    assert!(d.get("b").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// Arbitrary bytes: never a panic, whatever is accepted.
    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(data) = Data::from_packed(buf.clone()) {
            prop_assert_eq!(data.packed(), &buf[..]);
            exercise(&data);
        }
    }

    /// What `from_packed` accepts is data the rest of the API agrees on: a
    /// key it lists can be read, and it serializes every key it counts.
    #[test]
    fn accepted_data_is_consistent(entries in proptest::collection::vec(entry(), 0..5)) {
        let buf = pack(&entries);
        if let Some(data) = Data::from_packed(buf) {
            exercise(&data);
            let listed: Vec<&str> = data.keys().collect();
            let readable: Vec<&str> = data.iter().map(|(k, _)| k).collect();
            prop_assert_eq!(&listed, &readable, "a listed key whose value `get` cannot read");
            // Canonical: the bytes are those `insert` would have written.
            let rebuilt: Data = data.iter().map(|(k, v)| (k.to_string(), v.to_owned())).collect();
            prop_assert_eq!(&rebuilt, &data, "accepted bytes that are not the canonical form");
        }
    }
}
