// The storage contract against MemoryStorage (the engine-level tests use it everywhere).
import { MemoryStorage } from 'twofold';
import { contract } from './support/contract.js';

contract('memory', () => new MemoryStorage());
