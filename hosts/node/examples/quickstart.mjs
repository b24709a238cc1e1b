// The README's example: an engine on in-memory storage, an account, a sign-in.
// Run: TWOFOLD_AUDIT_KEY=$(openssl rand -hex 32) node examples/quickstart.mjs
import { Engine, MemoryStorage, TwofoldError } from 'twofold';

const engine = new Engine({
  rpId: 'localhost',
  rpName: 'Example',
  origins: ['http://localhost:8080'],
  // Signs the audit log. Keep it in your secret store, never in the database.
  auditKeys: [{ id: 'k1', secret: process.env.TWOFOLD_AUDIT_KEY ?? '' }],
}, new MemoryStorage()); // or new PgStorage({ connectionString }) from 'twofold/pg'

// Who is calling: the audit log records it, throttling counts per client.
const ctx = { ip: '203.0.113.9', userAgent: 'Mozilla/5.0' };
const password = 'correct horse battery staple';

const { userId } = engine.createAccount(ctx, { email: 'ada@example.com', password });
console.log('account', userId);

const outcome = engine.signIn(ctx, { email: 'ada@example.com', password, rememberMe: true });
if (outcome.status === 'signed_in') {
  // Start the session; keep outcome.deviceToken in a long-lived HttpOnly cookie and pass it
  // back as ctx.deviceToken on later sign-ins.
  console.log('signed in, epoch', outcome.securityEpoch);
} else {
  // 2FA is on: keep outcome.pendingToken server-side, send outcome.options to the browser,
  // then: engine.signInWithPasskey(ctx, { pendingToken, credential: JSON.stringify(cred) })
  console.log('second factor needed');
}

try {
  engine.signIn(ctx, { email: 'ada@example.com', password: 'not the password' });
} catch (e) {
  if (!(e instanceof TwofoldError)) throw e;
  console.log('refused:', e.code); // invalid_credentials; rate_limited comes with e.retryAfterSecs
}
