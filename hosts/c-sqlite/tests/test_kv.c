/*
 * The SQLite storage callbacks (src/kv_store.c) against the storage contract of twofold.h:
 * get, scan order and bounds, versions, all-or-nothing commits, conflicts, failures that leave
 * nothing applied, threads, and the engine itself running over the store. Run by
 * tests/run.sh under AddressSanitizer and UBSan.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "check.h"
#include "kv_store.h"
#include "twofold.h"

/* ---------------------------------------------------------------- stand-ins for the sinks */

/*
 * The library's sinks are opaque; these tests pass their own structs in their place, and
 * their own record/entry functions, which are what the callbacks call.
 */
struct record {
    int calls;
    char value[256];
    size_t value_len;
    uint64_t version;
};

static int32_t record_found(struct twofold_record_sink *sink, const uint8_t *value,
                            size_t value_len, uint64_t version) {
    struct record *r = (struct record *)sink;
    ++r->calls;
    r->value_len = value_len < sizeof r->value ? value_len : sizeof r->value;
    if (r->value_len) {
        memcpy(r->value, value, r->value_len);
    }
    r->version = version;
    return TWOFOLD_OK;
}

struct listing {
    size_t len;
    char keys[32][64];
    uint64_t versions[32];
    size_t stop_after; /* answer TWOFOLD_STORAGE to the entry after this many; 0 = never */
};

static int32_t listing_emit(struct twofold_entry_sink *sink, const char *key, size_t key_len,
                            const uint8_t *value, size_t value_len, uint64_t version) {
    struct listing *l = (struct listing *)sink;
    (void)value, (void)value_len;
    if (l->stop_after && l->len == l->stop_after) {
        return TWOFOLD_STORAGE;
    }
    if (l->len == 32 || key_len >= 64) {
        return TWOFOLD_STORAGE;
    }
    memcpy(l->keys[l->len], key, key_len);
    l->keys[l->len][key_len] = '\0';
    l->versions[l->len++] = version;
    return TWOFOLD_OK;
}

/* ---------------------------------------------------------------- helpers */

static struct record get(struct kv_store *s, const char *key) {
    struct record r = {0};
    CHECK_STATUS(kv_get(s, key, strlen(key), record_found, (struct twofold_record_sink *)&r),
                 TWOFOLD_OK);
    return r;
}

static struct listing scan(struct kv_store *s, const char *prefix, const char *after,
                           size_t limit) {
    struct listing l = {0};
    CHECK_STATUS(kv_scan(s, prefix, strlen(prefix), after, after ? strlen(after) : 0, limit,
                         listing_emit, (struct twofold_entry_sink *)&l),
                 TWOFOLD_OK);
    return l;
}

static struct twofold_write put(const char *key, const char *value, uint64_t expected) {
    struct twofold_write w = {key, strlen(key), (const uint8_t *)value, strlen(value), expected};
    return w;
}

static struct twofold_write del(const char *key, uint64_t expected) {
    struct twofold_write w = {key, strlen(key), NULL, 0, expected};
    return w;
}

static int32_t commit1(struct kv_store *s, struct twofold_write w) {
    return kv_commit(s, &w, 1);
}

static int has_value(struct kv_store *s, const char *key, const char *value, uint64_t version) {
    struct record r = get(s, key);
    return r.calls == 1 && r.value_len == strlen(value) &&
           memcmp(r.value, value, r.value_len) == 0 && r.version == version;
}

static int absent(struct kv_store *s, const char *key) {
    return get(s, key).calls == 0;
}

