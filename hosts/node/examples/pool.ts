// A typed server-side sketch: EnginePool on PostgreSQL, answers narrowed by their status.
import { EnginePool, TwofoldError, type Context, type SignedIn } from 'twofold';
import { PgAdapter } from 'twofold/pg';

export async function start(databaseUrl: string, auditKey: string): Promise<EnginePool> {
  const storage = await PgAdapter.open({ connectionString: databaseUrl, max: 4 });
  return EnginePool.start({
    config: { rpId: 'example.com', rpName: 'Example', origins: ['https://example.com'], auditKeys: [{ id: 'k1', secret: auditKey }] },
    storage,
  });
}

export async function stepOne(pool: EnginePool, ctx: Context, email: string, password: string):
  Promise<SignedIn | { pendingToken: string; options: unknown } | { error: string; retryAfterSecs?: number }> {
  try {
    const outcome = await pool.signIn(ctx, { email, password, rememberMe: false });
    if (outcome.status === 'signed_in') return outcome;
    return { pendingToken: outcome.pendingToken, options: JSON.parse(outcome.options) };
  } catch (e) {
    if (e instanceof TwofoldError) return { error: e.code, retryAfterSecs: e.retryAfterSecs };
    throw e;
  }
}
