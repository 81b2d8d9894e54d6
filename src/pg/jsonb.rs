//! jsonb without the text round trip.
//!
//! pgrx's `JsonB` converts every argument with `jsonb_out` + serde and every
//! result with serde + `jsonb_in`; on the hook's hot path that was most of the
//! cost. `RawJsonb` hands the detoasted jsonb to Rust as is, `get` reads a
//! member through Postgres' own binary search of the container, `shape`
//! describes a value for `core::claims::check_shapes`, and `Builder` pushes
//! values (including whole nested containers) into a new jsonb.
//!
//! This is the only module with jsonb FFI; everything it returns is checked
//! (types, lengths) before it is trusted.

use crate::core::claims::Shape;
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::pg_sys::{self, jbvType, JsonbContainer, JsonbIteratorToken as Tok, JsonbValue};
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{FromDatum, IntoDatum};

/// A detoasted jsonb datum, borrowed for the duration of the call.
pub struct RawJsonb(*mut pg_sys::Jsonb);

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a non-null jsonb argument; detoasting returns a plain varlena.
        let p = unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) };
        Some(RawJsonb(p.cast()))
    }
}

impl IntoDatum for RawJsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.0))
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: a jsonb argument unboxes through FromDatum (detoasted), as pgrx's own JsonB does.
unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: pgrx's argument contract: `arg` is this call's jsonb argument.
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

// SAFETY: returns the jsonb datum itself (or NULL), the declared return type.
unsafe impl BoxRet for RawJsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: d is a jsonb datum in the current memory context, the type this function
            // returns.
            Some(d) => unsafe { fcinfo.return_raw_datum(d) },
            None => fcinfo.return_null(),
        }
    }
}

// SAFETY: the SQL type named is jsonb, which is what the datum holds.
unsafe impl SqlTranslatable for RawJsonb {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(RawJsonb);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

impl RawJsonb {
    /// Bytes of the binary jsonb.
    pub fn size(&self) -> usize {
        // SAFETY: self.0 is a complete detoasted varlena (see the type).
        unsafe { pgrx::varlena::varsize_any(self.0.cast()) }
    }

    fn root(&self) -> *mut JsonbContainer {
        // SAFETY: self.0 is a complete, detoasted jsonb varlena (FromDatum,
        // the builders); this takes the address of its root container.
        unsafe { &raw mut (*self.0).root }
    }

    /// The top-level container, borrowed for as long as `self` lives.
    pub fn container(&self) -> Container<'_> {
        Container {
            ptr: self.root(),
            _of: std::marker::PhantomData,
        }
    }

    /// The whole varlena, header included.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: a detoasted (or freshly built) varlena of size() bytes.
        unsafe { std::slice::from_raw_parts(self.0.cast::<u8>(), self.size()) }
    }

    /// jsonb_out's text.
    pub fn to_text(&self) -> String {
        // SAFETY: JsonbToCString reads the container and returns a palloc'd
        // NUL-terminated string.
        let c = unsafe {
            pg_sys::JsonbToCString(std::ptr::null_mut(), self.root(), self.size() as i32)
        };
        // SAFETY: JsonbToCString returns a palloc'd NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(c) }
            .to_string_lossy()
            .into_owned()
    }

    /// A jsonb argument as serde JSON, within `core::input`'s bounds (size
    /// checked on the binary form before it is printed, then depth): 22023
    /// with `what` otherwise, never serde's recursion error.
    pub fn bounded(
        &self,
        what: &'static str,
    ) -> Result<serde_json::Value, crate::core::error::IdentityError> {
        use crate::core::input::{bounded_json, MAX_JSON_ARG_BYTES};
        if self.size() > MAX_JSON_ARG_BYTES {
            return Err(
                crate::core::error::IdentityError::invalid(what).detail(format!(
                    "{} bytes, the limit is {MAX_JSON_ARG_BYTES}",
                    self.size()
                )),
            );
        }
        bounded_json(self.to_text().as_bytes(), what)
    }

    /// An object at the top level (not an array, not a scalar).
    pub fn is_object(&self) -> bool {
        container_is(self.root(), pg_sys::JB_FOBJECT)
    }
}

