// EnginePool: the same operations as Promises from worker threads, over storage served from
// this thread.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EnginePool, MemoryStorage, TwofoldError } from 'twofold';
import { config, ctx, password } from './support/config.js';

test('the_pool_answers_every_operation_with_plain_values_and_typed_errors', async () => {
  const storage = new MemoryStorage();
  const pool = await EnginePool.start({ config, storage, size: 2 });
  try {
    const emails = Array.from({ length: 6 }, (_, i) => `user${i}@example.com`);
    const accounts = await Promise.all(emails.map((email) => pool.createAccount(ctx, { email, password })));
    assert.equal(new Set(accounts.map((a) => a.userId)).size, 6);
    const outcome = await pool.signIn(ctx, { email: emails[0], password, rememberMe: true });
    assert.equal(outcome.status, 'signed_in');
    assert.equal(typeof outcome.securityEpoch, 'number');
    const e = await pool.signIn(ctx, { email: emails[0], password: 'wrong password' }).catch((x) => x);
    assert.ok(e instanceof TwofoldError);
    assert.equal(e.code, 'invalid_credentials');
    const bad = await pool.status(ctx, { userId: 7 }).catch((x) => x);
    assert.equal(bad.code, 'invalid_input');
  } finally {
    await pool.close();
  }
});

test('a_refused_configuration_rejects_the_start', async () => {
  await assert.rejects(EnginePool.start({ config: { ...config, auditKeys: [] }, storage: new MemoryStorage(), size: 1 }),
    (e) => e instanceof TwofoldError && e.code === 'invalid_input');
});

test('calls_after_close_are_refused', async () => {
  const pool = await EnginePool.start({ config, storage: new MemoryStorage(), size: 1 });
  await pool.close();
  await assert.rejects(pool.status(ctx, { userId: 'u' }), (e) => e.code === 'internal');
});
