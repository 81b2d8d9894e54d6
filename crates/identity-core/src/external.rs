//! External identity providers (API.md section 11): a trusted issuer's
//! options and JWKS, which of its keys a token selects, the checks of its
//! tokens beyond the JWT ones (azp, sub), claim paths (Clerk's `o.id`).
//! Pure: the glue stores the options and the set, and calls these.

use crate::error::{IdentityError, Result};
use crate::jwt::{Check, CheckName, KeyChoice};
use crate::keys::{Alg, VerifyingKey};
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// A JWKS over this many bytes (as JSON text) is refused.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// At most this many usable keys in one issuer's set.
pub const MAX_KEYS: usize = 32;
/// An issuer (`iss`) is 1 to this many bytes.
pub const MAX_ISSUER_BYTES: usize = 255;
/// A subject (`sub`) is 1 to this many bytes.
pub const MAX_SUBJECT_BYTES: usize = 255;
/// Default and bounds of `jwks_refresh_seconds`.
pub const DEFAULT_REFRESH_SECONDS: i64 = 3600;
/// An unknown kid asks the worker for a refetch at most this often.
pub const UNKNOWN_KID_REFETCH_SECONDS: i64 = 60;

/// What a first valid token of an unknown subject does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    /// The subject must already be linked to a user (webhook, provision_user).
    Off,
    /// The token provisions the user, as provision_user does.
    Auto,
}

impl Provisioning {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provisioning::Off => "off",
            Provisioning::Auto => "auto",
        }
    }
}

/// Where auto-provisioned users go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgSource {
    None,
    /// This organization.
    Fixed([u8; 16]),
    /// The organization whose external_id is this claim's value.
    Claim(String),
}

/// An issuer's options, each checked (register_issuer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerOptions {
    pub audience: Option<String>,
    /// Allowed `azp` values; empty: azp is not checked.
    pub authorized_parties: Vec<String>,
    pub leeway: i64,
    pub provisioning: Provisioning,
    pub organization: OrgSource,
    pub email_claim: String,
    /// The claim path saying the email was verified: the email is taken
    /// (for provisioning) only when it holds `true` (or `"true"`).
    pub email_verified_claim: String,
    /// First and last name claim paths.
    pub name_claims: (String, String),
    pub jwks_uri: Option<String>,
    pub jwks_refresh_seconds: i64,
    /// Whether a subject equal to a user's external_id links to that user
    /// on its first sign-in (or webhook), and whether the users this issuer
    /// provisions get the subject as their external_id. Only users of no
    /// issuer (provision_user's, then recorded as this issuer's) or of this
    /// issuer are linked, never another issuer's. Off by default.
    pub match_external_id: bool,
    /// Supabase Auth's own tokens (API.md 13): the `sub` is the id of our
    /// user linked from auth.users (link_supabase_auth), never a subject to
    /// link or provision; a token naming any other user is refused.
    pub subject_is_user_id: bool,
    /// Tokens of any audience are accepted: the explicit opt-out of the
    /// rule that an issuer names an `audience` or `authorized_parties`.
    pub any_audience: bool,
}

impl Default for IssuerOptions {
    fn default() -> Self {
        IssuerOptions {
            audience: None,
            authorized_parties: Vec::new(),
            leeway: 30,
            provisioning: Provisioning::Off,
            organization: OrgSource::None,
            email_claim: "email".into(),
            email_verified_claim: "email_verified".into(),
            name_claims: ("given_name".into(), "family_name".into()),
            jwks_uri: None,
            jwks_refresh_seconds: DEFAULT_REFRESH_SECONDS,
            match_external_id: false,
            subject_is_user_id: false,
            any_audience: false,
        }
    }
}

fn bad(message: &'static str) -> IdentityError {
    IdentityError::invalid(message)
}

/// An issuer string: 1 to 255 bytes of printable ASCII without spaces
/// (URLs; compared exactly with `iss`).
pub fn check_issuer(issuer: &str) -> Result<()> {
    if issuer.is_empty()
        || issuer.len() > MAX_ISSUER_BYTES
        || !issuer.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(
            bad("issuer must be 1 to 255 printable characters without spaces").hint(
                "the exact iss value of the provider's tokens, e.g. https://clerk.example.com",
            ),
        );
    }
    Ok(())
}

