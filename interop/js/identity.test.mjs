// identity from the JavaScript ecosystem (interop/run.sh runs it with the
// machine's Node.js against the interop cluster):
// - jose verifies our HS256, ES256, RS256 and EdDSA tokens, the asymmetric
//   ones through identity.jwks(), with issuer and audience checks;
// - tokens jose signs with the HS256 secret verify in identity.verify_jwt;
// - node-postgres calls the hook, verify_api_token and exchange_api_token
//   with bound parameters.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import pg from 'pg';

const SECRET = new TextEncoder().encode(process.env.IDENTITY_TEST_JWT_SECRET);
const ISSUER = 'https://identity.interop.test';
const AUDIENCE = 'authenticated';
const USER = '00000000-0000-0000-0000-0000000005a1';
let db;

const one = async (sql, params = []) => (await db.query(sql, params)).rows[0];

before(async () => {
  const admin = new pg.Client({ host: process.env.PGHOST, port: +process.env.PGPORT, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query('drop database if exists interop_js');
  await admin.query('create database interop_js');
  await admin.query(`alter database interop_js set identity.jwt_issuer = '${ISSUER}'`);
  await admin.end();
  db = new pg.Client({ host: process.env.PGHOST, port: +process.env.PGPORT, user: 'postgres', database: 'interop_js' });
  await db.connect();
  await db.query('create extension identity');
  await db.query('insert into identity.users (id, email) values ($1, $2)', [USER, 'js@interop.test']);
});

after(async () => { await db?.end(); });

const claims = { sub: USER, aud: AUDIENCE, role: 'authenticated' };

test('jose verifies our HS256 token with the secret, issuer and audience', async () => {
  const { token } = await one('select identity.sign_jwt($1::jsonb) as token', [claims]);
  const { payload, protectedHeader } = await jose.jwtVerify(token, SECRET, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] });
  assert.equal(protectedHeader.alg, 'HS256');
  assert.equal(payload.sub, USER);
  await assert.rejects(jose.jwtVerify(token, SECRET, { issuer: ISSUER, audience: 'someone-else' }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
  await assert.rejects(jose.jwtVerify(token, new TextEncoder().encode('x'.repeat(40))), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
});

test('tokens jose signs with the HS256 secret verify in identity.verify_jwt, and a wrong secret is refused', async () => {
  const good = await new jose.SignJWT({ role: 'authenticated' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(USER).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('10m')
    .sign(SECRET);
  const { claims: verified } = await one('select identity.verify_jwt($1) as claims', [good]);
  assert.equal(verified.sub, USER);
  assert.equal(verified.iss, ISSUER);
  const forged = await new jose.SignJWT({}).setProtectedHeader({ alg: 'HS256' })
    .setSubject(USER).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('10m')
    .sign(new TextEncoder().encode('not-the-secret-0123456789abcdef0123'));
  await assert.rejects(one('select identity.verify_jwt($1)', [forged]), { code: '28000' });
  const none = new jose.UnsecuredJWT({ sub: USER, aud: AUDIENCE, iss: ISSUER }).setExpirationTime('10m').encode();
  await assert.rejects(one('select identity.verify_jwt($1)', [none]), { code: '28000' });
});

test('jose verifies our ES256, RS256 and EdDSA tokens through identity.jwks()', async () => {
  const tokens = [];
  for (const alg of ['ES256', 'RS256', 'EdDSA']) {
    const { kid } = await one('select identity.generate_signing_key($1) as kid', [alg]);
    await db.query('select identity.activate_signing_key($1)', [kid]);
    const { token } = await one('select identity.sign_jwt($1::jsonb) as token', [claims]);
    tokens.push({ alg, kid, token });
  }
  // The earlier keys were retired by the later activations: still published.
  const { jwks } = await one('select identity.jwks() as jwks');
  const keySet = jose.createLocalJWKSet(jwks);
  for (const { alg, kid, token } of tokens) {
    const { payload, protectedHeader } = await jose.jwtVerify(token, keySet, { issuer: ISSUER, audience: AUDIENCE });
    assert.equal(protectedHeader.alg, alg);
    assert.equal(protectedHeader.kid, kid);
    assert.equal(payload.sub, USER);
    await assert.rejects(jose.jwtVerify(token, keySet, { issuer: 'https://elsewhere.test', audience: AUDIENCE }),
      { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
  }
});

test('node-postgres calls the hook with a bound jsonb event', async () => {
  const event = {
    user_id: USER, authentication_method: 'password',
    claims: { iss: ISSUER, aud: AUDIENCE, exp: 2000000000, iat: 1999996400, sub: USER, email: 'js@interop.test',
              phone: '', role: 'authenticated', aal: 'aal1', session_id: '4b938a09-5372-4177-a314-cfa292099ea2',
              is_anonymous: false },
  };
  const { r } = await one('select identity.custom_access_token_hook($1::jsonb) as r', [event]);
  assert.equal(r.claims.sub, USER);
  assert.equal(r.claims.is_service_user, false);
  assert.equal(r.claims.user_role, 'user');
});

test('node-postgres verifies and exchanges an API token with bound parameters; jose verifies the exchanged JWT', async () => {
  const { token } = await one("select token from identity.create_api_token($1, 'js', '1 day')", [USER]);
  const { p } = await one('select identity.verify_api_token($1) as p', [token]);
  assert.equal(p.user_id, USER);
  const { jwt } = await one("select identity.exchange_api_token($1, '10 minutes') as jwt", [token]);
  const { jwks } = await one('select identity.jwks() as jwks');
  const { payload } = await jose.jwtVerify(jwt, jose.createLocalJWKSet(jwks), { issuer: ISSUER, audience: AUDIENCE });
  assert.equal(payload.sub, USER);
  assert.equal(payload.amr?.[0]?.method ?? payload.amr?.[0], 'api_token');
  await assert.rejects(one('select identity.verify_api_token($1)', [token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')]), { code: '28000' });
});
