// twofold for Node.js: the engine (synchronous, or in worker threads) and its storage adapters.
export { Engine } from './engine.js';
export { TwofoldError, StorageConflict } from './errors.js';
export { MemoryStorage } from './memory.js';