/// A claim path: 1 to 4 names of 1 to 64 of a-z A-Z 0-9 _ - : joined by dots.
pub fn check_claim_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split('.').collect();
    !p.is_empty()
        && parts.len() <= 4
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':')
        })
}

/// The value at `path` (dot-separated) in `claims`.
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// A string claim at `path`, 1 to `max` bytes.
pub fn string_at<'a>(claims: &'a Map<String, Value>, path: &str, max: usize) -> Option<&'a str> {
    claim_at(claims, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= max)
}

/// A jwks_uri: https, or plain http only to a loopback address (tests, a
/// sidecar); at most 2000 bytes, no credentials in it.
pub fn check_jwks_uri(uri: &str) -> Result<()> {
    let hint =
        "https://<host>/.well-known/jwks.json (plain http only to 127.0.0.1, ::1 or localhost)";
    if uri.len() > 2000 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("jwks_uri must be a URL of at most 2000 characters").hint(hint));
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| bad("jwks_uri must be a URL").hint(hint))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("jwks_uri must name a host (and no user or password)").hint(hint));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "::1" | "localhost") => Ok(()),
        "http" => {
            Err(bad("jwks_uri must be https (plain http only to a loopback address)").hint(hint))
        }
        _ => Err(bad("jwks_uri must be an https URL").hint(hint)),
    }
}

/// Whether the JWKS fetcher may connect to `ip` for a jwks_uri of scheme
/// `https` (true) or plain http (false). Plain http goes to loopback only,
/// and only when `allow_private`.
/// https goes to public addresses only unless `allow_private` (a superuser's
/// setting): never to loopback, private (RFC 1918, unique local), shared
/// (100.64/10), link-local, unspecified, multicast, broadcast or
/// documentation addresses, an IPv4 address mapped into IPv6 judged as the
/// IPv4 one. Every address a name resolves to must pass.
pub fn address_allowed(ip: std::net::IpAddr, https: bool, allow_private: bool) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if !https {
        // Plain http: a loopback test server, and only where a superuser
        // allowed private addresses (else any loopback port would answer a
        // role that registers issuers).
        return allow_private && ip.is_loopback();
    }
    if allow_private {
        return !ip.is_unspecified() && !ip.is_multicast();
    }
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, ..] = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || o0 == 0
                || (o0 == 192 && o1 == 0 && a.octets()[2] == 0)
                || (o0 == 100 && (64..128).contains(&o1))
                || (o0 == 198 && (o1 == 18 || o1 == 19))
                || o0 >= 240)
        }
        IpAddr::V6(a) => {
            let g = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (g[0] & 0xfe00) == 0xfc00
                || (g[0] & 0xffc0) == 0xfe80
                || (g[0] & 0xffc0) == 0xfec0
                // Documentation; Teredo (2001::/32) and 6to4 (2002::/16),
                // which tunnel to IPv4 addresses of any kind.
                || g[0] == 0x2001 && (g[1] == 0x0db8 || g[1] == 0)
                || g[0] == 0x2002
                // NAT64 (64:ff9b::/96, 64:ff9b:1::/48): an IPv4 address
                // behind a translator.
                || g[0] == 0x0064 && g[1] == 0xff9b
                // IPv4-compatible (::a.b.c.d) and IPv4-translated
                // (::ffff:0:a.b.c.d).
                || g[..6] == [0, 0, 0, 0, 0, 0]
                || g[..6] == [0, 0, 0, 0, 0xffff, 0])
        }
    }
}

const ANY_AUDIENCE_HINT: &str = "set options.audience (aud) or options.authorized_parties \
     (azp), or \"any_audience\": true to accept every token of the issuer";

/// Checked options, the webhook secret's key bytes, and the options as stored.
pub type ParsedOptions = (IssuerOptions, Option<Vec<u8>>, Map<String, Value>);