/// The encoder writes UTF-8 strings, which are the stored bytes only in a
/// UTF-8 database.
pub fn utf8_database() -> bool {
    // SAFETY: reads a backend global; no preconditions.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}

/// The Postgres majors whose on-disk jsonb format `core::jsonb`'s encoder
/// was checked against, byte for byte (the `#[pg_test]` over 3,000
/// generated documents, which `scripts/test.sh` runs on each supported
/// major: 15, 17 and 18). Built for any other major, the encoder is not used and
/// verify_jwt falls back to jsonb_in until it is checked there too.
const ENCODER_CHECKED_ON: &[u32] = &[15, 17, 18];

/// Whether verify_jwt may store the encoder's bytes as the payload's jsonb:
/// a UTF-8 database, on a Postgres major the encoder was checked against.
pub fn encoder_applies() -> bool {
    ENCODER_CHECKED_ON.contains(&(pg_sys::PG_VERSION_NUM / 10000)) && utf8_database()
}

/// Whether `core::jsonb::stored` may read and write this major's jsonb
/// (checked on the same majors as the encoder, by the hook's differential
/// `#[pg_test]`; the layout is encoding-independent: bytes are copied as
/// they are stored).
pub fn stored_layout_checked() -> bool {
    ENCODER_CHECKED_ON.contains(&(pg_sys::PG_VERSION_NUM / 10000))
}

fn container_is(c: *mut JsonbContainer, flag: u32) -> bool {
    // SAFETY: c points at a valid container header.
    let h = unsafe { (*c).header };
    h & flag != 0 && h & pg_sys::JB_FSCALAR == 0
}

/// A jsonb container inside a `RawJsonb` (its root, or a nested object
/// reached through `object_member`), valid while that jsonb lives: the
/// pointer stays private, so safe code cannot outlive or forge it.
#[derive(Clone, Copy)]
pub struct Container<'a> {
    ptr: *mut JsonbContainer,
    _of: std::marker::PhantomData<&'a RawJsonb>,
}

impl<'a> Container<'a> {
    /// Member `key`, if this container is an object holding it.
    pub fn get(&self, key: &str) -> Option<JsonbValue> {
        if !container_is(self.ptr, pg_sys::JB_FOBJECT) {
            return None;
        }
        // SAFETY: an object container of a live jsonb (see the type).
        unsafe { get(self.ptr, key) }
    }

    /// Member `key` when it is itself an object: its container.
    pub fn object_member(&self, key: &str) -> Option<Container<'a>> {
        let v = self.get(key)?;
        if v.type_ != jbvType::jbvBinary {
            return None;
        }
        // SAFETY: a jbvBinary value found in this container points at a
        // nested container inside the same jsonb, so it lives as long.
        let ptr = unsafe { v.val.binary.data };
        container_is(ptr, pg_sys::JB_FOBJECT).then_some(Container {
            ptr,
            _of: std::marker::PhantomData,
        })
    }

    /// Calls `f` for each member of this object: `(key, value)`, nested
    /// containers as `jbvBinary` values (not descended into).
    pub fn for_each_member(&self, f: impl FnMut(&JsonbValue, &JsonbValue)) {
        if container_is(self.ptr, pg_sys::JB_FOBJECT) {
            // SAFETY: an object container of a live jsonb (see the type).
            unsafe { for_each_member(self.ptr, f) }
        }
    }
}

/// Member `key` of the object container `c`, if present.
///
/// # Safety
/// `c` points at an object container of a jsonb that stays alive and
/// unchanged for the call.
unsafe fn get(c: *mut JsonbContainer, key: &str) -> Option<JsonbValue> {
    let mut out = JsonbValue {
        type_: jbvType::jbvNull,
        // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which member
        // is read.
        val: unsafe { std::mem::zeroed() },
    };
    // SAFETY: c is an object container; key is valid for len bytes; the
    // result is written into `out` (no allocation).
    let found = unsafe {
        pg_sys::getKeyJsonValueFromContainer(c, key.as_ptr().cast(), key.len() as i32, &mut out)
    };
    (!found.is_null()).then_some(out)
}

/// The bytes of a string value (no UTF-8 check: for matching keys).
pub fn as_bytes(v: &JsonbValue) -> Option<&[u8]> {
    if v.type_ != jbvType::jbvString {
        return None;
    }
    // SAFETY: a jbvString's val/len describe bytes inside the jsonb.
    Some(unsafe {
        std::slice::from_raw_parts(v.val.string.val.cast::<u8>(), v.val.string.len as usize)
    })
}

/// The text of a string value.
pub fn as_str(v: &JsonbValue) -> Option<&str> {
    if v.type_ != jbvType::jbvString {
        return None;
    }
    // SAFETY: a jbvString's val/len describe bytes inside the jsonb, which
    // outlives this borrow; jsonb strings are valid in the database encoding
    // and from_utf8 checks them anyway.
    let bytes = unsafe {
        std::slice::from_raw_parts(v.val.string.val.cast::<u8>(), v.val.string.len as usize)
    };
    std::str::from_utf8(bytes).ok()
}

