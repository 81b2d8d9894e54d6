//! Stored objects of one shape written out as JSON text from a template:
//! `object_to_json` for sign_jwt, the way `shape` is `encode_claims` for
//! verify_jwt.
//!
//! Why: the claims an application signs have the same keys call after
//! call (the hook's claims, a service's claims); only the values change.
//! Walking the root's keys, escaping each and writing it was about a third
//! of `object_to_json`. A `TextShape` keeps one object's root header, its
//! keys' JEntries and key bytes, and the text of its keys (`{"k":`,
//! `,"k":`): an object whose root starts with the same bytes has the same
//! keys in the same order, so its text is those pieces with its own values
//! written between them, as `write_container` writes them (the same
//! function writes each value; bounds are checked as before).
//!
//! Per backend (a thread): a few templates, most recently used first; a
//! miss makes one, with a back-off when misses repeat (`recent`).

use super::recent::Recent;
use super::{
    escape_string, int_align, read_u32, stored, varlena_len, write_scalar, JB_FARRAY, JB_FOBJECT,
    JENTRY_HAS_OFF, JENTRY_ISCONTAINER, JENTRY_OFFLENMASK, JENTRY_TYPEMASK,
};
use std::cell::RefCell;

/// The largest root (header, JEntries and keys) a template is made of.
const MAX_HEAD: usize = 16 * 1024;
/// A nested object or array of the template up to this size is kept with
/// its text; a member's value with the same bytes gets that text.
const MAX_MEMO: usize = 512;
/// At most this many bytes of nested values (and as much text) per template.
const MAX_MEMOS: usize = 2048;

/// One object's root: what a match compares, and its keys' text.
pub struct TextShape {
    /// The root's header word and its keys' JEntries.
    head: Vec<u8>,
    /// The keys' bytes (first in the root's data).
    keys: Vec<u8>,
    n: usize,
    /// `{"k":` then `,"k":` per member, end to end; `ends[j]` ends member j's.
    text: Vec<u8>,
    ends: Vec<u32>,
    /// Per member, when its value in the template was a small object or
    /// array: that value's bytes (from its aligned start) and its text.
    /// The same claims carry the same nested values call after call
    /// (app_metadata, amr): compared, then copied, not walked and escaped.
    memo: Vec<Option<(Vec<u8>, Vec<u8>)>>,
}

/// The root's values one after another: (JEntry type, start, end) in
/// `body`; `None` for an entry out of bounds. `n` members, the values'
/// data from `start` (the keys' end).
fn values(
    body: &[u8],
    n: usize,
    mut start: usize,
) -> impl Iterator<Item = Option<(u32, usize, usize)>> + '_ {
    let data = 4 + 8 * n;
    (0..n).map(move |j| {
        let e = read_u32(body, 4 + 4 * (n + j))?;
        let end = if e & JENTRY_HAS_OFF != 0 {
            data.checked_add((e & JENTRY_OFFLENMASK) as usize)?
        } else {
            start.checked_add((e & JENTRY_OFFLENMASK) as usize)?
        };
        if end < start || end > body.len() {
            return None;
        }
        let v = (e & JENTRY_TYPEMASK, start, end);
        start = end;
        Some(v)
    })
}

impl TextShape {
    /// The template of a stored object's root (`body`: the varlena
    /// without its header), when it is an object with members.
    fn of(body: &[u8]) -> Option<TextShape> {
        let c = stored::Container::at(body)?;
        let n = c.len();
        if !c.is_object() || n == 0 {
            return None;
        }
        let data = 4 + 8 * n;
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(n);
        let mut keys_end = data;
        for j in 0..n {
            let (t, start, end) = c.span(j)?;
            if t != 0 || start != keys_end {
                return None;
            }
            keys_end = end;
            text.push(if j == 0 { b'{' } else { b',' });
            escape_string(body, start, end, &mut text);
            text.push(b':');
            ends.push(u32::try_from(text.len()).ok()?);
        }
        if keys_end > MAX_HEAD {
            return None;
        }
        let (mut memo, mut kept) = (Vec::new(), 0);
        for (j, v) in values(body, n, keys_end).enumerate() {
            let (t, start, end) = v?;
            let bytes = body.get(int_align(start)..end);
            let Some(bytes) = bytes.filter(|b| {
                t == JENTRY_ISCONTAINER && b.len() <= MAX_MEMO && kept + b.len() <= MAX_MEMOS
            }) else {
                continue;
            };
            let mut value = Vec::new();
            write_scalar(t, body.get(start..end)?, start, body, &mut value, 0)?;
            kept += bytes.len();
            memo.resize(j + 1, None);
            memo[j] = Some((bytes.to_vec(), value));
        }
        Some(TextShape {
            head: body.get(..4 + 4 * n)?.to_vec(),
            keys: body.get(data..keys_end)?.to_vec(),
            n,
            text,
            ends,
            memo,
        })
    }

