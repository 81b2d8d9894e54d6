//! Strict base64url without padding (RFC 4648 section 5): decoding the JWT
//! segments verify_jwt reads on every call, and encoding the payloads
//! sign_jwt writes (`encode_append`).
//!
//! Why not the `base64` crate: its decoder was a tenth of verify_jwt's time
//! on a 700-byte token (~330 ns for the payload; a scalar loop is no faster).
//! This one decodes 32 characters per step with AVX2 where the CPU has it
//! (checked once at run time; Muła and Lemire's method, "Faster Base64
//! Encoding and Decoding Using AVX2 Instructions", 2018, with range masks
//! for the url-safe alphabet), and the rest, or everything elsewhere,
//! through one table, into the caller's buffer. It accepts exactly what
//! `URL_SAFE_NO_PAD.decode` accepts: the url-safe alphabet, no `=`, no
//! length of 1 mod 4, and zero trailing bits (a canonical encoding, so one
//! token has one spelling); a differential property test below holds it to
//! that over random and mutated input.

/// 0..=63 for the alphabet's characters, 0xFF for every other byte.
static DECODE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The decoded length of `n` characters, or None for a length no
/// unpadded encoding has (1 mod 4).
pub fn decoded_len(n: usize) -> Option<usize> {
    match n % 4 {
        1 => None,
        r => Some(n / 4 * 3 + r.saturating_sub(1)),
    }
}

/// Decodes `s` into `out` (which must be exactly `decoded_len(s.len())`
/// long). False, with `out` unspecified, when `s` is not canonical
/// unpadded base64url.
pub fn decode_into(s: &[u8], out: &mut [u8]) -> bool {
    if decoded_len(s.len()) != Some(out.len()) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if s.len() >= 32 && std::arch::is_x86_feature_detected!("avx2") {
        // Whole blocks of 32 characters (24 bytes), then the rest below.
        let blocks = s.len() / 32;
        // SAFETY: AVX2 is present (checked above).
        if !unsafe { avx2::decode_blocks(&s[..blocks * 32], &mut out[..blocks * 24]) } {
            return false;
        }
        return decode_scalar(&s[blocks * 32..], &mut out[blocks * 24..]);
    }
    decode_scalar(s, out)
}