/// The options of register_issuer, checked: unknown names and wrong types
/// are 22023. Returns the options, the Svix webhook secret's key bytes (to
/// be sealed, never stored in the options), and the options as stored and
/// listed (without the secret).
pub fn parse_options(v: &Value) -> Result<ParsedOptions> {
    let m = v
        .as_object()
        .ok_or_else(|| bad("options must be a JSON object"))?;
    let mut o = IssuerOptions::default();
    let mut secret = None;
    let string = |k: &str, v: &Value, max: usize| -> Result<String> {
        v.as_str()
            .filter(|s| !s.is_empty() && s.len() <= max)
            .map(str::to_owned)
            .ok_or_else(|| {
                bad("an issuer option has the wrong type or length").detail(format!("option {k}"))
            })
    };
    let path = |k: &str, v: &Value| -> Result<String> {
        let s = string(k, v, 300)?;
        if !check_claim_path(&s) {
            return Err(
                bad("a claim path is 1 to 4 names joined by dots").detail(format!("option {k}"))
            );
        }
        Ok(s)
    };
    for (k, v) in m {
        match k.as_str() {
            "audience" => o.audience = Some(string(k, v, 255)?),
            "authorized_parties" => {
                let a = v
                    .as_array()
                    .filter(|a| !a.is_empty() && a.len() <= 20)
                    .ok_or_else(|| bad("authorized_parties must be an array of 1 to 20 strings"))?;
                for p in a {
                    o.authorized_parties.push(string(k, p, 255)?);
                }
            }
            "leeway" => {
                o.leeway = v
                    .as_i64()
                    .filter(|l| (0..=300).contains(l))
                    .ok_or_else(|| bad("leeway must be 0 to 300 seconds"))?
            }
            "provisioning" => {
                o.provisioning = match v.as_str() {
                    Some("off") => Provisioning::Off,
                    Some("auto") => Provisioning::Auto,
                    _ => return Err(bad("provisioning must be 'off' or 'auto'")),
                }
            }
            "organization_id" => {
                let s = string(k, v, 300)?;
                o.organization = match crate::claims::parse_uuid(&s) {
                    Some(id) => OrgSource::Fixed(id),
                    None if check_claim_path(&s) => OrgSource::Claim(s),
                    None => {
                        return Err(bad(
                            "organization_id must be an organization's uuid or a claim path",
                        )
                        .hint("e.g. \"o.id\" for Clerk's active organization"))
                    }
                }
            }
            "email_claim" => o.email_claim = path(k, v)?,
            "email_verified_claim" => o.email_verified_claim = path(k, v)?,
            "any_audience" => {
                o.any_audience = v
                    .as_bool()
                    .ok_or_else(|| bad("any_audience must be a boolean"))?
            }
            "name_claims" => {
                let a = v.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                    bad("name_claims must be an array of two claim paths (first, last)")
                })?;
                o.name_claims = (path(k, &a[0])?, path(k, &a[1])?);
            }
            "jwks_uri" => {
                let s = string(k, v, 2000)?;
                check_jwks_uri(&s)?;
                o.jwks_uri = Some(s);
            }
            "jwks_refresh_seconds" => {
                o.jwks_refresh_seconds = v
                    .as_i64()
                    .filter(|l| (1..=86_400).contains(l))
                    .ok_or_else(|| bad("jwks_refresh_seconds must be 1 to 86400"))?
            }
            "match_external_id" => {
                o.match_external_id = v
                    .as_bool()
                    .ok_or_else(|| bad("match_external_id must be a boolean"))?
            }
            "subject_is_user_id" => {
                o.subject_is_user_id = v
                    .as_bool()
                    .ok_or_else(|| bad("subject_is_user_id must be a boolean"))?
            }
            "webhook_secret" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad("webhook_secret must be a string"))?;
                secret = Some(crate::svix::parse_secret(s)?);
            }
            _ => return Err(bad("unknown issuer option")
                .detail(format!("option {k:?}"))
                .hint(
                    "options: audience, authorized_parties, any_audience, leeway, provisioning, \
                     organization_id, email_claim, email_verified_claim, name_claims, jwks_uri, \
                     jwks_refresh_seconds, match_external_id, webhook_secret",
                )),
        }
    }
    // A provider signs tokens for every application of it: without an
    // audience or authorized parties, any of them would sign in here.
    let scoped = o.audience.is_some() || !o.authorized_parties.is_empty();
    if !scoped && !o.any_audience {
        return Err(bad("an issuer needs an audience or authorized_parties")
            .detail("without either, a token of any application of the provider is accepted")
            .hint(ANY_AUDIENCE_HINT));
    }
    if scoped && o.any_audience {
        return Err(
            bad("any_audience contradicts audience and authorized_parties")
                .hint("drop any_audience, or drop audience and authorized_parties"),
        );
    }
    let mut stored = m.clone();
    stored.remove("webhook_secret");
    Ok((o, secret, stored))
}