/// JSON Schema's "integer" (zero fractional part, so 1.0 counts), as
/// `core::claims::shape_of` judges serde numbers: numeric_min_scale is 0
/// exactly when no fractional digit is needed. (NaN/Infinity are not valid
/// in jsonb.) The differential hook test holds the two equal.
fn numeric_is_integer(v: &JsonbValue) -> bool {
    // SAFETY: type_ is jbvNumeric (checked by the caller or the match arm), so `numeric` is the
    // live member.
    let d = pg_sys::Datum::from(unsafe { v.val.numeric });
    // SAFETY: d is a valid numeric datum; numeric_min_scale only reads it.
    let scale = unsafe { pgrx::direct_function_call::<i32>(pg_sys::numeric_min_scale, &[Some(d)]) };
    scale == Some(0)
}

/// `Shape` of a jsonb value, for `core::claims::check_shapes`.
pub fn shape(v: &JsonbValue) -> Shape {
    match v.type_ {
        jbvType::jbvNull => Shape::Null,
        jbvType::jbvBool => Shape::Bool,
        jbvType::jbvString => Shape::String,
        jbvType::jbvNumeric if numeric_is_integer(v) => Shape::Integer,
        jbvType::jbvNumeric => Shape::Number,
        jbvType::jbvBinary => {
            // SAFETY: type_ is jbvBinary (the match arm), so `binary` is the live member.
            let c = unsafe { v.val.binary.data };
            if container_is(c, pg_sys::JB_FOBJECT) {
                Shape::Object
            } else {
                array_shape(c)
            }
        }
        // jbvArray / jbvObject / jbvDatetime do not come out of a stored jsonb.
        _ => Shape::Null,
    }
}

fn array_shape(c: *mut JsonbContainer) -> Shape {
    let (mut strings, mut amr) = (true, true);
    // SAFETY: c is a container of a jsonb alive for this call (caller's contract / the match arm
    // above).
    let mut it = unsafe { pg_sys::JsonbIteratorInit(c) };
    let mut v = JsonbValue {
        type_: jbvType::jbvNull,
        // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which member
        // is read.
        val: unsafe { std::mem::zeroed() },
    };
    loop {
        // SAFETY: `it` was initialised on a live container and is advanced until WJB_DONE.
        match unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut v, true) } {
            Tok::WJB_DONE => break,
            Tok::WJB_ELEM => {
                if v.type_ == jbvType::jbvString {
                    continue;
                }
                strings = false;
                let entry_ok = v.type_ == jbvType::jbvBinary && {
                    // SAFETY: type_ is jbvBinary (checked just before), so `binary` is the live
                    // member.
                    let o = unsafe { v.val.binary.data };
                    container_is(o, pg_sys::JB_FOBJECT) && {
                        // SAFETY: `o` is an object container inside the
                        // jsonb `shape` was called on, alive for this call.
                        let method = unsafe { get(o, "method") };
                        // SAFETY: as above.
                        let timestamp = unsafe { get(o, "timestamp") };
                        method.is_some_and(|m| m.type_ == jbvType::jbvString)
                            && timestamp.is_none_or(|t| {
                                t.type_ == jbvType::jbvNumeric && numeric_is_integer(&t)
                            })
                    }
                };
                amr &= entry_ok;
            }
            _ => {}
        }
    }
    Shape::Array { strings, amr }
}

/// Iterates the members of an object container: `(key, value)` with nested
/// containers as `jbvBinary` values (not descended into).
///
/// # Safety
/// As `get`: `c` is an object container of a jsonb alive for the call.
unsafe fn for_each_member(c: *mut JsonbContainer, mut f: impl FnMut(&JsonbValue, &JsonbValue)) {
    // SAFETY: the caller's contract; the iterator lives in this frame.
    let mut it = unsafe { pg_sys::JsonbIteratorInit(c) };
    let mut k = JsonbValue {
        type_: jbvType::jbvNull,
        // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which member
        // is read.
        val: unsafe { std::mem::zeroed() },
    };
    let mut v = JsonbValue {
        type_: jbvType::jbvNull,
        // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which member
        // is read.
        val: unsafe { std::mem::zeroed() },
    };
    loop {
        // SAFETY: `it` was initialised on a live container and is advanced until WJB_DONE.
        match unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut k, true) } {
            Tok::WJB_DONE => break,
            Tok::WJB_KEY => {
                // SAFETY: after a WJB_KEY the iterator yields that key's value.
                let t = unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut v, true) };
                debug_assert_eq!(t, Tok::WJB_VALUE);
                f(&k, &v);
            }
            _ => {}
        }
    }
}

