//! Payloads of one shape, encoded from a template instead of parsed.
//!
//! Why: the tokens a backend verifies come from a few issuers, and each
//! issuer writes every payload with the same keys, in the same order, with
//! the same kinds of values: only the values differ (sub, email, jti, iat,
//! exp, ...). Parsing such a payload, sorting its keys and laying out its
//! containers was most of verify_jwt's time after the HMAC. A `Shape`
//! remembers one payload's skeleton (the text between its string and
//! integer values) and its jsonb: a new payload that has the same skeleton
//! is checked against it segment by segment, and its jsonb is the
//! template's with the values put in.
//!
//! The rules (what makes the bytes those of the full encoder, which a
//! differential test below holds to):
//! - A template is made only from a payload the full encoder takes, with no
//!   escape anywhere and no duplicate key.
//! - A payload matches when every skeleton segment is there byte for byte,
//!   every string hole is a string without escape or control character and
//!   every integer hole an integer as the full encoder takes it. The keys,
//!   their order, the literals (true, false, null), the nesting and the
//!   whitespace are then the template's, so the sort order and the layout
//!   are too.
//! - Top-level values may change length: the root container is laid out
//!   again (keys copied, values written anew, JEntries recomputed).
//!   Values inside nested containers must keep their encoded length (the
//!   container is copied and patched in place; a nested container's
//!   offsets are relative to itself); when one does not, the payload takes
//!   the full encoder.
//! - The input is checked to be UTF-8 as a whole, as before.
//!
//! Per backend (a thread): a few templates of at most `MAX_TEMPLATE` bytes
//! of payload each, most recently used first; a miss makes a template of
//! the payload, with a back-off when misses repeat (`recent`).

use super::recent::Recent;
use super::{
    append, pad_to_int, parse_claims, saturating_i64, set_entry, special, varlena_header,
    write_doc, write_numeric, Doc, Encoded, Rec, Tok, Top, JENTRY_ISBOOL_FALSE, JENTRY_ISBOOL_TRUE,
    JENTRY_ISCONTAINER, JENTRY_ISNULL, JENTRY_ISNUMERIC, JENTRY_OFFLENMASK,
    NUMERIC_SHORT_WEIGHT_MAX, TOP_STRINGS,
};
use std::cell::RefCell;

/// The longest payload a template is made of.
const MAX_TEMPLATE: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Str,
    Int,
}

/// A string or integer value of the template: the skeleton text before it,
/// and where its data is in the template's jsonb.
#[derive(Clone, Copy, Debug)]
struct Hole {
    kind: Kind,
    /// The skeleton segment before it: `text[seg.0..seg.1]`.
    seg: (u32, u32),
    /// Its data in `jsonb` (after alignment padding).
    at: u32,
    end: u32,
}

/// A value of the root object, in jsonb order.
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// A string or integer: written from the new payload.
    Hole(u16),
    /// true, false or null: a JEntry with no data.
    Literal(u32),
    /// A nested container: `jsonb[a..b]`, with holes `patch.0..patch.1`
    /// patched in place.
    Container { a: u32, b: u32, patch: (u16, u16) },
}

/// How a top claim is read from a new payload.
#[derive(Clone, Debug)]
enum TopValue {
    /// A string or integer hole.
    Hole(u16),
    /// aud as an array: its string elements' holes.
    Strings(Vec<u16>),
    /// Any other value (a literal, a container).
    Other,
}

/// One payload's skeleton and jsonb (see the module comment).
pub struct Shape {
    text: Vec<u8>,
    holes: Vec<Hole>,
    /// The skeleton after the last hole: `text[tail..]`.
    tail: u32,
    jsonb: Vec<u8>,
    /// Root members.
    n: usize,
    /// The bytes of the root's keys (they come first in its data).
    keys_len: usize,
    pieces: Vec<Piece>,
    /// The top claims the template has: (slot, how to read it); slots are
    /// TOP_STRINGS' indexes, then 5 exp, 6 nbf, 7 iat, 8 aud.
    top: Vec<(u8, TopValue)>,
}

/// Offsets the writer reports, by tape index, and the order it wrote the
/// values in (siblings' order is their jsonb order; a literal has no data,
/// so its offset alone does not say it).
struct Offsets {
    at: Vec<(u32, u32)>,
    order: Vec<u32>,
    written: u32,
    duplicates: bool,
}

