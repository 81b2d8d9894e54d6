//! HS256 tokens whose signature a backend has verified, so verify_jwt can
//! skip the HMAC and the parse for them (identity.jwt_cache_size). Pure:
//! the glue keeps one per backend and stores what it needs (`P`: the
//! payload's jsonb and its top claims) beside each token.
//!
//! A hit needs the same token byte for byte (the signature compared in
//! constant time) and the same secret generation (bumped on every
//! assignment of identity.jwt_secret), so it stands for exactly the HMAC
//! check it skips; every other check (exp, nbf, iat, aud, iss, revocation,
//! the user's state) runs again on every call.
//!
//! A token is remembered on its second verification: the first only marks
//! its hash in `seen` (direct-mapped), so a stream of tokens each seen once
//! (the cold case) costs a hash, not copies. At most `capacity` tokens, the
//! oldest replaced first: one entry freed per entry added, never a sweep.

use crate::bounded::FifoMap;
use crate::hashing::process_hash;
use subtle::ConstantTimeEq;

/// Slots of the first-sighting marks.
pub const SEEN_SLOTS: usize = 4096;

struct Entry<P> {
    token: Box<str>,
    secret_generation: u64,
    payload: P,
}

pub struct SignatureCache<P> {
    seen: Vec<u64>,
    /// By signature hash, the oldest dropped first.
    map: FifoMap<u64, Entry<P>>,
}

impl<P> Default for SignatureCache<P> {
    fn default() -> Self {
        SignatureCache {
            seen: Vec::new(),
            map: FifoMap::new(usize::MAX),
        }
    }
}

/// The signature segment of a token with exactly the header `header_b64`
/// (its last dot found 16 bytes at a time from the end).
pub fn signature_of<'a>(token: &'a str, header_b64: &str) -> Option<&'a str> {
    if !(token.starts_with(header_b64) && token.as_bytes().get(header_b64.len()) == Some(&b'.')) {
        return None;
    }
    let last = crate::jwt::compact::last_dot(token.as_bytes())?;
    (last > header_b64.len()).then(|| &token[last + 1..])
}

/// A nonzero hash of a signature: of its first 8 characters (48 bits of an
/// HMAC's output for any token that can be in the map, which only verified
/// tokens enter), keyed per process. A collision costs a miss, never a
/// false hit: a hit compares the whole token.
fn signature_hash(sig: &str) -> Option<u64> {
    let head: [u8; 8] = sig.as_bytes().get(..8)?.try_into().ok()?;
    Some(process_hash(u64::from_le_bytes(head)) | 1)
}

impl<P> SignatureCache<P> {
    /// What was stored with `token` (signature segment `sig`), if it was
    /// verified under the same secret generation.
    pub fn lookup(&self, token: &str, sig: &str, generation: u64) -> Option<&P> {
        let signed = &token[..token.len().checked_sub(sig.len())?];
        let r = self.map.get(&signature_hash(sig)?)?;
        let (r_signed, r_sig) = r.token.split_at(r.token.len().checked_sub(sig.len())?);
        // The signature is the secret part: constant time; the rest is public.
        let same = bool::from(r_sig.as_bytes().ct_eq(sig.as_bytes()))
            & (r_signed == signed)
            & (r.secret_generation == generation);
        same.then_some(&r.payload)
    }

    /// `token` (signature `sig`) was just verified under `generation`: the
    /// first time it is only marked, the second time it is remembered with
    /// `payload()`, evicting the oldest beyond `capacity` (0: never).
    pub fn offer(
        &mut self,
        token: &str,
        sig: &str,
        generation: u64,
        capacity: usize,
        payload: impl FnOnce() -> P,
    ) {
        if capacity == 0 {
            return;
        }
        if self.seen.len() != SEEN_SLOTS {
            self.seen = vec![0; SEEN_SLOTS];
        }
        let Some(h) = signature_hash(sig) else { return };
        let mark = &mut self.seen[(h % SEEN_SLOTS as u64) as usize];
        let second = *mark == h;
        *mark = h;
        if !second {
            return;
        }
        let entry = Entry {
            token: token.into(),
            secret_generation: generation,
            payload: payload(),
        };
        self.map.insert_within(h, entry, capacity);
    }

    /// How many tokens are remembered.
    pub fn remembered(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

    fn token(i: u32) -> String {
        format!(
            "{H}.eyJzdWIiOiJ1LXtpfSJ9.{:08x}signature-{i}",
            i.wrapping_mul(2654435761)
        )
    }

    fn sig(t: &str) -> &str {
        signature_of(t, H).unwrap()
    }

    #[test]
    fn only_our_header_and_three_parts_have_a_signature() {
        assert_eq!(signature_of(&format!("{H}.p.s"), H), Some("s"));
        assert_eq!(
            signature_of("eyJhbGciOiJFUzI1NiJ9.p.s", H),
            None,
            "another header"
        );
        assert_eq!(signature_of(&format!("{H}.p"), H), None, "two parts");
        assert_eq!(signature_of(H, H), None);
    }

    #[test]
    fn remembered_on_the_second_verification_only() {
        let mut c = SignatureCache::default();
        let t = token(1);
        c.offer(&t, sig(&t), 7, 10, || "payload");
        assert_eq!(
            c.lookup(&t, sig(&t), 7),
            None,
            "first sighting: only marked"
        );
        c.offer(&t, sig(&t), 7, 10, || "payload");
        assert_eq!(c.lookup(&t, sig(&t), 7), Some(&"payload"));
    }

    #[test]
    fn a_hit_needs_the_same_token_and_secret_generation() {
        let mut c = SignatureCache::default();
        let t = token(2);
        for _ in 0..2 {
            c.offer(&t, sig(&t), 7, 10, || 1);
        }
        assert_eq!(c.lookup(&t, sig(&t), 8), None, "the secret changed");
        // Same signature head, other payload: never a hit.
        let forged = t.replacen("eyJzdWIi", "eyJzdWIj", 1);
        assert_eq!(c.lookup(&forged, sig(&forged), 7), None);
        // Same everything but the signature's tail.
        let mut tail = t.clone();
        tail.push('x');
        assert_eq!(c.lookup(&tail, sig(&tail), 7), None);
    }

    #[test]
    fn the_oldest_goes_first_and_zero_turns_it_off() {
        let mut c = SignatureCache::default();
        let tokens: Vec<String> = (0..5).map(token).collect();
        for t in &tokens {
            c.offer(t, sig(t), 1, 3, || t.clone());
            c.offer(t, sig(t), 1, 3, || t.clone());
        }
        assert_eq!(c.remembered(), 3);
        assert_eq!(c.lookup(&tokens[0], sig(&tokens[0]), 1), None);
        assert_eq!(c.lookup(&tokens[4], sig(&tokens[4]), 1), Some(&tokens[4]));
        let mut off = SignatureCache::default();
        for _ in 0..3 {
            off.offer(&tokens[0], sig(&tokens[0]), 1, 0, || 0);
        }
        assert_eq!(off.remembered(), 0);
    }
}
