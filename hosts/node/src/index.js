// twofold for Node.js: the engine (synchronous, or in worker threads) and its storage adapters.
// PostgreSQL lives in 'twofold/pg', so that `pg` is needed only by those who use it.
export { Engine } from './engine.js';
export { EnginePool } from './pool.js';
export { TwofoldError, StorageConflict } from './errors.js';
export { MemoryStorage } from './memory.js';
export { WorkerStorage } from './worker-storage.js';