impl Rec for Offsets {
    const ON: bool = true;
    fn value(&mut self, i: usize, start: usize, end: usize) {
        self.at[i] = (start as u32, end as u32);
        self.order[i] = self.written;
        self.written += 1;
    }
    fn duplicates(&mut self) {
        self.duplicates = true;
    }
}

/// The top claim slot of a root key: the string claims `Top` holds
/// (TOP_STRINGS' order), then exp, nbf, iat and aud.
fn top_slot(key: &[u8]) -> Option<u8> {
    const OTHERS: [&str; 4] = ["exp", "nbf", "iat", "aud"];
    TOP_STRINGS
        .iter()
        .chain(OTHERS.iter())
        .position(|k| k.as_bytes() == key)
        .map(|i| i as u8)
}

impl Shape {
    /// The jsonb of a parsed document and, when it can be one, its
    /// template. `None` when the writer declines the document.
    fn of(doc: &Doc) -> Option<(Vec<u8>, Option<Shape>)> {
        let eligible = doc.arena.is_empty() && doc.input.len() <= MAX_TEMPLATE;
        if !eligible {
            return write_doc(doc, &mut ()).map(|b| (b, None));
        }
        let mut rec = Offsets {
            at: vec![(0, 0); doc.tape.len()],
            order: vec![0; doc.tape.len()],
            written: 0,
            duplicates: false,
        };
        let jsonb = write_doc(doc, &mut rec)?;
        if rec.duplicates {
            return Some((jsonb, None));
        }
        let shape = Shape::build(doc, &rec, &jsonb);
        Some((jsonb, shape))
    }

    fn build(doc: &Doc, rec: &Offsets, jsonb: &[u8]) -> Option<Shape> {
        let at = &rec.at;
        let Tok::Object { n, .. } = doc.tape[0] else {
            return None;
        };
        let n = n as usize;
        // Holes in input order (the tape's), and each tape index's hole.
        let mut holes = Vec::new();
        let mut hole_of = vec![u16::MAX; doc.tape.len()];
        let mut prev = 0u32;
        let mut first_hole_from = vec![0u16; doc.tape.len() + 1];
        let mut i = 0;
        let is_key = key_positions(doc);
        while i < doc.tape.len() {
            first_hole_from[i] = u16::try_from(holes.len()).ok()?;
            let range = match doc.tape[i] {
                Tok::Str { a, b, .. } if !is_key[i] => Some((Kind::Str, a, b)),
                Tok::Int { neg, a, b } => Some((Kind::Int, a - neg as u32, b)),
                _ => None,
            };
            if let Some((kind, a, b)) = range {
                hole_of[i] = u16::try_from(holes.len()).ok()?;
                holes.push(Hole {
                    kind,
                    seg: (prev, a),
                    at: at[i].0,
                    end: at[i].1,
                });
                prev = b;
            }
            i += 1;
        }
        first_hole_from[doc.tape.len()] = u16::try_from(holes.len()).ok()?;
        // The root's members: keys' bytes, values in jsonb order.
        let mut members = Vec::with_capacity(n);
        let mut e = 1;
        let mut keys_len = 0;
        for _ in 0..n {
            keys_len += doc.bytes(doc.tape[e]).len();
            members.push((e, e + 1));
            e = doc.next(e + 1);
        }
        let mut values: Vec<usize> = members.iter().map(|&(_, v)| v).collect();
        values.sort_by_key(|&v| rec.order[v]);
        let pieces = values
            .iter()
            .map(|&v| match doc.tape[v] {
                Tok::Str { .. } | Tok::Int { .. } => Piece::Hole(hole_of[v]),
                Tok::Null => Piece::Literal(JENTRY_ISNULL),
                Tok::Bool(true) => Piece::Literal(JENTRY_ISBOOL_TRUE),
                Tok::Bool(false) => Piece::Literal(JENTRY_ISBOOL_FALSE),
                Tok::Object { end, .. } | Tok::Array { end, .. } => Piece::Container {
                    a: at[v].0,
                    b: at[v].1,
                    patch: (first_hole_from[v + 1], first_hole_from[end as usize]),
                },
            })
            .collect();
        let mut top = Vec::new();
        for &(k, v) in &members {
            let Some(slot) = top_slot(doc.bytes(doc.tape[k])) else {
                continue;
            };
            let value = match doc.tape[v] {
                Tok::Str { .. } | Tok::Int { .. } => TopValue::Hole(hole_of[v]),
                Tok::Array { end, .. } if slot == 8 => {
                    let mut strings = Vec::new();
                    let mut c = v + 1;
                    while c < end as usize {
                        if let Tok::Str { .. } = doc.tape[c] {
                            strings.push(hole_of[c]);
                        }
                        c = doc.next(c);
                    }
                    TopValue::Strings(strings)
                }
                _ => TopValue::Other,
            };
            top.push((slot, value));
        }
        Some(Shape {
            text: doc.input.to_vec(),
            holes,
            tail: prev,
            jsonb: jsonb.to_vec(),
            n,
            keys_len,
            pieces,
            top,
        })
    }

