//! A stored jsonb read and written without Postgres: the hook's answer is
//! the event's `claims` object with four members set, and building it with
//! Postgres' `pushJsonbValue` unpacked every nested value token by token
//! (one FFI call each) and then encoded the whole tree again. Here the
//! members are read straight from the event's bytes and copied, nested
//! containers and numerics as they are stored, into the new object.
//!
//! The layout is the parent module's (jsonb.h): a container is a u32
//! header, one u32 JEntry per child and the children's data; a child's
//! offset is the sum of the lengths before it back to the nearest JEntry
//! that holds an end offset (getJsonbOffset). Numerics and containers start
//! int-aligned within their container's data, and a nested container's
//! offsets are relative to itself, so its bytes are valid wherever they are
//! copied to an aligned place.
//!
//! Nothing read is trusted: every offset and length is checked against the
//! slice it points into, and anything inconsistent answers `None` (the
//! caller then takes Postgres' own path). The tests hold reading and
//! writing to the parent's encoder, which a `#[pg_test]` holds to jsonb_in.

use super::{
    int_align, pad_to_int, read_u32, set_entry, varlena_header, varlena_len, write_array_container,
    write_object_container, JB_CMASK, JB_FARRAY, JB_FOBJECT, JB_FSCALAR, JENTRY_HAS_OFF,
    JENTRY_ISBOOL_FALSE, JENTRY_ISBOOL_TRUE, JENTRY_ISCONTAINER, JENTRY_ISNULL, JENTRY_ISNUMERIC,
    JENTRY_OFFLENMASK, JENTRY_TYPEMASK,
};

/// A container inside a stored jsonb: the bytes from its header to the end
/// of its data (an int-aligned place of the value).
#[derive(Clone, Copy, Debug)]
pub struct Container<'a> {
    c: &'a [u8],
    header: u32,
}

/// One child of a container. `Numeric` and `Container` are their bytes
/// without the alignment padding before them.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    String(&'a [u8]),
    /// A numeric varlena (its own header included).
    Numeric(&'a [u8]),
    Container(Container<'a>),
    /// A new array of these elements (written only: reading gives
    /// `Container`).
    Array(&'a [Value<'a>]),
}

