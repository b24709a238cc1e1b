// Whole sign-ins per second on one core (issue 16), side by side in one run:
//   twofold through jco (memory storage, and PostgreSQL through the worker bridge when
//   --db is given), and the stack a Node team would pick instead: @node-rs/argon2 +
//   @simplewebauthn/server doing the same work with the same parameters on the same kind of
//   assertion (no storage, no framework).
// A complete sign-in = step one (argon2id verify, SPEC parameters m=19456 KiB t=2 p=1, and the
// request options) + the passkey finish (an ES256 assertion verified). The authenticator's
// signing is the browser's work and is not timed. Rounds are interleaved; medians of rounds.
//
//   npm install && node signin.mjs [--quick] [--db postgres://... | --pg]
// (--pg starts a throwaway PostgreSQL as the tests do.)
// Not part of CI.

import { readFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { parseArgs } from 'node:util';
import { hash as argonHash, verifySync as argonVerify, Algorithm } from '@node-rs/argon2';
import { generateAuthenticationOptions, verifyAuthenticationResponse } from '@simplewebauthn/server';
import { Engine, MemoryStorage, WorkerStorage } from 'twofold';
import { SoftAuthenticator } from '../test/support/authenticator.js';
import { TEST_AUDIT_KEY } from '../test/support/config.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' }, db: { type: 'string' }, pg: { type: 'boolean' } } });
const ROUNDS = args.quick ? 5 : 15;
const PER_ROUND = args.quick ? 8 : 20;
const ORIGIN = 'http://localhost:8080';
const ctx = { ip: '203.0.113.9', userAgent: 'bench' };
const password = 'correct horse battery staple';
const config = { rpId: 'localhost', rpName: 'bench', origins: [ORIGIN], auditKeys: [{ id: 'k', secret: TEST_AUDIT_KEY }] }; // SPEC argon2 defaults

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
const now = () => performance.now();

/** A twofold user with a passkey; returns functions timing each kind of sign-in (ms). */
function twofold(storage, name) {
  const engine = new Engine(config, storage);
  const key = new SoftAuthenticator(ORIGIN);
  const email = `${name}@example.com`;
  const { userId } = engine.createAccount(ctx, { email, password });
  const { options } = engine.startPasskeyRegistration(ctx, { userId, name: 'key', password });
  engine.finishPasskeyRegistration(ctx, { userId, credential: key.create(options) });
  const plain = `${name}-plain@example.com`;
  engine.createAccount(ctx, { email: plain, password });
  return {
    passkey() {
      let t = now();
      const step1 = engine.signIn(ctx, { email, password });
      let ms = now() - t;
      const credential = key.get(step1.options); // the browser's part
      t = now();
      engine.signInWithPasskey(ctx, { pendingToken: step1.pendingToken, credential });
      const finish = now() - t;
      return { total: ms + finish, finish };
    },
    password() {
      const t = now();
      engine.signIn(ctx, { email: plain, password });
      return { total: now() - t };
    },
  };
}

/** The same work on @node-rs/argon2 + @simplewebauthn/server. */
async function peer() {
  const phc = await argonHash(password, { algorithm: Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 });
  // One registration by the same software authenticator, read back into the library's form.
  const key = new SoftAuthenticator(ORIGIN);
  const created = JSON.parse(key.create(JSON.stringify({ rp: { id: 'localhost' }, user: { id: 'dXNlcg' }, challenge: 'AAAA' })));
  const { decodeAttestationObject, decodeCredentialPublicKey, isoBase64URL } = await import('@simplewebauthn/server/helpers');
  const att = decodeAttestationObject(isoBase64URL.toBuffer(created.response.attestationObject));
  const authData = att.get('authData');
  const idLen = (authData[53] << 8) | authData[54];
  const publicKey = authData.subarray(55 + idLen);
  decodeCredentialPublicKey(publicKey); // checks it parses
  const credential = { id: created.id, publicKey, counter: 0, transports: ['internal'] };
  return async () => {
    let t = now();
    if (!argonVerify(phc, password)) throw new Error('argon2 refused'); // on this thread, as the engine's
    const options = await generateAuthenticationOptions({ rpID: 'localhost', allowCredentials: [{ id: created.id }], userVerification: 'preferred' });
    let ms = now() - t;
    const response = JSON.parse(key.get(JSON.stringify({ ...options, rpId: 'localhost' })));
    t = now();
    const { verified } = await verifyAuthenticationResponse({
      response, expectedChallenge: options.challenge, expectedOrigin: ORIGIN, expectedRPID: 'localhost', credential,
    });
    if (!verified) throw new Error('assertion refused');
    const finish = now() - t;
    return { total: ms + finish, finish };
  };
}

