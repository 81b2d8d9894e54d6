//! Sessions kept server-side: the browser holds only a random session id in
//! an HttpOnly, SameSite=Strict cookie (Secure unless the console listens on
//! loopback); the caller's token stays in this process's memory, keyed by
//! the SHA-256 of that id, and is sent to the database once per request,
//! never to the browser again. Each session has its own CSRF token, which
//! every form carries and every POST must return.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "identity_console";
/// The double-submit cookie of the sign-in form (there is no session yet).
pub const LOGIN_COOKIE: &str = "identity_console_login";
/// A session ends after this long, whatever the token's own expiry...
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
/// ...or after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// At most this many live sessions (the oldest expired ones go first).
pub const MAX_SESSIONS: usize = 10_000;

/// A secret shown once (a new API token), then gone from the session.
#[derive(Clone)]
pub struct Reveal {
    pub label: String,
    pub secret: String,
}

/// A message carried over one redirect (POST, then GET).
#[derive(Clone)]
pub enum Flash {
    Notice(String),
    Error {
        message: String,
        hint: Option<String>,
        code: Option<String>,
    },
}

pub struct Session {
    pub token: String,
    pub csrf: String,
    pub label: String,
    created: Instant,
    seen: Instant,
    pub flash: Option<Flash>,
    pub reveal: Option<Reveal>,
}

#[derive(Default)]
pub struct Store {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

pub fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Constant-time equality of two CSRF tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What a request sees of its session (a copy: the lock is not held across
/// the request's database work).
#[derive(Clone)]
pub struct View {
    pub id: String,
    pub token: String,
    pub csrf: String,
    pub label: String,
}

impl Store {
    /// A new session for `token`; returns the id for the cookie.
    pub fn create(&self, token: String, label: String) -> String {
        let id = random_id();
        let now = Instant::now();
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, s| live(s, now));
        if m.len() >= MAX_SESSIONS {
            // Evict the least recently seen session.
            if let Some(k) = m.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k) {
                m.remove(&k);
            }
        }
        m.insert(
            key(&id),
            Session {
                token,
                csrf: random_id(),
                label,
                created: now,
                seen: now,
                flash: None,
                reveal: None,
            },
        );
        id
    }

    pub fn get(&self, id: &str) -> Option<View> {
        let now = Instant::now();
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(id);
        match m.get_mut(&k) {
            Some(s) if live(s, now) => {
                s.seen = now;
                Some(View {
                    id: id.to_string(),
                    token: s.token.clone(),
                    csrf: s.csrf.clone(),
                    label: s.label.clone(),
                })
            }
            Some(_) => {
                m.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&key(id));
    }

    pub fn set_flash(&self, id: &str, flash: Flash) {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get_mut(&key(id)) {
            s.flash = Some(flash);
        }
    }

    pub fn set_reveal(&self, id: &str, reveal: Reveal) {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get_mut(&key(id)) {
            s.reveal = Some(reveal);
        }
    }

    /// The flash and the secret to show, taken: a reload shows neither.
    pub fn take(&self, id: &str) -> (Option<Flash>, Option<Reveal>) {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(&key(id)) {
            Some(s) => (s.flash.take(), s.reveal.take()),
            None => (None, None),
        }
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.created) < ABSOLUTE && now.duration_since(s.seen) < IDLE
}

/// A cookie value from the request's Cookie header(s).
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() <= 64)
}

/// A Set-Cookie value: HttpOnly, SameSite=Strict, Path=/, Secure when the
/// console is not on loopback. `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reveal_and_flash_are_shown_once() {
        let s = Store::default();
        let id = s.create("tok".into(), "a@b".into());
        s.set_reveal(
            &id,
            Reveal {
                label: "x".into(),
                secret: "secret".into(),
            },
        );
        s.set_flash(&id, Flash::Notice("done".into()));
        let (f, r) = s.take(&id);
        assert!(f.is_some() && r.is_some());
        let (f, r) = s.take(&id);
        assert!(f.is_none() && r.is_none());
    }

    #[test]
    fn unknown_and_removed_sessions_are_gone() {
        let s = Store::default();
        let id = s.create("tok".into(), "a@b".into());
        assert!(s.get(&id).is_some());
        assert!(s.get(&random_id()).is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn csrf_compare() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn cookies() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; identity_console=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie(COOKIE, "v", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(COOKIE, "v", false, None).contains("Secure"));
    }
}
