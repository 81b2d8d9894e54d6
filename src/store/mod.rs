//! The extension's data as the hot paths read it: table descriptors and
//! typed rows (`tables`), the per-backend copies of revocations, the active
//! signing key and the users a token check can refuse (`cache`), and the
//! parsed claims of the current request (`claims`). Depends on `core` and
//! `pg`; never on `api`.

pub mod cache;
pub mod checks;
pub mod claims;
pub mod locks;
pub mod tables;