async function main() {
  const paths = { 'twofold jco, memory': twofold(new MemoryStorage(), 'mem') };
  let pg = null;
  let server = null;
  if (args.pg) server = await (await import('../test/support/postgres.js')).start();
  const url = args.db ?? server?.url;
  if (url) {
    const { PgStorage } = await import('twofold/pg');
    pg = new PgStorage({ connectionString: url });
    pg.clear();
    paths['twofold jco, PostgreSQL'] = twofold(pg, 'pg');
  }
  const peerSignIn = await peer();

  const results = {}; // label -> { total: [sign-ins/s per round], finish: [ms], password: [/s] }
  const record = (label, key, v) => { ((results[label] ??= {})[key] ??= []).push(v); };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['twofold', 'peer'] : ['peer', 'twofold'];
    for (const who of order) {
      if (who === 'peer') {
        const runs = [];
        for (let i = 0; i < PER_ROUND; i++) runs.push(await peerSignIn());
        record('@node-rs/argon2 + @simplewebauthn', 'total', 1000 / median(runs.map((r) => r.total)));
        record('@node-rs/argon2 + @simplewebauthn', 'finish', median(runs.map((r) => r.finish)));
        continue;
      }
      for (const [label, path] of Object.entries(paths)) {
        const runs = Array.from({ length: PER_ROUND }, () => path.passkey());
        record(label, 'total', 1000 / median(runs.map((r) => r.total)));
        record(label, 'finish', median(runs.map((r) => r.finish)));
        const pw = Array.from({ length: PER_ROUND }, () => path.password().total);
        record(label, 'password', 1000 / median(pw));
      }
    }
  }

  // Bridge overhead per storage call: a get through a worker (memory adapter) against a direct one.
  const direct = new MemoryStorage();
  const bridged = new WorkerStorage(new URL('./memory-adapter.mjs', import.meta.url));
  const perCall = (s) => { const n = 2000; const t = now(); for (let i = 0; i < n; i++) s.get(`k${i}`); return ((now() - t) / n) * 1000; };
  const bridge = [];
  for (let i = 0; i < ROUNDS; i++) bridge.push(perCall(bridged) - perCall(direct));
  await bridged.close();
  await pg?.close();
  server?.stop();

  const version = (m) => JSON.parse(readFileSync(new URL(`./node_modules/${m}/package.json`, import.meta.url))).version;
  console.log(`machine: ${cpus().length} x ${cpus()[0].model}, ${release()}; node ${process.version}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`versions: @node-rs/argon2 ${version('@node-rs/argon2')}, @simplewebauthn/server ${version('@simplewebauthn/server')}, jco 1.35.0`);
  console.log(`${ROUNDS} interleaved rounds of ${PER_ROUND}; medians; argon2id m=19456 KiB t=2 p=1; one thread (the engine's)`);
  const peerRate = median(results['@node-rs/argon2 + @simplewebauthn'].total);
  for (const [label, r] of Object.entries(results)) {
    const rate = median(r.total);
    const extra = r.password ? `, password-only sign-in ${median(r.password).toFixed(1)}/s` : '';
    console.log(`${label.padEnd(36)} password+passkey ${rate.toFixed(1)}/s (${(rate / peerRate).toFixed(2)}x the Node stack), passkey finish ${median(r.finish).toFixed(2)} ms${extra}`);
  }
  console.log(`bridge overhead per storage call: ${median(bridge).toFixed(1)} µs`);
}

await main();