/// Builds a jsonb value by pushing tokens, as Postgres' own jsonb functions do.
pub struct Builder {
    state: *mut pg_sys::JsonbParseState,
    result: *mut JsonbValue,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            state: std::ptr::null_mut(),
            result: std::ptr::null_mut(),
        }
    }

    fn push(&mut self, tok: Tok::Type, v: *mut JsonbValue) {
        // SAFETY: tokens are pushed in a well-nested order by the callers;
        // scalar values point at palloc'd or input-owned bytes that live
        // until `finish`.
        self.result = unsafe { pg_sys::pushJsonbValue(&mut self.state, tok, v) };
    }

    pub fn begin_object(&mut self) {
        self.push(Tok::WJB_BEGIN_OBJECT, std::ptr::null_mut());
    }

    pub fn end_object(&mut self) {
        self.push(Tok::WJB_END_OBJECT, std::ptr::null_mut());
    }

    /// A key taken from an input jsonb (its bytes outlive the builder).
    pub fn key_value(&mut self, key: &JsonbValue) {
        let mut k = *key;
        self.push(Tok::WJB_KEY, &mut k);
    }

    /// A key from Rust: copied into the current memory context.
    pub fn key(&mut self, key: &str) {
        let mut k = string_value(key);
        self.push(Tok::WJB_KEY, &mut k);
    }

    /// A value taken from an input jsonb; nested containers are copied whole.
    pub fn value(&mut self, v: &JsonbValue) {
        let mut v = *v;
        self.push(Tok::WJB_VALUE, &mut v);
    }

    pub fn string(&mut self, s: &str) {
        let mut v = string_value(s);
        self.push(Tok::WJB_VALUE, &mut v);
    }

    pub fn bool(&mut self, b: bool) {
        let mut v = JsonbValue {
            type_: jbvType::jbvBool,
            // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which
            // member is read.
            val: unsafe { std::mem::zeroed() },
        };
        v.val.boolean = b;
        self.push(Tok::WJB_VALUE, &mut v);
    }

    pub fn begin_array(&mut self) {
        self.push(Tok::WJB_BEGIN_ARRAY, std::ptr::null_mut());
    }

    pub fn end_array(&mut self) {
        self.push(Tok::WJB_END_ARRAY, std::ptr::null_mut());
    }

    /// A string element of the current array.
    pub fn elem_string(&mut self, s: &str) {
        let mut v = string_value(s);
        self.push(Tok::WJB_ELEM, &mut v);
    }

    /// A string or null value.
    pub fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    pub fn int(&mut self, n: i64) {
        let mut v = JsonbValue {
            type_: jbvType::jbvNumeric,
            // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which
            // member is read.
            val: unsafe { std::mem::zeroed() },
        };
        // SAFETY: builds a palloc'd numeric from an integer; no pointer input.
        v.val.numeric = unsafe { pg_sys::int64_to_numeric(n) };
        self.push(Tok::WJB_VALUE, &mut v);
    }

    pub fn null(&mut self) {
        let mut v = JsonbValue {
            type_: jbvType::jbvNull,
            // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which
            // member is read.
            val: unsafe { std::mem::zeroed() },
        };
        self.push(Tok::WJB_VALUE, &mut v);
    }

    /// The finished value (after the outermost `end_object`).
    pub fn finish(self) -> RawJsonb {
        assert!(
            !self.result.is_null(),
            "jsonb builder finished before anything was pushed"
        );
        // SAFETY: self.result is the complete top-level value pushJsonbValue built (asserted
        // above).
        RawJsonb(unsafe { pg_sys::JsonbValueToJsonb(self.result) })
    }
}

/// `{"error": {"http_code": code, "message": message}}`.
pub fn error_object(http_code: u16, message: &str) -> RawJsonb {
    let mut b = Builder::new();
    b.begin_object();
    b.key("error");
    b.begin_object();
    b.key("http_code");
    b.int(http_code.into());
    b.key("message");
    b.string(message);
    b.end_object();
    b.end_object();
    b.finish()
}

fn string_value(s: &str) -> JsonbValue {
    // SAFETY: palloc'd copy in the current memory context, alive until the
    // function returns.
    let p = unsafe { pg_sys::palloc(s.len().max(1)) }.cast::<u8>();
    // SAFETY: p was just palloc'd with room for s.len() bytes; the regions cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len()) };
    let mut v = JsonbValue {
        type_: jbvType::jbvString,
        // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says which member
        // is read.
        val: unsafe { std::mem::zeroed() },
    };
    v.val.string.val = p.cast();
    v.val.string.len = s.len() as i32;
    v
}

