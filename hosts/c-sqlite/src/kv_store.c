/*
 * twofold's storage contract (include/twofold.h, `struct twofold_host`) over one SQLite table:
 * `get` and `scan` are prepared SELECTs, `commit` checks every expected version and applies the
 * batch in one BEGIN IMMEDIATE transaction, or rolls it all back. Values are the engine's JSON
 * documents, UTF-8 text: stored as TEXT, so the sqlite3 shell shows them as they are.
 */
#include "kv_store.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char SCHEMA[] =
    "PRAGMA journal_mode = WAL;"
    /* A commit is on disk when kv_commit returns, as the contract asks (NORMAL would survive
       a crash of the process, not of the machine). */
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS kv ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL,"
    "  version INTEGER NOT NULL"
    ") WITHOUT ROWID;";

/* Several processes may share the file; a writer waits this long for another's transaction. */
#define BUSY_TIMEOUT_MS 5000

static int32_t failed(struct kv_store *s, const char *what) {
    /* Callbacks cannot pass a message to the engine: log it here, answer a status. */
    fprintf(stderr, "kv_store: %s: %s\n", what, sqlite3_errmsg(s->db));
    return TWOFOLD_STORAGE;
}

static void bind_key(sqlite3_stmt *stmt, int index, const char *key, size_t len) {
    /* TEXT compares with memcmp, shorter first on a tie: the byte order the contract asks. */
    sqlite3_bind_text64(stmt, index, len ? key : "", len, SQLITE_STATIC, SQLITE_UTF8);
}

static void done(sqlite3_stmt *stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

int32_t kv_store_open(struct kv_store *s, const char *path) {
    memset(s, 0, sizeof *s);
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        fprintf(stderr, "kv_store: cannot create a mutex\n");
        return TWOFOLD_STORAGE;
    }
    struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } statements[] = {
        {&s->get, "SELECT value, version FROM kv WHERE key = ?1"},
        {&s->scan, "SELECT key, value, version FROM kv"
                   " WHERE key >= ?1 AND (?2 IS NULL OR key > ?2) ORDER BY key LIMIT ?3"},
        {&s->version, "SELECT version FROM kv WHERE key = ?1"},
        {&s->put, "INSERT OR REPLACE INTO kv (key, value, version) VALUES (?1, ?2, ?3)"},
        {&s->del, "DELETE FROM kv WHERE key = ?1"},
    };
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL);
    }
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof statements / sizeof statements[0]; ++i) {
        rc = sqlite3_prepare_v2(s->db, statements[i].sql, -1, statements[i].stmt, NULL);
    }
    if (rc != SQLITE_OK) {
        fprintf(stderr, "kv_store: cannot open %s: %s\n", path,
                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        kv_store_close(s);
        return TWOFOLD_STORAGE;
    }
    return TWOFOLD_OK;
}

void kv_store_close(struct kv_store *s) {
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->scan);
    sqlite3_finalize(s->version);
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof *s);
}

int32_t kv_store_clear(struct kv_store *s) {
    pthread_mutex_lock(&s->lock);
    int32_t status = TWOFOLD_OK;
    if (sqlite3_exec(s->db, "DELETE FROM kv", NULL, NULL, NULL) != SQLITE_OK) {
        status = failed(s, "clear");
    }
    pthread_mutex_unlock(&s->lock);
    return status;
}

int32_t kv_get(void *user_data, const char *key, size_t key_len, twofold_record_fn found,
               struct twofold_record_sink *sink) {
    struct kv_store *s = user_data;
    int32_t status = TWOFOLD_OK;
    pthread_mutex_lock(&s->lock);
    bind_key(s->get, 1, key, key_len);
    int rc = sqlite3_step(s->get);
    if (rc == SQLITE_ROW) {
        const unsigned char *value = sqlite3_column_text(s->get, 0);
        size_t value_len = (size_t)sqlite3_column_bytes(s->get, 0);
        uint64_t version = (uint64_t)sqlite3_column_int64(s->get, 1);
        status = found(sink, value, value_len, version);
    } else if (rc != SQLITE_DONE) {
        status = failed(s, "get");
    }
    done(s->get);
    pthread_mutex_unlock(&s->lock);
    return status;
}

