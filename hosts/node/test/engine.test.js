// The Engine over MemoryStorage: a whole account's life through the component, and the plain
// values the package promises (numbers, snake_case codes, TwofoldError).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine, MemoryStorage, StorageConflict, TwofoldError } from 'twofold';
import { instancesMade } from '../src/engine.js';
import { SoftAuthenticator } from './support/authenticator.js';
import { config, ctx, password } from './support/config.js';

/** The TwofoldError `fn` throws. */
function refusal(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TwofoldError, `not a TwofoldError: ${e}`);
    return e;
  }
  assert.fail('no error');
}

/** An account with a passkey (2FA on); returns what the steps gave. */
function enrolled(engine, email = 'ada@example.com') {
  const key = new SoftAuthenticator();
  const { userId } = engine.createAccount(ctx, { email, password });
  const { options } = engine.startPasskeyRegistration(ctx, { userId, name: 'Laptop', password });
  const registered = engine.finishPasskeyRegistration(ctx, { userId, credential: key.create(options) });
  return { userId, key, registered };
}

test('s1_s3_s4_a_whole_account_life_through_the_component', () => {
  const engine = new Engine(config, new MemoryStorage());
  const { userId, key, registered } = enrolled(engine);
  assert.equal(registered.twoFactorEnabled, true);
  assert.equal(registered.backupCodes.length, 10);
  assert.equal(typeof registered.passkey.createdAt, 'number');

  const step1 = engine.signIn(ctx, { email: 'ada@example.com', password, rememberMe: true });
  assert.equal(step1.status, 'second_factor_required');
  assert.equal(typeof JSON.parse(step1.options).challenge, 'string');
  const signedIn = engine.signInWithPasskey(ctx, { pendingToken: step1.pendingToken, credential: key.get(step1.options) });
  assert.deepEqual(Object.keys(signedIn).sort(), ['deviceToken', 'rememberMe', 'securityEpoch', 'userId']);
  assert.equal(signedIn.userId, userId);
  assert.equal(signedIn.rememberMe, false);

  const again = engine.signIn({ ...ctx, deviceToken: signedIn.deviceToken }, { email: 'ada@example.com', password });
  const byCode = engine.signInWithBackupCode(ctx, { pendingToken: again.pendingToken, code: registered.backupCodes[0] });
  assert.equal(byCode.backupCodesRemaining, 9);

  const status = engine.status(ctx, { userId });
  assert.equal(status.passkeys[0].lastUsedAt !== undefined, true);
  // Numbers, not BigInt: the answers serialise as they are.
  assert.doesNotThrow(() => JSON.stringify(status));
  const page = engine.auditEvents(ctx, { userId, limit: 2 });
  assert.equal(page.events.length, 2);
  assert.equal(typeof page.nextBefore, 'number');
  assert.match(page.events[0].kind, /^[a-z_]+$/);
  assert.deepEqual(engine.verifyAuditChain(ctx, { userId, anchor: engine.auditAnchor(ctx, { userId }) }).problems, []);
});

test('s2_without_2fa_the_outcome_is_flat_with_status_signed_in', () => {
  const engine = new Engine(config, new MemoryStorage());
  engine.createAccount(ctx, { email: 'bob@example.com', password });
  const outcome = engine.signIn(ctx, { email: 'bob@example.com', password, rememberMe: true });
  assert.equal(outcome.status, 'signed_in');
  assert.equal(outcome.rememberMe, true);
  assert.equal(outcome.securityEpoch, 1);
});

test('errors_are_twofold_errors_with_snake_case_codes', () => {
  const engine = new Engine(config, new MemoryStorage());
  engine.createAccount(ctx, { email: 'ada@example.com', password });
  assert.equal(refusal(() => engine.createAccount(ctx, { email: 'ada@example.com', password })).code, 'already_exists');
  assert.equal(refusal(() => engine.signIn(ctx, { email: 'ada@example.com', password: 'wrong password' })).code, 'invalid_credentials');
  assert.equal(refusal(() => engine.status(ctx, { userId: 'nobody' })).code, 'not_found');
  const e = refusal(() => engine.signInWithBackupCode(ctx, { pendingToken: 'x', code: 'y' }));
  assert.equal(e.code, 'invalid_input');
  assert.deepEqual(Object.keys(e.toJSON()), ['code', 'message']);
});

test('s6_rate_limited_carries_retry_after_secs_as_a_number', () => {
  const engine = new Engine(config, new MemoryStorage());
  engine.createAccount(ctx, { email: 'ada@example.com', password });
  let e;
  for (let i = 0; i < 10 && e?.code !== 'rate_limited'; i++) e = refusal(() => engine.signIn(ctx, { email: 'ada@example.com', password: 'wrong password' }));
  assert.equal(e.code, 'rate_limited');
  assert.equal(typeof e.retryAfterSecs, 'number');
  assert.ok(e.retryAfterSecs > 0);
  assert.equal(e.toJSON().retry_after_secs, e.retryAfterSecs);
});

