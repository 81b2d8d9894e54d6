//! JWTs, split by concern: the compact form (`compact`: split, decode,
//! size and alphabet limits), verification (`verify`: the named checks,
//! the HMAC key, refusal messages) and signing (`sign`). Every item is
//! re-exported here, so callers say `core::jwt::split`, `core::jwt::check_with`.

pub mod compact;
pub mod hs256;
pub mod sign;
pub mod verify;

pub use compact::*;
pub use sign::*;
pub use verify::*;