/// One key of an issuer's set.
#[derive(Clone)]
pub struct ExternalKey {
    pub kid: Option<String>,
    pub key: Rc<VerifyingKey>,
}

/// The algorithm a JWK is for: its `kty`/`crv`, and its `alg` when given
/// (which must agree). None: a key of a kind not used here (RS384,
/// ES384, an encryption key): skipped.
fn jwk_alg(jwk: &Map<String, Value>) -> Result<Option<Alg>> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|k| jwk.contains_key(*k))
    {
        return Err(bad("a JWKS must hold public keys only").hint(
            "publish the provider's public JWKS; a private or symmetric key is never accepted",
        ));
    }
    if s("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let by_kty = match (s("kty"), s("crv")) {
        (Some("RSA"), _) => Alg::Rs256,
        (Some("EC"), Some("P-256")) => Alg::Es256,
        (Some("OKP"), Some("Ed25519")) => Alg::EdDsa,
        (Some("EC" | "OKP"), _) => return Ok(None),
        (Some("oct"), _) => {
            return Err(bad("a JWKS must hold public keys only")
                .hint("symmetric (oct) keys are never accepted for an external issuer"))
        }
        _ => return Err(bad("a JWKS key has no supported kty")),
    };
    match jwk.get("alg") {
        None => Ok(Some(by_kty)),
        Some(Value::String(a)) if a == by_kty.name() => Ok(Some(by_kty)),
        Some(Value::String(_)) => Ok(None),
        Some(_) => Err(bad("a JWKS key's alg must be a string")),
    }
}

/// An issuer's JWKS (`{"keys": [...]}`), checked: public keys only, each
/// valid for its algorithm (RSA at least 2048 bits), kids unique, 1 to 32
/// usable keys. Keys of other algorithms are skipped.
pub fn parse_jwks(v: &Value) -> Result<Vec<ExternalKey>> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("a JWKS is an object with a \"keys\" array"))?;
    if keys.len() > 100 {
        return Err(bad("a JWKS may hold at most 100 keys"));
    }
    let mut out: Vec<ExternalKey> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let jwk = k
            .as_object()
            .ok_or_else(|| bad("a JWKS key must be an object"))?;
        let Some(alg) = jwk_alg(jwk)? else { continue };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 100 => Some(s.clone()),
            Some(_) => return Err(bad("a JWKS kid must be a string of 1 to 100 characters")),
        };
        if kid.is_some() && out.iter().any(|o| o.kid == kid) {
            return Err(bad("a JWKS names one kid twice").detail(format!("key {i}")));
        }
        let key = VerifyingKey::from_jwk(alg, jwk).map_err(|_| {
            bad("a JWKS key is not a valid public key").detail(format!("key {i} ({})", alg.name()))
        })?;
        if let VerifyingKey::Rs256 { n, .. } = &key {
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < 2048 {
                return Err(
                    bad("a JWKS RSA key is shorter than 2048 bits").detail(format!("key {i}"))
                );
            }
        }
        out.push(ExternalKey {
            kid,
            key: Rc::new(key),
        });
    }
    if out.is_empty() {
        return Err(bad("a JWKS holds no usable signing key")
            .hint("keys of RS256, ES256 (P-256) or EdDSA (Ed25519), use sig"));
    }
    if out.len() > MAX_KEYS {
        return Err(bad("a JWKS may hold at most 32 usable keys"));
    }
    if out.len() > 1 && out.iter().any(|k| k.kid.is_none()) {
        return Err(bad("every key needs a kid when a JWKS holds several"));
    }
    Ok(out)
}

/// The key a token's kid selects: the key of that kid; with no kid, the only
/// key of a one-key set (a set of several keys needs the kid).
pub fn select_key(keys: &[ExternalKey], kid: Option<&str>) -> KeyChoice {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .map_or(KeyChoice::UnknownKid, |k| KeyChoice::Public(k.key.clone())),
        None if keys.len() == 1 => KeyChoice::Public(keys[0].key.clone()),
        None => KeyChoice::UnknownKid,
    }
}