    /// The jsonb and top claims of `json` when it has this template's
    /// skeleton (see the module comment); `None` otherwise. `spans` is
    /// scratch space. `tick` runs once per hole.
    fn encode(
        &self,
        json: &[u8],
        spans: &mut Vec<(u32, u32)>,
        tick: &mut impl FnMut(),
    ) -> Option<Encoded> {
        spans.clear();
        let mut pos = 0usize;
        for h in &self.holes {
            tick();
            let seg = &self.text[h.seg.0 as usize..h.seg.1 as usize];
            if !same_at(json, pos, seg) {
                return None;
            }
            pos += seg.len();
            let end = match h.kind {
                Kind::Str => string_end(json, pos)?,
                Kind::Int => integer_end(json, pos)?,
            };
            spans.push((pos as u32, end as u32));
            pos = end;
        }
        let tail = &self.text[self.tail as usize..];
        if !same_at(json, pos, tail) || pos + tail.len() != json.len() {
            return None;
        }
        // The skeleton is the template's (UTF-8, cut at ASCII delimiters)
        // and every string hole was checked: the payload is UTF-8.
        let bytes = self.write(json, spans)?;
        Some(Encoded {
            bytes,
            top: self.top_claims(json, spans),
        })
    }

    /// The root laid out again around the new values.
    fn write(&self, json: &[u8], spans: &[(u32, u32)]) -> Option<Vec<u8>> {
        let n = self.n;
        let data = 8 + 8 * n;
        let grown = json.len().saturating_sub(self.text.len());
        let mut buf = spare(self.jsonb.len() + grown + 4 * n + 8);
        // The varlena header (set below), the root's header and its keys'
        // JEntries; room for the values' JEntries; the keys.
        buf.extend_from_slice(&self.jsonb[..8 + 4 * n]);
        buf.resize(data, 0);
        buf.extend_from_slice(&self.jsonb[data..data + self.keys_len]);
        let mut total = self.keys_len as u32;
        for (j, piece) in self.pieces.iter().enumerate() {
            let meta = match *piece {
                Piece::Hole(k) => {
                    let (a, b) = spans[k as usize];
                    let (a, b) = (a as usize, b as usize);
                    match self.holes[k as usize].kind {
                        Kind::Str => {
                            append(&mut buf, json, a, b - a);
                            Some((b - a) as u32).filter(|&l| l <= JENTRY_OFFLENMASK)?
                        }
                        Kind::Int => {
                            let pad = pad_to_int(&mut buf);
                            let (neg, digits) = int_parts(&json[a..b]);
                            JENTRY_ISNUMERIC | (pad + write_numeric(&mut buf, neg, digits))
                        }
                    }
                }
                Piece::Literal(meta) => meta,
                Piece::Container { a, b, patch } => {
                    let pad = pad_to_int(&mut buf);
                    let at = buf.len();
                    buf.extend_from_slice(&self.jsonb[a as usize..b as usize]);
                    for k in patch.0..patch.1 {
                        let h = self.holes[k as usize];
                        let dst = at + (h.at - a) as usize;
                        let len = (h.end - h.at) as usize;
                        let (sa, sb) = spans[k as usize];
                        let value = &json[sa as usize..sb as usize];
                        match h.kind {
                            Kind::Str => {
                                if value.len() != len {
                                    return None;
                                }
                                buf[dst..dst + len].copy_from_slice(value);
                            }
                            Kind::Int => {
                                let from = buf.len();
                                let (neg, digits) = int_parts(value);
                                if write_numeric(&mut buf, neg, digits) as usize != len {
                                    return None;
                                }
                                buf.copy_within(from..from + len, dst);
                                buf.truncate(from);
                            }
                        }
                    }
                    JENTRY_ISCONTAINER | (pad + (b - a))
                }
            };
            set_entry(&mut buf, 8, n + j, meta, &mut total)?;
        }
        let len = u32::try_from(buf.len())
            .ok()
            .filter(|&l| l <= 0x3FFF_FFFF)?;
        buf[..4].copy_from_slice(&varlena_header(len));
        Some(buf)
    }