    /// The text of `body` when its root has this template's keys; `None`
    /// when it does not, or its values are not well formed. `key` sees
    /// each root key.
    fn write<'a>(
        &self,
        body: &'a [u8],
        key: &mut impl FnMut(&'a [u8]),
        out: &mut Vec<u8>,
    ) -> Option<()> {
        let n = self.n;
        let data = 4 + 8 * n;
        let keys_end = data + self.keys.len();
        if body.get(..4 + 4 * n)? != &self.head[..] || body.get(data..keys_end)? != &self.keys[..] {
            return None;
        }
        let mut k = data;
        for j in 0..n {
            // The keys are the template's: their lengths are in its JEntries.
            let e = read_u32(&self.head, 4 + 4 * j)?;
            let end = if e & JENTRY_HAS_OFF != 0 {
                data + (e & JENTRY_OFFLENMASK) as usize
            } else {
                k + (e & JENTRY_OFFLENMASK) as usize
            };
            key(&body[k..end]);
            k = end;
        }
        let mut from = 0;
        for (j, v) in values(body, n, keys_end).enumerate() {
            let (t, start, end) = v?;
            let to = self.ends[j] as usize;
            // Most keys' pieces are short: one 16-byte copy, no memcpy call.
            super::append(out, &self.text, from, to - from);
            from = to;
            if let Some(Some((bytes, text))) = self.memo.get(j) {
                // The same nested bytes have the same text (write_scalar
                // reads a container from its aligned start only).
                if t == JENTRY_ISCONTAINER && body.get(int_align(start)..end) == Some(&bytes[..]) {
                    out.extend_from_slice(text);
                    continue;
                }
            }
            write_scalar(t, body.get(start..end)?, start, body, out, 0)?;
        }
        out.push(b'}');
        Some(())
    }
}

/// A backend's templates (`recent`).
#[derive(Default)]
pub struct TextShapes {
    shapes: Recent<TextShape>,
}

impl TextShapes {
    /// `object_to_json`'s answer, from a template when one matches.
    pub fn object_to_json<'a>(
        &mut self,
        jsonb: &'a [u8],
        mut key: impl FnMut(&'a [u8]),
    ) -> Option<Vec<u8>> {
        let len = varlena_len(jsonb, 8)?;
        let body = jsonb.get(4..len)?;
        if read_u32(body, 0)? & (JB_FOBJECT | JB_FARRAY | 0x1000_0000) != JB_FOBJECT {
            return None;
        }
        let mut out = Vec::with_capacity(len + len / 4);
        let written = self.shapes.find(|s| {
            let r = s.write(body, &mut key, &mut out);
            if r.is_none() {
                // A template whose keys matched can have written part of it.
                out.clear();
            }
            r
        });
        if written.is_some() {
            return Some(out);
        }
        if self.shapes.make_one() {
            if let Some(s) = TextShape::of(body) {
                self.shapes.add(s);
            }
        }
        super::write_container(body, &mut out, Some(&mut key), 0)?;
        Some(out)
    }

    /// Objects written from a template so far.
    pub fn hits(&self) -> u64 {
        self.shapes.hits()
    }
}

thread_local! {
    static BACKEND: RefCell<TextShapes> = RefCell::new(TextShapes::default());
}