impl RawJsonb {
    /// A complete jsonb varlena made by `core::jsonb` (its header holds its
    /// length), copied into the current memory context.
    pub fn copy_of(bytes: &[u8]) -> RawJsonb {
        assert!(
            bytes.len() >= 8,
            "a jsonb varlena has a header and a root container"
        );
        // SAFETY: palloc'd (4-byte aligned, as every palloc is) with room
        // for bytes.len() bytes.
        let dst = unsafe { pg_sys::palloc(bytes.len()) }.cast::<u8>();
        // SAFETY: dst was just palloc'd with bytes.len() bytes; the regions cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        RawJsonb(dst.cast())
    }

    /// jsonb_in over JSON text.
    pub fn parse_text(text: &[u8]) -> Result<RawJsonb, String> {
        let c =
            std::ffi::CString::new(text).map_err(|_| "payload contains a NUL byte".to_string())?;
        // SAFETY: jsonb_in gets a NUL-terminated C string that lives across the call; errors raise
        // as for any input function.
        let d = unsafe {
            pgrx::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(c.as_ptr()))],
            )
        }
        .ok_or_else(|| "jsonb_in returned NULL".to_string())?;
        Ok(RawJsonb(d.cast_mut_ptr()))
    }

    /// A string member's text, borrowed from this jsonb.
    fn member_str(&self, k: &str) -> Option<&str> {
        let v = self.container().get(k)?;
        if v.type_ != jbvType::jbvString {
            return None;
        }
        // SAFETY: the bytes live inside self's jsonb, which outlives &self.
        let bytes = unsafe {
            std::slice::from_raw_parts(v.val.string.val.cast::<u8>(), v.val.string.len as usize)
        };
        std::str::from_utf8(bytes).ok()
    }
}

/// A verified payload as jsonb, with the claims the encoder read on the way
/// (`None` when jsonb_in made the value: then they are looked up in it).
pub struct Verified {
    pub jsonb: RawJsonb,
    top: Option<std::rc::Rc<crate::core::jsonb::Top>>,
}

impl Verified {
    /// The jsonb of a verified JWT payload: the bytes `core::jsonb` encoded
    /// in a UTF-8 database, else Postgres' jsonb_in over the text, which the
    /// caller has validated (core::jwt::payload_is_jsonb_object); jsonb_in
    /// raising anyway is an ERROR, as for any input function.
    pub fn parse(p: crate::core::jwt::Payload) -> Result<Verified, String> {
        match p.jsonb.filter(|_| encoder_applies()) {
            Some(e) => {
                let v = Verified::from_parts(&e.bytes, std::rc::Rc::new(e.top));
                crate::core::jsonb::shape::recycle(e.bytes);
                Ok(v)
            }
            None => Ok(Verified {
                jsonb: RawJsonb::parse_text(p.json)?,
                top: None,
            }),
        }
    }

    /// A complete jsonb varlena (and its top claims) copied into the current
    /// memory context.
    pub fn from_parts(bytes: &[u8], top: std::rc::Rc<crate::core::jsonb::Top>) -> Verified {
        Verified {
            jsonb: RawJsonb::copy_of(bytes),
            top: Some(top),
        }
    }

    /// The claims the encoder read (None when jsonb_in parsed the payload).
    pub fn top(&self) -> Option<&std::rc::Rc<crate::core::jsonb::Top>> {
        self.top.as_ref()
    }
}

impl crate::core::jwt::Claims for Verified {
    fn number(&self, k: &str) -> Result<Option<i64>, ()> {
        match &self.top {
            Some(t) if matches!(k, "exp" | "nbf" | "iat") => t.number(k).transpose(),
            _ => self.jsonb.number(k),
        }
    }

    fn string(&self, k: &str) -> Option<&str> {
        match self.top.as_ref().and_then(|t| t.string(k)) {
            Some(v) => v,
            None => self.jsonb.string(k),
        }
    }

    fn aud_contains(&self, want: &str) -> bool {
        match &self.top {
            Some(t) => t.aud().any(|a| a == want),
            None => self.jsonb.aud_contains(want),
        }
    }
}

impl crate::core::jwt::Claims for RawJsonb {
    fn number(&self, k: &str) -> Result<Option<i64>, ()> {
        match self.container().get(k) {
            None => Ok(None),
            Some(v) if v.type_ == jbvType::jbvNumeric => {
                // SAFETY: type_ is jbvNumeric (checked by the caller or the match arm), so
                // `numeric` is the live member.
                let d = pg_sys::Datum::from(unsafe { v.val.numeric });
                // SAFETY: d is a valid numeric datum (type_ checked in this arm); the cast only
                // reads it.
                let f = unsafe {
                    pgrx::direct_function_call::<f64>(
                        pg_sys::numeric_float8_no_overflow,
                        &[Some(d)],
                    )
                };
                // `as` saturates; NaN is not valid in jsonb.
                f.filter(|f| !f.is_nan())
                    .map(|f| Some(f.floor() as i64))
                    .ok_or(())
            }
            Some(_) => Err(()),
        }
    }