impl<'a> Container<'a> {
    /// The root container of a whole jsonb varlena (4-byte header, as a
    /// detoasted datum has).
    pub fn root(jsonb: &'a [u8]) -> Option<Container<'a>> {
        let len = varlena_len(jsonb, 8)?;
        Container::at(jsonb.get(4..len)?)
    }

    /// The container at the start of `c` (its JEntries checked to fit).
    pub(super) fn at(c: &'a [u8]) -> Option<Container<'a>> {
        let header = read_u32(c, 0)?;
        let this = Container { c, header };
        // The JEntries fit.
        (this.data_start()? <= c.len()).then_some(this)
    }

    /// Its header word (count and kind flags).
    pub(super) fn header(&self) -> u32 {
        self.header
    }

    fn count(&self) -> usize {
        (self.header & JB_CMASK) as usize
    }

    /// Members of an object (pairs), elements of an array.
    pub fn len(&self) -> usize {
        self.count()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// An object (not an array, not a raw scalar).
    pub fn is_object(&self) -> bool {
        self.header & JB_FOBJECT != 0 && self.header & JB_FSCALAR == 0
    }

    /// An array (including the one-element array a raw scalar is stored as).
    pub fn is_array(&self) -> bool {
        self.header & JB_FARRAY != 0
    }

    fn children(&self) -> usize {
        if self.header & JB_FOBJECT != 0 {
            self.count() * 2
        } else {
            self.count()
        }
    }

    fn data_start(&self) -> Option<usize> {
        self.children().checked_mul(4)?.checked_add(4)
    }

    fn entry(&self, i: usize) -> Option<u32> {
        read_u32(self.c, 4 + 4 * i)
    }

    /// (type, start, end) of child `i`, relative to the container's start.
    pub(super) fn span(&self, i: usize) -> Option<(u32, usize, usize)> {
        let e = self.entry(i)?;
        // getJsonbOffset: the lengths before i, back to an end offset.
        let mut off = 0usize;
        let mut j = i;
        while j > 0 {
            j -= 1;
            let p = self.entry(j)?;
            off = off.checked_add((p & JENTRY_OFFLENMASK) as usize)?;
            if p & JENTRY_HAS_OFF != 0 {
                break;
            }
        }
        let end = if e & JENTRY_HAS_OFF != 0 {
            (e & JENTRY_OFFLENMASK) as usize
        } else {
            off.checked_add((e & JENTRY_OFFLENMASK) as usize)?
        };
        let data = self.data_start()?;
        let (start, end) = (data.checked_add(off)?, data.checked_add(end)?);
        (start <= end && end <= self.c.len()).then_some((e & JENTRY_TYPEMASK, start, end))
    }

    fn value(&self, (t, start, end): (u32, usize, usize)) -> Option<Value<'a>> {
        let aligned = || self.c.get(int_align(start)..end);
        Some(match t {
            0 => Value::String(self.c.get(start..end)?),
            JENTRY_ISNULL => Value::Null,
            JENTRY_ISBOOL_TRUE => Value::Bool(true),
            JENTRY_ISBOOL_FALSE => Value::Bool(false),
            JENTRY_ISNUMERIC => Value::Numeric(aligned()?),
            JENTRY_ISCONTAINER => Value::Container(Container::at(aligned()?)?),
            _ => return None,
        })
    }

    /// Calls `f` with each (key, value) of an object, in stored order (keys
    /// sorted by length, then bytes). `None` when this is not an object or
    /// its bytes are inconsistent (`f` may have seen some members).
    pub fn for_each_member(&self, mut f: impl FnMut(&'a [u8], Value<'a>)) -> Option<()> {
        if !self.is_object() {
            return None;
        }
        let n = self.count();
        let mut walk = Walk::new(self)?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            match walk.next()? {
                (0, s, e) => keys.push(self.c.get(s..e)?),
                _ => return None,
            }
        }
        for k in keys {
            f(k, self.value(walk.next()?)?);
        }
        Some(())
    }

    /// Calls `f` with each element of an array. `None` as for_each_member.
    pub fn for_each_element(&self, mut f: impl FnMut(Value<'a>)) -> Option<()> {
        if self.header & JB_FOBJECT != 0 || !self.is_array() {
            return None;
        }
        let mut walk = Walk::new(self)?;
        for _ in 0..self.count() {
            f(self.value(walk.next()?)?);
        }
        Some(())
    }

    /// Member `key` of an object (a binary search, as
    /// getKeyJsonValueFromContainer does). `None` when absent, when this is
    /// not an object, or when its bytes are inconsistent.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        if !self.is_object() {
            return None;
        }
        let n = self.count();
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (t, s, e) = self.span(mid)?;
            if t != 0 {
                return None;
            }
            match super::super::claims::jsonb_key_order(self.c.get(s..e)?, key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.value(self.span(mid + n)?),
            }
        }
        None
    }
}

/// The children of a container in order, their offsets summed as it goes:
/// (type, start, end) relative to the container's start, checked.
pub(super) struct Walk<'c, 'a> {
    c: &'c Container<'a>,
    i: usize,
    off: usize,
    data: usize,
}

impl<'c, 'a> Walk<'c, 'a> {
    pub(super) fn new(c: &'c Container<'a>) -> Option<Self> {
        Some(Walk {
            c,
            i: 0,
            off: 0,
            data: c.data_start()?,
        })
    }

    pub(super) fn next(&mut self) -> Option<(u32, usize, usize)> {
        let e = self.c.entry(self.i)?;
        let end = if e & JENTRY_HAS_OFF != 0 {
            (e & JENTRY_OFFLENMASK) as usize
        } else {
            self.off.checked_add((e & JENTRY_OFFLENMASK) as usize)?
        };
        let (start, stop) = (
            self.data.checked_add(self.off)?,
            self.data.checked_add(end)?,
        );
        if start > stop || stop > self.c.c.len() {
            return None;
        }
        self.i += 1;
        self.off = end;
        Some((e & JENTRY_TYPEMASK, start, stop))
    }
}

/// Whether a stored numeric (`Value::Numeric`) has no fractional part, as
/// numeric_min_scale() = 0 says: every base-10000 digit of negative weight
/// is zero. `None` for bytes that are not a finite numeric.
pub fn numeric_is_integer(v: &[u8]) -> Option<bool> {
    let (_, _, weight, digits) = super::numeric_parts(v)?;
    // Digit k has weight `weight - k`.
    Some(
        digits
            .chunks_exact(2)
            .enumerate()
            .all(|(k, d)| weight - (k as i32) >= 0 || d == [0, 0]),
    )
}

