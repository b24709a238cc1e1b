/*
 * twofold's storage callbacks over SQLite: one table of versioned keys. This file and
 * kv_store.c are the part to copy into a C service.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <pthread.h>
#include <sqlite3.h>

#include "twofold.h"

struct kv_store {
    sqlite3 *db;
    sqlite3_stmt *get;     /* value and version of one key */
    sqlite3_stmt *scan;    /* keys from a start, in order, with a limit */
    sqlite3_stmt *version; /* version of one key, inside a commit */
    sqlite3_stmt *put;
    sqlite3_stmt *del;
    /*
     * One connection serves every thread of the engine, and a commit is several statements
     * in one transaction: without this lock another thread's `get` on the same connection
     * would read the half-written batch.
     */
    pthread_mutex_t lock;
};

/*
 * Opens (or creates) the database at `path` with WAL, full sync and a busy timeout, and makes
 * the `kv` table. Returns TWOFOLD_OK, or TWOFOLD_STORAGE with the reason on stderr and nothing
 * left to close.
 */
int32_t kv_store_open(struct kv_store *store, const char *path);

/* Closes a store that kv_store_open opened. */
void kv_store_close(struct kv_store *store);

/* Deletes every key (the driver's `reset`). TWOFOLD_OK or TWOFOLD_STORAGE. */
int32_t kv_store_clear(struct kv_store *store);

/*
 * The three storage callbacks of `struct twofold_host`; `user_data` is the `struct kv_store *`.
 * Thread-safe. See `struct twofold_host` in twofold.h for the contract.
 */
int32_t kv_get(void *user_data, const char *key, size_t key_len, twofold_record_fn found,
               struct twofold_record_sink *sink);
int32_t kv_scan(void *user_data, const char *prefix, size_t prefix_len, const char *after,
                size_t after_len, size_t limit, twofold_entry_fn emit,
                struct twofold_entry_sink *sink);
int32_t kv_commit(void *user_data, const struct twofold_write *writes, size_t writes_len);

/* A host table with the storage callbacks, the system clock and the OS CSPRNG. */
struct twofold_host kv_store_host(struct kv_store *store);

#endif /* KV_STORE_H */