    fn string(&self, k: &str) -> Option<&str> {
        self.member_str(k)
    }

    fn aud_contains(&self, want: &str) -> bool {
        let Some(v) = self.container().get("aud") else {
            return false;
        };
        match v.type_ {
            jbvType::jbvString => as_bytes(&v) == Some(want.as_bytes()),
            jbvType::jbvBinary => {
                // SAFETY: type_ is jbvBinary (the match arm), so `binary` is the live member.
                let c = unsafe { v.val.binary.data };
                if container_is(c, pg_sys::JB_FOBJECT) {
                    return false;
                }
                // SAFETY: c is a container of a jsonb alive for this call (caller's contract / the
                // match arm above).
                let mut it = unsafe { pg_sys::JsonbIteratorInit(c) };
                let mut e = JsonbValue {
                    type_: jbvType::jbvNull,
                    // SAFETY: JsonbValue's union of plain C data is valid all zero; `type_` says
                    // which member is read.
                    val: unsafe { std::mem::zeroed() },
                };
                let mut found = false;
                loop {
                    // SAFETY: `it` was initialised on a live container and is advanced until
                    // WJB_DONE.
                    match unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut e, true) } {
                        Tok::WJB_DONE => break,
                        Tok::WJB_ELEM => found |= as_bytes(&e) == Some(want.as_bytes()),
                        _ => {}
                    }
                }
                found
            }
            _ => false,
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::RawJsonb;
    use crate::core::jsonb::encode_object;
    use pgrx::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn jsonb_in_bytes(text: &str) -> Vec<u8> {
        let j = RawJsonb::parse_text(text.as_bytes()).expect("jsonb_in");
        let n = j.size();
        // SAFETY: a complete varlena of n bytes.
        unsafe { std::slice::from_raw_parts(j.0.cast::<u8>(), n) }.to_vec()
    }

    fn key(r: &mut StdRng) -> String {
        const KEYS: [&str; 12] = [
            "a",
            "b",
            "aa",
            "ab",
            "sub",
            "exp",
            "iat",
            "aud",
            "é",
            "k\\\"q",
            "app_metadata",
            "",
        ];
        if r.gen_bool(0.5) {
            KEYS[r.gen_range(0..KEYS.len())].to_string()
        } else {
            (0..r.gen_range(1..20))
                .map(|_| char::from(r.gen_range(b'a'..=b'z')))
                .collect()
        }
    }

    fn string(r: &mut StdRng) -> String {
        const PIECES: [&str; 14] = [
            "x",
            "hello",
            "\\n",
            "\\t",
            "\\\"",
            "\\\\",
            "\\/",
            "\\u00e9",
            "\\ud83d\\ude00",
            "é",
            "😀",
            " ",
            "\\u0041",
            "\\b\\f\\r",
        ];
        let n = r.gen_range(0..8);
        let body: String = (0..n)
            .map(|_| PIECES[r.gen_range(0..PIECES.len())])
            .collect();
        format!("\"{body}\"")
    }

    fn integer(r: &mut StdRng) -> String {
        let digits = match r.gen_range(0..6) {
            0 => "0".to_string(),
            1 => r.gen_range(1..10_000).to_string(),
            2 => r.gen_range(1_700_000_000i64..1_800_000_000).to_string(),
            3 => r.gen_range(1u64..u64::MAX).to_string(),
            4 => format!("{}{}", r.gen_range(1..10), "0".repeat(r.gen_range(1..40))),
            _ => {
                let n = r.gen_range(1..252);
                let mut s = r.gen_range(1..10).to_string();
                s.extend((1..n).map(|_| char::from(r.gen_range(b'0'..=b'9'))));
                s
            }
        };
        if r.gen_bool(0.3) {
            format!("-{digits}")
        } else {
            digits
        }
    }

    fn value(r: &mut StdRng, depth: u32) -> String {
        let pick = if depth > 2 {
            r.gen_range(0..5)
        } else {
            r.gen_range(0..8)
        };
        match pick {
            0 => "null".into(),
            1 => {
                if r.gen_bool(0.5) {
                    "true".into()
                } else {
                    "false".into()
                }
            }
            2 => integer(r),
            3 | 4 => string(r),
            5 => {
                let n = if depth == 0 && r.gen_bool(0.1) {
                    r.gen_range(30..70)
                } else {
                    r.gen_range(0..5)
                };
                let items: Vec<String> = (0..n).map(|_| value(r, depth + 1)).collect();
                format!("[{}]", items.join(", "))
            }
            _ => object(r, depth + 1),
        }
    }

