// The storage contract (wit/storage.wit) as tests for any adapter, sync or async: every call is
// awaited, which is harmless for a synchronous one.
import assert from 'node:assert/strict';
import { test } from 'node:test';

const absent = { tag: 'absent' };
const at = (val) => ({ tag: 'version', val });

/** Throws unless `call` fails with a StorageConflict. */
async function conflicts(call) {
  await assert.rejects(async () => call(), (e) => e.name === 'StorageConflict');
}

/** Registers the contract's tests for the adapters `open()` gives (each test gets an empty one). */
export function contract(name, open) {
  test(`${name}: d1_versions_start_at_1_and_grow_by_one`, async () => {
    const s = await open();
    assert.equal(await s.get('k'), undefined);
    await s.commit([{ key: 'k', value: 'a', expect: absent }]);
    assert.deepEqual(await s.get('k'), { value: 'a', version: 1 });
    await s.commit([{ key: 'k', value: 'b', expect: at(1) }]);
    assert.deepEqual(await s.get('k'), { value: 'b', version: 2 });
  });

  test(`${name}: d1_an_expectation_that_does_not_hold_is_a_conflict`, async () => {
    const s = await open();
    await s.commit([{ key: 'k', value: 'a', expect: absent }]);
    await conflicts(() => s.commit([{ key: 'k', value: 'b', expect: absent }]));
    await conflicts(() => s.commit([{ key: 'k', value: 'b', expect: at(2) }]));
    await conflicts(() => s.commit([{ key: 'k', expect: at(5) }]));
    await conflicts(() => s.commit([{ key: 'k', expect: absent }]));
    await conflicts(() => s.commit([{ key: 'gone', value: 'x', expect: at(1) }]));
    assert.deepEqual(await s.get('k'), { value: 'a', version: 1 });
  });

  test(`${name}: d1_a_batch_applies_whole_or_not_at_all`, async () => {
    const s = await open();
    await s.commit([{ key: 'a', value: '1', expect: absent }, { key: 'b', value: '1', expect: absent }]);
    await conflicts(() => s.commit([
      { key: 'a', value: '2', expect: at(1) },
      { key: 'c', value: '2', expect: absent },
      { key: 'b', value: '2', expect: at(7) },
    ]));
    assert.deepEqual(await s.get('a'), { value: '1', version: 1 });
    assert.equal(await s.get('c'), undefined);
    await s.commit([{ key: 'a', expect: at(1) }, { key: 'b', value: '2', expect: at(1) }, { key: 'z', expect: absent }]);
    assert.equal(await s.get('a'), undefined);
    assert.deepEqual(await s.get('b'), { value: '2', version: 2 });
    await s.commit([]);
  });

  test(`${name}: d1_a_batch_naming_a_key_twice_is_a_failure`, async () => {
    const s = await open();
    await assert.rejects(async () => s.commit([{ key: 'a', value: '1', expect: absent }, { key: 'a', value: '2', expect: absent }]),
      (e) => e.name !== 'StorageConflict');
    assert.equal(await s.get('a'), undefined);
  });

  test(`${name}: d1_scans_go_in_byte_order_from_after_within_the_prefix`, async () => {
    const s = await open();
    // UTF-8 byte order: U+FFFF sorts before U+10000 (UTF-16 order would put it after).
    const keys = ['u/a', 'u/b', 'u/é', 'u/\uffff', 'u/\u{10000}', 'u0', 'u', 'v/a', 'u/\u{10ffff}'];
    for (const key of keys) await s.commit([{ key, value: key, expect: absent }]);
    const scan = async (prefix, after, limit) => (await s.scan(prefix, after, limit)).map((e) => e.key);
    assert.deepEqual(await scan('u/', undefined, 10), ['u/a', 'u/b', 'u/é', 'u/\uffff', 'u/\u{10000}', 'u/\u{10ffff}']);
    assert.deepEqual(await scan('u/', 'u/b', 2), ['u/é', 'u/\uffff']);
    assert.deepEqual(await scan('u/', 'a', 1), ['u/a']);
    assert.deepEqual(await scan('u/', 'u/\u{10ffff}', 5), []);
    assert.deepEqual(await scan('u/', undefined, 0), []);
    assert.deepEqual(await scan('', 'u0', 5), ['v/a']);
    const [first] = await s.scan('u/', undefined, 1);
    assert.deepEqual(first, { key: 'u/a', value: { value: 'u/a', version: 1 } });
  });
}