/// Appends an object container whose members are `members`, which must be
/// in jsonb key order with no duplicate keys (debug-asserted; the callers
/// merge into a stored object, which is), and returns its JEntry.
pub fn write_object(buf: &mut Vec<u8>, members: &[(&[u8], Value<'_>)]) -> Option<u32> {
    debug_assert!(members
        .windows(2)
        .all(|w| super::super::claims::jsonb_key_order(w[0].0, w[1].0).is_lt()));
    let n = members.len();
    write_object_container(buf, n, |buf, c| match members.get(c) {
        Some((k, _)) => {
            buf.extend_from_slice(k);
            u32::try_from(k.len())
                .ok()
                .filter(|&l| l <= JENTRY_OFFLENMASK)
        }
        None => write_child(buf, members[c - n].1),
    })
}

/// Appends one child's data and returns its JEntry (type | length, the
/// padding before an aligned value included).
fn write_child(buf: &mut Vec<u8>, v: Value<'_>) -> Option<u32> {
    let aligned = |buf: &mut Vec<u8>, bytes: &[u8]| {
        let pad = pad_to_int(buf);
        buf.extend_from_slice(bytes);
        u32::try_from(bytes.len())
            .ok()
            .and_then(|l| l.checked_add(pad))
            .filter(|&l| l <= JENTRY_OFFLENMASK)
    };
    Some(match v {
        Value::Null => JENTRY_ISNULL,
        Value::Bool(true) => JENTRY_ISBOOL_TRUE,
        Value::Bool(false) => JENTRY_ISBOOL_FALSE,
        Value::String(s) => {
            buf.extend_from_slice(s);
            u32::try_from(s.len())
                .ok()
                .filter(|&l| l <= JENTRY_OFFLENMASK)?
        }
        Value::Numeric(b) => JENTRY_ISNUMERIC | aligned(buf, b)?,
        Value::Container(c) => JENTRY_ISCONTAINER | aligned(buf, c.c)?,
        Value::Array(elems) => write_array(buf, elems)?,
    })
}

/// Appends an array container of `elems` and returns its JEntry.
fn write_array(buf: &mut Vec<u8>, elems: &[Value<'_>]) -> Option<u32> {
    write_array_container(buf, elems.len(), |buf, k| write_child(buf, elems[k]))
}

/// A whole jsonb varlena holding the object `members` (as write_object).
pub fn object_document(members: &[(&[u8], Value<'_>)], capacity: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(capacity + 64);
    buf.extend_from_slice(&[0; 4]);
    write_object(&mut buf, members)?;
    let len = u32::try_from(buf.len())
        .ok()
        .filter(|&l| l <= 0x3FFF_FFFF)?;
    buf[..4].copy_from_slice(&varlena_header(len));
    Some(buf)
}

/// A whole jsonb varlena `{key: {members}}` (members as write_object),
/// the inner object written in place.
pub fn wrapped_object(
    key: &[u8],
    members: &[(&[u8], Value<'_>)],
    capacity: usize,
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(capacity + 64);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(1 | JB_FOBJECT).to_ne_bytes());
    let entries = buf.len();
    buf.resize(entries + 8, 0);
    let mut total = 0u32;
    buf.extend_from_slice(key);
    let key_len = u32::try_from(key.len())
        .ok()
        .filter(|&l| l <= JENTRY_OFFLENMASK)?;
    set_entry(&mut buf, entries, 0, key_len, &mut total)?;
    let meta = write_object(&mut buf, members)?;
    set_entry(&mut buf, entries, 1, meta, &mut total)?;
    let len = u32::try_from(buf.len())
        .ok()
        .filter(|&l| l <= 0x3FFF_FFFF)?;
    buf[..4].copy_from_slice(&varlena_header(len));
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::super::{encode_object, NUMERIC_SHORT};
    use super::*;

    /// Every member of `json`, read from its encoding and written again,
    /// gives the encoder's bytes: reading and writing agree with it.
    fn copy_whole(json: &str) -> (Vec<u8>, Vec<u8>) {
        let enc = encode_object(json.as_bytes()).expect("encodable");
        let root = Container::root(&enc).unwrap();
        let mut members = Vec::new();
        root.for_each_member(|k, v| members.push((k, v))).unwrap();
        (object_document(&members, enc.len()).unwrap(), enc)
    }

    #[test]
    fn copying_every_member_reproduces_the_bytes() {
        for json in [
            "{}",
            r#"{"a": 1}"#,
            r#"{"s": "x", "n": -12345678901234, "t": true, "f": false, "z": null}"#,
            r#"{"nested": {"deep": [1, {"x": "ü\"\n"}, [], {}]}, "amr": [{"method": "password", "timestamp": 1}]}"#,
            r#"{"a": "odd", "b": 7, "c": "xy", "d": [1, "q", 2], "e": 3}"#,
        ] {
            let (copy, enc) = copy_whole(json);
            assert_eq!(copy, enc, "{json}");
        }
        // More than 32 children: JEntries with end offsets, in both containers.
        let many: Vec<String> = (0..70)
            .map(|i| format!("\"k{i:02}\": [{i}, \"v{i}\", {{\"i\": {i}}}]"))
            .collect();
        let json = format!(
            "{{{}, \"arr\": [{}]}}",
            many.join(", "),
            (0..80).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        let (copy, enc) = copy_whole(&json);
        assert_eq!(copy, enc);
    }

    #[test]
    fn a_wrapped_object_is_the_encoders_nesting() {
        let inner = r#"{"a": 1, "bb": "x", "ccc": {"d": [true, null]}}"#;
        let enc = encode_object(inner.as_bytes()).unwrap();
        let mut members = Vec::new();
        Container::root(&enc)
            .unwrap()
            .for_each_member(|k, v| members.push((k, v)))
            .unwrap();
        let want = encode_object(format!("{{\"claims\": {inner}}}").as_bytes()).unwrap();
        assert_eq!(wrapped_object(b"claims", &members, 0).unwrap(), want);
        let odd = encode_object(format!("{{\"abc\": {inner}}}").as_bytes()).unwrap();
        assert_eq!(wrapped_object(b"abc", &members, 0).unwrap(), odd);
    }

    #[test]
    fn new_arrays_are_the_encoders_arrays() {
        let strings: Vec<String> = (0..40).map(|i| format!("s{}", "x".repeat(i % 5))).collect();
        let elems: Vec<Value> = strings
            .iter()
            .map(|s| Value::String(s.as_bytes()))
            .collect();
        let inner = [Value::Null, Value::Bool(true), Value::String(b"abc")];
        let members = [
            (&b"a"[..], Value::Array(&[])),
            (b"b", Value::Array(&inner)),
            (b"scopes", Value::Array(&elems)),
        ];
        let json = format!(
            "{{\"a\": [], \"b\": [null, true, \"abc\"], \"scopes\": {}}}",
            serde_json::to_string(&strings).unwrap()
        );
        assert_eq!(
            object_document(&members, 0).unwrap(),
            encode_object(json.as_bytes()).unwrap()
        );
    }

    #[test]
    fn get_finds_every_member_and_nothing_else() {
        let many: Vec<String> = (0..50).map(|i| format!("\"key{i}\": {i}")).collect();
        let enc = encode_object(format!("{{{}}}", many.join(",")).as_bytes()).unwrap();
        let root = Container::root(&enc).unwrap();
        for i in 0..50 {
            let key = format!("key{i}");
            let Some(Value::Numeric(n)) = root.get(key.as_bytes()) else {
                panic!("{key} not found")
            };
            let want = encode_object(format!("{{\"{key}\": {i}}}").as_bytes()).unwrap();
            let Some(Value::Numeric(w)) = Container::root(&want).unwrap().get(key.as_bytes())
            else {
                panic!()
            };
            assert_eq!(n, w);
        }
        assert!(root.get(b"key50").is_none());
        assert!(root.get(b"").is_none());
        assert!(root.get(b"k").is_none());
    }

    #[test]
    fn kinds_and_elements() {
        let enc = encode_object(br#"{"a": [1, "two", null, true, {"m": "x"}], "o": {}}"#).unwrap();
        let root = Container::root(&enc).unwrap();
        assert!(root.is_object() && !root.is_array());
        let Some(Value::Container(a)) = root.get(b"a") else {
            panic!()
        };
        assert!(a.is_array() && !a.is_object());
        let mut kinds = Vec::new();
        a.for_each_element(|v| {
            kinds.push(match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::String(_) => "string",
                Value::Numeric(_) => "numeric",
                Value::Container(c) if c.is_object() => "object",
                Value::Container(_) => "array",
                Value::Array(_) => unreachable!("reading gives containers"),
            })
        })
        .unwrap();
        assert_eq!(kinds, ["numeric", "string", "null", "bool", "object"]);
        assert!(a.for_each_member(|_, _| ()).is_none());
        assert!(root.for_each_element(|_| ()).is_none());
        let Some(Value::Container(o)) = root.get(b"o") else {
            panic!()
        };
        assert!(o.is_object() && o.is_empty());
    }

    fn numeric(digits: &[i16], weight: i16, long: bool) -> Vec<u8> {
        let mut v = Vec::new();
        let size = if long { 8 } else { 6 } + 2 * digits.len() as u32;
        v.extend_from_slice(&varlena_header(size));
        if long {
            v.extend_from_slice(&0u16.to_ne_bytes()); // positive, dscale 0
            v.extend_from_slice(&weight.to_ne_bytes());
        } else {
            let w = if weight < 0 {
                0x0040 | ((weight + 64) as u16 & 0x3F)
            } else {
                weight as u16
            };
            v.extend_from_slice(&(NUMERIC_SHORT | w).to_ne_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_ne_bytes());
        }
        v
    }

    #[test]
    fn integer_numerics() {
        let int = |json: &str| {
            let enc = encode_object(format!("{{\"n\": {json}}}").as_bytes()).unwrap();
            match Container::root(&enc).unwrap().get(b"n") {
                Some(Value::Numeric(b)) => numeric_is_integer(b),
                _ => panic!(),
            }
        };
        assert_eq!(int("0"), Some(true));
        assert_eq!(int("-17320000000000"), Some(true));
        // 1.5: digits [1, 5000] weight 0; 0.25: [2500] weight -1.
        assert_eq!(
            numeric_is_integer(&numeric(&[1, 5000], 0, false)),
            Some(false)
        );
        assert_eq!(
            numeric_is_integer(&numeric(&[2500], -1, false)),
            Some(false)
        );
        assert_eq!(numeric_is_integer(&numeric(&[2500], -1, true)), Some(false));
        // 1.0 stored with a zero fractional digit still counts (min scale 0).
        assert_eq!(numeric_is_integer(&numeric(&[1, 0], 0, false)), Some(true));
        assert_eq!(
            numeric_is_integer(&numeric(&[12, 3400], 1, true)),
            Some(true)
        );
        // NaN, and bytes that are no numeric.
        let mut nan = varlena_header(6).to_vec();
        nan.extend_from_slice(&0xC000u16.to_ne_bytes());
        assert_eq!(numeric_is_integer(&nan), None);
        assert_eq!(numeric_is_integer(&[]), None);
        assert_eq!(numeric_is_integer(&[0, 0, 0]), None);
    }

    #[test]
    fn inconsistent_bytes_are_refused() {
        let enc = encode_object(br#"{"a": [1, 2, 3], "b": "x"}"#).unwrap();
        assert!(Container::root(&enc[..enc.len() - 1]).is_none());
        // Any single corrupted byte: no panic, and a walk either fails or
        // stays within the bytes.
        for i in 4..enc.len() {
            for x in [0x00u8, 0xFF, 0x80, 0x7F] {
                let mut bad = enc.clone();
                bad[i] = x;
                if let Some(root) = Container::root(&bad) {
                    let _ = root.for_each_member(|_, v| {
                        if let Value::Container(c) = v {
                            let _ = c.for_each_element(|_| ());
                        }
                    });
                    let _ = root.get(b"a");
                    let _ = root.get(b"b");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 8..200)) {
            let len = bytes.len() as u32;
            bytes[..4].copy_from_slice(&varlena_header(len));
            if let Some(root) = Container::root(&bytes) {
                let _ = root.for_each_member(|_, _| ());
                let _ = root.for_each_element(|_| ());
                let _ = root.get(b"claims");
            }
        }
    }
}
