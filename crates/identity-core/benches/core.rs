//! criterion benchmarks of the pure core (no Postgres): `cargo bench --bench core`.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use identity_core::{jsonb, jwt, keys, token};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A ~700-byte Supabase-shaped access token (signature bytes are arbitrary:
/// these benchmarks measure parsing, not verification).
fn supabase_token() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#;
    let payload = r#"{"iss":"https://abc.supabase.co/auth/v1","sub":"8d6a1f3e-2c1b-4e5f-9a7b-1c2d3e4f5a6b","aud":"authenticated","exp":1764000000,"iat":1763996400,"email":"ada@example.com","phone":"","app_metadata":{"provider":"email","providers":["email"]},"user_metadata":{"email_verified":true,"full_name":"Ada Lovelace"},"role":"authenticated","aal":"aal1","amr":[{"method":"password","timestamp":1763996400}],"session_id":"4b1c8a9e-7d6f-4e3a-b2c1-0f9e8d7c6b5a","is_anonymous":false,"is_service_user":false,"user_role":"user","organization_id":null}"#;
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode([7u8; 32])
    )
}

fn benches(c: &mut Criterion) {
    let t = supabase_token();
    c.bench_function("jwt::split (700 B token)", |b| {
        b.iter(|| jwt::split(black_box(&t)).unwrap())
    });
    c.bench_function("jwt::decode (700 B token)", |b| {
        b.iter(|| jwt::decode(black_box(&t)).unwrap())
    });
    let payload_b64 = t.split('.').nth(1).unwrap().as_bytes().to_vec();
    c.bench_function("b64::decode (payload)", |b| {
        b.iter(|| identity_core::b64::decode(black_box(&payload_b64)).unwrap())
    });
    c.bench_function("base64 crate decode (payload, for comparison)", |b| {
        use base64::Engine;
        b.iter(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(black_box(&payload_b64))
                .unwrap()
        })
    });
    let mut rng = StdRng::seed_from_u64(1);
    c.bench_function("token::generate", |b| {
        b.iter(|| token::generate("idt", &mut rng).unwrap())
    });
    let tok = token::generate("idt", &mut rng).unwrap();
    c.bench_function("token::parse (checksum)", |b| {
        b.iter(|| token::parse(black_box(&tok), "idt").unwrap())
    });
    c.bench_function("token::hash (sha256)", |b| {
        b.iter(|| token::hash(black_box(&tok)))
    });

    // Stateless HS256 verification of the 700-byte token (no table checks).
    let secret = b"0123456789abcdef0123456789abcdef";
    let claims = jwt::decode(&t).unwrap().payload;
    let std = jwt::Standard {
        now: 1_763_996_400,
        ttl: 3600,
        jti: "j",
        issuer: None,
        audience: None,
    };
    let hs = jwt::sign_hs256(claims.clone(), &jwt::HmacKey::new(secret), &std);
    let cfg = jwt::VerifyConfig {
        now: 1_763_996_500,
        leeway: 30,
        audience: Some("authenticated"),
        issuer: None,
    };
    c.bench_function("jwt::check_hs256 (700 B token, serde claims)", |b| {
        b.iter(|| jwt::check_hs256(black_box(&hs), secret, &cfg))
    });
    // The payload as jsonb (verify_jwt's answer) and a stored jsonb back to
    // JSON text (sign_jwt's input), without Postgres.
    let payload = serde_json::to_vec(&claims).unwrap();
    c.bench_function("jsonb::encode_claims (payload -> jsonb)", |b| {
        b.iter(|| jsonb::encode_claims(black_box(&payload)).unwrap())
    });
    let stored = jsonb::encode_object(&payload).unwrap();
    c.bench_function(
        "jsonb::shape encode (payload -> jsonb, from a template)",
        |b| {
            let mut shapes = jsonb::shape::Shapes::default();
            shapes.encode(&payload, || {}).unwrap();
            b.iter(|| shapes.encode(black_box(&payload), || {}).unwrap())
        },
    );
    c.bench_function("jsonb::object_to_json (jsonb -> text)", |b| {
        b.iter(|| jsonb::object_to_json(black_box(&stored), &mut |_| {}).unwrap())
    });
    c.bench_function(
        "jsonb::text_shape object_to_json (jsonb -> text, from a template)",
        |b| {
            let mut shapes = jsonb::text_shape::TextShapes::default();
            shapes.object_to_json(&stored, |_| {}).unwrap();
            b.iter(|| shapes.object_to_json(black_box(&stored), |_| {}).unwrap())
        },
    );
    c.bench_function("jwt::sign_hs256_json (700 B claims)", |b| {
        let key = jwt::HmacKey::new(secret);
        b.iter(|| jwt::sign_hs256_json(payload.clone(), &|_| false, &key, &std))
    });
    // Signature verification alone, per algorithm.
    for alg in [keys::Alg::Es256, keys::Alg::EdDsa, keys::Alg::Rs256] {
        let (der, jwk) = keys::generate(alg, "k", &mut rng);
        let sk = keys::SigningKey::from_pkcs8(alg, &der).unwrap();
        let vk = keys::VerifyingKey::from_jwk(alg, &jwk).unwrap();
        let sig = sk.sign(b"header.payload", &mut rng);
        c.bench_function(&format!("keys::verify {}", alg.name()), |b| {
            b.iter(|| vk.verify(black_box(b"header.payload"), &sig))
        });
    }
}

criterion_group!(core, benches);

/// The per-backend tables' hasher (core::hashing, foldhash) on the keys
/// those tables hold: 16-byte user and session ids, 36-byte jtis. (The
/// hand-written FxHash-style hasher it replaced measured 5.39 and 16.7 ns
/// here, foldhash 4.64 and 5.75 ns.)
fn hashers(c: &mut criterion::Criterion) {
    use identity_core::hashing::HashSet;
    use std::hint::black_box;
    let ids: Vec<[u8; 16]> = (0..1000u32)
        .map(|i| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            b[8..12].copy_from_slice(&(i.wrapping_mul(2654435761)).to_le_bytes());
            b
        })
        .collect();
    let jtis: Vec<Box<[u8]>> = (0..1000u32)
        .map(|i| {
            format!("{:08x}-1c2d-4e5f-8a9b-{:012x}", i, i as u64 * 7919)
                .into_bytes()
                .into_boxed_slice()
        })
        .collect();
    let id_set: HashSet<[u8; 16]> = ids.iter().copied().collect();
    let jti_set: HashSet<Box<[u8]>> = jtis.iter().cloned().collect();
    let (hit, miss) = (ids[517], [0xEEu8; 16]);
    let jti: &[u8] = &jtis[517];
    c.bench_function("hash: uuid hit+miss", |b| {
        b.iter(|| id_set.contains(black_box(&hit)) ^ id_set.contains(black_box(&miss)))
    });
    c.bench_function("hash: jti hit", |b| {
        b.iter(|| jti_set.contains(black_box(jti)))
    });
}

criterion::criterion_group!(hash_benches, hashers);
criterion_main!(core, hash_benches);