/// The checks of an external token beyond the JWT ones: `azp` among the
/// authorized parties (when any are set: then it must be present), and a
/// `sub` of 1 to 255 bytes. True when all pass.
pub fn external_checks(
    claims: &Map<String, Value>,
    o: &IssuerOptions,
    checks: &mut Vec<Check>,
) -> bool {
    let mut all = true;
    if !o.authorized_parties.is_empty() {
        let azp = claims.get("azp").and_then(Value::as_str);
        let ok = azp.is_some_and(|a| o.authorized_parties.iter().any(|p| p == a));
        checks.push(Check {
            name: CheckName::Azp,
            pass: ok,
            detail: (!ok).then(|| {
                if azp.is_some() {
                    "azp is not an authorized party".to_string()
                } else {
                    "no azp claim".to_string()
                }
            }),
        });
        all &= ok;
    }
    let sub_ok = string_at(claims, "sub", MAX_SUBJECT_BYTES).is_some();
    checks.push(Check {
        name: CheckName::Sub,
        pass: sub_ok,
        detail: (!sub_ok).then(|| "no sub claim of 1 to 255 characters".to_string()),
    });
    all && sub_ok
}

/// The `iss` claim of a token's payload, read without verifying anything:
/// only to choose which verification to run (every path verifies all).
pub fn peek_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    if payload.len() > crate::jwt::MAX_TOKEN_BYTES {
        return None;
    }
    let bytes = crate::b64::decode(payload.as_bytes())?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Whether the token says its email was verified: the claim at