int32_t kv_scan(void *user_data, const char *prefix, size_t prefix_len, const char *after,
                size_t after_len, size_t limit, twofold_entry_fn emit,
                struct twofold_entry_sink *sink) {
    struct kv_store *s = user_data;
    int32_t status = TWOFOLD_OK;
    pthread_mutex_lock(&s->lock);
    bind_key(s->scan, 1, prefix, prefix_len);
    if (after != NULL) {
        bind_key(s->scan, 2, after, after_len);
    }
    sqlite3_bind_int64(s->scan, 3, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    int rc;
    while ((rc = sqlite3_step(s->scan)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(s->scan, 0);
        size_t key_len = (size_t)sqlite3_column_bytes(s->scan, 0);
        if (key_len < prefix_len || (prefix_len && memcmp(key, prefix, prefix_len) != 0)) {
            break; /* keys come in order, so every later one is past the prefix too */
        }
        const unsigned char *value = sqlite3_column_text(s->scan, 1);
        size_t value_len = (size_t)sqlite3_column_bytes(s->scan, 1);
        uint64_t version = (uint64_t)sqlite3_column_int64(s->scan, 2);
        status = emit(sink, key, key_len, value, value_len, version);
        if (status != TWOFOLD_OK) {
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        status = failed(s, "scan");
    }
    done(s->scan);
    pthread_mutex_unlock(&s->lock);
    return status;
}

/* Checks one write's expected version, then applies it; inside the commit's transaction. */
static int32_t apply(struct kv_store *s, const struct twofold_write *w) {
    bind_key(s->version, 1, w->key, w->key_len);
    int rc = sqlite3_step(s->version);
    uint64_t current = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s->version, 0) : 0;
    int32_t status = rc == SQLITE_ROW || rc == SQLITE_DONE ? TWOFOLD_OK : failed(s, "commit");
    done(s->version);
    if (status != TWOFOLD_OK) {
        return status;
    }
    if (current != w->expected_version) { /* 0 on both sides: absent, as expected */
        return TWOFOLD_CONFLICT;
    }
    sqlite3_stmt *stmt = s->del;
    if (w->value != NULL) {
        stmt = s->put;
        sqlite3_bind_text64(stmt, 2, (const char *)w->value, w->value_len, SQLITE_STATIC,
                            SQLITE_UTF8);
        sqlite3_bind_int64(stmt, 3, (sqlite3_int64)(w->expected_version + 1));
    }
    bind_key(stmt, 1, w->key, w->key_len);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        status = failed(s, "commit");
    }
    done(stmt);
    return status;
}

int32_t kv_commit(void *user_data, const struct twofold_write *writes, size_t writes_len) {
    struct kv_store *s = user_data;
    pthread_mutex_lock(&s->lock);
    /* IMMEDIATE takes the write lock up front, so the versions read below cannot change
       under another connection before COMMIT. */
    int32_t status = TWOFOLD_OK;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        status = failed(s, "begin");
    } else {
        for (size_t i = 0; i < writes_len && status == TWOFOLD_OK; ++i) {
            status = apply(s, &writes[i]);
        }
        if (status == TWOFOLD_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            status = failed(s, "commit");
        }
        if (status != TWOFOLD_OK && !sqlite3_get_autocommit(s->db)) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return status;
}

struct twofold_host kv_store_host(struct kv_store *s) {
    struct twofold_host host = {
        .version = TWOFOLD_HOST_VERSION,
        .user_data = s,
        .get = kv_get,
        .scan = kv_scan,
        .commit = kv_commit,
        .now_ms = NULL,      /* the system clock */
        .fill_random = NULL, /* the OS CSPRNG */
    };
    return host;
}
