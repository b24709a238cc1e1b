// A MemoryStorage opened in a WorkerStorage's thread: the bridge's cost without a database.
import { MemoryStorage } from 'twofold';
export default () => new MemoryStorage();