/// `email_verified_claim` is `true` (or the string `"true"`, as some
/// providers send it). Absent is not verified: nothing says the provider
/// checked that the subject owns the address.
pub fn email_verified(claims: &Map<String, Value>, o: &IssuerOptions) -> bool {
    match claim_at(claims, &o.email_verified_claim) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The profile a token carries for provisioning: email (only when
/// verified, see email_verified), first and last name, from the options'
/// claim paths.
pub fn profile(
    claims: &Map<String, Value>,
    o: &IssuerOptions,
) -> (Option<String>, Option<String>, Option<String>) {
    let s = |p: &str, max| string_at(claims, p, max).map(str::to_owned);
    (
        s(&o.email_claim, 320).filter(|_| email_verified(claims, o)),
        s(&o.name_claims.0, 200),
        s(&o.name_claims.1, 200),
    )
}

/// The amr entry our claims carry for a sign-in through `issuer`.
pub fn amr(issuer: &str, now: i64) -> Value {
    json!([{"method": "external", "provider": issuer, "timestamp": now}])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fetcher_connects_to_public_addresses_only_unless_allowed() {
        let ip = |t: &str| t.parse::<std::net::IpAddr>().unwrap();
        let private = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "192.0.2.1",
            "198.18.0.1",
            "2001:db8::1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::",
            "2001:0:4136:e378::1",
            "::ffff:0:10.0.0.1",
            "192.0.0.8",
        ];
        for a in private {
            assert!(!address_allowed(ip(a), true, false), "{a}");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        for a in public {
            assert!(address_allowed(ip(a), true, false), "{a}");
        }
        assert!(address_allowed(ip("10.1.2.3"), true, true));
        assert!(address_allowed(ip("127.0.0.1"), true, true));
        assert!(!address_allowed(ip("0.0.0.0"), true, true));
        // Plain http: loopback only, and only where private addresses are allowed.
        assert!(!address_allowed(ip("127.0.0.1"), false, false));
        assert!(address_allowed(ip("127.0.0.1"), false, true));
        assert!(address_allowed(ip("::1"), false, true));
        assert!(!address_allowed(ip("10.0.0.1"), false, true));
        assert!(!address_allowed(ip("8.8.8.8"), false, true));
    }

    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn jwks_of(algs: &[(Alg, &str)]) -> (Vec<Vec<u8>>, Value) {
        let mut rng = StdRng::seed_from_u64(3);
        let mut ders = Vec::new();
        let mut keys = Vec::new();
        for (alg, kid) in algs {
            let (der, jwk) = crate::keys::generate(*alg, kid, &mut rng);
            ders.push(der);
            keys.push(Value::Object(jwk));
        }
        (ders, json!({"keys": keys}))
    }

    #[test]
    fn options_are_checked_and_the_secret_is_kept_out_of_the_stored_options() {
        let (o, secret, stored) = parse_options(&json!({
            "audience": "api", "authorized_parties": ["https://app.example"], "leeway": 5,
            "provisioning": "auto", "organization_id": "o.id", "email_claim": "email",
            "name_claims": ["first", "last"], "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "jwks_uri": "https://clerk.example.com/.well-known/jwks.json", "jwks_refresh_seconds": 60
        }))
        .unwrap();
        assert_eq!(o.provisioning, Provisioning::Auto);
        assert_eq!(o.organization, OrgSource::Claim("o.id".into()));
        assert_eq!(o.leeway, 5);
        assert!(secret.is_some_and(|s| s.len() == 24));
        assert!(!stored.contains_key("webhook_secret"));
        for bad in [
            json!({"leeway": 301}),
            json!({"provisioning": "yes"}),
            json!({"authorized_parties": []}),
            json!({"organization_id": "not a path!"}),
            json!({"name_claims": ["a"]}),
            json!({"jwks_uri": "http://example.com/jwks"}),
            json!({"jwks_uri": "https://user:pw@example.com/jwks"}),
            json!({"jwks_uri": "ftp://example.com"}),
            json!({"webhook_secret": "whsec_!!"}),
            json!({"colour": "red"}),
            json!({"email_verified_claim": "a..b"}),
            json!({"match_external_id": "yes"}),
            json!({"subject_is_user_id": "yes"}),
        ] {
            // Each with an audience: refused for the option itself.
            let mut bad = bad.as_object().unwrap().clone();
            bad.insert("audience".into(), json!("api"));
            let bad = Value::Object(bad);
            assert!(parse_options(&bad).is_err(), "{bad}");
        }
        assert!(parse_options(&json!([])).is_err());
        let (o, _, _) = parse_options(&json!({"audience": "api",
            "organization_id": "0b7c2c36-8e5b-4b59-9a4c-7f0e8b1f3a11"}))
        .unwrap();
        assert!(matches!(o.organization, OrgSource::Fixed(_)));
        assert!(check_jwks_uri("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_jwks_uri("http://[::1]:8080/jwks").is_ok());
        assert!(check_jwks_uri("http://localhost.evil.com/jwks").is_err());
    }

    #[test]
    fn a_jwks_holds_public_signing_keys_only() {
        let (_, set) = jwks_of(&[(Alg::Rs256, "r"), (Alg::Es256, "e"), (Alg::EdDsa, "d")]);
        assert_eq!(parse_jwks(&set).unwrap().len(), 3);
        // A private part anywhere: the whole set is refused.
        let mut private = set.clone();
        private["keys"][1]["d"] = json!("AAAA");
        assert!(parse_jwks(&private).is_err());
        assert!(parse_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err());
        // Unknown algorithms and encryption keys are skipped, not used.
        let mut mixed = set.clone();
        mixed["keys"][0]["alg"] = json!("RS384");
        mixed["keys"][1]["use"] = json!("enc");
        assert_eq!(parse_jwks(&mixed).unwrap().len(), 1);
        // An alg that contradicts the key type is not used for it.
        let mut confused = set.clone();
        confused["keys"][2]["alg"] = json!("ES256");
        assert_eq!(parse_jwks(&confused).unwrap().len(), 2);
        let mut twice = set.clone();
        twice["keys"][1]["kid"] = json!("r");
        assert!(parse_jwks(&twice).is_err());
        let mut nokid = set.clone();
        nokid["keys"][1].as_object_mut().unwrap().remove("kid");
        assert!(parse_jwks(&nokid).is_err(), "several keys need kids");
        assert!(parse_jwks(&json!({"keys": []})).is_err());
        assert!(parse_jwks(&json!({"nokeys": 1})).is_err());
        let mut corrupt = set.clone();
        corrupt["keys"][1]["x"] = json!("AAAA");
        assert!(parse_jwks(&corrupt).is_err());
    }

    #[test]
    fn the_kid_selects_the_key_and_several_keys_need_one() {
        let (_, set) = jwks_of(&[(Alg::Es256, "a"), (Alg::Es256, "b")]);
        let keys = parse_jwks(&set).unwrap();
        assert!(matches!(select_key(&keys, Some("b")), KeyChoice::Public(_)));
        assert!(matches!(
            select_key(&keys, Some("c")),
            KeyChoice::UnknownKid
        ));
        assert!(matches!(select_key(&keys, None), KeyChoice::UnknownKid));
        assert!(matches!(select_key(&keys[..1], None), KeyChoice::Public(_)));
    }

    #[test]
    fn azp_and_sub_are_checked() {
        let o = IssuerOptions {
            authorized_parties: vec!["https://app".into()],
            ..Default::default()
        };
        let c = |v: Value| v.as_object().unwrap().clone();
        let mut checks = Vec::new();
        assert!(external_checks(
            &c(json!({"sub": "user_2x", "azp": "https://app"})),
            &o,
            &mut checks
        ));
        for bad in [
            json!({"sub": "user_2x", "azp": "https://evil"}),
            json!({"sub": "user_2x"}),
            json!({"azp": "https://app"}),
            json!({"sub": "", "azp": "https://app"}),
            json!({"sub": 7, "azp": "https://app"}),
        ] {
            assert!(
                !external_checks(&c(bad.clone()), &o, &mut Vec::new()),
                "{bad}"
            );
        }
        assert!(external_checks(
            &c(json!({"sub": "s"})),
            &IssuerOptions::default(),
            &mut Vec::new()
        ));
    }

    #[test]
    fn claim_paths_walk_objects() {
        let c = json!({"o": {"id": "org_2abc", "rol": "admin"}, "email": "a@b.c"});
        let c = c.as_object().unwrap();
        assert_eq!(string_at(c, "o.id", 255), Some("org_2abc"));
        assert_eq!(string_at(c, "o.missing", 255), None);
        assert_eq!(string_at(c, "email.x", 255), None);
        assert!(
            check_claim_path("o.id")
                && !check_claim_path("o..id")
                && !check_claim_path("a.b.c.d.e")
        );
        assert_eq!(
            peek_issuer("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2kifQ.x").as_deref(),
            Some("https://i")
        );
        assert_eq!(peek_issuer("garbage"), None);
    }
    #[test]
    fn an_issuer_names_an_audience_or_opts_out_explicitly() {
        // Neither aud nor azp checked: every token of the provider, for any
        // of its applications, would sign in here.
        for open in [
            json!({}),
            json!({"provisioning": "auto"}),
            json!({"leeway": 5}),
        ] {
            let e = parse_options(&open)
                .err()
                .unwrap_or_else(|| panic!("{open} accepted"));
            assert_eq!(e.sqlstate(), "22023", "{open}");
        }
        assert!(parse_options(&json!({"audience": "api"})).is_ok());
        assert!(parse_options(&json!({"authorized_parties": ["https://app"]})).is_ok());
        let (o, _, stored) = parse_options(&json!({"any_audience": true})).unwrap();
        assert!(o.any_audience && o.audience.is_none() && o.authorized_parties.is_empty());
        assert_eq!(stored.get("any_audience"), Some(&json!(true)));
        for bad in [
            json!({"any_audience": false}),
            json!({"any_audience": "yes"}),
            json!({"any_audience": true, "audience": "api"}),
            json!({"any_audience": true, "authorized_parties": ["https://app"]}),
        ] {
            assert!(parse_options(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn match_external_id_is_off_unless_asked_for() {
        assert!(!IssuerOptions::default().match_external_id);
        let (o, _, _) = parse_options(&json!({"audience": "api"})).unwrap();
        assert!(!o.match_external_id);
        let (o, _, _) =
            parse_options(&json!({"audience": "api", "match_external_id": true})).unwrap();
        assert!(o.match_external_id);
        let (o, _, _) =
            parse_options(&json!({"audience": "authenticated", "subject_is_user_id": true}))
                .unwrap();
        assert!(o.subject_is_user_id && !IssuerOptions::default().subject_is_user_id);
    }

    #[test]
    fn an_unverified_email_is_never_taken() {
        let o = IssuerOptions::default();
        let c = |v: Value| v.as_object().unwrap().clone();
        let email = |v: Value| profile(&c(v), &o).0;
        assert_eq!(
            email(json!({"email": "a@b.c", "email_verified": true})).as_deref(),
            Some("a@b.c")
        );
        assert_eq!(
            email(json!({"email": "a@b.c", "email_verified": "true"})).as_deref(),
            Some("a@b.c")
        );
        // False, absent, or anything but true: no email (names still come).
        for v in [
            json!({"email": "a@b.c", "email_verified": false}),
            json!({"email": "a@b.c"}),
            json!({"email": "a@b.c", "email_verified": "false"}),
            json!({"email": "a@b.c", "email_verified": 1}),
            json!({"email": "a@b.c", "email_verified": null}),
        ] {
            assert_eq!(email(v.clone()), None, "{v}");
        }
        let p = profile(&c(json!({"email": "a@b.c", "given_name": "Ada"})), &o);
        assert_eq!(p.1.as_deref(), Some("Ada"));
    }
}
