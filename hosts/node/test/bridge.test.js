// The storage bridge's failure modes (WorkerStorage over an async adapter in a worker thread):
// each becomes an error of the call, then a typed `storage` error of the engine, and the
// bridge recovers with a new worker.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine, StorageConflict, TwofoldError, WorkerStorage } from 'twofold';
import { config, ctx, password } from './support/config.js';

const FAULTY = new URL('./support/adapters.js', import.meta.url);

test('d1_a_worker_storage_keeps_the_contract', async () => {
  const storage = new WorkerStorage(FAULTY);
  try {
    assert.equal(storage.get('k'), undefined);
    storage.commit([{ key: 'k', value: 'v1', expect: { tag: 'absent' } }]);
    assert.deepEqual(storage.get('k'), { value: 'v1', version: 1 });
    assert.throws(() => storage.commit([{ key: 'k', value: 'v2', expect: { tag: 'absent' } }]), StorageConflict);
    storage.commit([{ key: 'k', expect: { tag: 'version', val: 1 } }]);
    assert.deepEqual(storage.scan('', undefined, 10), []);
    const big = 'x'.repeat(1 << 20); // a maximal document grows the shared buffer
    storage.commit([{ key: 'big', value: big, expect: { tag: 'absent' } }]);
    assert.equal(storage.get('big').value, big);
  } finally {
    await storage.close();
  }
});

test('a_storage_that_cannot_open_fails_in_the_constructor_with_its_reason', () => {
  assert.throws(() => new WorkerStorage(FAULTY, { refuse: true }), /refused on purpose/);
});

test('a_storage_call_that_times_out_fails_and_the_worker_is_replaced', async () => {
  const storage = new WorkerStorage(FAULTY, { fault: 'hang' }, { timeoutMs: 300 });
  try {
    const started = performance.now();
    assert.throws(() => storage.get('k'), /did not answer within 300 ms/);
    assert.ok(performance.now() - started < 5000);
    assert.deepEqual(storage.scan('', undefined, 1), [], 'a new worker answers');
    assert.equal(storage.workersStarted, 2);
  } finally {
    await storage.close();
  }
});

test('a_worker_that_dies_fails_its_call_at_once', async () => {
  const storage = new WorkerStorage(FAULTY, { fault: 'crash' }, { timeoutMs: 60_000 });
  try {
    const started = performance.now();
    assert.throws(() => storage.get('k'), /died/);
    assert.ok(performance.now() - started < 10_000, 'long before the 60 s timeout');
    assert.deepEqual(storage.scan('', undefined, 1), []);
    assert.equal(storage.workersStarted, 2);
  } finally {
    await storage.close();
  }
});

/** The engine's error for a status call over a storage with `fault`. */
async function engineErrorWith(fault) {
  const storage = new WorkerStorage(FAULTY, { fault }, { timeoutMs: 300 });
  try {
    new Engine(config, storage).status(ctx, { userId: 'u1' });
  } catch (e) {
    return e;
  } finally {
    await storage.close();
  }
  assert.fail('no error');
}

test('d1_bridge_failures_reach_the_caller_as_typed_storage_errors', async () => {
  for (const [fault, cause] of [['boom', /disk is on fire/], ['hang', /did not answer/], ['crash', /died/]]) {
    const e = await engineErrorWith(fault);
    assert.ok(e instanceof TwofoldError, `${fault}: ${e}`);
    assert.equal(e.code, 'storage', fault);
    assert.match(e.cause.message, cause);
  }
});
