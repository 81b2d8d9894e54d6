//! HMAC-SHA256 (RFC 2104) over sha2's block function, so a verifier can
//! compress the signing input a block at a time between other work.
//!
//! Why: SHA-256 with the SHA extensions is bound by the latency of its
//! round instructions (each block's rounds depend on the last), so the
//! core idles in between. verify_jwt has independent work of about the
//! same length, turning the payload into jsonb; handing the encoder one
//! block to compress every few strings lets the CPU run both at once
//! (`jsonb::encode_claims_with`). The answer is the same HMAC whatever the
//! schedule: the tests below hold it to RFC 4231 and to the `hmac` crate.

use sha2::digest::generic_array::GenericArray;

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// A key with HMAC's key schedule done: the states after the padded key's
/// inner and outer blocks.
#[derive(Clone)]
pub struct Hs256Key {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Hs256Key {
    pub fn new(secret: &[u8]) -> Hs256Key {
        // A key longer than a block is hashed first (RFC 2104 section 2).
        let mut k = [0u8; 64];
        if secret.len() > 64 {
            use sha2::Digest;
            k[..32].copy_from_slice(&sha2::Sha256::digest(secret));
        } else {
            k[..secret.len()].copy_from_slice(secret);
        }
        let pad = |b: u8| {
            let mut block = [0u8; 64];
            for (o, &x) in block.iter_mut().zip(&k) {
                *o = x ^ b;
            }
            let mut s = IV;
            compress(&mut s, &block);
            s
        };
        Hs256Key {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// The MAC of `input`, to be compressed by `Stream::step` and `finish`.
    pub fn stream<'a>(&self, input: &'a [u8]) -> Stream<'a> {
        Stream {
            state: self.inner,
            outer: self.outer,
            input,
            at: 0,
        }
    }

    pub fn mac(&self, input: &[u8]) -> [u8; 32] {
        self.stream(input).finish()
    }
}

/// An HMAC under way: the inner hash over `input[..at]` done.
pub struct Stream<'a> {
    state: [u32; 8],
    outer: [u32; 8],
    input: &'a [u8],
    at: usize,
}

impl Stream<'_> {
    /// Compresses the next whole block of the input, if one is left.
    #[inline]
    pub fn step(&mut self) {
        if let Some(b) = self.input.get(self.at..self.at + 64) {
            if let Ok(b) = b.try_into() {
                compress(&mut self.state, b);
                self.at += 64;
            }
        }
    }

    /// The rest of the input, the padding, and the outer hash.
    pub fn finish(mut self) -> [u8; 32] {
        while self.at + 64 <= self.input.len() {
            self.step();
        }
        // The inner message is the key block (64 bytes) and the input.
        let bits = ((64 + self.input.len()) as u64) * 8;
        let tail = &self.input[self.at..];
        let mut last = [0u8; 128];
        last[..tail.len()].copy_from_slice(tail);
        last[tail.len()] = 0x80;
        let n = if tail.len() + 9 <= 64 { 64 } else { 128 };
        last[n - 8..n].copy_from_slice(&bits.to_be_bytes());
        for b in last[..n].chunks_exact(64) {
            if let Ok(b) = b.try_into() {
                compress(&mut self.state, b);
            }
        }
        let mut block = [0u8; 64];
        for (o, w) in block.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        let mut s = self.outer;
        compress(&mut s, &block);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(s) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;

    fn reference(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc4231_cases() {
        // Test case 2, and test case 6 (a 131-byte key, hashed first).
        assert_eq!(
            hex(&Hs256Key::new(b"Jefe").mac(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&Hs256Key::new(&[0xaa; 131])
                .mac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn every_length_around_the_block_edges() {
        let key = b"0123456789abcdef0123456789abcdef";
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..msg.len() {
            assert_eq!(
                Hs256Key::new(key).mac(&msg[..n]),
                reference(key, &msg[..n]),
                "{n}"
            );
        }
    }

    proptest! {
        #[test]
        fn same_as_the_hmac_crate_whatever_the_schedule(
            key in proptest::collection::vec(any::<u8>(), 0..200),
            msg in proptest::collection::vec(any::<u8>(), 0..1200),
            steps in 0usize..30,
        ) {
            let k = Hs256Key::new(&key);
            let mut s = k.stream(&msg);
            for _ in 0..steps {
                s.step();
            }
            prop_assert_eq!(s.finish(), reference(&key, &msg));
        }
    }
}
