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
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
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

unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

unsafe impl BoxRet for RawJsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            Some(d) => unsafe { fcinfo.return_raw_datum(d) },
            None => fcinfo.return_null(),
        }
    }
}

unsafe impl SqlTranslatable for RawJsonb {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(RawJsonb);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

impl RawJsonb {
    /// Bytes of the binary jsonb.
    pub fn size(&self) -> usize {
        unsafe { pgrx::varlena::varsize_any(self.0.cast()) }
    }

    pub fn root(&self) -> *mut JsonbContainer {
        unsafe { &raw mut (*self.0).root }
    }

    /// An object at the top level (not an array, not a scalar).
    pub fn is_object(&self) -> bool {
        container_is(self.root(), pg_sys::JB_FOBJECT)
    }

}

fn container_is(c: *mut JsonbContainer, flag: u32) -> bool {
    // SAFETY: c points at a valid container header.
    let h = unsafe { (*c).header };
    h & flag != 0 && h & pg_sys::JB_FSCALAR == 0
}

/// Member `key` of the object container `c`, if present.
pub fn get(c: *mut JsonbContainer, key: &str) -> Option<JsonbValue> {
    let mut out = JsonbValue { type_: jbvType::jbvNull, val: unsafe { std::mem::zeroed() } };
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
    Some(unsafe { std::slice::from_raw_parts(v.val.string.val.cast::<u8>(), v.val.string.len as usize) })
}

/// The text of a string value.
pub fn as_str(v: &JsonbValue) -> Option<&str> {
    if v.type_ != jbvType::jbvString {
        return None;
    }
    // SAFETY: a jbvString's val/len describe bytes inside the jsonb, which
    // outlives this borrow; jsonb strings are valid in the database encoding
    // and from_utf8 checks them anyway.
    let bytes = unsafe { std::slice::from_raw_parts(v.val.string.val.cast::<u8>(), v.val.string.len as usize) };
    std::str::from_utf8(bytes).ok()
}

/// JSON Schema's "integer" (zero fractional part, so 1.0 counts), as
/// `core::claims::shape_of` judges serde numbers: numeric_min_scale is 0
/// exactly when no fractional digit is needed. (NaN/Infinity are not valid
/// in jsonb.) The differential hook test holds the two equal.
fn numeric_is_integer(v: &JsonbValue) -> bool {
    let d = pg_sys::Datum::from(unsafe { v.val.numeric });
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
    let mut it = unsafe { pg_sys::JsonbIteratorInit(c) };
    let mut v = JsonbValue { type_: jbvType::jbvNull, val: unsafe { std::mem::zeroed() } };
    loop {
        match unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut v, true) } {
            Tok::WJB_DONE => break,
            Tok::WJB_ELEM => {
                if v.type_ == jbvType::jbvString {
                    continue;
                }
                strings = false;
                let entry_ok = v.type_ == jbvType::jbvBinary && {
                    let o = unsafe { v.val.binary.data };
                    container_is(o, pg_sys::JB_FOBJECT)
                        && get(o, "method").is_some_and(|m| m.type_ == jbvType::jbvString)
                        && get(o, "timestamp").is_none_or(|t| t.type_ == jbvType::jbvNumeric && numeric_is_integer(&t))
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
pub fn for_each_member(c: *mut JsonbContainer, mut f: impl FnMut(&JsonbValue, &JsonbValue)) {
    let mut it = unsafe { pg_sys::JsonbIteratorInit(c) };
    let mut k = JsonbValue { type_: jbvType::jbvNull, val: unsafe { std::mem::zeroed() } };
    let mut v = JsonbValue { type_: jbvType::jbvNull, val: unsafe { std::mem::zeroed() } };
    loop {
        match unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut k, true) } {
            Tok::WJB_DONE => break,
            Tok::WJB_KEY => {
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
        Builder { state: std::ptr::null_mut(), result: std::ptr::null_mut() }
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
        let mut v = JsonbValue { type_: jbvType::jbvBool, val: unsafe { std::mem::zeroed() } };
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
        let mut v = JsonbValue { type_: jbvType::jbvNumeric, val: unsafe { std::mem::zeroed() } };
        v.val.numeric = unsafe { pg_sys::int64_to_numeric(n) };
        self.push(Tok::WJB_VALUE, &mut v);
    }

    pub fn null(&mut self) {
        let mut v = JsonbValue { type_: jbvType::jbvNull, val: unsafe { std::mem::zeroed() } };
        self.push(Tok::WJB_VALUE, &mut v);
    }

    /// The finished value (after the outermost `end_object`).
    pub fn finish(self) -> RawJsonb {
        assert!(!self.result.is_null(), "jsonb builder finished before anything was pushed");
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
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len()) };
    let mut v = JsonbValue { type_: jbvType::jbvString, val: unsafe { std::mem::zeroed() } };
    v.val.string.val = p.cast();
    v.val.string.len = s.len() as i32;
    v
}

impl RawJsonb {
    /// Parses JSON text with Postgres' jsonb_in. The caller has validated the
    /// text (core::jwt::payload_is_jsonb_object); jsonb_in raising anyway is
    /// an ERROR, as for any input function.
    pub fn parse(text: &[u8]) -> Result<RawJsonb, String> {
        let c = std::ffi::CString::new(text).map_err(|_| "payload contains a NUL byte".to_string())?;
        let d = unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(c.as_ptr()))])
        }
        .ok_or_else(|| "jsonb_in returned NULL".to_string())?;
        Ok(RawJsonb(d.cast_mut_ptr()))
    }

    /// A string member's text, borrowed from this jsonb.
    fn member_str(&self, k: &str) -> Option<&str> {
        let v = get(self.root(), k)?;
        if v.type_ != jbvType::jbvString {
            return None;
        }
        // SAFETY: the bytes live inside self's jsonb, which outlives &self.
        let bytes = unsafe { std::slice::from_raw_parts(v.val.string.val.cast::<u8>(), v.val.string.len as usize) };
        std::str::from_utf8(bytes).ok()
    }
}

impl crate::core::jwt::Claims for RawJsonb {
    fn number(&self, k: &str) -> Result<Option<i64>, ()> {
        match get(self.root(), k) {
            None => Ok(None),
            Some(v) if v.type_ == jbvType::jbvNumeric => {
                let d = pg_sys::Datum::from(unsafe { v.val.numeric });
                let f = unsafe { pgrx::direct_function_call::<f64>(pg_sys::numeric_float8_no_overflow, &[Some(d)]) };
                // `as` saturates; NaN is not valid in jsonb.
                f.filter(|f| !f.is_nan()).map(|f| Some(f.floor() as i64)).ok_or(())
            }
            Some(_) => Err(()),
        }
    }

    fn string(&self, k: &str) -> Option<&str> {
        self.member_str(k)
    }

    fn aud_contains(&self, want: &str) -> bool {
        let Some(v) = get(self.root(), "aud") else { return false };
        match v.type_ {
            jbvType::jbvString => as_bytes(&v) == Some(want.as_bytes()),
            jbvType::jbvBinary => {
                let c = unsafe { v.val.binary.data };
                if container_is(c, pg_sys::JB_FOBJECT) {
                    return false;
                }
                let mut it = unsafe { pg_sys::JsonbIteratorInit(c) };
                let mut e = JsonbValue { type_: jbvType::jbvNull, val: unsafe { std::mem::zeroed() } };
                let mut found = false;
                loop {
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
