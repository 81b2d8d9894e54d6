//! JSON text to Postgres' binary jsonb, byte for byte what `jsonb_in`
//! produces, for the JWT payloads verify_jwt returns.
//!
//! Why: `jsonb_in` on a ~700-byte token payload was half of verify_jwt's
//! time (its lexer appends one char at a time, then every object's keys go
//! through qsort). This encoder parses and lays out the container in one
//! pass over a small tree.
//!
//! It accepts only what it is sure of and answers `None` for anything else
//! (numbers with a fraction or exponent, integers longer than a short
//! numeric holds, nesting deeper than 64, any syntax error, \u0000, lone
//! surrogates, raw control characters, invalid UTF-8): the caller then uses
//! `jsonb_in` itself, so an accepted input gives the same value and a
//! refused one the same error as before. A differential test in
//! `api::jwt` (pg_test) compares the bytes with `jsonb_in`'s over thousands
//! of documents.
//!
//! Layout (src/include/utils/jsonb.h, convertToJsonb in jsonb_util.c):
//! a varlena header, then the root container: a u32 header (count | kind
//! flag), one u32 JEntry per child (for objects: all keys, sorted by length
//! then bytes, duplicates removed keeping the last value, then all values),
//! then the children's data. A JEntry holds the child's type and its length,
//! except every 32nd, which holds the end offset (HAS_OFF). Numerics and
//! containers are aligned to 4 bytes; the padding counts in their length.

mod recent;
pub mod shape;
pub mod stored;
pub mod text_shape;

const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const NUMERIC_SHORT: u16 = 0x8000;
const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
const NUMERIC_SHORT_WEIGHT_MAX: usize = 63;
const MAX_DEPTH: usize = 64;

/// One token of the parse, on a flat tape (no tree to build, move or free).
#[derive(Clone, Copy)]
enum Tok {
    Null,
    Bool(bool),
    /// Bytes `a..b` of the input, or of the arena (unescaped) when `arena`.
    Str {
        a: u32,
        b: u32,
        arena: bool,
    },
    /// An integer: sign and its decimal digits `a..b` of the input.
    Int {
        neg: bool,
        a: u32,
        b: u32,
    },
    /// `n` pairs (key, value) follow; the container ends before tape index `end`.
    Object {
        n: u32,
        end: u32,
    },
    /// `n` values follow; ends before tape index `end`.
    Array {
        n: u32,
        end: u32,
    },
}

/// A parsed document: the tape, the input and the unescaped strings.
struct Doc<'a> {
    tape: Vec<Tok>,
    input: &'a [u8],
    arena: Vec<u8>,
}

