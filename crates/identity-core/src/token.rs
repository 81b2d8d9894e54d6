//! Opaque API tokens: `<prefix>_<30 base62 random><6 base62 CRC32>`.
//!
//! The checksum is the CRC32 (IEEE) of everything before it, `<prefix>_<random>`,
//! written as 6 base62 digits, so a typo or a truncated paste is rejected
//! without touching a table, and secret scanners can recognise our tokens
//! with few false positives. 30 base62 characters carry ~178.6 bits of
//! entropy. Only `hash()` (SHA-256) is ever stored.

use super::error::{IdentityError, Result};
use rand::{CryptoRng, Rng};
use sha2::{Digest, Sha256};

pub const RANDOM_LEN: usize = 30;
pub const CHECKSUM_LEN: usize = 6;
pub const MAX_PREFIX_LEN: usize = 16;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A prefix is 1..=16 lowercase ASCII letters or digits, starting with a letter.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.as_bytes()[0].is_ascii_lowercase()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(IdentityError::invalid("token prefix is invalid")
            .hint("identity.token_prefix must be 1 to 16 lowercase letters or digits, starting with a letter"))
    }
}

/// Whether `token` has the API token shape (`<prefix>_<30 base62><6 base62>`,
/// any valid prefix) and its checksum holds: how log redaction recognises
/// one without knowing identity.token_prefix.
pub fn looks_like_token(token: &str) -> bool {
    let Some((prefix, rest)) = token.rsplit_once('_') else {
        return false;
    };
    validate_prefix(prefix).is_ok()
        && rest.len() == RANDOM_LEN + CHECKSUM_LEN
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        && {
            let body = &token[..token.len() - CHECKSUM_LEN];
            checksum(body) == token.as_bytes()[token.len() - CHECKSUM_LEN..]
        }
}

fn base62_fixed(mut n: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    base62_fixed(crc32fast::hash(body.as_bytes()))
}

/// A new token; `rng` must be a CSPRNG (OsRng in production).
pub fn generate<R: Rng + CryptoRng>(prefix: &str, rng: &mut R) -> Result<String> {
    validate_prefix(prefix)?;
    let mut s = String::with_capacity(prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..RANDOM_LEN {
        // gen_range is unbiased (rejection sampling).
        s.push(ALPHABET[rng.gen_range(0..62)] as char);
    }
    let c = checksum(&s);
    s.push_str(std::str::from_utf8(&c).expect("ascii"));
    Ok(s)
}

/// A token that passed the format and checksum checks (not yet looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub prefix: &'a str,
    pub random: &'a str,
    pub token: &'a str,
}

impl<'a> Parsed<'a> {
    /// What may be shown later: the prefix and the first 4 random characters.
    pub fn display_prefix(&self) -> String {
        format!("{}_{}", self.prefix, &self.random[..4])
    }
    /// The last 4 characters (all checksum: they reveal no entropy).
    pub fn last4(&self) -> &'a str {
        &self.token[self.token.len() - 4..]
    }
}

/// Checks shape, prefix and checksum. Errors are 28000 (the caller presented
/// it as a credential) and never contain the token.
pub fn parse<'a>(token: &'a str, expected_prefix: &str) -> Result<Parsed<'a>> {
    let bad = |why: &'static str| {
        IdentityError::unauthenticated("invalid API token")
            .detail(why)
            .reason(match why {
                "checksum mismatch" => crate::reason::Reason::BadChecksum,
                _ => crate::reason::Reason::Malformed,
            })
    };
    let total = expected_prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN;
    if token.len() != total {
        return Err(bad("wrong length"));
    }
    // Before any slicing: byte offsets are char boundaries only in ASCII.
    if !token.is_ascii() {
        return Err(bad("not base62"));
    }
    let (prefix, rest) = token.split_at(expected_prefix.len());
    if prefix != expected_prefix || !rest.starts_with('_') {
        return Err(bad("wrong prefix"));
    }
    let rest = &rest[1..];
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad("not base62"));
    }
    let (random, sum) = rest.split_at(RANDOM_LEN);
    let expected = checksum(&token[..token.len() - CHECKSUM_LEN]);
    // The checksum is public information; a plain comparison leaks nothing.
    if sum.as_bytes() != expected {
        return Err(bad("checksum mismatch"));
    }
    Ok(Parsed {
        prefix,
        random,
        token,
    })
}

/// SHA-256 of the whole token: the only form stored at rest.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Seconds a backend waits after the last `last_used_at` write it knows of
/// before it tries the next for this token: 60 (the column's own limit,
/// which the UPDATE's condition enforces) plus 0-59 spread by the token's
/// hash and the backend. Backends that learned of the same tokens at the
/// same time (a restart, a pooler opening its connections) would otherwise
/// all try every token in the same second a minute later, each try a
/// statement.
pub fn touch_after(hash: &[u8; 32], backend: u32) -> i64 {
    let h = u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
    let b = (backend as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    60 + ((h ^ b) >> 7) as i64 % 60
}

/// Unix seconds as (year, month, day, seconds into the day): proleptic
/// Gregorian, Howard Hinnant's civil-from-days.
fn civil(secs: i64) -> (i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d, rem)
}

/// RFC 3339 UTC text of Unix seconds (proleptic Gregorian; Howard Hinnant's
/// civil-from-days), as JSON answers show timestamps.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d, rem) = civil(secs);
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
    }
    // The common case by hand: verify_api_token writes one per call, and
    // format! was a tenth of a verification.
    let two = |v: i64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut b = *b"0000-00-00T00:00:00Z";
    b[..2].copy_from_slice(&two(y / 100));
    b[2..4].copy_from_slice(&two(y % 100));
    b[5..7].copy_from_slice(&two(m));
    b[8..10].copy_from_slice(&two(d));
    b[11..13].copy_from_slice(&two(hh));
    b[14..16].copy_from_slice(&two(mm));
    b[17..19].copy_from_slice(&two(ss));
    String::from_utf8(b.to_vec()).expect("ASCII digits")
}