    /// The top claims, from the holes `encode` matched (`spans`).
    fn top_claims(&self, json: &[u8], spans: &[(u32, u32)]) -> Top {
        let mut top = Top {
            text: String::with_capacity(192),
            ..Top::default()
        };
        let text = |k: u16| {
            let (a, b) = spans[k as usize];
            let bytes = &json[a as usize..b as usize];
            debug_assert!(std::str::from_utf8(bytes).is_ok());
            // SAFETY: `encode` matched every string hole with `string_end`,
            // which answers only for text that is UTF-8 (ASCII, or checked
            // by from_utf8); `spans` are those holes' ranges.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        };
        let string = |v: &TopValue| match *v {
            TopValue::Hole(k) if self.holes[k as usize].kind == Kind::Str => text(k),
            _ => None,
        };
        for (slot, v) in &self.top {
            match *slot {
                s @ 0..=4 => top.strings[s as usize] = string(v).map(|s| top.push(s)),
                s @ 5..=7 => {
                    let number = match *v {
                        TopValue::Hole(k) if self.holes[k as usize].kind == Kind::Int => {
                            let (a, b) = spans[k as usize];
                            let (neg, digits) = int_parts(&json[a as usize..b as usize]);
                            Ok(saturating_i64(neg, digits))
                        }
                        _ => Err(()),
                    };
                    match s {
                        5 => top.exp = Some(number),
                        6 => top.nbf = Some(number),
                        _ => top.iat = Some(number),
                    }
                }
                _ => {
                    top.aud.clear();
                    let holes: &[u16] = match v {
                        TopValue::Strings(h) => h,
                        TopValue::Hole(k) => std::slice::from_ref(k),
                        TopValue::Other => &[],
                    };
                    for &k in holes {
                        if self.holes[k as usize].kind == Kind::Str {
                            if let Some(a) = text(k) {
                                let r = top.push(a);
                                top.aud.push(r);
                            }
                        }
                    }
                }
            }
        }
        top
    }
}

/// Which tape indexes hold an object's keys.
fn key_positions(doc: &Doc) -> Vec<bool> {
    let mut key = vec![false; doc.tape.len()];
    for (i, t) in doc.tape.iter().enumerate() {
        if let Tok::Object { n, .. } = *t {
            let mut e = i + 1;
            for _ in 0..n {
                key[e] = true;
                e = doc.next(e + 1);
            }
        }
    }
    key
}

/// Sign and digits of an integer hole's text.
fn int_parts(t: &[u8]) -> (bool, &[u8]) {
    match t.first() {
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    }
}

/// The end of an integer at `pos` as the full encoder takes one
/// (`-?(0|[1-9][0-9]*)`, at most its digit limit); what follows is the
/// skeleton's to check.
fn integer_end(s: &[u8], pos: usize) -> Option<usize> {
    let start = pos + (s.get(pos)? == &b'-') as usize;
    let mut i = start;
    match *s.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            while s.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
        }
        _ => return None,
    }
    (i - start <= NUMERIC_SHORT_WEIGHT_MAX * 4).then_some(i)
}

/// The end of a string hole's text at `pos`: the first quote, when no
/// backslash or control character comes before it and the bytes before it
/// are UTF-8. 16 bytes per step with SSE2 (which also sees any non-ASCII
/// byte: then that hole alone is checked), a byte at a time near the end.
#[inline]
fn string_end(s: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos;
    let mut ascii = true;
    #[cfg(target_arch = "x86_64")]
    while let Some(w) = s.get(at..at + 16) {
        let w: &[u8; 16] = w.try_into().ok()?;
        let (m, high) = (super::special_mask(w), high_bits(w));
        if m != 0 {
            let n = m.trailing_zeros();
            ascii &= high & ((1u32 << n) - 1) == 0;
            at += n as usize;
            return finish_string(s, pos, at, ascii);
        }
        ascii &= high == 0;
        at += 16;
    }
    at += special(&s[at..])?;
    finish_string(s, pos, at, false)
}