    fn object(r: &mut StdRng, depth: u32) -> String {
        // Past 32 members JEntries switch to offsets (JB_OFFSET_STRIDE).
        let n = if depth <= 1 && r.gen_bool(0.15) {
            r.gen_range(30..80)
        } else {
            r.gen_range(0..8)
        };
        let ws = [" ", "", "\n", "\t", "\r\n "];
        let members: Vec<String> = (0..n)
            .map(|_| {
                let w = ws[r.gen_range(0..ws.len())];
                format!("{w}\"{}\"{w}:{w}{}", key(r), value(r, depth))
            })
            .collect();
        format!("{{{}}}", members.join(","))
    }

    /// The encoder's bytes equal jsonb_in's for every document it takes,
    /// and it takes nearly all of these (numbers are integers here).
    #[pg_test]
    fn encoder_matches_jsonb_in_byte_for_byte() {
        let mut r = StdRng::seed_from_u64(20261121);
        let (mut taken, total) = (0, 3000);
        for i in 0..total {
            let doc = object(&mut r, 0);
            if let Some(ours) = encode_object(doc.as_bytes()) {
                taken += 1;
                assert!(ours == jsonb_in_bytes(&doc), "document {i} differs: {doc}");
            }
        }
        assert!(
            taken > total * 95 / 100,
            "the encoder took only {taken} of {total}"
        );
        let supabase = r#"{"aal":"aal1","amr":[{"method":"password","timestamp":1732000000}],"app_metadata":{"provider":"email","providers":["email"]},"aud":"authenticated","email":"a@example.com","exp":1732003600,"iat":1732000000,"is_anonymous":false,"is_service_user":false,"organization_id":"7d6f5f2e-8d1c-4a53-9a55-0c1b2f1e3a4b","phone":"","role":"authenticated","session_id":"0b9f1c9e-3d0b-4b8e-9a55-1f2e3d4c5b6a","sub":"f1e2d3c4-b5a6-4798-8a9b-0c1d2e3f4a5b","user_metadata":{},"user_role":"user","exp":-0}"#;
        assert!(encode_object(supabase.as_bytes()).unwrap() == jsonb_in_bytes(supabase));
    }

    /// `doc` with fresh values: each string value's content replaced by
    /// text without escapes (of any length), each integer by another; keys
    /// with an escape get a plain name. The structure, the keys and the
    /// whitespace stay: a payload of the same shape, as an issuer writes.
    /// `same_lengths`: strings keep their byte lengths (ASCII), integers
    /// stay, so every value keeps its encoded size.
    fn revalued(doc: &str, r: &mut StdRng, same_lengths: bool) -> String {
        const CHARS: [&str; 8] = ["x", "é", "😀", " ", "-", "@", "7", "ab"];
        let b = doc.as_bytes();
        let (mut out, mut i) = (String::with_capacity(doc.len() * 2), 0);
        while i < b.len() {
            match b[i] {
                b'"' => {
                    let mut j = i + 1;
                    while b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    let rest = doc[j + 1..].trim_start();
                    let body = &doc[i + 1..j];
                    if rest.starts_with(':') {
                        if body.contains('\\') {
                            out.push_str(&format!("\"plain{j}\""));
                        } else {
                            out.push_str(&doc[i..=j]);
                        }
                    } else if same_lengths {
                        let fresh: String = (0..body.len())
                            .map(|_| char::from(r.gen_range(b'a'..=b'z')))
                            .collect();
                        out.push_str(&format!("\"{fresh}\""));
                    } else {
                        let n = r.gen_range(0..30);
                        let fresh: String =
                            (0..n).map(|_| CHARS[r.gen_range(0..CHARS.len())]).collect();
                        out.push_str(&format!("\"{fresh}\""));
                    }
                    i = j + 1;
                }
                b'-' | b'0'..=b'9' => {
                    let mut j = i + 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    if same_lengths {
                        out.push_str(&doc[i..j]);
                    } else {
                        out.push_str(&integer(r));
                    }
                    i = j;
                }
                _ => {
                    let c = doc[i..].chars().next().expect("a char");
                    out.push(c);
                    i += c.len_utf8();
                }
            }
        }
        out
    }