/// A scope is 1 to 64 of `a-z 0-9 _ . : * -`, starting with a letter or digit.
pub fn validate_scope(s: &str) -> bool {
    is_slug(s, 64, b"_.:*-")
}

/// 1 to `max` bytes of a-z 0-9 and `extra`, starting with a-z or 0-9: the
/// shape of scopes, feature flag keys and credential providers.
pub fn is_slug(s: &str, max: usize, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_by_hand_is_what_format_writes() {
        let reference = |secs: i64| {
            let (y, m, d, rem) = civil(secs);
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            )
        };
        let mut secs: Vec<i64> = vec![
            0,
            -1,
            1,
            59,
            60,
            86_399,
            86_400,
            951_782_400,
            1_709_164_800,
            253_402_300_799,
            253_402_300_800,
            -62_167_219_200,
            -62_167_219_201,
        ];
        secs.extend((0..2000i64).map(|i| i * 7_919_993 - 3_000_000_000));
        for t in secs {
            assert_eq!(rfc3339(t), reference(t), "{t}");
        }
    }

    #[test]
    fn touch_waits_a_minute_to_two_spread_by_token_and_backend() {
        let waits: Vec<i64> = (0..200u32)
            .map(|i| touch_after(&hash(&format!("t{i}")), 4242))
            .collect();
        assert!(waits.iter().all(|w| (60..120).contains(w)));
        // Spread over the minute, not bunched.
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 40, "{}", distinct.len());
        let h = hash("t0");
        let by_backend: std::collections::HashSet<_> =
            (0..50).map(|b| touch_after(&h, b)).collect();
        assert!(by_backend.len() > 20, "{}", by_backend.len());
    }
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let t = generate("idt", &mut rng()).unwrap();
        assert_eq!(t.len(), 3 + 1 + 30 + 6);
        assert!(t.starts_with("idt_"));
        assert!(t[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        let p = parse(&t, "idt").unwrap();
        assert_eq!(p.random.len(), RANDOM_LEN);
        assert_eq!(p.display_prefix(), format!("idt_{}", &t[4..8]));
        assert_eq!(p.last4(), &t[t.len() - 4..]);
    }

    #[test]
    fn tokens_differ() {
        let mut r = rng();
        let a = generate("idt", &mut r).unwrap();
        let b = generate("idt", &mut r).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn every_single_character_typo_is_caught_by_the_checksum() {
        let t = generate("idt", &mut rng()).unwrap();
        let alpha = std::str::from_utf8(ALPHABET).unwrap();
        for i in 4..t.len() {
            for c in alpha.chars() {
                if t.as_bytes()[i] as char == c {
                    continue;
                }
                let mut m = t.clone().into_bytes();
                m[i] = c as u8;
                let m = String::from_utf8(m).unwrap();
                assert!(parse(&m, "idt").is_err(), "typo at {i} accepted");
            }
        }
    }

    #[test]
    fn wrong_prefix_length_and_alphabet_are_rejected() {
        let t = generate("idt", &mut rng()).unwrap();
        assert_eq!(
            parse(&t, "abc").unwrap_err().detail.as_deref(),
            Some("wrong prefix")
        );
        assert_eq!(
            parse(&t[..t.len() - 1], "idt")
                .unwrap_err()
                .detail
                .as_deref(),
            Some("wrong length")
        );
        let mut m = t.clone();
        m.replace_range(10..11, "-");
        assert_eq!(
            parse(&m, "idt").unwrap_err().detail.as_deref(),
            Some("not base62")
        );
        assert_eq!(parse("", "idt").unwrap_err().sqlstate(), "28000");
        // Multi-byte input of the right byte length must not panic on slicing.
        let weird = format!("idt_{}", "é".repeat(18));
        assert!(parse(&weird, "idt").is_err());
    }

    #[test]
    fn error_never_contains_the_token() {
        let t = generate("idt", &mut rng()).unwrap();
        let mut m = t.clone();
        m.replace_range(5..6, if &t[5..6] == "A" { "B" } else { "A" });
        let e = parse(&m, "idt").unwrap_err();
        assert!(!e.to_string().contains(&m[4..]));
    }

    #[test]
    fn prefixes_are_validated() {
        for ok in ["idt", "sk", "a1", "abcdefghijklmnop"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1dt", "ID", "id_t", "abcdefghijklmnopq", "i-t"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checksum_encoding_is_fixed_width() {
        assert_eq!(&base62_fixed(0), b"000000");
        assert_eq!(&base62_fixed(61), b"00000z");
        assert_eq!(&base62_fixed(62), b"000010");
        assert_eq!(&base62_fixed(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn scopes_are_validated() {
        for ok in ["read", "credentials:read", "agents.*", "a-b_c"] {
            assert!(validate_scope(ok), "{ok}");
        }
        for bad in ["", "Read", ":x", "a b", &"x".repeat(65)] {
            assert!(!validate_scope(bad), "{bad}");
        }
    }

    #[test]
    fn hash_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(hash("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s, "idt");
        }

        #[test]
        fn mutated_tokens_are_rejected(seed in 0u64..1000, pos in 0usize..40, byte in 0u8..128) {
            let t = generate("idt", &mut StdRng::seed_from_u64(seed)).unwrap();
            let mut m = t.clone().into_bytes();
            proptest::prop_assume!(m[pos] != byte);
            m[pos] = byte;
            if let Ok(m) = String::from_utf8(m) {
                proptest::prop_assert!(parse(&m, "idt").is_err());
            }
        }
    }
}