static int listed(const struct listing *l, size_t n, const char *const *keys) {
    if (l->len != n) {
        return 0;
    }
    for (size_t i = 0; i < n; ++i) {
        if (strcmp(l->keys[i], keys[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static long count_rows(struct kv_store *s, const char *like) {
    sqlite3_stmt *stmt = NULL;
    long n = -1;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM kv WHERE key LIKE ?1", -1, &stmt, NULL) ==
            SQLITE_OK &&
        sqlite3_bind_text(stmt, 1, like, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        n = (long)sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return n;
}

/* ---------------------------------------------------------------- tests */

static void test_get_and_versions(struct kv_store *s) {
    CHECK(absent(s, "a"));
    CHECK_STATUS(commit1(s, put("a", "one", 0)), TWOFOLD_OK);
    CHECK(has_value(s, "a", "one", 1));
    CHECK_STATUS(commit1(s, put("a", "two", 1)), TWOFOLD_OK);
    CHECK(has_value(s, "a", "two", 2));
    CHECK_STATUS(commit1(s, put("a", "three", 2)), TWOFOLD_OK);
    CHECK(has_value(s, "a", "three", 3));

    /* An empty value is a value, not a delete. */
    CHECK_STATUS(commit1(s, put("empty", "", 0)), TWOFOLD_OK);
    CHECK(has_value(s, "empty", "", 1));

    /* Keys are bytes: no case folding, no trimming. */
    CHECK(absent(s, "A"));
    CHECK(absent(s, "a "));
}

static void test_conflicts(struct kv_store *s) {
    CHECK_STATUS(commit1(s, put("a", "stale", 2)), TWOFOLD_CONFLICT);   /* is at 3 */
    CHECK_STATUS(commit1(s, put("a", "future", 4)), TWOFOLD_CONFLICT);  /* is at 3 */
    CHECK_STATUS(commit1(s, put("a", "as new", 0)), TWOFOLD_CONFLICT);  /* present */
    CHECK_STATUS(commit1(s, put("nope", "x", 1)), TWOFOLD_CONFLICT);    /* absent */
    CHECK_STATUS(commit1(s, del("a", 2)), TWOFOLD_CONFLICT);
    CHECK_STATUS(commit1(s, del("a", 0)), TWOFOLD_CONFLICT);
    CHECK_STATUS(commit1(s, del("nope", 1)), TWOFOLD_CONFLICT);
    CHECK(has_value(s, "a", "three", 3));
    CHECK(absent(s, "nope"));

    CHECK_STATUS(commit1(s, del("nope", 0)), TWOFOLD_OK); /* absent, as expected: nothing to do */
    CHECK_STATUS(commit1(s, del("a", 3)), TWOFOLD_OK);
    CHECK(absent(s, "a"));
    /* A key put again after a delete starts over at 1. */
    CHECK_STATUS(commit1(s, put("a", "again", 0)), TWOFOLD_OK);
    CHECK(has_value(s, "a", "again", 1));
}

static void test_all_or_nothing(struct kv_store *s) {
    CHECK_STATUS(commit1(s, put("b", "b1", 0)), TWOFOLD_OK);

    /* The last write's expectation fails: the first two are not applied either. */
    struct twofold_write bad[] = {put("c", "c1", 0), del("b", 1), put("a", "x", 7)};
    CHECK_STATUS(kv_commit(s, bad, 3), TWOFOLD_CONFLICT);
    CHECK(absent(s, "c"));
    CHECK(has_value(s, "b", "b1", 1));
    CHECK(has_value(s, "a", "again", 1));

    /* The first write's fails. */
    struct twofold_write bad_first[] = {put("a", "x", 0), put("c", "c1", 0)};
    CHECK_STATUS(kv_commit(s, bad_first, 2), TWOFOLD_CONFLICT);
    CHECK(absent(s, "c"));

    struct twofold_write good[] = {put("c", "c1", 0), del("b", 1), put("a", "x", 1)};
    CHECK_STATUS(kv_commit(s, good, 3), TWOFOLD_OK);
    CHECK(has_value(s, "c", "c1", 1));
    CHECK(absent(s, "b"));
    CHECK(has_value(s, "a", "x", 2));

    /* An empty batch is a successful no-op. */
    CHECK_STATUS(kv_commit(s, good, 0), TWOFOLD_OK);
}

static void test_scan(struct kv_store *s) {
    static const char *const inserted[] = {"p/b", "p/a", "p/c", "p", "p0", "o", "p/",
                                           "q", "p/a/x", "p/Z", "p/\xc3\xa9", "p/z"};
    for (size_t i = 0; i < sizeof inserted / sizeof inserted[0]; ++i) {
        CHECK_STATUS(commit1(s, put(inserted[i], inserted[i], 0)), TWOFOLD_OK);
    }
    CHECK_STATUS(commit1(s, put("p/b", "b2", 1)), TWOFOLD_OK);

    /* Byte order: "Z" < "a" < "a/x" < "b" < "z" < "é" (0xc3 0xa9); the prefix itself counts. */
    static const char *const under_p[] = {"p/", "p/Z", "p/a", "p/a/x", "p/b", "p/c", "p/z",
                                          "p/\xc3\xa9"};
    struct listing l = scan(s, "p/", NULL, 100);
    CHECK(listed(&l, 8, under_p));
    CHECK(l.len == 8 && l.versions[4] == 2 && l.versions[3] == 1);

    l = scan(s, "p/", NULL, 3);
    CHECK(listed(&l, 3, under_p));
    l = scan(s, "p/", "p/a", 100);
    CHECK(listed(&l, 5, under_p + 3));
    l = scan(s, "p/", "p/a", 2);
    CHECK(listed(&l, 2, under_p + 3));
    l = scan(s, "p/", "p/b0", 100); /* `after` need not be a key */
    CHECK(listed(&l, 3, under_p + 5));
    l = scan(s, "p/", "p/\xc3\xa9", 100);
    CHECK(l.len == 0);
    l = scan(s, "p/", "a", 100); /* `after` before the prefix */
    CHECK(listed(&l, 8, under_p));
    l = scan(s, "p/", NULL, 0);
    CHECK(l.len == 0);
    l = scan(s, "r/", NULL, 100);
    CHECK(l.len == 0);
    l = scan(s, "p/a", NULL, SIZE_MAX); /* a huge limit */
    static const char *const under_pa[] = {"p/a", "p/a/x"};
    CHECK(listed(&l, 2, under_pa));

    /* The empty prefix lists everything, in order. */
    l = scan(s, "", NULL, 100);
    CHECK(l.len == 15 && strcmp(l.keys[0], "a") == 0 && strcmp(l.keys[14], "q") == 0);
    for (size_t i = 1; i < l.len; ++i) {
        CHECK(strcmp(l.keys[i - 1], l.keys[i]) < 0);
    }

    /* A sink that refuses an entry stops the scan, and its status is the answer. */
    struct listing stop = {.stop_after = 2};
    CHECK_STATUS(kv_scan(s, "p/", 2, NULL, 0, 100, listing_emit,
                         (struct twofold_entry_sink *)&stop),
                 TWOFOLD_STORAGE);
    CHECK(stop.len == 2);
}

/* A failing statement in the middle of a batch rolls back what came before it. */
static void test_failure_mid_batch(struct kv_store *s) {
    CHECK(sqlite3_exec(s->db,
                       "CREATE TEMP TRIGGER boom BEFORE INSERT ON kv WHEN NEW.key = 'boom'"
                       " BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                       NULL, NULL, NULL) == SQLITE_OK);
    struct twofold_write batch[] = {put("d", "d1", 0), put("c", "c2", 1), put("boom", "x", 0)};
    fprintf(stderr, "(an injected failure is logged next)\n");
    CHECK_STATUS(kv_commit(s, batch, 3), TWOFOLD_STORAGE);
    CHECK(absent(s, "d"));
    CHECK(has_value(s, "c", "c1", 1));
    CHECK(absent(s, "boom"));
    CHECK(sqlite3_get_autocommit(s->db)); /* no transaction left open */
    CHECK_STATUS(kv_commit(s, batch, 2), TWOFOLD_OK);
    CHECK(has_value(s, "d", "d1", 1));
    CHECK(has_value(s, "c", "c2", 2));
    CHECK(sqlite3_exec(s->db, "DROP TRIGGER boom", NULL, NULL, NULL) == SQLITE_OK);
}

/* Another connection holds the write lock past the busy timeout: storage error, nothing kept. */
static void test_busy(struct kv_store *s, const char *path) {
    sqlite3 *other = NULL;
    CHECK(sqlite3_open(path, &other) == SQLITE_OK);
    CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_busy_timeout(s->db, 50);
    fprintf(stderr, "(a locked database is logged next)\n");
    CHECK_STATUS(commit1(s, put("e", "e1", 0)), TWOFOLD_STORAGE);
    CHECK(has_value(s, "c", "c2", 2)); /* readers are not blocked in WAL mode */
    CHECK(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(other);
    CHECK(absent(s, "e"));
    CHECK_STATUS(commit1(s, put("e", "e1", 0)), TWOFOLD_OK);
    sqlite3_busy_timeout(s->db, 5000);
}

static void test_reopen(struct kv_store *s, const char *path) {
    kv_store_close(s);
    CHECK_STATUS(kv_store_open(s, path), TWOFOLD_OK);
    CHECK(has_value(s, "a", "x", 2));
    CHECK(has_value(s, "p/b", "b2", 2));
    sqlite3_stmt *stmt = NULL;
    CHECK(sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &stmt, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(stmt) == SQLITE_ROW &&
          strcmp((const char *)sqlite3_column_text(stmt, 0), "wal") == 0);
    sqlite3_finalize(stmt);
    CHECK_STATUS(kv_store_clear(s), TWOFOLD_OK);
    CHECK(scan(s, "", NULL, 100).len == 0);
}

/* Threads racing read-then-commit on one counter: every increment lands exactly once. */
struct racer {
    struct kv_store *store;
    int increments;
    int conflicts;
};

static void *race(void *arg) {
    struct racer *r = arg;
    for (int done = 0; done < r->increments;) {
        struct record cur = {0};
        kv_get(r->store, "counter", 7, record_found, (struct twofold_record_sink *)&cur);
        char value[32];
        snprintf(value, sizeof value, "%d", cur.calls ? atoi(cur.value) + 1 : 1);
        struct twofold_write w = put("counter", value, cur.calls ? cur.version : 0);
        int32_t status = kv_commit(r->store, &w, 1);
        if (status == TWOFOLD_OK) {
            ++done;
        } else if (status == TWOFOLD_CONFLICT) {
            ++r->conflicts;
        } else {
            return NULL;
        }
    }
    return r;
}

static void test_threads(struct kv_store *s) {
    enum { THREADS = 4, EACH = 50 };
    pthread_t threads[THREADS];
    struct racer racers[THREADS];
    for (int i = 0; i < THREADS; ++i) {
        racers[i] = (struct racer){s, EACH, 0};
        CHECK(pthread_create(&threads[i], NULL, race, &racers[i]) == 0);
    }
    for (int i = 0; i < THREADS; ++i) {
        void *result = NULL;
        pthread_join(threads[i], &result);
        CHECK(result == &racers[i]);
    }
    char want[16];
    snprintf(want, sizeof want, "%d", THREADS * EACH);
    CHECK(has_value(s, "counter", want, THREADS * EACH));
}

/* The engine over the store: one account is its email index, user and first audit event. */
static void test_engine(struct kv_store *s) {
    static const char config[] = "{\"password_hash\": {\"m_kib\": 8, \"t\": 1, \"p\": 1},"
                                 " \"audit_keys\": [{\"id\": \"test\", \"secret\": \""
                                 TEST_AUDIT_KEY_HEX "\"}]}";
    struct twofold_host host = kv_store_host(s);
    struct twofold_engine *engine = NULL;
    CHECK_STATUS(twofold_engine_new(config, strlen(config), &host, &engine), TWOFOLD_OK);
    static const char ctx[] = "{\"ip\": \"192.0.2.1\", \"user_agent\": \"test_kv\"}";
    static const char args[] = "{\"email\": \"grace@example.com\", \"password\": \"hopper1906\"}";
    char *out = NULL;
    size_t out_len = 0;
    CHECK_STATUS(twofold_engine_create_account(engine, ctx, strlen(ctx), args,
                                               strlen(args), &out, &out_len),
                 TWOFOLD_OK);
    twofold_string_free(out);
    CHECK(count_rows(s, "email/%") == 1);
    CHECK(count_rows(s, "user/%") == 1);
    CHECK(count_rows(s, "audit/%") == 1);
    long rows = count_rows(s, "%");

    out = NULL;
    CHECK_STATUS(twofold_engine_create_account(engine, ctx, strlen(ctx), args,
                                               strlen(args), &out, &out_len),
                 TWOFOLD_ALREADY_EXISTS);
    CHECK(count_rows(s, "%") == rows);

    /* Any insert fails: the operation is a storage error and writes nothing. */
    CHECK(sqlite3_exec(s->db,
                       "CREATE TEMP TRIGGER boom BEFORE INSERT ON kv WHEN NEW.key LIKE 'audit/%'"
                       " BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                       NULL, NULL, NULL) == SQLITE_OK);
    static const char other[] = "{\"email\": \"alan@example.com\", \"password\": \"turing1912\"}";
    fprintf(stderr, "(an injected failure is logged next)\n");
    CHECK_STATUS(twofold_engine_create_account(engine, ctx, strlen(ctx), other,
                                               strlen(other), &out, &out_len),
                 TWOFOLD_STORAGE);
    CHECK(count_rows(s, "%") == rows);
    CHECK(sqlite3_exec(s->db, "DROP TRIGGER boom", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_STATUS(twofold_engine_create_account(engine, ctx, strlen(ctx), other,
                                               strlen(other), &out, &out_len),
                 TWOFOLD_OK);
    twofold_string_free(out);
    CHECK(count_rows(s, "email/%") == 2 && count_rows(s, "user/%") == 2);
    twofold_engine_free(engine);
}

int main(void) {
    char dir[] = "/tmp/twofold-test-kv-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "%s/kv.db", dir);

    struct kv_store store;
    CHECK_STATUS(kv_store_open(&store, path), TWOFOLD_OK);
    test_get_and_versions(&store);
    test_conflicts(&store);
    test_all_or_nothing(&store);
    test_scan(&store);
    test_failure_mid_batch(&store);
    test_busy(&store, path);
    test_reopen(&store, path);
    test_threads(&store);
    test_engine(&store);
    kv_store_close(&store);

    struct kv_store bad;
    fprintf(stderr, "(an unopenable database is logged next)\n");
    CHECK_STATUS(kv_store_open(&bad, "/nonexistent/dir/kv.db"), TWOFOLD_STORAGE);

    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; ++i) {
        char file[80];
        snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
        unlink(file);
    }
    rmdir(dir);
    return check_report("test_kv");
}