/// `object_to_json` through this thread's (backend's) templates.
pub fn object_to_json_shaped<'a>(jsonb: &'a [u8], key: impl FnMut(&'a [u8])) -> Option<Vec<u8>> {
    BACKEND.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => s.object_to_json(jsonb, key),
        Err(_) => super::object_to_json(jsonb, key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonb::{encode_object, object_to_json};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn value(r: &mut StdRng, depth: u32) -> String {
        match r.gen_range(0..if depth > 1 { 6 } else { 8 }) {
            0 => "null".into(),
            1 => ["true", "false"][r.gen_range(0..2)].into(),
            2 => r.gen_range(-100_000i64..1_800_000_000).to_string(),
            3 => format!("{}{}", r.gen_range(1..10), "0".repeat(r.gen_range(0..30))),
            4 | 5 => {
                let pieces = ["x", "\\n", "\\\"", "é", "😀", "\\u0001", "ab", " "];
                let s: String = (0..r.gen_range(0..10))
                    .map(|_| pieces[r.gen_range(0..pieces.len())])
                    .collect();
                format!("\"{s}\"")
            }
            6 => format!(
                "[{}]",
                (0..r.gen_range(0..4))
                    .map(|_| value(r, depth + 1))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => format!(
                "{{\"a\":{},\"bb\":{}}}",
                value(r, depth + 1),
                value(r, depth + 1)
            ),
        }
    }

    fn doc(keys: &[String], r: &mut StdRng) -> String {
        let members: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{k}\":{}", value(r, 0)))
            .collect();
        format!("{{{}}}", members.join(","))
    }

    fn keys(r: &mut StdRng) -> Vec<String> {
        let n = if r.gen_bool(0.2) {
            r.gen_range(30..50)
        } else {
            r.gen_range(1..12)
        };
        let names = [
            "sub", "iat", "exp", "jti", "aud", "iss", "k\\\"q", "é", "role",
        ];
        (0..n)
            .map(|i| {
                if r.gen_bool(0.5) {
                    names[r.gen_range(0..names.len())].to_string()
                } else {
                    format!("key{i}")
                }
            })
            .collect()
    }

    #[test]
    fn a_template_writes_what_object_to_json_writes() {
        let mut r = StdRng::seed_from_u64(30);
        let (mut objects, mut hits) = (0u64, 0u64);
        for _ in 0..1_500 {
            let ks = keys(&mut r);
            let mut shapes = TextShapes::default();
            for _ in 0..6 {
                let j = encode_object(doc(&ks, &mut r).as_bytes()).unwrap();
                let (mut seen, mut want) = (Vec::new(), Vec::new());
                let ours = shapes.object_to_json(&j, |k| seen.push(k.to_vec()));
                let full = object_to_json(&j, |k| want.push(k.to_vec()));
                assert!(ours == full && seen == want);
                objects += 1;
            }
            hits += shapes.hits();
        }
        // Every object but each series' first comes from its template.
        assert!(hits >= objects * 5 / 6, "{hits} of {objects}");
    }

    #[test]
    fn a_nested_value_is_copied_only_when_its_bytes_are_the_templates() {
        let mut shapes = TextShapes::default();
        let t = br#"{"s":"x","m":{"a":[1,"x"],"b":{"c":true}},"z":[[]]}"#;
        shapes
            .object_to_json(&encode_object(t).unwrap(), |_| {})
            .unwrap();
        for doc in [
            &t[..],
            // Same nested values after a longer string: another alignment.
            br#"{"s":"xyz","m":{"a":[1,"x"],"b":{"c":true}},"z":[[]]}"#,
            br#"{"s":"xy","m":{"a":[1,"x"],"b":{"c":true}},"z":[[]]}"#,
            // Same lengths, other bytes.
            br#"{"s":"x","m":{"a":[2,"x"],"b":{"c":true}},"z":[[]]}"#,
            br#"{"s":"x","m":{"a":[1,"y"],"b":{"c":false}},"z":[{}]}"#,
            br#"{"s":"x","m":{"a":[1,"x"],"b":{"d":true}},"z":[[]]}"#,
            // Other kinds and lengths.
            br#"{"s":"x","m":[{"a":[1,"x"],"b":{"c":true}}],"z":"[[]]"}"#,
            br#"{"s":"x","m":{"a":[1,"x","w"],"b":{"c":true}},"z":null}"#,
            br#"{"s":"x","m":{},"z":[[1]]}"#,
        ] {
            let j = encode_object(doc).unwrap();
            let want = object_to_json(&j, |_| {}).unwrap();
            assert_eq!(
                shapes.object_to_json(&j, |_| {}).unwrap(),
                want,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        assert_eq!(shapes.hits(), 9, "every one from the template");
    }

    #[test]
    fn another_root_or_broken_values_do_not_match() {
        let t = encode_object(br#"{"a":"x","b":12,"c":[1]}"#).unwrap();
        let mut shapes = TextShapes::default();
        shapes.object_to_json(&t, |_| {}).unwrap();
        let same = encode_object(br#"{"a":"yy","b":-3,"c":[1,2,{"d":null}]}"#).unwrap();
        assert_eq!(
            shapes.object_to_json(&same, |_| {}),
            object_to_json(&same, |_| {})
        );
        assert_eq!(shapes.hits(), 1);
        for other in [
            &br#"{"a":"x","b":12}"#[..],
            br#"{"a":"x","b":12,"d":[1]}"#,
            br#"{"b":12,"c":[1],"aa":1}"#,
        ] {
            let j = encode_object(other).unwrap();
            assert_eq!(
                shapes.object_to_json(&j, |_| {}),
                object_to_json(&j, |_| {})
            );
        }
        assert_eq!(shapes.hits(), 1);
        // A value's length past the end: no answer, no panic.
        let mut bad = same.clone();
        let n = 3;
        let at = 4 + 4 + 4 * (n + 2);
        bad[at..at + 4].copy_from_slice(&0x0FFF_0000u32.to_ne_bytes());
        assert_eq!(shapes.object_to_json(&bad, |_| {}), None);
        assert_eq!(object_to_json(&bad, |_| {}), None);
    }
}
