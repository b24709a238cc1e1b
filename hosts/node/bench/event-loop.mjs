// How late a 1 ms timer fires while sign-ins run: synchronous Engine on the event loop's
// thread versus EnginePool (SPEC argon2 parameters, memory storage). Not part of CI.
import { Engine, EnginePool, MemoryStorage } from 'twofold';
import { TEST_AUDIT_KEY } from '../test/support/config.js';

const config = { rpId: 'localhost', rpName: 'bench', origins: ['http://localhost:8080'], auditKeys: [{ id: 'k', secret: TEST_AUDIT_KEY }] };
const ctx = { ip: '203.0.113.9', userAgent: 'bench' };
const password = 'correct horse battery staple';
const N = 20;

/** Runs `work` while a 1 ms interval measures its own lateness; the worst lateness in ms. */
async function lateness(work) {
  let worst = 0;
  let last = performance.now();
  const timer = setInterval(() => { const t = performance.now(); worst = Math.max(worst, t - last - 1); last = t; }, 1);
  const started = performance.now();
  await work();
  const elapsed = performance.now() - started;
  clearInterval(timer);
  return { worst, perSecond: (N * 1000) / elapsed };
}

const engine = new Engine(config, new MemoryStorage());
engine.createAccount(ctx, { email: 'a@example.com', password });
const sync = await lateness(async () => {
  for (let i = 0; i < N; i++) { engine.signIn(ctx, { email: 'a@example.com', password }); await new Promise(setImmediate); }
});
const pool = await EnginePool.start({ config, storage: new MemoryStorage(), size: 2 });
await pool.createAccount(ctx, { email: 'a@example.com', password });
const pooled = await lateness(() => Promise.all(Array.from({ length: N }, () => pool.signIn(ctx, { email: 'a@example.com', password }))));
await pool.close();
console.log(`Engine on the event loop: timer late by up to ${sync.worst.toFixed(0)} ms, ${sync.perSecond.toFixed(1)} sign-ins/s`);
console.log(`EnginePool (2 workers):   timer late by up to ${pooled.worst.toFixed(0)} ms, ${pooled.perSecond.toFixed(1)} sign-ins/s`);