/// `string_end`'s answer once the special byte at `at` is found.
#[inline]
fn finish_string(s: &[u8], pos: usize, at: usize, ascii: bool) -> Option<usize> {
    if s[at] != b'"' || !(ascii || std::str::from_utf8(&s[pos..at]).is_ok()) {
        return None;
    }
    Some(at)
}

/// One bit per byte of `w` at or over 0x80.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn high_bits(w: &[u8; 16]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is baseline on x86_64; the load reads the 16 bytes of `w`.
    unsafe { _mm_movemask_epi8(_mm_loadu_si128(w.as_ptr().cast())) as u32 }
}

/// Whether `s[pos..]` starts with `seg`: 8 bytes at a time, the last
/// (overlapping) 8 for the rest; no call to memcmp.
#[inline]
fn same_at(s: &[u8], pos: usize, seg: &[u8]) -> bool {
    let Some(t) = s.get(pos..pos + seg.len()) else {
        return false;
    };
    let n = seg.len();
    let word = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    if n < 8 {
        return t == seg;
    }
    let mut i = 0;
    while i + 8 <= n {
        if word(t, i) != word(seg, i) {
            return false;
        }
        i += 8;
    }
    i == n || word(t, n - 8) == word(seg, n - 8)
}

/// A backend's templates (see the module comment and `recent`).
#[derive(Default)]
pub struct Shapes {
    shapes: Recent<Shape>,
    spans: Vec<(u32, u32)>,
}

impl Shapes {
    /// `encode_claims_with`'s answer, from a template when one matches.
    pub fn encode(&mut self, json: &[u8], mut tick: impl FnMut()) -> Option<Encoded> {
        let spans = &mut self.spans;
        if let Some(e) = self.shapes.find(|s| s.encode(json, spans, &mut tick)) {
            return Some(e);
        }
        let (doc, top) = parse_claims(json, &mut tick)?;
        if !self.shapes.make_one() {
            return write_doc(&doc, &mut ()).map(|bytes| Encoded { bytes, top });
        }
        let (bytes, shape) = Shape::of(&doc)?;
        if let Some(s) = shape {
            self.shapes.add(s);
        }
        Some(Encoded { bytes, top })
    }

    /// Payloads encoded from a template so far.
    pub fn hits(&self) -> u64 {
        self.shapes.hits()
    }

    /// Templates held.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shapes.len() == 0
    }
}