/// `decode_into` one table lookup per character; `out` has the right length.
fn decode_scalar(s: &[u8], out: &mut [u8]) -> bool {
    let d = |c: u8| DECODE[c as usize] as u32;
    // Any invalid character sets bit 7 in `bad` (0xFF entries).
    let mut bad = 0u32;
    let full = s.len() / 4;
    let (body, tail) = s.split_at(full * 4);
    let (out_body, out_tail) = out.split_at_mut(full * 3);
    // Eight characters to six bytes per step, then four to three.
    let mut chunks8 = body.chunks_exact(8);
    let mut outs6 = out_body.chunks_exact_mut(6);
    for (c, o) in (&mut chunks8).zip(&mut outs6) {
        let a = d(c[0]) << 18 | d(c[1]) << 12 | d(c[2]) << 6 | d(c[3]);
        let b = d(c[4]) << 18 | d(c[5]) << 12 | d(c[6]) << 6 | d(c[7]);
        bad |=
            (d(c[0]) | d(c[1]) | d(c[2]) | d(c[3]) | d(c[4]) | d(c[5]) | d(c[6]) | d(c[7])) & 0x80;
        o[..3].copy_from_slice(&a.to_be_bytes()[1..]);
        o[3..].copy_from_slice(&b.to_be_bytes()[1..]);
    }
    for (c, o) in chunks8
        .remainder()
        .chunks_exact(4)
        .zip(outs6.into_remainder().chunks_exact_mut(3))
    {
        let v = d(c[0]) << 18 | d(c[1]) << 12 | d(c[2]) << 6 | d(c[3]);
        bad |= (d(c[0]) | d(c[1]) | d(c[2]) | d(c[3])) & 0x80;
        o.copy_from_slice(&v.to_be_bytes()[1..]);
    }
    match *tail {
        [] => {}
        [a, b] => {
            let v = d(a) << 6 | d(b);
            // 12 bits for one byte: the low 4 must be zero.
            bad |= (d(a) | d(b)) & 0x80 | (v & 0x0F);
            out_tail[0] = (v >> 4) as u8;
        }
        [a, b, c] => {
            let v = d(a) << 12 | d(b) << 6 | d(c);
            // 18 bits for two bytes: the low 2 must be zero.
            bad |= (d(a) | d(b) | d(c)) & 0x80 | (v & 0x03);
            out_tail[0] = (v >> 10) as u8;
            out_tail[1] = (v >> 2) as u8;
        }
        _ => unreachable!("decoded_len refused a remainder of 1"),
    }
    bad == 0
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Decodes `s` (a multiple of 32 characters) into `out` (3/4 of its
    /// length); false when any character is outside the alphabet.
    #[target_feature(enable = "avx2")]
    pub unsafe fn decode_blocks(s: &[u8], out: &mut [u8]) -> bool {
        debug_assert!(s.len().is_multiple_of(32) && out.len() == s.len() / 4 * 3);
        // Nibble tables (per 128-bit lane), after Muła and Lemire's AVX2
        // decoder, for the URL alphabet. The high nibble picks a class bit
        // (0x01: never valid, 0x02: 0x2_, 0x04: 0x3_, 0x08: 0x4_ and 0x6_,
        // 0x10: 0x5_, 0x20: 0x7_); the low nibble the classes it is
        // invalid in. A byte is in the alphabet when the two share no bit.
        macro_rules! lanes2 {
            ($($b:expr),*) => { _mm256_setr_epi8($($b as i8),*, $($b as i8),*) };
        }
        let class_of_hi = lanes2!(1, 1, 2, 4, 8, 16, 8, 32, 1, 1, 1, 1, 1, 1, 1, 1);
        let invalid_at_lo = lanes2!(
            0x0B, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x07, 0x37, 0x37, 0x35,
            0x37, 0x27
        );
        // What to add to a character for its value, by high nibble ('-' is
        // the only 0x2_, '0'-'9' the 0x3_, 'A'-'Z' 0x4_/0x5_, 'a'-'z'
        // 0x6_/0x7_); '_' (0x5F) is moved to slot 13, unused otherwise.
        let roll = lanes2!(0, 0, 17, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, -32, 0, 0);
        let nibble = _mm256_set1_epi8(0x0F);
        let under = _mm256_set1_epi8(b'_' as i8);
        let eight = _mm256_set1_epi8(8);
        // Within each 128-bit lane, the 3 bytes of each 32-bit word (its
        // low 24 bits, most significant first), packed to 12 bytes.
        let pack = _mm256_setr_epi8(
            2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4, 10, 9, 8, 14,
            13, 12, -1, -1, -1, -1,
        );
        let lanes = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
        for (i, c) in s.chunks_exact(32).enumerate() {
            // SAFETY: c is 32 bytes; an unaligned load.
            let x = unsafe { _mm256_loadu_si256(c.as_ptr().cast()) };
            let hi = _mm256_and_si256(_mm256_srli_epi32(x, 4), nibble);
            let lo = _mm256_and_si256(x, nibble);
            let bad = _mm256_and_si256(
                _mm256_shuffle_epi8(class_of_hi, hi),
                _mm256_shuffle_epi8(invalid_at_lo, lo),
            );
            if _mm256_testz_si256(bad, bad) == 0 {
                return false;
            }
            let slot = _mm256_xor_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(x, under), eight));
            let v = _mm256_add_epi8(x, _mm256_shuffle_epi8(roll, slot));
            // Pairs of 6 bits to 12 (a * 64 + b), pairs of 12 to 24.
            let v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x0140_0140));
            let v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x0001_1000));
            let v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), lanes);
            let at = i * 24;
            if at + 32 <= out.len() {
                // The 24 bytes, and 8 that the next block overwrites.
                // SAFETY: out[at..at + 32] is in bounds (checked); an
                // unaligned store.
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(at).cast(), v) };
            } else {
                let mut bytes = [0u8; 32];
                // SAFETY: bytes is 32 bytes; an unaligned store.
                unsafe { _mm256_storeu_si256(bytes.as_mut_ptr().cast(), v) };
                out[at..at + 24].copy_from_slice(&bytes[..24]);
            }
        }
        true
    }

    /// Encodes `blocks` groups of 24 bytes of `data` (which holds 4 bytes
    /// more, read but not encoded) into `out` (32 characters each).
    #[target_feature(enable = "avx2")]
    pub unsafe fn encode_blocks(data: &[u8], out: &mut [u8], blocks: usize) {
        debug_assert!(data.len() == blocks * 24 + 4 && out.len() == blocks * 32);
        // Per 128-bit lane, each 3 input bytes (s1 s2 s3) to a 32-bit word
        // [s2 s1 s3 s2], whose four 6-bit fields are then moved into bytes.
        let spread = _mm256_setr_epi8(
            1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7,
            10, 9, 11, 10,
        );
        // What to add to a 6-bit value, by its class (see below): 0..25
        // 'A', 26..51 'a' - 26, 52..61 '0' - 52, 62 '-', 63 '_'.
        let shift = _mm256_setr_epi8(
            71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -17, 32, 65, 0, 0, 71, -4, -4, -4, -4, -4,
            -4, -4, -4, -4, -4, -17, 32, 65, 0, 0,
        );
        for i in 0..blocks {
            // SAFETY: bytes 24i .. 24i + 28 are within `data` (its length);
            // unaligned loads.
            let x = unsafe {
                _mm256_set_m128i(
                    _mm_loadu_si128(data.as_ptr().add(24 * i + 12).cast()),
                    _mm_loadu_si128(data.as_ptr().add(24 * i).cast()),
                )
            };
            let x = _mm256_shuffle_epi8(x, spread);
            let t0 = _mm256_and_si256(x, _mm256_set1_epi32(0x0fc0_fc00));
            let t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x0400_0040));
            let t2 = _mm256_and_si256(x, _mm256_set1_epi32(0x003f_03f0));
            let t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x0100_0010));
            let v = _mm256_or_si256(t1, t3);
            // Class: 0 for 26..51, 1..12 for 52..63, 13 for 0..25.
            let class = _mm256_or_si256(
                _mm256_subs_epu8(v, _mm256_set1_epi8(51)),
                _mm256_and_si256(
                    _mm256_cmpgt_epi8(_mm256_set1_epi8(26), v),
                    _mm256_set1_epi8(13),
                ),
            );
            let chars = _mm256_add_epi8(_mm256_shuffle_epi8(shift, class), v);
            // SAFETY: characters 32i .. 32i + 32 are within `out`; an unaligned store.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(32 * i).cast(), chars) };
        }
    }
}