impl Doc<'_> {
    /// A string token's length and its first 8 bytes as a big-endian
    /// integer, zero-padded: (length, head) orders keys as jsonb does,
    /// except long keys sharing their head. (One 8-byte load where 8 bytes
    /// are readable, not a copy into a buffer read back, which stalls.)
    #[inline]
    fn key_head(&self, t: Tok) -> (usize, u64) {
        let Tok::Str { a, b, arena } = t else {
            return (0, 0);
        };
        let src = if arena { &self.arena[..] } else { self.input };
        let (a, len) = (a as usize, (b - a) as usize);
        let w = match src.get(a..a + 8) {
            Some(w) => u64::from_be_bytes(w.try_into().unwrap_or([0; 8])),
            None => src[a..a + len.min(8)]
                .iter()
                .enumerate()
                .fold(0, |v, (i, &c)| v | (c as u64) << (56 - 8 * i)),
        };
        let head = match len {
            0 => 0,
            1..=7 => w & !(u64::MAX >> (8 * len)),
            _ => w,
        };
        (len, head)
    }

    #[inline]
    fn bytes(&self, t: Tok) -> &[u8] {
        match t {
            Tok::Str { a, b, arena: false } => &self.input[a as usize..b as usize],
            Tok::Str { a, b, arena: true } => &self.arena[a as usize..b as usize],
            Tok::Int { a, b, .. } => &self.input[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Appends a string token's bytes; its JEntry (the length).
    #[inline]
    fn append(&self, buf: &mut Vec<u8>, t: Tok) -> Option<u32> {
        let Tok::Str { a, b, arena } = t else {
            return None;
        };
        let src = if arena { &self.arena[..] } else { self.input };
        append(buf, src, a as usize, (b - a) as usize);
        Some(b - a).filter(|&l| l <= JENTRY_OFFLENMASK)
    }

    /// The tape index after the value at `i`.
    fn next(&self, i: usize) -> usize {
        match self.tape[i] {
            Tok::Object { end, .. } | Tok::Array { end, .. } => end as usize,
            _ => i + 1,
        }
    }
}

/// The top-level claims a JWT verifier reads, taken from the parse (of
/// duplicate keys the last, as jsonb keeps), so it needs no lookup in the
/// binary value afterwards.
#[derive(Default, Debug, PartialEq, Clone)]
pub struct Top {
    /// exp, nbf, iat: absent, an integer (saturated to i64), or Err when
    /// present but not a number.
    pub exp: Option<Result<i64, ()>>,
    pub nbf: Option<Result<i64, ()>>,
    pub iat: Option<Result<i64, ()>>,
    /// The text of the string claims below, one buffer (one allocation).
    text: String,
    /// sub, jti, session_id, iss, token_id when they are strings: ranges
    /// of `text`.
    strings: [Option<(u32, u32)>; 5],
    /// aud: a string, or the string elements of an array: ranges of `text`.
    aud: Vec<(u32, u32)>,
}

const TOP_STRINGS: [&str; 5] = ["sub", "jti", "session_id", "iss", "token_id"];

impl Top {
    pub fn number(&self, k: &str) -> Option<Result<i64, ()>> {
        match k {
            "exp" => self.exp,
            "nbf" => self.nbf,
            "iat" => self.iat,
            _ => None,
        }
    }

    fn range(&self, r: (u32, u32)) -> &str {
        &self.text[r.0 as usize..r.1 as usize]
    }

    /// The string claims it holds; `None` for a key it does not track.
    pub fn string(&self, k: &str) -> Option<Option<&str>> {
        let i = TOP_STRINGS.iter().position(|t| *t == k)?;
        Some(self.strings[i].map(|r| self.range(r)))
    }

    /// The aud values (a string, or an array's string elements).
    pub fn aud(&self) -> impl Iterator<Item = &str> {
        self.aud.iter().map(|&r| self.range(r))
    }

    fn push(&mut self, s: &str) -> (u32, u32) {
        let a = self.text.len() as u32;
        self.text.push_str(s);
        (a, self.text.len() as u32)
    }

    fn take(&mut self, key: &[u8], doc: &Doc, v: usize) {
        // Most keys are none of these: decided by length, then one
        // comparison, not a comparison per name.
        let slot = match key.len() {
            3 => match key {
                b"exp" | b"nbf" | b"iat" | b"aud" => None,
                b"sub" => Some(0),
                b"jti" => Some(1),
                b"iss" => Some(3),
                _ => return,
            },
            8 if key == b"token_id" => Some(4),
            10 if key == b"session_id" => Some(2),
            _ => return,
        };
        // The input was checked to be UTF-8 and unescaping writes whole
        // characters, so a string token is UTF-8; from_utf8 says so again.
        let string = |i: usize| match doc.tape[i] {
            t @ Tok::Str { .. } => std::str::from_utf8(doc.bytes(t)).ok(),
            _ => None,
        };
        if let Some(i) = slot {
            debug_assert_eq!(TOP_STRINGS[i].as_bytes(), key);
            self.strings[i] = string(v).map(|s| self.push(s));
            return;
        }
        let number = |i: usize| match doc.tape[i] {
            t @ Tok::Int { neg, .. } => Ok(saturating_i64(neg, doc.bytes(t))),
            _ => Err(()),
        };
        match key {
            b"exp" => self.exp = Some(number(v)),
            b"nbf" => self.nbf = Some(number(v)),
            b"iat" => self.iat = Some(number(v)),
            _ => {
                self.aud.clear();
                match doc.tape[v] {
                    Tok::Str { .. } => {
                        if let Some(a) = string(v) {
                            let r = self.push(a);
                            self.aud.push(r);
                        }
                    }
                    Tok::Array { end, .. } => {
                        let mut i = v + 1;
                        while i < end as usize {
                            if let Some(a) = string(i) {
                                let r = self.push(a);
                                self.aud.push(r);
                            }
                            i = doc.next(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn saturating_i64(neg: bool, digits: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for &d in digits {
        let d = (d - b'0') as i64;
        v = match v.checked_mul(10).and_then(|x| {
            if neg {
                x.checked_sub(d)
            } else {
                x.checked_add(d)
            }
        }) {
            Some(x) => x,
            None => return if neg { i64::MIN } else { i64::MAX },
        };
    }
    v
}

/// A payload as jsonb, with its top-level claims.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub top: Top,
}

/// The jsonb (varlena header included) of `json` when it is a JSON object
/// this encoder handles; `None` otherwise (see the module comment).
pub fn encode_object(json: &[u8]) -> Option<Vec<u8>> {
    encode_claims(json).map(|e| e.bytes)
}

/// `encode_object` and the claims a verifier reads.
pub fn encode_claims(json: &[u8]) -> Option<Encoded> {
    encode_claims_with(json, || {})
}

/// `encode_claims`, calling `tick` once per string parsed: other work
/// for the CPU to run between the parser's steps (verify_jwt compresses a
/// block of its HMAC every few strings, jwt::hs256 says why).
pub fn encode_claims_with(json: &[u8], tick: impl FnMut()) -> Option<Encoded> {
    let (doc, top) = parse_claims(json, tick)?;
    let bytes = write_doc(&doc, &mut ())?;
    Some(Encoded { bytes, top })
}

/// The tape of a JSON object this encoder handles, and its top claims.
fn parse_claims(json: &[u8], tick: impl FnMut()) -> Option<(Doc<'_>, Top)> {
    std::str::from_utf8(json).ok()?;
    // Tape positions are u32.
    u32::try_from(json.len()).ok()?;
    let mut p = Parser {
        s: json,
        i: 0,
        // About one token per 8 bytes of a claims payload.
        tape: Vec::with_capacity(json.len() / 6 + 16),
        arena: Vec::new(),
        tick,
    };
    p.ws();
    if p.peek()? != b'{' {
        return None;
    }
    p.value(0)?;
    p.ws();
    if p.i != json.len() {
        return None;
    }
    let doc = Doc {
        tape: p.tape,
        input: json,
        arena: p.arena,
    };
    // Top-level pairs in input order: for duplicate keys the last one wins.
    // Room for sub, jti, session_id, iss, aud (one allocation).
    let mut top = Top {
        text: String::with_capacity(192),
        ..Top::default()
    };
    let mut i = 1;
    while i < doc.tape.len() {
        let k = doc.bytes(doc.tape[i]);
        top.take(k, &doc, i + 1);
        i = doc.next(i + 1);
    }
    Some((doc, top))
}

/// The jsonb (varlena header included) of a parsed document.
fn write_doc<R: Rec>(doc: &Doc, rec: &mut R) -> Option<Vec<u8>> {
    let json = doc.input;
    let mut buf = Vec::with_capacity(json.len() + json.len() / 2 + 64);
    buf.extend_from_slice(&[0; 4]);
    let mut members = Vec::with_capacity(doc.tape.len() / 2);
    write_value(&mut buf, doc, 0, &mut members, rec)?;
    let len = u32::try_from(buf.len())
        .ok()
        .filter(|&l| l <= 0x3FFF_FFFF)?;
    buf[..4].copy_from_slice(&varlena_header(len));
    Some(buf)
}

/// SET_VARSIZE's 4-byte header.
fn varlena_header(len: u32) -> [u8; 4] {
    if cfg!(target_endian = "little") {
        (len << 2).to_ne_bytes()
    } else {
        (len & 0x3FFF_FFFF).to_ne_bytes()
    }
}

struct Parser<'a, T> {
    s: &'a [u8],
    i: usize,
    tape: Vec<Tok>,
    arena: Vec<u8>,
    tick: T,
}

impl<'a, T: FnMut()> Parser<'a, T> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// JSON whitespace, as Postgres' lexer skips it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Parses one value onto the tape.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => self.container(depth, true),
            b'[' => self.container(depth, false),
            b'"' => self.string(),
            b't' => self.word(b"true", Tok::Bool(true)),
            b'f' => self.word(b"false", Tok::Bool(false)),
            b'n' => self.word(b"null", Tok::Null),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    /// An object (key-value pairs) or an array (values) onto the tape: a
    /// placeholder first, completed with the member count and its end.
    fn container(&mut self, depth: usize, object: bool) -> Option<()> {
        let close = if object { b'}' } else { b']' };
        self.i += 1;
        let at = self.tape.len();
        self.tape.push(Tok::Null);
        let mut n = 0u32;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
        } else {
            loop {
                if object {
                    self.ws();
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.i += 1;
                }
                self.value(depth + 1)?;
                n += 1;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let end = u32::try_from(self.tape.len()).ok()?;
        self.tape[at] = if object {
            Tok::Object { n, end }
        } else {
            Tok::Array { n, end }
        };
        Some(())
    }

    /// A literal, which Postgres' lexer ends at the first non-alphanumeric.
    fn word(&mut self, w: &[u8], t: Tok) -> Option<()> {
        if !self.s[self.i..].starts_with(w) {
            return None;
        }
        self.i += w.len();
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            return None;
        }
        self.tape.push(t);
        Some(())
    }

    /// `-?(0|[1-9][0-9]*)` followed by a delimiter; a fraction or exponent is
    /// left to jsonb_in.
    fn integer(&mut self) -> Option<()> {
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            return None;
        }
        // A short numeric holds weights up to 63 (252 decimal digits).
        if self.i - start > NUMERIC_SHORT_WEIGHT_MAX * 4 {
            return None;
        }
        self.tape.push(Tok::Int {
            neg,
            a: start as u32,
            b: self.i as u32,
        });
        Some(())
    }

    /// A string token onto the tape: input bytes when it has no escape,
    /// else unescaped into the arena. (Pushed here rather than returned: a
    /// returned `Option<Tok>` went through memory, and reading it back
    /// stalled on store forwarding.)
    fn string(&mut self) -> Option<()> {
        (self.tick)();
        let t = self.string_token()?;
        self.tape.push(t);
        Some(())
    }

    fn string_token(&mut self) -> Option<Tok> {
        self.i += 1; // the opening quote
        let start = self.i;
        // To the first quote, backslash or control character.
        self.i = start + special(self.s.get(start..)?)?;
        match self.s[self.i] {
            b'"' => {
                self.i += 1;
                return Some(Tok::Str {
                    a: start as u32,
                    b: self.i as u32 - 1,
                    arena: false,
                });
            }
            b'\\' => {}
            _ => return None,
        }
        let from = self.arena.len();
        self.arena.extend_from_slice(&self.s[start..self.i]);
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(Tok::Str {
                        a: from as u32,
                        b: self.arena.len() as u32,
                        arena: true,
                    });
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.peek()?;
                    self.i += 1;
                    match c {
                        b'"' | b'\\' | b'/' => self.arena.push(c),
                        b'b' => self.arena.push(0x08),
                        b'f' => self.arena.push(0x0C),
                        b'n' => self.arena.push(b'\n'),
                        b'r' => self.arena.push(b'\r'),
                        b't' => self.arena.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if self.s.get(self.i..self.i + 2)? != b"\\u" {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            } else if (0xDC00..0xE000).contains(&cp) || cp == 0 {
                                return None;
                            }
                            let ch = char::from_u32(cp)?;
                            let mut b = [0u8; 4];
                            self.arena
                                .extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                c => {
                    self.arena.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }
}

/// The position of the first quote, backslash or control character in `s`:
/// 16 bytes per step with SSE2 (part of every x86_64), one table lookup
/// per byte for the rest and elsewhere.
#[inline]
fn special(s: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    return first_where(s, special_mask, |c| NEEDS_ESCAPE[c as usize]);
    #[cfg(not(target_arch = "x86_64"))]
    s.iter().position(|&c| NEEDS_ESCAPE[c as usize])
}

/// The first byte of `s` that `mask` marks (a bit per byte of 16), 16
/// bytes per step, then `one` a byte at a time for the last few: the scan
/// behind `special` and the JWT splitter's first dot.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn first_where(
    s: &[u8],
    mask: impl Fn(&[u8; 16]) -> u32,
    one: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut at = 0;
    while let Some(w) = s.get(at..at + 16) {
        let m = mask(w.try_into().ok()?);
        if m != 0 {
            return Some(at + m.trailing_zeros() as usize);
        }
        at += 16;
    }
    s[at..].iter().position(|&c| one(c)).map(|n| at + n)
}

/// `special` for `c[at..end]`, as an offset from `at`. A short run (most
/// keys and claim values) with 16 bytes of `c` readable from `at` is one
/// SSE2 step, the bytes past `end` masked off, instead of a byte loop.
#[inline]
fn special_in(c: &[u8], at: usize, end: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if end - at <= 16 {
        if let Some(w) = c.get(at..at + 16) {
            let m = special_mask(w.try_into().ok()?) & ((1u32 << (end - at)) - 1);
            return (m != 0).then_some(m.trailing_zeros() as usize);
        }
    }
    special(&c[at..end])
}

/// One bit per byte of `w` that is a quote, a backslash or a control
/// character.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special_mask(w: &[u8; 16]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is baseline on x86_64; the load reads the 16 bytes of `w`.
    unsafe {
        let x = _mm_loadu_si128(w.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
        // x <= 0x1F (unsigned) exactly when max(x, 0x1F) == 0x1F.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1F)), _mm_set1_epi8(0x1F));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// Appends `src[at..at + n]`. Up to 16 bytes with 16 readable from `at`
/// (most keys and claim values): one fixed-size copy and a truncate, no
/// call to memcpy.
#[inline(always)]
fn append(out: &mut Vec<u8>, src: &[u8], at: usize, n: usize) {
    if n <= 16 {
        if let Some(w) = src.get(at..at + 16) {
            if let Ok(w) = <&[u8; 16]>::try_from(w) {
                let len = out.len();
                out.extend_from_slice(w);
                out.truncate(len + n);
                return;
            }
        }
    }
    out.extend_from_slice(&src[at..at + n]);
}

fn pad_to_int(buf: &mut Vec<u8>) -> u32 {
    let pad = (4 - buf.len() % 4) % 4;
    buf.resize(buf.len() + pad, 0);
    pad as u32
}

/// One member of an object being written: its key's sort key (length,
/// then the first 8 bytes big-endian, zero-padded: integer comparisons
/// decide all but long keys with a common head) and tape indexes.
#[derive(Clone, Copy)]
struct Member {
    /// (length, head): two words, each read back as it was stored (a
    /// 16-byte load over two 8-byte stores would stall).
    len: u64,
    head: u64,
    key: u32,
    value: u32,
}

/// Appends the data of the value at tape index `i` and returns its JEntry
/// (type | length). `members` is scratch space, used as a stack.
/// A scalar is written in place (most children are; a call per child of
/// the whole container writer cost more than the writing), a container by
/// `write_tape_container`.
#[inline(always)]
fn write_value<R: Rec>(
    buf: &mut Vec<u8>,
    doc: &Doc,
    i: usize,
    members: &mut Vec<Member>,
    rec: &mut R,
) -> Option<u32> {
    let start = buf.len();
    let meta = match doc.tape[i] {
        Tok::Null => Some(JENTRY_ISNULL),
        Tok::Bool(true) => Some(JENTRY_ISBOOL_TRUE),
        Tok::Bool(false) => Some(JENTRY_ISBOOL_FALSE),
        t @ Tok::Str { .. } => doc.append(buf, t),
        t @ Tok::Int { neg, .. } => {
            let pad = pad_to_int(buf);
            Some(JENTRY_ISNUMERIC | (pad + write_numeric(buf, neg, doc.bytes(t))))
        }
        _ => write_tape_container(buf, doc, i, members, rec),
    };
    if R::ON {
        // Where the value's data starts: after any alignment padding.
        let at = match doc.tape[i] {
            Tok::Int { .. } | Tok::Object { .. } | Tok::Array { .. } => int_align(start),
            _ => start,
        };
        rec.value(i, at, buf.len());
    }
    meta
}

/// What the writer reports while it lays a document out, for
/// `shape::Shape` (the hot path's `()` records nothing and compiles away).
trait Rec {
    const ON: bool;
    /// The value at tape index `i` was written to `buf[start..end]`
    /// (its data, after alignment padding).
    fn value(&mut self, i: usize, start: usize, end: usize);
    /// An object had duplicate keys (some values were dropped).
    fn duplicates(&mut self);
}

impl Rec for () {
    const ON: bool = false;
    #[inline(always)]
    fn value(&mut self, _: usize, _: usize, _: usize) {}
    #[inline(always)]
    fn duplicates(&mut self) {}
}

#[inline(never)]
fn write_tape_container<R: Rec>(
    buf: &mut Vec<u8>,
    doc: &Doc,
    i: usize,
    members: &mut Vec<Member>,
    rec: &mut R,
) -> Option<u32> {
    match doc.tape[i] {
        Tok::Array { n, .. } => {
            let mut e = i + 1;
            write_array_container(buf, n as usize, |buf, _| {
                let meta = write_value(buf, doc, e, members, rec);
                e = doc.next(e);
                meta
            })
        }
        Tok::Object { n, .. } => {
            // Sorted by (length, bytes), the later of equal keys first,
            // keeping the first of each run: the last value wins, as in
            // uniqueifyJsonbObject.
            let base = members.len();
            let mut e = i + 1;
            for _ in 0..n {
                let (len, head) = doc.key_head(doc.tape[e]);
                members.push(Member {
                    len: len as u64,
                    head,
                    key: e as u32,
                    value: (e + 1) as u32,
                });
                e = doc.next(e + 1);
            }
            let cmp = |a: &Member, b: &Member| {
                (a.len, a.head).cmp(&(b.len, b.head)).then_with(|| {
                    let (ka, kb) = (
                        doc.bytes(doc.tape[a.key as usize]),
                        doc.bytes(doc.tape[b.key as usize]),
                    );
                    if ka.len() > 8 {
                        ka[8..].cmp(&kb[8..])
                    } else {
                        std::cmp::Ordering::Equal
                    }
                    .then(b.value.cmp(&a.value))
                })
            };
            let pairs = &mut members[base..];
            // Insertion sort: objects in claims are small and often sorted
            // already (our own tokens are written in jsonb order).
            for j in 1..pairs.len() {
                let mut k = j;
                while k > 0 && cmp(&pairs[k - 1], &pairs[k]).is_gt() {
                    pairs.swap(k - 1, k);
                    k -= 1;
                }
            }
            // Keep the first of each run of equal keys (the later value).
            let same = |a: &Member, b: &Member| {
                a.len == b.len
                    && a.head == b.head
                    && doc.bytes(doc.tape[a.key as usize]) == doc.bytes(doc.tape[b.key as usize])
            };
            let mut kept = 0;
            for k in 0..pairs.len() {
                if kept == 0 || !same(&pairs[kept - 1], &pairs[k]) {
                    pairs[kept] = pairs[k];
                    kept += 1;
                }
            }
            if kept < n as usize {
                rec.duplicates();
            }
            members.truncate(base + kept);
            let r = write_object_container(buf, kept, |buf, c| {
                if c < kept {
                    doc.append(buf, doc.tape[members[base + c].key as usize])
                } else {
                    let v = members[base + c - kept].value as usize;
                    write_value(buf, doc, v, members, rec)
                }
            });
            members.truncate(base);
            r
        }
        _ => None,
    }
}

/// Appends an object container of `n` members: `child(buf, c)` writes
/// child c and returns its JEntry: the keys first (c < n, in jsonb key
/// order, no duplicates), then value c - n of key c - n. Returns the
/// container's JEntry (its length counts the alignment padding before it).
fn write_object_container(
    buf: &mut Vec<u8>,
    n: usize,
    child: impl FnMut(&mut Vec<u8>, usize) -> Option<u32>,
) -> Option<u32> {
    write_children(buf, n as u32 | JB_FOBJECT, 2 * n, child)
}

/// Appends an array container of `n` elements, each written by
/// `value(buf, k)` (as write_object_container).
fn write_array_container(
    buf: &mut Vec<u8>,
    n: usize,
    value: impl FnMut(&mut Vec<u8>, usize) -> Option<u32>,
) -> Option<u32> {
    write_children(buf, n as u32 | JB_FARRAY, n, value)
}

/// A container with header word `header` and `children` children, each
/// written by `child(buf, c)`, which returns its JEntry.
fn write_children(
    buf: &mut Vec<u8>,
    header: u32,
    children: usize,
    mut child: impl FnMut(&mut Vec<u8>, usize) -> Option<u32>,
) -> Option<u32> {
    let base = buf.len();
    pad_to_int(buf);
    buf.extend_from_slice(&header.to_ne_bytes());
    let entries = buf.len();
    buf.resize(entries + 4 * children, 0);
    let mut total = 0u32;
    for c in 0..children {
        let meta = child(buf, c)?;
        set_entry(buf, entries, c, meta, &mut total)?;
    }
    container_entry(buf.len() - base)
}

/// Records child `k`'s JEntry at `entries`: its length, or (every
/// JB_OFFSET_STRIDE-th child) the end offset of the children so far, kept
/// in `total`.
fn set_entry(buf: &mut [u8], entries: usize, k: usize, meta: u32, total: &mut u32) -> Option<()> {
    *total = total
        .checked_add(meta & JENTRY_OFFLENMASK)
        .filter(|&t| t <= JENTRY_OFFLENMASK)?;
    let meta = if k.is_multiple_of(JB_OFFSET_STRIDE) {
        (meta & JENTRY_TYPEMASK) | *total | JENTRY_HAS_OFF
    } else {
        meta
    };
    buf[entries + 4 * k..entries + 4 * k + 4].copy_from_slice(&meta.to_ne_bytes());
    Some(())
}

fn container_entry(len: usize) -> Option<u32> {
    u32::try_from(len)
        .ok()
        .filter(|&l| l <= JENTRY_OFFLENMASK)
        .map(|l| JENTRY_ISCONTAINER | l)
}

/// An integer as numeric_in makes it (short format, dscale 0): base-10000
/// digits, leading and trailing zero digits dropped, zero is positive with
/// no digits. Returns the bytes written (varlena header included).
fn write_numeric(buf: &mut Vec<u8>, neg: bool, digits: &[u8]) -> u32 {
    // Groups of 4 decimal digits from the left, the first one short.
    let first = match digits.len() % 4 {
        0 => 4,
        r => r,
    };
    // At most 63 groups (the integer parser's limit), plus one.
    let mut store = [0i16; NUMERIC_SHORT_WEIGHT_MAX + 2];
    let mut count = 0;
    let mut at = 0;
    let mut len = first;
    while at < digits.len() {
        store[count] = digits[at..at + len]
            .iter()
            .fold(0i16, |v, &c| v * 10 + (c - b'0') as i16);
        count += 1;
        at += len;
        len = 4;
    }
    let groups = &store[..count];
    let mut weight = groups.len() as i32 - 1;
    let mut lead = 0;
    while lead < groups.len() && groups[lead] == 0 {
        lead += 1;
        weight -= 1;
    }
    let mut end = groups.len();
    while end > lead && groups[end - 1] == 0 {
        end -= 1;
    }
    let groups = &groups[lead..end];
    let (neg, weight) = if groups.is_empty() {
        (false, 0)
    } else {
        (neg, weight)
    };
    let size = 4 + 2 + 2 * groups.len() as u32;
    buf.extend_from_slice(&varlena_header(size));
    let header =
        NUMERIC_SHORT | if neg { NUMERIC_SHORT_SIGN_MASK } else { 0 } | (weight as u16 & 0x003F);
    buf.extend_from_slice(&header.to_ne_bytes());
    for g in groups {
        buf.extend_from_slice(&g.to_ne_bytes());
    }
    size
}

/// A stored jsonb object (varlena header included) as compact JSON text, in
/// its stored key order, strings escaped as jsonb_out escapes them (UTF-8
/// in, UTF-8 out: for UTF-8 databases); `key` sees each top-level key. `None` when the bytes are
/// not an object or not
/// well formed (bounds are checked, nothing is trusted).
pub fn object_to_json<'a>(jsonb: &'a [u8], mut key: impl FnMut(&'a [u8])) -> Option<Vec<u8>> {
    let len = varlena_len(jsonb, 8)?;
    let body = jsonb.get(4..len)?;
    if read_u32(body, 0)? & (JB_FOBJECT | JB_FARRAY | 0x1000_0000) != JB_FOBJECT {
        return None;
    }
    let mut out = Vec::with_capacity(len + len / 4);
    write_container(body, &mut out, Some(&mut key), 0)?;
    Some(out)
}

/// The length in a 4-byte varlena header (uncompressed, not external), when
/// it is at least `min` and within `b`.
fn varlena_len(b: &[u8], min: usize) -> Option<usize> {
    let h = u32::from_ne_bytes(b.get(..4)?.try_into().ok()?);
    let len = if cfg!(target_endian = "little") {
        if h & 0x3 != 0 {
            return None;
        }
        (h >> 2) as usize
    } else {
        if h & 0xC000_0000 != 0 {
            return None;
        }
        (h & 0x3FFF_FFFF) as usize
    };
    (len >= min && len <= b.len()).then_some(len)
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn int_align(n: usize) -> usize {
    (n + 3) & !3
}

/// Writes the container at the start of `c` (an int-aligned slice); `top`
/// sees its keys (generic: the caller's closure is inlined into the key
/// loop, where a `dyn` call per key cost about 3% of sign_jwt).
fn write_container<'a, F: FnMut(&'a [u8])>(
    c: &'a [u8],
    out: &mut Vec<u8>,
    mut top: Option<&mut F>,
    depth: usize,
) -> Option<()> {
    if depth > MAX_DEPTH * 4 {
        return None;
    }
    let container = stored::Container::at(c)?;
    let count = container.len();
    let object = container.header() & JB_FOBJECT != 0;
    // The children in order, offsets summed as they go (getJsonbOffset):
    // keys from child 0, values from child `count`, side by side.
    let mut keys = stored::Walk::new(&container)?;
    let mut values = stored::Walk::new(&container)?;
    if object {
        for _ in 0..count {
            values.next()?;
        }
    }
    if container.header() & JB_FSCALAR != 0 {
        let (t, start, end) = values.next()?;
        return write_scalar(t, c.get(start..end)?, start, c, out, depth);
    }
    out.push(if object { b'{' } else { b'[' });
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        if object {
            let (t, start, end) = keys.next()?;
            let k = c.get(start..end)?;
            if t != 0 {
                return None;
            }
            if let Some(f) = top.as_mut() {
                f(k);
            }
            escape_string(c, start, end, out);
            out.push(b':');
        }
        let (t, start, end) = values.next()?;
        write_scalar(t, c.get(start..end)?, start, c, out, depth)?;
    }
    out.push(if object { b'}' } else { b']' });
    Some(())
}

/// Writes one child: `b` its bytes (padding included), `at` where they
/// start in `c`, whose alignment numerics and containers rely on.
fn write_scalar(
    t: u32,
    b: &[u8],
    at: usize,
    c: &[u8],
    out: &mut Vec<u8>,
    depth: usize,
) -> Option<()> {
    match t {
        0 => escape_string(c, at, at + b.len(), out),
        JENTRY_ISNULL => out.extend_from_slice(b"null"),
        JENTRY_ISBOOL_TRUE => out.extend_from_slice(b"true"),
        JENTRY_ISBOOL_FALSE => out.extend_from_slice(b"false"),
        JENTRY_ISNUMERIC => write_numeric_text(c.get(int_align(at)..at + b.len())?, out)?,
        JENTRY_ISCONTAINER => {
            write_container::<fn(&[u8])>(c.get(int_align(at)..at + b.len())?, out, None, depth + 1)?
        }
        _ => return None,
    }
    Some(())
}

/// Bytes escape_json rewrites: the quote, the backslash, control characters.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// escape_json: quotes, backslash, the short escapes, other control
/// characters as \u00xx; every other byte as is (the stored bytes are in
/// the database encoding; callers use this in UTF-8 databases only). The
/// string is `c[start..end]` (`c` around it lets short strings be read 16
/// bytes at a time).
fn escape_string(c: &[u8], start: usize, end: usize, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut at = start;
    while let Some(n) = special_in(c, at, end) {
        append(out, c, at, n);
        let i = at + n;
        match c[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]);
            }
        }
        at = i + 1;
    }
    append(out, c, at, end - at);
    out.push(b'"');
}

/// A numeric varlena (short or long header, short or long numeric
/// format) read apart: (negative, dscale, weight of the first digit, the
/// base-10000 digits as native-endian i16 pairs). None for NaN and the
/// infinities (never in a jsonb) and for bytes that are no numeric.
fn numeric_parts(v: &[u8]) -> Option<(bool, usize, i32, &[u8])> {
    let first = *v.first()?;
    let (len, hdr) = if cfg!(target_endian = "little") && first & 0x01 == 0x01 {
        ((first >> 1) as usize, 1)
    } else {
        (varlena_len(v, 6)?, 4)
    };
    let n = v.get(hdr..len)?;
    let w0 = u16::from_ne_bytes(n.get(..2)?.try_into().ok()?);
    let parts = if w0 & 0xC000 == NUMERIC_SHORT {
        let weight = if w0 & 0x0040 != 0 {
            (w0 & 0x003F) as i32 - 64
        } else {
            (w0 & 0x003F) as i32
        };
        (
            w0 & NUMERIC_SHORT_SIGN_MASK != 0,
            ((w0 & 0x1F80) >> 7) as usize,
            weight,
            n.get(2..)?,
        )
    } else if w0 & 0xC000 == 0 || w0 & 0xC000 == 0x4000 {
        let weight = i16::from_ne_bytes(n.get(2..4)?.try_into().ok()?) as i32;
        (
            w0 & 0xC000 == 0x4000,
            (w0 & 0x3FFF) as usize,
            weight,
            n.get(4..)?,
        )
    } else {
        return None;
    };
    (parts.3.len() % 2 == 0).then_some(parts)
}

/// A numeric varlena as numeric_out writes it (get_str_from_var).
fn write_numeric_text(v: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (neg, dscale, weight, digits) = numeric_parts(v)?;
    let nd = (digits.len() / 2) as i32;
    let at = |i: i32| -> Option<u16> {
        if i < 0 || i >= nd {
            return Some(0);
        }
        let k = 2 * i as usize;
        let d = i16::from_ne_bytes([digits[k], digits[k + 1]]);
        (0..10_000).contains(&d).then_some(d as u16)
    };
    // Four decimal digits of a base-10000 digit.
    let four = |d: u16| -> [u8; 4] {
        [
            b'0' + (d / 1000) as u8,
            b'0' + (d / 100 % 10) as u8,
            b'0' + (d / 10 % 10) as u8,
            b'0' + (d % 10) as u8,
        ]
    };
    if neg && nd > 0 {
        out.push(b'-');
    }
    if weight < 0 {
        out.push(b'0');
    } else {
        for i in 0..=weight {
            let f = four(at(i)?);
            if i == 0 {
                // The first digit without its leading zeros.
                let skip = f.iter().take(3).take_while(|&&c| c == b'0').count();
                out.extend_from_slice(&f[skip..]);
            } else {
                out.extend_from_slice(&f);
            }
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let (mut left, mut i) = (dscale, weight + 1);
        while left > 0 {
            let f = four(at(i)?);
            let take = left.min(4);
            out.extend_from_slice(&f[..take]);
            left -= take;
            i += 1;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn empty_object_is_a_header_and_a_count() {
        let b = encode_object(b" {} ").unwrap();
        assert_eq!(b.len(), 8);
        assert_eq!(u32_at(&b, 0), 8 << 2);
        assert_eq!(u32_at(&b, 4), JB_FOBJECT);
    }

    #[test]
    fn keys_are_sorted_by_length_then_bytes_and_the_last_duplicate_wins() {
        let b = encode_object(br#"{"bb": 1, "a": "x", "ab": true, "a": "y"}"#).unwrap();
        // 3 pairs: a, ab, bb; key data right after 6 JEntries.
        assert_eq!(u32_at(&b, 4), 3 | JB_FOBJECT);
        let data = 8 + 6 * 4;
        assert_eq!(&b[data..data + 5], b"aabbb");
        // The first value (a's) is the string "y", not "x".
        assert_eq!(&b[data + 5..data + 6], b"y");
        assert_eq!(u32_at(&b, 8) & JENTRY_HAS_OFF, JENTRY_HAS_OFF);
    }

    #[test]
    fn integers_are_short_numerics() {
        let mut buf = Vec::new();
        assert_eq!(write_numeric(&mut buf, false, b"1732000000"), 10);
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), NUMERIC_SHORT | 2);
        assert_eq!(i16::from_ne_bytes([buf[6], buf[7]]), 17);
        assert_eq!(i16::from_ne_bytes([buf[8], buf[9]]), 3200);
        let mut zero = Vec::new();
        assert_eq!(write_numeric(&mut zero, true, b"0"), 6);
        assert_eq!(u16::from_ne_bytes([zero[4], zero[5]]), NUMERIC_SHORT);
        let mut neg = Vec::new();
        write_numeric(&mut neg, true, b"10000");
        assert_eq!(
            u16::from_ne_bytes([neg[4], neg[5]]),
            NUMERIC_SHORT | NUMERIC_SHORT_SIGN_MASK | 1
        );
        assert_eq!(neg.len(), 8);
    }

    #[test]
    fn what_it_does_not_handle_is_left_to_jsonb_in() {
        for s in [
            &br#"[]"#[..],
            br#"{"a": 1.5}"#,
            br#"{"a": 1e3}"#,
            br#"{"a": 01}"#,
            br#"{"a": tru}"#,
            br#"{"a": truex}"#,
            br#"{"a": "\u0000"}"#,
            br#"{"a": "\ud800"}"#,
            br#"{"a": "\udc00\ud800"}"#,
            b"{\"a\": \"\x01\"}",
            b"{\"a\": \"\xff\"}",
            br#"{"a": 1,}"#,
            br#"{"a" 1}"#,
            br#"{"a": 1} x"#,
            br#"{'a': 1}"#,
            br#"{"a": "\x"}"#,
            br#"{"a": -}"#,
        ] {
            assert!(encode_object(s).is_none(), "{}", String::from_utf8_lossy(s));
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        assert!(encode_object(deep.as_bytes()).is_none());
        let long = format!("{{\"a\":{}}}", "9".repeat(253));
        assert!(encode_object(long.as_bytes()).is_none());
    }

    #[test]
    fn top_claims_are_read_from_the_parse() {
        let e = encode_claims(
            br#"{"exp": 1, "exp": -99999999999999999999, "iat": "x", "sub": "s\u00e9", "jti": 5, "aud": ["a", 1, "b"], "iss": "i"}"#,
        )
        .unwrap();
        assert_eq!(e.top.exp, Some(Ok(i64::MIN)));
        assert_eq!(e.top.iat, Some(Err(())));
        assert_eq!(e.top.nbf, None);
        assert_eq!(e.top.string("sub"), Some(Some("sé")));
        assert_eq!(e.top.string("jti"), Some(None));
        assert_eq!(e.top.aud().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(e.top.string("iss"), Some(Some("i")));
        assert_eq!(e.top.string("email"), None);
        assert_eq!(
            encode_claims(br#"{"aud": "x"}"#)
                .unwrap()
                .top
                .aud()
                .collect::<Vec<_>>(),
            ["x"]
        );
        // Strings inside nested values of an aud array are not aud values.
        let nested = encode_claims(br#"{"aud": [["x"], {"k": "y"}, "z"]}"#).unwrap();
        assert_eq!(nested.top.aud().collect::<Vec<_>>(), ["z"]);
        assert_eq!(saturating_i64(false, b"1732000000"), 1_732_000_000);
    }

    #[test]
    fn escapes_are_decoded() {
        let b = encode_object(br#"{"k": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#).unwrap();
        let want = "a\"\\/\u{8}\u{c}\n\r\té😀".as_bytes();
        let data = 8 + 2 * 4;
        assert_eq!(&b[data + 1..data + 1 + want.len()], want);
        assert_eq!(b.len(), data + 1 + want.len());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = encode_object(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_input(s in "[{}\\[\\]\",:0-9a-z\\\\ .eE+-]{0,200}") {
            let _ = encode_object(s.as_bytes());
        }
    }
}
