// The README's example runs as printed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { TEST_AUDIT_KEY } from './support/config.js';

test('the_quickstart_example_runs', () => {
  const out = spawnSync(process.execPath, [new URL('../examples/quickstart.mjs', import.meta.url).pathname], {
    env: { ...process.env, TWOFOLD_AUDIT_KEY: TEST_AUDIT_KEY }, encoding: 'utf8',
  });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /signed in, epoch 1\nrefused: invalid_credentials/);
});