/// The url-safe alphabet, for encoding.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Appends the unpadded base64url of `data` to `out` (only ASCII), as
/// `URL_SAFE_NO_PAD.encode` writes it: 24 bytes to 32 characters per step
/// with AVX2 where the CPU has it (the same paper's encoder), the rest one
/// 3-byte group at a time. sign_jwt encodes every payload with it.
pub fn encode_append(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len().div_ceil(3) * 4);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if data.len() >= 28 && std::arch::is_x86_feature_detected!("avx2") {
        // Each step reads 28 bytes (two 16-byte loads at 0 and 12) and uses 24.
        let blocks = (data.len() - 4) / 24;
        let at = out.len();
        out.resize(at + blocks * 32, 0);
        // SAFETY: AVX2 is present (checked above); the input holds
        // blocks * 24 + 4 bytes, the output blocks * 32.
        unsafe { avx2::encode_blocks(&data[..blocks * 24 + 4], &mut out[at..], blocks) };
        done = blocks * 24;
    }
    encode_scalar(&data[done..], out);
}

fn encode_scalar(data: &[u8], out: &mut Vec<u8>) {
    let a = |v: u32| ALPHABET[(v & 63) as usize];
    let mut groups = data.chunks_exact(3);
    for g in &mut groups {
        let v = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        out.extend_from_slice(&[a(v >> 18), a(v >> 12), a(v >> 6), a(v)]);
    }
    match *groups.remainder() {
        [x] => {
            let v = u32::from(x) << 16;
            out.extend_from_slice(&[a(v >> 18), a(v >> 12)]);
        }
        [x, y] => {
            let v = u32::from(x) << 16 | u32::from(y) << 8;
            out.extend_from_slice(&[a(v >> 18), a(v >> 12), a(v >> 6)]);
        }
        _ => {}
    }
}

/// Decodes `s` into a new vector, or None (see `decode_into`).
pub fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; decoded_len(s.len())?];
    decode_into(s, &mut out).then_some(out)
}

#[cfg(test)]
mod encode_tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    fn enc(d: &[u8]) -> String {
        let mut out = b"prefix.".to_vec();
        encode_append(d, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_length_and_byte_like_the_base64_crate() {
        // Lengths around the 24-byte steps and the 28-byte threshold, every
        // byte value in every position.
        for len in 0..120 {
            for fill in [0u8, 0xFF, 0x3E, 0xFB] {
                let mut d: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(37) ^ fill)
                    .collect();
                assert_eq!(
                    enc(&d),
                    format!("prefix.{}", URL_SAFE_NO_PAD.encode(&d)),
                    "len {len}"
                );
                if len > 0 {
                    d[len / 2] = fill;
                    assert_eq!(enc(&d), format!("prefix.{}", URL_SAFE_NO_PAD.encode(&d)));
                }
            }
        }
        let all: Vec<u8> = (0..=255u8).cycle().take(3 * 256).collect();
        assert_eq!(
            enc(&all),
            format!("prefix.{}", URL_SAFE_NO_PAD.encode(&all))
        );
    }

