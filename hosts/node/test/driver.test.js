// The conformance driver's protocol edges (the suite itself runs every scenario against it),
// and the JSON facts the build derived from proto.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import schema from '../gen/schema.js';

function drive(...lines) {
  const input = Buffer.concat(lines.map((l) => Buffer.concat([Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from('\n')])));
  const out = spawnSync(process.execPath, [new URL('../bin/twofold-node.mjs', import.meta.url).pathname, '--driver'], { input, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

test('e1_lines_that_are_not_requests_get_invalid_input', () => {
  const [bad, utf8, noOp, args, unknown] = drive(
    'not json',
    Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x31, 0x2c, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    '{"id":3}',
    '{"id":4,"op":"status","args":[1]}',
    '{"id":5,"op":"status","args":{"user_id":"u","userId":"u"}}',
  );
  assert.deepEqual([bad.id, utf8.id, noOp.id, args.id, unknown.id], [null, null, 3, 4, 5]);
  for (const r of [bad, utf8, noOp, args, unknown]) assert.equal(r.error.code, 'invalid_input');
});

test('e1_answers_are_serde_json_flattened_by_status_with_absent_options_left_out', () => {
  const [, created, outcome] = drive(
    '{"id":1,"op":"reset"}',
    '{"id":2,"op":"create_account","args":{"email":"ada@example.com","password":"correct horse battery staple"}}',
    '{"id":3,"op":"sign_in","args":{"email":"ada@example.com","password":"correct horse battery staple"},"context":{"ip":"1.2.3.4"}}',
  );
  assert.deepEqual(Object.keys(created.ok).sort(), ['email', 'user_id']);
  assert.deepEqual(Object.keys(outcome.ok).sort(), ['device_token', 'remember_me', 'security_epoch', 'status', 'user_id']);
  assert.equal(outcome.ok.status, 'signed_in');
});

test('the_json_facts_come_from_proto', () => {
  const fields = Object.values(schema.types).filter((t) => t.kind === 'record').flatMap((t) => t.fields.map((f) => ({ ...f, record: t.name })));
  const names = (pick) => fields.filter(pick).map((f) => `${f.record}.${f.js}`).sort();
  assert.deepEqual(names((f) => f.jsonText), ['AuditEvent.details', 'FinishRegistration.credential', 'PasskeySignIn.credential', 'RegistrationStarted.options', 'SecondFactorRequired.options']);
  assert.ok(names((f) => f.nullWhenNone && f.type[0] === 'option').includes('Passkey.lastUsedAt'));
  assert.ok(names((f) => f.optional && f.type === 'bool').includes('SignIn.rememberMe'));
  assert.equal(schema.types['sign-in-outcome'].tag, 'status');
});