thread_local! {
    static BACKEND: RefCell<Shapes> = RefCell::new(Shapes::default());
    /// A jsonb buffer handed back by the caller once it has copied the
    /// bytes out (`recycle`), for the next payload: no allocation per token.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer `recycle` keeps (bytes of capacity).
const SPARE_KEPT: usize = 4096;

/// An empty buffer of at least `cap` bytes: the recycled one when big enough.
fn spare(cap: usize) -> Vec<u8> {
    let mut v = SPARE.with(std::cell::Cell::take);
    v.clear();
    v.reserve(cap);
    v
}

/// Hands `bytes` (an `Encoded`'s, copied out) back for the next encoding;
/// one buffer of at most `SPARE_KEPT` bytes is kept.
pub fn recycle(bytes: Vec<u8>) {
    if bytes.capacity() <= SPARE_KEPT {
        SPARE.with(|s| s.set(bytes));
    }
}

/// `encode_claims_with` through this thread's (backend's) templates.
pub fn encode_claims_shaped(json: &[u8], tick: impl FnMut()) -> Option<Encoded> {
    BACKEND.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => s.encode(json, tick),
        // Not reentrant; never expected, but never a panic.
        Err(_) => super::encode_claims_with(json, tick),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonb::encode_claims;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A document's shape: what stays the same between payloads.
    #[derive(Clone)]
    enum Node {
        Str,
        Int,
        Literal(&'static str),
        Object(Vec<(String, Node)>),
        Array(Vec<Node>),
    }

    const KEYS: [&str; 16] = [
        "sub",
        "jti",
        "aud",
        "exp",
        "iat",
        "nbf",
        "iss",
        "session_id",
        "token_id",
        "role",
        "email",
        "a",
        "amr",
        "app_metadata",
        "a_rather_long_key_name",
        "a_rather_long_key_other",
    ];

    fn node(r: &mut StdRng, depth: usize) -> Node {
        match r.gen_range(0..if depth > 2 { 5 } else { 8 }) {
            0 | 1 => Node::Str,
            2 | 3 => Node::Int,
            4 => Node::Literal(["true", "false", "null"][r.gen_range(0..3)]),
            5 | 6 => {
                // Now and then a root with over 32 children (JEntries
                // holding offsets among the values).
                let n = if depth == 0 && r.gen_bool(0.2) {
                    r.gen_range(17..45)
                } else {
                    r.gen_range(0..6)
                };
                let mut keys: Vec<String> = (0..n)
                    .map(|_| {
                        if r.gen_bool(0.7) {
                            KEYS[r.gen_range(0..KEYS.len())].to_string()
                        } else {
                            (0..r.gen_range(0..12))
                                .map(|_| r.gen_range(b'a'..=b'z') as char)
                                .collect()
                        }
                    })
                    .collect();
                // Now and then a duplicate key (no template then).
                if r.gen_bool(0.9) {
                    keys.sort();
                    keys.dedup();
                }
                Node::Object(keys.into_iter().map(|k| (k, node(r, depth + 1))).collect())
            }
            _ => Node::Array((0..r.gen_range(0..4)).map(|_| node(r, depth + 1)).collect()),
        }
    }

    fn string(r: &mut StdRng, len: usize) -> String {
        (0..len)
            .map(|_| match r.gen_range(0..20) {
                0 => 'é',
                1 => '€',
                2 => '𝄞',
                _ => r.gen_range(b' '..=b'~') as char,
            })
            .filter(|&c| c != '"' && c != '\\')
            .collect()
    }

    fn int(r: &mut StdRng) -> String {
        match r.gen_range(0..6) {
            0 => "0".into(),
            1 => "-0".into(),
            2 => format!("-{}", r.gen_range(1..100_000u64)),
            3 => format!("{}0000", r.gen_range(1..1_000u64)),
            4 => format!("{}{}", r.gen_range(1..10u8), "0".repeat(r.gen_range(0..30))),
            _ => r.gen_range(1_700_000_000..1_800_000_000u64).to_string(),
        }
    }

    /// The text of `n` with fresh values; `fixed`: strings of 'x' and the
    /// integer 1234 instead (every value keeps its size).
    fn render(n: &Node, r: &mut StdRng, out: &mut String, fixed: bool) {
        match n {
            Node::Str if fixed => out.push_str("\"xxxx\""),
            Node::Str => {
                let len = r.gen_range(0..40);
                out.push('"');
                out.push_str(&string(r, len));
                out.push('"');
            }
            Node::Int if fixed => out.push_str("1234"),
            Node::Int => out.push_str(&int(r)),
            Node::Literal(l) => out.push_str(l),
            Node::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("\"{k}\":"));
                    render(v, r, out, fixed);
                }
                out.push('}');
            }
            Node::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render(v, r, out, fixed);
                }
                out.push(']');
            }
        }
    }

    fn root(r: &mut StdRng) -> Node {
        loop {
            if let n @ Node::Object(_) = node(r, 0) {
                return n;
            }
        }
    }

    /// The text of a root object: top-level values fresh; nested ones
    /// fresh too, or (`nested_fixed`) strings of 'x' and the integer 1234,
    /// which keep the template's encoded lengths when it was made the same way.
    fn payload(n: &Node, r: &mut StdRng, nested_fixed: bool) -> String {
        let Node::Object(m) = n else { unreachable!() };
        let mut out = String::from("{");
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("\"{k}\":"));
            let top_level = matches!(v, Node::Str | Node::Int);
            render(v, r, &mut out, nested_fixed && !top_level);
        }
        out.push('}');
        out
    }

    fn shape_of(json: &[u8]) -> Option<Shape> {
        let (doc, _) = parse_claims(json, || {})?;
        Shape::of(&doc)?.1
    }

    fn same(a: &Encoded, b: &Encoded) -> bool {
        a.bytes == b.bytes && a.top == b.top
    }

    #[test]
    fn a_template_gives_the_full_encoders_bytes_and_claims() {
        let mut r = StdRng::seed_from_u64(19);
        let (mut hits, mut declined) = (0, 0);
        for _ in 0..3_000 {
            let n = root(&mut r);
            let fixed = r.gen_bool(0.6);
            let p0 = payload(&n, &mut r, fixed);
            let Some(shape) = shape_of(p0.as_bytes()) else {
                declined += 1;
                continue;
            };
            for _ in 0..8 {
                let p1 = payload(&n, &mut r, fixed);
                let full = encode_claims(p1.as_bytes()).expect("the full encoder takes it");
                match shape.encode(p1.as_bytes(), &mut vec![], &mut || {}) {
                    Some(e) => {
                        if !same(&e, &full) {
                            eprintln!(
                                "{:?}\n{:?}\n{:?}\n{:?}",
                                e.bytes, full.bytes, e.top, full.top
                            );
                        }
                        assert!(same(&e, &full), "{p0}\n{p1}");
                        hits += 1;
                        // Half the buffers come back (verify_jwt's copy
                        // done): the next payloads are written into them.
                        if hits % 2 == 0 {
                            recycle(e.bytes);
                        }
                    }
                    // Only a nested value of another length declines.
                    None => assert!(!fixed, "{p0}\n{p1}"),
                }
            }
        }
        // Not vacuous: most documents make a template, most variants match.
        assert!(declined < 400, "{declined}");
        assert!(hits > 12_000, "{hits}");
    }

    #[test]
    fn a_payload_of_another_shape_does_not_match() {
        let t = br#"{"a":"x","b":12,"c":{"d":[1,"y"]},"e":true}"#;
        let shape = shape_of(t).unwrap();
        let matches = |p: &[u8]| shape.encode(p, &mut vec![], &mut || {}).is_some();
        assert!(matches(
            br#"{"a":"xyz","b":-3000,"c":{"d":[7,"z"]},"e":true}"#
        ));
        for p in [
            &br#"{"a":"x","b":12,"c":{"d":[1,"y"]},"e":false}"#[..], // a literal
            br#"{"a":1,"b":12,"c":{"d":[1,"y"]},"e":true}"#,         // a kind
            br#"{"a":"x","b":12.5,"c":{"d":[1,"y"]},"e":true}"#,     // a fraction
            br#"{"a":"x","b":1e5,"c":{"d":[1,"y"]},"e":true}"#,      // an exponent
            br#"{"a":"x","b":012,"c":{"d":[1,"y"]},"e":true}"#,      // a leading zero
            br#"{"a":"x\n","b":12,"c":{"d":[1,"y"]},"e":true}"#,     // an escape
            b"{\"a\":\"x\x01\",\"b\":12,\"c\":{\"d\":[1,\"y\"]},\"e\":true}", // a control
            br#"{"a":"x","b":12,"c":{"d":[1,"yy"]},"e":true}"#,      // nested length
            br#"{"a":"x","b":12,"c":{"d":[1,"y"]},"e":true} "#,      // trailing text
            br#"{"a":"x","b":12,"c":{"d":[1,"y"]},"e":tru"#,         // cut short
            br#"{"b":12,"a":"x","c":{"d":[1,"y"]},"e":true}"#,       // key order
        ] {
            assert!(!matches(p), "{}", String::from_utf8_lossy(p));
        }
        // Invalid UTF-8 in a hole.
        assert!(!matches(
            b"{\"a\":\"\xff\",\"b\":12,\"c\":{\"d\":[1,\"y\"]},\"e\":true}"
        ));
    }

    #[test]
    fn no_template_of_duplicates_or_escapes() {
        assert!(shape_of(br#"{"a":"x","a":"y"}"#).is_none());
        assert!(shape_of(br#"{"a":{"b":1,"b":2}}"#).is_none());
        assert!(shape_of(br#"{"a":"x\"y"}"#).is_none());
        assert!(shape_of(br#"{"a":"x"}"#).is_some());
    }

    #[test]
    fn a_backend_keeps_few_templates_and_backs_off() {
        let mut s = Shapes::default();
        let mut made = 0;
        for i in 0..200 {
            // Every payload a new shape (a new key).
            let p = format!(r#"{{"k{i}":"v","sub":"x"}}"#);
            let before = s.len();
            let e = s.encode(p.as_bytes(), || {}).unwrap();
            assert!(same(&e, &encode_claims(p.as_bytes()).unwrap()));
            if s.len() > before || s.shapes.first().is_some_and(|t| t.text == p.as_bytes()) {
                made += 1;
            }
        }
        assert!(s.len() <= 4);
        assert!(made < 20, "{made}");
        // A shape seen again matches, and resets the back-off.
        let p = br#"{"k199":"other value","sub":"y"}"#;
        let mut holes = 0;
        s.encode(p, || holes += 1).unwrap();
        assert!(holes > 0);
    }
}