    #[test]
    fn the_avx2_steps_agree_with_the_scalar_loop_or_say_skipped() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                eprintln!("skipped: no AVX2 on this CPU");
                return;
            }
            let d: Vec<u8> = (0..24 * 9 + 4).map(|i| (i * 131 % 256) as u8).collect();
            let mut simd = vec![0u8; 9 * 32];
            // SAFETY: AVX2 checked; 9 blocks plus 4 bytes in, 9 * 32 out.
            unsafe { avx2::encode_blocks(&d, &mut simd, 9) };
            let mut scalar = Vec::new();
            encode_scalar(&d[..9 * 24], &mut scalar);
            assert_eq!(simd, scalar);
        }
    }

    proptest! {
        #[test]
        fn random_data_like_the_base64_crate(d in proptest::collection::vec(any::<u8>(), 0..400)) {
            prop_assert_eq!(enc(&d), format!("prefix.{}", URL_SAFE_NO_PAD.encode(&d)));
            let mut out = Vec::new();
            encode_append(&d, &mut out);
            prop_assert_eq!(decode(&out), Some(d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(decode(b"Zg").as_deref(), Some(&b"f"[..]));
        assert_eq!(decode(b"Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(decode(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decode(b"Zm9vYmFyYmF6").as_deref(), Some(&b"foobarbaz"[..]));
        assert_eq!(decode(b"-_-_").as_deref(), Some(&[0xFB, 0xFF, 0xBF][..]));
        for bad in [
            &b"Z"[..],
            b"Zh",
            b"Zm9",
            b"Zm9v=",
            b"Zg==",
            b"Zm+v",
            b"Zm/v",
            b"Zm9v Zm9v",
            b"Zm9v.Zm9v",
            b"\xC3\xA9AA",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// Every length from 0 to 80 characters (the AVX2 blocks of 32, and
    /// the rest) over every byte value at every position of a valid
    /// encoding: the same answer as the base64 crate.
    #[test]
    fn each_position_and_byte_like_the_base64_crate() {
        for n in 0..60usize {
            let data: Vec<u8> = (0..n as u8)
                .map(|i| i.wrapping_mul(37).wrapping_add(11))
                .collect();
            let enc = URL_SAFE_NO_PAD.encode(&data).into_bytes();
            assert_eq!(decode(&enc), Some(data.clone()));
            for at in 0..enc.len() {
                for b in 0..=255u8 {
                    let mut m = enc.clone();
                    m[at] = b;
                    assert_eq!(
                        decode(&m),
                        URL_SAFE_NO_PAD.decode(&m).ok(),
                        "len {n} at {at} byte {b}"
                    );
                }
            }
        }
    }

    /// The AVX2 blocks against the scalar loop, directly. Where the CPU has
    /// no AVX2 the SIMD path cannot run: the test says so ("skipped") rather
    /// than passing as if it had been checked.
    #[test]
    fn avx2_blocks_agree_with_the_scalar_loop_or_say_skipped() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                eprintln!("skipped: this CPU has no AVX2, the SIMD base64 path was not tested");
                return;
            }
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            for seed in 0..2000u32 {
                let n = 32 * (1 + (seed as usize % 4));
                let mut s: Vec<u8> = (0..n)
                    .map(|i| alphabet[(seed as usize * 31 + i * 7) % 64])
                    .collect();
                if seed % 3 == 0 {
                    s[seed as usize % n] = b"=+/. \x00\xff"[seed as usize % 7];
                }
                let mut a = vec![0u8; n / 4 * 3];
                let mut b = a.clone();
                // SAFETY: AVX2 is present (checked above); both buffers hold
                // 24 bytes per 32 input characters.
                let simd = unsafe { avx2::decode_blocks(&s, &mut a) };
                let scalar = decode_scalar(&s, &mut b);
                assert_eq!(simd, scalar, "seed {seed}");
                if simd {
                    assert_eq!(a, b, "seed {seed}");
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        eprintln!("skipped: not x86_64, the SIMD base64 path was not tested");
    }

    proptest! {
        #[test]
        fn random_input_like_the_base64_crate(s in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&s), URL_SAFE_NO_PAD.decode(&s).ok());
        }

        #[test]
        fn mostly_alphabet_like_the_base64_crate(s in "[A-Za-z0-9_=+/.-]{0,120}") {
            prop_assert_eq!(decode(s.as_bytes()), URL_SAFE_NO_PAD.decode(s.as_bytes()).ok());
        }

        #[test]
        fn scalar_and_simd_agree(s in "[A-Za-z0-9_-]{0,200}") {
            let mut a = vec![0u8; decoded_len(s.len()).unwrap_or(0)];
            let mut b = a.clone();
            let ok = decoded_len(s.len()).is_some();
            prop_assert_eq!(ok && decode_into(s.as_bytes(), &mut a), ok && decode_scalar(s.as_bytes(), &mut b));
            prop_assert_eq!(a, b);
        }

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(decode(URL_SAFE_NO_PAD.encode(&data).as_bytes()), Some(data));
        }
    }
}