    /// Objects written from a template (core::jsonb::text_shape, sign_jwt's
    /// path) are jsonb_out's text too, and objects of one shape take it.
    #[pg_test]
    fn text_templates_match_jsonb_out() {
        let mut r = StdRng::seed_from_u64(20261203);
        let (mut written, mut hits) = (0u64, 0u64);
        for i in 0..400 {
            let doc = object(&mut r, 0);
            let mut shapes = crate::core::jsonb::text_shape::TextShapes::default();
            for v in 0..5 {
                let text = if v == 0 {
                    doc.clone()
                } else {
                    revalued(&doc, &mut r, false)
                };
                let j = RawJsonb::parse_text(text.as_bytes()).unwrap();
                let ours = shapes
                    .object_to_json(j.bytes(), |_| {})
                    .expect("a stored object");
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    compact(&j.to_text()),
                    "document {i} variant {v}"
                );
                written += 1;
            }
            hits += shapes.hits();
        }
        // Every object with a member, but each series' first, comes from
        // its template (the keys are the same: revalued keeps plain keys).
        assert!(hits > written * 6 / 10, "{hits} of {written}");
    }

    /// Payloads encoded from a template (core::jsonb::shape) are jsonb_in's
    /// bytes too, and most payloads of one shape are encoded that way.
    #[pg_test]
    fn templates_match_jsonb_in_byte_for_byte() {
        let mut r = StdRng::seed_from_u64(20261202);
        let (mut encoded, mut from_templates, mut same) = (0u64, 0u64, 0u64);
        for i in 0..600 {
            let doc = revalued(&object(&mut r, 0), &mut r, false);
            let mut shapes = crate::core::jsonb::shape::Shapes::default();
            for v in 0..6 {
                // Every other variant keeps every value's size.
                let payload = if v == 0 {
                    doc.clone()
                } else {
                    revalued(&doc, &mut r, v % 2 == 0)
                };
                same += (v > 0 && v % 2 == 0) as u64;
                if let Some(e) = shapes.encode(payload.as_bytes(), || {}) {
                    encoded += 1;
                    assert!(
                        e.bytes == jsonb_in_bytes(&payload),
                        "document {i} variant {v} differs: {payload}"
                    );
                }
            }
            from_templates += shapes.hits();
        }
        // Documents with an escape in a key, or duplicate keys, make no
        // template: nearly all others' same-size variants come from one.
        assert!(
            from_templates > same * 8 / 10,
            "only {from_templates} of {encoded} from templates ({same} kept their sizes)"
        );
    }

    /// jsonb_out's text without the blanks it puts after ':' and ','.
    fn compact(s: &str) -> String {
        let (mut out, mut in_str, mut esc) = (String::with_capacity(s.len()), false, false);
        for c in s.chars() {
            if in_str {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    in_str = false;
                }
            } else if c == '"' {
                in_str = true;
            } else if c == ' ' {
                continue;
            }
            out.push(c);
        }
        out
    }

    /// The writer sign_jwt uses gives jsonb_out's text (compact), numerics
    /// with fractions and exponents included.
    #[pg_test]
    fn writer_matches_jsonb_out() {
        let mut r = StdRng::seed_from_u64(7);
        const NUMBERS: [&str; 10] = [
            "1.50",
            "-0.001",
            "1e-10",
            "12345678901234567890.123",
            "1e30",
            "0.0",
            "-7",
            "3.14159265358979323846",
            "100000000",
            "-0.5e3",
        ];
        for i in 0..2000 {
            let mut doc = object(&mut r, 0);
            if i % 2 == 0 {
                let n = NUMBERS[r.gen_range(0..NUMBERS.len())];
                doc = format!("{{\"num\": {n}, \"in\": {doc}}}");
            }
            let j = RawJsonb::parse_text(doc.as_bytes()).unwrap();
            let mut keys = 0;
            let ours = crate::core::jsonb::object_to_json(j.bytes(), &mut |_| keys += 1)
                .expect("a stored object");
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                compact(&j.to_text()),
                "document {i}"
            );
            assert_eq!(
                keys,
                Spi::get_one_with_args::<i64>(
                    "select count(*) from jsonb_object_keys($1::jsonb)",
                    &[doc.as_str().into()]
                )
                .unwrap()
                .unwrap()
            );
        }
    }

    /// What it declines, jsonb_in still reads (or refuses) as before.
    #[pg_test]
    fn declined_documents_still_go_through_jsonb_in() {
        for doc in [r#"{"a": 1.5}"#, r#"{"a": 1e3, "b": -0.0}"#] {
            assert!(encode_object(doc.as_bytes()).is_none());
            let via = super::Verified::parse(crate::core::jwt::Payload {
                json: doc.as_bytes(),
                jsonb: None,
            })
            .unwrap()
            .jsonb;
            assert_eq!(via.size(), jsonb_in_bytes(doc).len());
        }
    }
}