test('e1_values_that_do_not_fit_their_wit_type_are_invalid_input_before_the_component', () => {
  const engine = new Engine(config, new MemoryStorage());
  const { userId } = engine.createAccount(ctx, { email: 'ada@example.com', password });
  const cases = [
    [() => engine.signIn(ctx, { email: 'ada@example.com', password: 42 }), /req\.password must be a string/],
    [() => engine.signIn(ctx, { email: 'ada@example.com' }), /req\.password must be given/],
    [() => engine.signIn(ctx, { email: 'ada@example.com', password, remember_me: true }), /req\.remember_me must be left out/],
    [() => engine.auditEvents(ctx, { userId, before: -1 }), /req\.before must be an integer/],
    [() => engine.auditEvents(ctx, { userId, before: 2 ** 53 }), /req\.before must be an integer/],
    [() => engine.auditEvents(ctx, { userId, before: 10n }), /req\.before must be an integer/],
    [() => engine.auditEvents(ctx, { userId, limit: 1.5 }), /req\.limit must be an integer/],
    [() => engine.status({ ip: 1 }, { userId }), /ctx\.ip must be a string/],
    [() => engine.status(null, { userId }), /ctx must be a Context object/],
    [() => engine.status(ctx, { userId: '\ud800' }), /req\.userId must be a string/],
    [() => new Engine({ ...config, userVerification: 'Required' }, new MemoryStorage()), /config\.userVerification must be one of 'required'/],
    [() => new Engine({ ...config, auditKeys: [] }, new MemoryStorage()), /./],
  ];
  for (const [call, message] of cases) {
    const e = refusal(call);
    assert.equal(e.code, 'invalid_input', e.message);
    assert.match(e.message, message);
  }
  assert.equal(instancesMade(), 1, 'no refused input reached jco');
});

test('an_engine_call_from_inside_a_storage_adapter_is_refused', () => {
  const storage = new MemoryStorage();
  const engine = new Engine(config, storage);
  const nested = {
    get: (key) => { engine.status(ctx, { userId: 'x' }); return storage.get(key); },
    scan: (...a) => storage.scan(...a),
    commit: (w) => storage.commit(w),
  };
  const outer = new Engine(config, nested);
  const e = refusal(() => outer.signIn(ctx, { email: 'ada@example.com', password }));
  assert.equal(e.code, 'storage');
  assert.match(e.cause.message, /cannot nest/);
});

test('d1_adapter_errors_become_storage_and_conflict_codes_and_never_poison_the_instance', () => {
  const storage = new MemoryStorage();
  let fault = null;
  const faulty = {
    get: (key) => { if (fault) throw fault; return storage.get(key); },
    scan: (...a) => storage.scan(...a),
    commit: (w) => { if (fault) throw fault; return storage.commit(w); },
  };
  const engine = new Engine(config, faulty);
  const before = instancesMade();
  // Far more than the few hundred raw throws that would exhaust the guest's stack.
  fault = new Error('disk on fire');
  for (let i = 0; i < 1500; i++) {
    const e = refusal(() => engine.status(ctx, { userId: 'u1' }));
    assert.equal(e.code, 'storage');
  }
  const e = refusal(() => engine.createAccount(ctx, { email: 'ada@example.com', password }));
  assert.equal(e.code, 'storage');
  assert.equal(e.cause, fault);
  fault = new StorageConflict();
  assert.equal(refusal(() => engine.createAccount(ctx, { email: 'ada@example.com', password })).code, 'storage', 'a conflict from get is a failure');
  fault = null;
  assert.equal(engine.createAccount(ctx, { email: 'ada@example.com', password }).email, 'ada@example.com');
  assert.equal(instancesMade(), before);
});

test('d1_a_commit_that_keeps_conflicting_is_conflict', () => {
  const storage = new MemoryStorage();
  const engine = new Engine(config, { get: (k) => storage.get(k), scan: (...a) => storage.scan(...a), commit: () => { throw new StorageConflict(); } });
  assert.equal(refusal(() => engine.createAccount(ctx, { email: 'ada@example.com', password })).code, 'conflict');
});

test('an_async_adapter_given_to_the_sync_engine_is_a_storage_error_that_says_so', () => {
  const storage = new MemoryStorage();
  const engine = new Engine(config, { get: async (k) => storage.get(k), scan: (...a) => storage.scan(...a), commit: (w) => storage.commit(w) });
  const e = refusal(() => engine.createAccount(ctx, { email: 'ada@example.com', password }));
  assert.equal(e.code, 'storage');
  assert.match(e.message, /returned a Promise/);
});

test('a_bad_adapter_answer_is_a_storage_error_not_a_crash', () => {
  const storage = new MemoryStorage();
  const engine = new Engine(config, { get: () => ({ value: 'x', version: -1 }), scan: () => [], commit: (w) => storage.commit(w) });
  const e = refusal(() => engine.status(ctx, { userId: 'u1' }));
  assert.equal(e.code, 'storage');
  assert.match(e.message, /version must be an integer/);
});

test('a_disposed_engine_refuses_calls', () => {
  const engine = new Engine(config, new MemoryStorage());
  engine.dispose();
  assert.equal(refusal(() => engine.status(ctx, { userId: 'u1' })).code, 'internal');
});
