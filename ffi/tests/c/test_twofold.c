/*
 * The C library tested as C: every export, success and error paths, against an in-memory
 * storage written here in C (with fault injection), plus one engine shared by several threads.
 * Built and run by ffi/tests/run-c-tests.sh under AddressSanitizer, LeakSanitizer and UBSan.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "twofold.h"

static int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* ---------------------------------------------------------------- in-memory storage */

struct entry {
    char *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    uint64_t version;
};

/* Ways the store misbehaves on purpose. */
enum fault {
    FAULT_NONE = 0,
    FAULT_GET_FOUND_TWICE,
    FAULT_GET_VERSION_ZERO,
    FAULT_GET_NULL_VALUE,
    FAULT_GET_NOT_UTF8,
    FAULT_SCAN_OUT_OF_ORDER,
    FAULT_SCAN_OUTSIDE_PREFIX,
    FAULT_SCAN_VALUE_NOT_UTF8
};

struct store {
    pthread_mutex_t lock;
    struct entry *entries; /* sorted by key, byte-wise */
    size_t len;
    size_t cap;
    /* Statuses the callbacks return instead of working; 0 = work. */
    int32_t get_status;
    int32_t scan_status;
    int32_t commit_status;
    int32_t now_status;
    int32_t random_status;
    int conflicts_to_report; /* commit reports TWOFOLD_CONFLICT this many times first */
    unsigned long scans;     /* scan callbacks made */
    enum fault fault;
    int32_t sink_answer; /* what the library's sink answered under a fault */
    unsigned long commits;
    uint64_t now_ms;
    uint64_t rng;
};

static int key_cmp(const char *a, size_t a_len, const char *b, size_t b_len) {
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

/* Index of the first entry whose key is >= key. */
static size_t lower_bound(const struct store *s, const char *key, size_t key_len) {
    size_t lo = 0, hi = s->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(s->entries[mid].key, s->entries[mid].key_len, key, key_len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static struct entry *find(struct store *s, const char *key, size_t key_len) {
    size_t i = lower_bound(s, key, key_len);
    if (i < s->len && key_cmp(s->entries[i].key, s->entries[i].key_len, key, key_len) == 0) {
        return &s->entries[i];
    }
    return NULL;
}

static void *copy_of(const void *src, size_t len) {
    void *dst = malloc(len ? len : 1);
    if (dst == NULL) {
        abort();
    }
    if (len) {
        memcpy(dst, src, len);
    }
    return dst;
}

static void put(struct store *s, const char *key, size_t key_len, const uint8_t *value,
                size_t value_len, uint64_t version) {
    struct entry *e = find(s, key, key_len);
    if (e != NULL) {
        free(e->value);
    } else {
        size_t i = lower_bound(s, key, key_len);
        if (s->len == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 16;
            s->entries = realloc(s->entries, s->cap * sizeof *s->entries);
            if (s->entries == NULL) {
                abort();
            }
        }
        memmove(&s->entries[i + 1], &s->entries[i], (s->len - i) * sizeof *s->entries);
        ++s->len;
        e = &s->entries[i];
        e->key = copy_of(key, key_len);
        e->key_len = key_len;
    }
    e->value = copy_of(value, value_len);
    e->value_len = value_len;
    e->version = version;
}

static void delete_key(struct store *s, const char *key, size_t key_len) {
    struct entry *e = find(s, key, key_len);
    if (e == NULL) {
        return;
    }
    size_t i = (size_t)(e - s->entries);
    free(e->key);
    free(e->value);
    memmove(&s->entries[i], &s->entries[i + 1], (s->len - i - 1) * sizeof *s->entries);
    --s->len;
}

static void store_init(struct store *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->now_ms = 1700000000000ULL;
    s->rng = 0x9e3779b97f4a7c15ULL;
}

static void store_destroy(struct store *s) {
    for (size_t i = 0; i < s->len; ++i) {
        free(s->entries[i].key);
        free(s->entries[i].value);
    }
    free(s->entries);
    pthread_mutex_destroy(&s->lock);
}

static int32_t store_get(void *user_data, const char *key, size_t key_len, twofold_record_fn found,
                         struct twofold_record_sink *sink) {
    struct store *s = user_data;
    int32_t rc = TWOFOLD_OK;
    pthread_mutex_lock(&s->lock);
    if (s->get_status != 0) {
        rc = s->get_status;
    } else if (s->fault == FAULT_GET_FOUND_TWICE || s->fault == FAULT_GET_VERSION_ZERO ||
               s->fault == FAULT_GET_NULL_VALUE || s->fault == FAULT_GET_NOT_UTF8) {
        static const uint8_t junk[] = "{}";
        static const uint8_t latin1[] = "{\"email\": \"Jos\xe9\"}";
        if (s->fault == FAULT_GET_FOUND_TWICE) {
            rc = found(sink, junk, 2, 1);
            if (rc == TWOFOLD_OK) {
                rc = found(sink, junk, 2, 1);
            }
        } else if (s->fault == FAULT_GET_VERSION_ZERO) {
            rc = found(sink, junk, 2, 0);
        } else if (s->fault == FAULT_GET_NOT_UTF8) {
            rc = found(sink, latin1, sizeof latin1 - 1, 1);
        } else {
            rc = found(sink, NULL, 5, 1);
        }
        s->sink_answer = rc;
    } else {
        struct entry *e = find(s, key, key_len);
        if (e != NULL) {
            rc = found(sink, e->value, e->value_len, e->version);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int32_t store_scan(void *user_data, const char *prefix, size_t prefix_len,
                          const char *after, size_t after_len, size_t limit,
                          twofold_entry_fn emit, struct twofold_entry_sink *sink) {
    struct store *s = user_data;
    int32_t rc = TWOFOLD_OK;
    pthread_mutex_lock(&s->lock);
    ++s->scans;
    if (s->scan_status != 0) {
        rc = s->scan_status;
    } else if (s->fault == FAULT_SCAN_OUT_OF_ORDER || s->fault == FAULT_SCAN_OUTSIDE_PREFIX ||
               s->fault == FAULT_SCAN_VALUE_NOT_UTF8) {
        static const uint8_t junk[] = "{}";
        static const uint8_t not_utf8[] = "{\"kind\": \"\xff\xfe\"}";
        char key[600];
        if (prefix_len + 2 > sizeof key) {
            rc = TWOFOLD_STORAGE;
        } else if (s->fault == FAULT_SCAN_VALUE_NOT_UTF8) {
            memcpy(key, prefix, prefix_len);
            key[prefix_len] = 'a';
            rc = emit(sink, key, prefix_len + 1, not_utf8, sizeof not_utf8 - 1, 1);
        } else if (s->fault == FAULT_SCAN_OUT_OF_ORDER) {
            memcpy(key, prefix, prefix_len);
            key[prefix_len] = 'b';
            rc = emit(sink, key, prefix_len + 1, junk, 2, 1);
            key[prefix_len] = 'a';
            if (rc == TWOFOLD_OK && limit > 1) {
                rc = emit(sink, key, prefix_len + 1, junk, 2, 1);
            }
        } else {
            rc = emit(sink, "\x01outside", 8, junk, 2, 1);
        }
        s->sink_answer = rc;
    } else {
        size_t i = after ? lower_bound(s, after, after_len) : lower_bound(s, prefix, prefix_len);
        size_t emitted = 0;
        for (; i < s->len && emitted < limit && rc == TWOFOLD_OK; ++i) {
            struct entry *e = &s->entries[i];
            if (after && key_cmp(e->key, e->key_len, after, after_len) <= 0) {
                continue;
            }
            if (e->key_len < prefix_len || memcmp(e->key, prefix, prefix_len) != 0) {
                if (key_cmp(e->key, e->key_len, prefix, prefix_len) > 0) {
                    break; /* past every key with the prefix */
                }
                continue;
            }
            rc = emit(sink, e->key, e->key_len, e->value, e->value_len, e->version);
            ++emitted;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int32_t store_commit(void *user_data, const struct twofold_write *writes,
                            size_t writes_len) {
    struct store *s = user_data;
    int32_t rc = TWOFOLD_OK;
    pthread_mutex_lock(&s->lock);
    if (s->commit_status != 0) {
        rc = s->commit_status;
    } else if (s->conflicts_to_report > 0) {
        --s->conflicts_to_report;
        rc = TWOFOLD_CONFLICT;
    } else {
        for (size_t i = 0; i < writes_len && rc == TWOFOLD_OK; ++i) {
            const struct twofold_write *w = &writes[i];
            struct entry *e = find(s, w->key, w->key_len);
            if (w->expected_version == 0 ? e != NULL
                                         : (e == NULL || e->version != w->expected_version)) {
                rc = TWOFOLD_CONFLICT;
            }
        }
        for (size_t i = 0; i < writes_len && rc == TWOFOLD_OK; ++i) {
            const struct twofold_write *w = &writes[i];
            if (w->value == NULL) {
                delete_key(s, w->key, w->key_len);
            } else {
                put(s, w->key, w->key_len, w->value, w->value_len, w->expected_version + 1);
            }
        }
        if (rc == TWOFOLD_OK) {
            ++s->commits;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int32_t store_now(void *user_data, uint64_t *out_ms) {
    struct store *s = user_data;
    pthread_mutex_lock(&s->lock);
    int32_t rc = s->now_status;
    if (rc == 0) {
        *out_ms = s->now_ms;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* splitmix64: deterministic, so a run replays (a real host uses its OS CSPRNG, or NULL). */
static int32_t store_random(void *user_data, uint8_t *buf, size_t len) {
    struct store *s = user_data;
    pthread_mutex_lock(&s->lock);
    int32_t rc = s->random_status;
    for (size_t i = 0; rc == 0 && i < len; ++i) {
        uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        buf[i] = (uint8_t)(z ^ (z >> 31));
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static size_t store_len(struct store *s) {
    pthread_mutex_lock(&s->lock);
    size_t n = s->len;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static struct twofold_host host_for(struct store *s) {
    struct twofold_host host;
    memset(&host, 0, sizeof host);
    host.version = TWOFOLD_HOST_VERSION;
    host.user_data = s;
    host.get = store_get;
    host.scan = store_scan;
    host.commit = store_commit;
    host.now_ms = store_now;
    host.fill_random = store_random;
    return host;
}

/* ---------------------------------------------------------------- helpers */

/* The test audit key (twofold_testkit::TEST_AUDIT_KEY_HEX, id "test"). A real host reads its
   key from a secret store or the environment, never from source. */
#define AUDIT_KEYS                                                                            \
    "\"audit_keys\": [{\"id\": \"test\", \"secret\": "                                        \
    "\"8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4\"}]"

/* Cheap argon2 so the tests are fast; few free failures to test throttling. */
static const char CONFIG[] =
    "{\"rp_id\": \"example.com\", \"rp_name\": \"Example\","
    " \"origins\": [\"https://example.com\"], " AUDIT_KEYS ","
    " \"password_hash\": {\"m_kib\": 8, \"t\": 1, \"p\": 1},"
    " \"backup_code_hash\": {\"m_kib\": 8, \"t\": 1, \"p\": 1},"
    " \"free_failures\": 3}";

/* The smallest configuration: the SPEC defaults and an audit key. */
static const char MINIMAL_CONFIG[] = "{" AUDIT_KEYS "}";

static const char CTX[] = "{\"ip\": \"203.0.113.7\", \"user_agent\": \"test_twofold.c\"}";
#define CTX_LEN (sizeof CTX - 1)

typedef twofold_status (*op_fn)(const struct twofold_engine *engine, const char *ctx,
                                size_t ctx_len, const char *args, size_t args_len, char **out,
                                size_t *out_len);

struct op {
    const char *name;
    op_fn fn;
};

static const struct op OPS[] = {
    {"create_account", twofold_engine_create_account},
    {"sign_in", twofold_engine_sign_in},
    {"sign_in_passkey", twofold_engine_sign_in_passkey},
    {"sign_in_backup_code", twofold_engine_sign_in_backup_code},
    {"start_passkey_registration", twofold_engine_start_passkey_registration},
    {"finish_passkey_registration", twofold_engine_finish_passkey_registration},
    {"list_passkeys", twofold_engine_list_passkeys},
    {"rename_passkey", twofold_engine_rename_passkey},
    {"remove_passkey", twofold_engine_remove_passkey},
    {"enable_two_factor", twofold_engine_enable_two_factor},
    {"disable_two_factor", twofold_engine_disable_two_factor},
    {"regenerate_backup_codes", twofold_engine_regenerate_backup_codes},
    {"change_password", twofold_engine_change_password},
    {"reset_password", twofold_engine_reset_password},
    {"status", twofold_engine_status},
    {"audit_events", twofold_engine_audit_events},
    {"audit_anchor", twofold_engine_audit_anchor},
    {"verify_audit_chain", twofold_engine_verify_audit_chain},
    {"prune_audit_events", twofold_engine_prune_audit_events},
};
#define N_OPS (sizeof OPS / sizeof OPS[0])

static char SENTINEL_CHAR;
#define SENTINEL_STR (&SENTINEL_CHAR)
#define SENTINEL_LEN ((size_t)0xdeadbeef)

/*
 * Runs an operation with `args` (NUL-terminated here for convenience; the library is given its
 * length) and checks the status. On success returns the result, which the caller frees; on
 * failure checks that the out-parameters were left alone and the last error was set, and
 * returns NULL.
 */
static char *run_op_at(int line, op_fn fn, const struct twofold_engine *engine,
                       const char *args, twofold_status want) {
    char *out = SENTINEL_STR;
    size_t out_len = SENTINEL_LEN;
    twofold_status got = fn(engine, CTX, CTX_LEN, args, strlen(args), &out, &out_len);
    check_status_at(got, want, __FILE__, line, "the operation");
    if (got == TWOFOLD_OK) {
        CHECK(out != SENTINEL_STR && out != NULL);
        if (out == SENTINEL_STR || out == NULL) {
            return NULL;
        }
        CHECK(out_len == strlen(out));
        return out;
    }
    CHECK(out == SENTINEL_STR);
    CHECK(out_len == SENTINEL_LEN);
    CHECK(twofold_last_error_status() == got);
    CHECK(strlen(twofold_last_error_message()) > 0);
    return NULL;
}
#define RUN(fn, engine, args, want) run_op_at(__LINE__, (fn), (engine), (args), (want))

static void expect_status(int line, op_fn fn, const struct twofold_engine *engine,
                          const char *args, twofold_status want) {
    char *out = run_op_at(line, fn, engine, args, want);
    twofold_string_free(out);
}
#define EXPECT(fn, engine, args, want) expect_status(__LINE__, (fn), (engine), (args), (want))

/* Copies the string value of "field" out of a flat JSON document (test-sized). */
static void json_string(const char *json, const char *field, char *buf, size_t cap) {
    char needle[64];
    buf[0] = '\0';
    snprintf(needle, sizeof needle, "\"%s\":\"", field);
    const char *start = json ? strstr(json, needle) : NULL;
    if (start == NULL) {
        return;
    }
    start += strlen(needle);
    const char *end = strchr(start, '"');
    size_t n = end ? (size_t)(end - start) : 0;
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
}

static struct twofold_engine *new_engine(struct store *s) {
    struct twofold_host host = host_for(s);
    struct twofold_engine *engine = NULL;
    CHECK_STATUS(twofold_engine_new(CONFIG, strlen(CONFIG), &host, &engine), TWOFOLD_OK);
    CHECK(engine != NULL);
    return engine;
}

/* Creates an account and returns its user id in `user_id`. */
static void create(struct twofold_engine *engine, const char *email, char *user_id, size_t cap) {
    char args[256];
    snprintf(args, sizeof args, "{\"email\": \"%s\", \"password\": \"correct horse\"}", email);
    char *out = RUN(twofold_engine_create_account, engine, args, TWOFOLD_OK);
    json_string(out, "user_id", user_id, cap);
    CHECK(strlen(user_id) > 0);
    twofold_string_free(out);
}

/* A buffer of exactly `len` bytes holding `{"user_id": "nobody"}` padded with spaces. */
static char *padded_args(size_t len) {
    static const char body[] = "{\"user_id\": \"nobody\"}";
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        abort();
    }
    memset(buf, ' ', len);
    memcpy(buf, body, strlen(body));
    buf[len] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- tests */

static void test_version(void) {
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", TWOFOLD_VERSION_MAJOR, TWOFOLD_VERSION_MINOR,
             TWOFOLD_VERSION_PATCH);
    CHECK(strcmp(expected, TWOFOLD_VERSION_STRING) == 0);
    CHECK(twofold_version() != NULL);
    CHECK(strcmp(twofold_version(), TWOFOLD_VERSION_STRING) == 0);
    CHECK(TWOFOLD_MAX_JSON_BYTES == 65536);
}

/* The names and numbers are one table in the library (checked there against every code);
   here: the header's values are the library's, and every status has a name and a sentence. */
static void test_status_strings(void) {
    CHECK(TWOFOLD_OK == 0 && TWOFOLD_INVALID_INPUT == 1 && TWOFOLD_RATE_LIMITED == 3);
    CHECK(TWOFOLD_CONFLICT == 13 && TWOFOLD_STORAGE == 14 && TWOFOLD_INTERNAL == 15);
    CHECK(strcmp(twofold_status_name(TWOFOLD_OK), "ok") == 0);
    CHECK(strcmp(twofold_status_name(TWOFOLD_RATE_LIMITED), "rate_limited") == 0);
    CHECK(strcmp(twofold_status_name(TWOFOLD_SECOND_FACTOR_REQUIRED), "second_factor_required") ==
          0);
    CHECK(strcmp(twofold_status_name(TWOFOLD_INTERNAL), "internal") == 0);
    for (int32_t s = TWOFOLD_OK; s <= TWOFOLD_INTERNAL; ++s) {
        CHECK(strcmp(twofold_status_name(s), "unknown") != 0);
        for (int32_t t = TWOFOLD_OK; t < s; ++t) {
            CHECK(strcmp(twofold_status_name(s), twofold_status_name(t)) != 0);
        }
        const char *message = twofold_status_message(s);
        CHECK(message != NULL && strlen(message) > 0);
        CHECK(strcmp(message, "unknown status") != 0);
    }
    const int32_t unknown[] = {-1, 16, 1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
        CHECK(strcmp(twofold_status_name(unknown[i]), "unknown") == 0);
        CHECK(strcmp(twofold_status_message(unknown[i]), "unknown status") == 0);
    }
}

static void expect_new_fails(int line, const char *config, size_t len,
                             const struct twofold_host *host, const char *message_part) {
    struct twofold_engine *sentinel = (struct twofold_engine *)&SENTINEL_CHAR;
    struct twofold_engine *engine = sentinel;
    twofold_status got = twofold_engine_new(config, len, host, &engine);
    if (engine != sentinel) {
        twofold_engine_free(engine);
    }
    int held = got == TWOFOLD_INVALID_INPUT && engine == sentinel &&
               contains(twofold_last_error_message(), message_part) &&
               twofold_last_error_status() == TWOFOLD_INVALID_INPUT;
    if (!check_at(held, __FILE__, line, "twofold_engine_new refused the configuration")) {
        fprintf(stderr, "  engine_new gave %s (%s), wanted invalid_input with \"%s\"\n",
                twofold_status_name(got), twofold_last_error_message(), message_part);
    }
}
#define EXPECT_NEW_FAILS(config, len, host, part) \
    expect_new_fails(__LINE__, (config), (len), (host), (part))
#define EXPECT_NEW_FAILS_TEXT(text, part) EXPECT_NEW_FAILS((text), strlen(text), &host, (part))

static void test_engine_new(void) {
    struct store s;
    store_init(&s);
    struct twofold_host host = host_for(&s);
    size_t n = strlen(CONFIG);

    EXPECT_NEW_FAILS(NULL, n, &host, "config_json is NULL");
    EXPECT_NEW_FAILS(NULL, 0, &host, "config_json is NULL");
    EXPECT_NEW_FAILS(CONFIG, n, NULL, "host is NULL");
    CHECK_STATUS(twofold_engine_new(CONFIG, n, &host, NULL), TWOFOLD_INVALID_INPUT);
    CHECK(contains(twofold_last_error_message(), "out_engine"));

    EXPECT_NEW_FAILS_TEXT("{\"rp_id\": \"\xff\xfe\"}", "UTF-8");
    EXPECT_NEW_FAILS_TEXT("{", "config");
    EXPECT_NEW_FAILS("", 0, &host, "config");
    EXPECT_NEW_FAILS_TEXT("{\"nope\": 1}", "nope");
    EXPECT_NEW_FAILS_TEXT("{\"free_failures\": 0, " AUDIT_KEYS "}", "free_failures");
    EXPECT_NEW_FAILS_TEXT("{\"rp_id\": \"not a domain\", " AUDIT_KEYS "}", "rp_id");
    /* An audit key is required, and must be one. */
    EXPECT_NEW_FAILS_TEXT("{}", "audit");
    EXPECT_NEW_FAILS_TEXT("{\"audit_keys\": []}", "audit");
    EXPECT_NEW_FAILS_TEXT("{\"audit_keys\": [{\"id\": \"k\", \"secret\": \"abcd\"}]}", "audit");
    /* A length that stops inside the document: the library reads only `len` bytes. */
    EXPECT_NEW_FAILS(CONFIG, n - 1, &host, "config");

    char *big = malloc(TWOFOLD_MAX_JSON_BYTES + 1);
    if (big == NULL) {
        abort();
    }
    memset(big, ' ', TWOFOLD_MAX_JSON_BYTES + 1);
    memcpy(big, MINIMAL_CONFIG, strlen(MINIMAL_CONFIG) - 1); /* without its closing brace */
    big[TWOFOLD_MAX_JSON_BYTES] = '}';
    EXPECT_NEW_FAILS(big, TWOFOLD_MAX_JSON_BYTES + 1, &host, "64 KiB");
    /* Exactly the limit is accepted. */
    big[TWOFOLD_MAX_JSON_BYTES - 1] = '}';
    struct twofold_engine *engine = NULL;
    CHECK_STATUS(twofold_engine_new(big, TWOFOLD_MAX_JSON_BYTES, &host, &engine), TWOFOLD_OK);
    twofold_engine_free(engine);
    free(big);

    struct twofold_host bad = host;
    bad.version = 0;
    EXPECT_NEW_FAILS(CONFIG, n, &bad, "version");
    bad.version = TWOFOLD_HOST_VERSION + 1;
    EXPECT_NEW_FAILS(CONFIG, n, &bad, "version");
    bad = host;
    bad.get = NULL;
    EXPECT_NEW_FAILS(CONFIG, n, &bad, "get");
    bad = host;
    bad.scan = NULL;
    EXPECT_NEW_FAILS(CONFIG, n, &bad, "scan");
    bad = host;
    bad.commit = NULL;
    EXPECT_NEW_FAILS(CONFIG, n, &bad, "commit");

    /* Defaults: an audit key alone is a valid configuration. Creating an engine touches no
       storage. */
    engine = NULL;
    CHECK_STATUS(twofold_engine_new(MINIMAL_CONFIG, strlen(MINIMAL_CONFIG), &host, &engine),
                 TWOFOLD_OK);
    CHECK(engine != NULL);
    twofold_engine_free(engine);
    CHECK(store_len(&s) == 0);

    /* The table is copied: the caller's struct may go away right after the call. */
    struct twofold_host *heap_host = malloc(sizeof *heap_host);
    if (heap_host == NULL) {
        abort();
    }
    *heap_host = host;
    engine = NULL;
    CHECK_STATUS(twofold_engine_new(CONFIG, n, heap_host, &engine), TWOFOLD_OK);
    free(heap_host);
    char user_id[128];
    create(engine, "copied@example.com", user_id, sizeof user_id);
    twofold_engine_free(engine);

    twofold_engine_free(NULL);
    twofold_string_free(NULL);
    store_destroy(&s);
}

/* The system clock and the OS CSPRNG stand in when now_ms and fill_random are NULL. */
static void test_default_clock_and_randomness(void) {
    struct store s;
    store_init(&s);
    struct twofold_host host = host_for(&s);
    host.now_ms = NULL;
    host.fill_random = NULL;
    struct twofold_engine *engine = NULL;
    CHECK_STATUS(twofold_engine_new(CONFIG, strlen(CONFIG), &host, &engine), TWOFOLD_OK);
    char user_id[128];
    create(engine, "defaults@example.com", user_id, sizeof user_id);
    char args[256];
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    char *out = RUN(twofold_engine_audit_events, engine, args, TWOFOLD_OK);
    /* An event time from the real clock: after 2020-01-01. */
    const char *at = out ? strstr(out, "\"at\":") : NULL;
    CHECK(at != NULL && strtoull(at + 5, NULL, 10) > 1577836800000ULL);
    twofold_string_free(out);
    twofold_engine_free(engine);
    store_destroy(&s);
}

/* Every operation, and the generic call, refuses bad pointers and bad JSON alike. */
static void test_operation_input_errors(void) {
    struct store s;
    store_init(&s);
    struct twofold_engine *engine = new_engine(&s);
    static const char args[] = "{\"user_id\": \"x\"}";
    static const char bad_utf8[] = "{\"user_id\": \"\xff\"}";
    size_t args_len = strlen(args);
    char *big = padded_args(TWOFOLD_MAX_JSON_BYTES + 1);
    char *at_limit = padded_args(TWOFOLD_MAX_JSON_BYTES);

    /* Contexts the library refuses, each with a word its message names. */
    static const struct {
        const char *json;
        const char *named;
    } bad_contexts[] = {
        {"", "context"},
        {"[]", "context"},
        {"{\"ip\": \"\xc3\x28\"}", "UTF-8"},
        {"{\"ip\": 7}", "context"},
        {"{\"user_agent\": null}", "context"},
        {"{\"session\": \"abc\"}", "session"},
        {"{\"device_token\": 12345}", "device_token"},
    };

    for (size_t i = 0; i < N_OPS; ++i) {
        op_fn fn = OPS[i].fn;
        char *out = SENTINEL_STR;
        size_t out_len = SENTINEL_LEN;

        CHECK_STATUS(fn(NULL, CTX, CTX_LEN, args, args_len, &out, &out_len), TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "engine is NULL"));
        CHECK_STATUS(fn(engine, NULL, CTX_LEN, args, args_len, &out, &out_len),
                     TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "ctx is NULL"));
        CHECK_STATUS(fn(engine, NULL, 0, args, args_len, &out, &out_len), TWOFOLD_INVALID_INPUT);
        CHECK_STATUS(fn(engine, CTX, CTX_LEN, NULL, args_len, &out, &out_len),
                     TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "args is NULL"));
        CHECK_STATUS(fn(engine, CTX, CTX_LEN, NULL, 0, &out, &out_len), TWOFOLD_INVALID_INPUT);
        CHECK_STATUS(fn(engine, CTX, CTX_LEN, args, args_len, NULL, &out_len),
                     TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "out is NULL"));
        CHECK_STATUS(fn(engine, CTX, CTX_LEN, args, args_len, &out, NULL), TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "out_len is NULL"));
        for (size_t c = 0; c < sizeof bad_contexts / sizeof bad_contexts[0]; ++c) {
            const char *ctx = bad_contexts[c].json;
            CHECK_STATUS(fn(engine, ctx, strlen(ctx), args, args_len, &out, &out_len),
                         TWOFOLD_INVALID_INPUT);
            CHECK(contains(twofold_last_error_message(), bad_contexts[c].named));
        }
        CHECK_STATUS(fn(engine, CTX, CTX_LEN, bad_utf8, strlen(bad_utf8), &out, &out_len),
                     TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "UTF-8"));
        CHECK_STATUS(fn(engine, CTX, CTX_LEN, big, TWOFOLD_MAX_JSON_BYTES + 1, &out, &out_len),
                     TWOFOLD_INVALID_INPUT);
        CHECK(contains(twofold_last_error_message(), "64 KiB"));
        CHECK(out == SENTINEL_STR && out_len == SENTINEL_LEN);

        EXPECT(fn, engine, "", TWOFOLD_INVALID_INPUT);
        EXPECT(fn, engine, "{", TWOFOLD_INVALID_INPUT);
        EXPECT(fn, engine, "[]", TWOFOLD_INVALID_INPUT);
        EXPECT(fn, engine, "{}", TWOFOLD_INVALID_INPUT); /* every operation has a required field */
        EXPECT(fn, engine, "{\"user_id\": 7}", TWOFOLD_INVALID_INPUT);

        /* The same through the generic entry point. */
        out = SENTINEL_STR;
        CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, OPS[i].name, strlen(OPS[i].name),
                                         "{}", 2, &out, &out_len),
                     TWOFOLD_INVALID_INPUT);
        CHECK(out == SENTINEL_STR);
    }

    /* At the limit, the size check passes and the operation runs. */
    char *out = SENTINEL_STR;
    size_t out_len = SENTINEL_LEN;
    CHECK_STATUS(twofold_engine_status(engine, CTX, CTX_LEN, at_limit, TWOFOLD_MAX_JSON_BYTES, &out,
                                       &out_len),
                 TWOFOLD_NOT_FOUND);

    /* A context of nobody known, and one with every member, are fine; only `len` bytes of a
       context are read. */
    static const char full[] = "{\"ip\": \"2001:db8::7\", \"user_agent\": \"curl/8\", "
                               "\"client_id\": \"198.51.100.9\", \"device_token\": null}";
    static const char *const good[] = {"{}", " { } ", full, "{\"device_token\": \"abc\"}"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; ++i) {
        CHECK_STATUS(twofold_engine_status(engine, good[i], strlen(good[i]), args, args_len, &out,
                                           &out_len),
                     TWOFOLD_NOT_FOUND);
    }
    CHECK_STATUS(twofold_engine_status(engine, "{}garbage", 2, args, args_len, &out, &out_len),
                 TWOFOLD_NOT_FOUND);
    CHECK(out == SENTINEL_STR && out_len == SENTINEL_LEN);

    free(big);
    free(at_limit);
    twofold_engine_free(engine);
    CHECK(store_len(&s) == 0); /* nothing was half-written */
    store_destroy(&s);
}

static void test_generic_call(void) {
    struct store s;
    store_init(&s);
    struct twofold_engine *engine = new_engine(&s);
    char user_id[128];
    create(engine, "call@example.com", user_id, sizeof user_id);
    char args[256];
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    size_t args_len = strlen(args);

    char *out = SENTINEL_STR;
    size_t out_len = SENTINEL_LEN;
    /* The name is a (pointer, length) pair: "statusXYZ" with length 6 is "status". */
    CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, "statusXYZ", 6, args, args_len,
                                     &out, &out_len),
                 TWOFOLD_OK);
    CHECK(out != SENTINEL_STR && out_len == strlen(out) && contains(out, user_id));
    char *direct = RUN(twofold_engine_status, engine, args, TWOFOLD_OK);
    CHECK(direct != NULL && out != SENTINEL_STR && strcmp(out, direct) == 0);
    twofold_string_free(direct);
    twofold_string_free(out);

    out = SENTINEL_STR;
    out_len = SENTINEL_LEN;
    CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, "nope", 4, args, args_len,
                                     &out, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK(contains(twofold_last_error_message(), "nope"));
    CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, NULL, 6, args, args_len,
                                     &out, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK(contains(twofold_last_error_message(), "op is NULL"));
    CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, "st\xffus", 6, args, args_len,
                                     &out, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, "Status", 6, args, args_len,
                                     &out, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK_STATUS(twofold_engine_call(NULL, CTX, CTX_LEN, "status", 6, args, args_len,
                                     &out, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK_STATUS(twofold_engine_call(engine, NULL, 0, "status", 6, args, args_len, &out, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK_STATUS(twofold_engine_call(engine, CTX, CTX_LEN, "status", 6, args, args_len,
                                     NULL, &out_len),
                 TWOFOLD_INVALID_INPUT);
    CHECK(out == SENTINEL_STR && out_len == SENTINEL_LEN);

    twofold_engine_free(engine);
    store_destroy(&s);
}

/* Accounts, sign-in, status, the 2FA error paths, passkey error paths and the audit log. */
static void test_account_flows(void) {
    struct store s;
    store_init(&s);
    struct twofold_engine *engine = new_engine(&s);
    char user_id[128], args[512];

    char *out = RUN(twofold_engine_create_account, engine,
                    "{\"email\": \"  Ada@Example.com \", \"password\": \"correct horse\"}",
                    TWOFOLD_OK);
    json_string(out, "user_id", user_id, sizeof user_id);
    CHECK(strlen(user_id) > 0);
    CHECK(contains(out, "\"email\":\"Ada@Example.com\""));
    twofold_string_free(out);

    EXPECT(twofold_engine_create_account, engine,
           "{\"email\": \"ada@example.COM\", \"password\": \"another one\"}",
           TWOFOLD_ALREADY_EXISTS);
    EXPECT(twofold_engine_create_account, engine,
           "{\"email\": \"bob@example.com\", \"password\": \"short\"}", TWOFOLD_INVALID_INPUT);
    EXPECT(twofold_engine_create_account, engine,
           "{\"email\": \"bob@example.com\", \"password\": \"long enough\", \"admin\": true}",
           TWOFOLD_INVALID_INPUT);

    out = RUN(twofold_engine_sign_in, engine,
              "{\"email\": \"ada@example.com\", \"password\": \"correct horse\", "
              "\"remember_me\": true}",
              TWOFOLD_OK);
    CHECK(contains(out, "\"status\":\"signed_in\""));
    CHECK(contains(out, "\"remember_me\":true"));
    CHECK(contains(out, user_id));
    twofold_string_free(out);
    EXPECT(twofold_engine_sign_in, engine,
           "{\"email\": \"ada@example.com\", \"password\": \"wrong horse\"}",
           TWOFOLD_INVALID_CREDENTIALS);
    EXPECT(twofold_engine_sign_in, engine,
           "{\"email\": \"nobody@example.com\", \"password\": \"correct horse\"}",
           TWOFOLD_INVALID_CREDENTIALS);

    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    out = RUN(twofold_engine_status, engine, args, TWOFOLD_OK);
    CHECK(contains(out, "\"two_factor_enabled\":false"));
    CHECK(contains(out, "\"passkeys\":[]"));
    CHECK(contains(out, "\"backup_codes_remaining\":0"));
    twofold_string_free(out);
    EXPECT(twofold_engine_status, engine, "{\"user_id\": \"nobody\"}", TWOFOLD_NOT_FOUND);

    out = RUN(twofold_engine_list_passkeys, engine, args, TWOFOLD_OK);
    CHECK(out != NULL && strcmp(out, "{\"passkeys\":[]}") == 0);
    twofold_string_free(out);

    snprintf(args, sizeof args, "{\"user_id\": \"%s\", \"password\": \"correct horse\"}", user_id);
    EXPECT(twofold_engine_enable_two_factor, engine, args, TWOFOLD_NO_PASSKEY);
    EXPECT(twofold_engine_disable_two_factor, engine, args, TWOFOLD_NOT_ENABLED);
    EXPECT(twofold_engine_regenerate_backup_codes, engine, args, TWOFOLD_NOT_ENABLED);

    snprintf(args, sizeof args,
             "{\"user_id\": \"%s\", \"passkey_id\": \"AAAA\", \"name\": \"Laptop\"}", user_id);
    EXPECT(twofold_engine_rename_passkey, engine, args, TWOFOLD_NOT_FOUND);
    snprintf(args, sizeof args,
             "{\"user_id\": \"%s\", \"passkey_id\": \"AAAA\", \"password\": \"correct horse\"}",
             user_id);
    EXPECT(twofold_engine_remove_passkey, engine, args, TWOFOLD_NOT_FOUND);

    /* Registration: options come out; a credential no authenticator made is refused. */
    snprintf(args, sizeof args,
             "{\"user_id\": \"%s\", \"name\": \"Laptop\", \"password\": \"correct horse\"}",
             user_id);
    out = RUN(twofold_engine_start_passkey_registration, engine, args, TWOFOLD_OK);
    CHECK(contains(out, "\"options\":{"));
    CHECK(contains(out, "\"challenge\":"));
    CHECK(contains(out, "\"example.com\""));
    twofold_string_free(out);
    snprintf(args, sizeof args,
             "{\"user_id\": \"%s\", \"name\": \"Laptop\", \"password\": \"wrong horse\"}",
             user_id);
    EXPECT(twofold_engine_start_passkey_registration, engine, args, TWOFOLD_INVALID_CREDENTIALS);
    snprintf(args, sizeof args,
             "{\"user_id\": \"%s\", \"credential\": {\"id\": \"AAAA\", \"rawId\": \"AAAA\", "
             "\"type\": \"public-key\", \"response\": {\"clientDataJSON\": \"AAAA\", "
             "\"attestationObject\": \"AAAA\"}}}",
             user_id);
    out = RUN(twofold_engine_finish_passkey_registration, engine, args, TWOFOLD_INVALID_PASSKEY);
    twofold_string_free(out);
    snprintf(args, sizeof args, "{\"user_id\": \"%s\", \"credential\": \"not json\"}", user_id);
    {
        char *o = SENTINEL_STR;
        size_t l = SENTINEL_LEN;
        twofold_status st =
            twofold_engine_finish_passkey_registration(engine, CTX, CTX_LEN, args, strlen(args),
                                                       &o, &l);
        CHECK(st == TWOFOLD_INVALID_INPUT || st == TWOFOLD_INVALID_PASSKEY ||
              st == TWOFOLD_EXPIRED);
        CHECK(o == SENTINEL_STR);
    }

    /* Second-factor sign-in with a well-formed token that was never issued (expired: `<user
       id>.<43 base64url characters>`), a token that cannot be one (invalid input), and a
       malformed credential. */
    char token[192];
    snprintf(token, sizeof token, "%s.%s", user_id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    EXPECT(twofold_engine_sign_in_backup_code, engine,
           "{\"pending_token\": \"never-issued\", \"code\": \"abcd-efgh-jkmn\"}",
           TWOFOLD_INVALID_INPUT);
    snprintf(args, sizeof args,
             "{\"pending_token\": \"%s\", \"credential\": {\"id\": \"AAAA\", \"rawId\": \"AAAA\", "
             "\"type\": \"public-key\", \"response\": {\"clientDataJSON\": \"AAAA\", "
             "\"authenticatorData\": \"AAAA\", \"signature\": \"AAAA\"}, "
             "\"clientExtensionResults\": {}}}",
             token);
    EXPECT(twofold_engine_sign_in_passkey, engine, args, TWOFOLD_EXPIRED);
    EXPECT(twofold_engine_sign_in_passkey, engine,
           "{\"pending_token\": \"never-issued\", \"credential\": {\"id\": \"AAAA\"}}",
           TWOFOLD_INVALID_INPUT);
    snprintf(args, sizeof args, "{\"pending_token\": \"%s\", \"code\": \"abcd-efgh-jkmn\"}", token);
    EXPECT(twofold_engine_sign_in_backup_code, engine, args, TWOFOLD_EXPIRED);
    /* One character short of the form: not a token the engine could have issued. */
    token[strlen(token) - 1] = '\0';
    snprintf(args, sizeof args, "{\"pending_token\": \"%s\", \"code\": \"abcd-efgh-jkmn\"}", token);
    EXPECT(twofold_engine_sign_in_backup_code, engine, args, TWOFOLD_INVALID_INPUT);
    EXPECT(twofold_engine_sign_in_backup_code, engine, "{\"pending_token\": \"never-issued\"}",
           TWOFOLD_INVALID_INPUT);

    /* The audit log: newest first, paged, and an intact hash chain. */
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    out = RUN(twofold_engine_audit_events, engine, args, TWOFOLD_OK);
    CHECK(contains(out, "\"kind\":\"account_created\""));
    CHECK(contains(out, "\"kind\":\"password_failed\""));
    CHECK(contains(out, "\"ip\":\"203.0.113.7\""));
    CHECK(contains(out, "\"user_agent\":\"test_twofold.c\""));
    CHECK(!contains(out, "correct horse"));
    twofold_string_free(out);
    snprintf(args, sizeof args, "{\"user_id\": \"%s\", \"limit\": 1}", user_id);
    out = RUN(twofold_engine_audit_events, engine, args, TWOFOLD_OK);
    CHECK(contains(out, "\"next_before\":"));
    twofold_string_free(out);
    snprintf(args, sizeof args, "{\"user_id\": \"%s\", \"limit\": 0}", user_id);
    EXPECT(twofold_engine_audit_events, engine, args, TWOFOLD_INVALID_INPUT);
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    out = RUN(twofold_engine_verify_audit_chain, engine, args, TWOFOLD_OK);
    CHECK(contains(out, "\"intact\":true"));
    CHECK(contains(out, "\"problems\":[]"));
    twofold_string_free(out);

    twofold_engine_free(engine);
    store_destroy(&s);
}

/* Throttling: rate_limited with a retry-after, in the status, the message and its accessor. */
static void test_rate_limit(void) {
    struct store s;
    store_init(&s);
    struct twofold_engine *engine = new_engine(&s);
    char user_id[128];
    create(engine, "eve@example.com", user_id, sizeof user_id);
    static const char wrong[] = "{\"email\": \"eve@example.com\", \"password\": \"wrong horse\"}";
    static const char right[] = "{\"email\": \"eve@example.com\", \"password\": \"correct horse\"}";

    /* The rule itself (how many failures, how long a wait) is the core's and is proved by the
       conformance suite; here: the status, its retry-after and the message reach C. */
    CHECK(twofold_last_error_retry_after_secs() == 0);
    twofold_status status = TWOFOLD_INVALID_CREDENTIALS;
    int attempts = 0;
    while (status == TWOFOLD_INVALID_CREDENTIALS && attempts < 20) {
        char *o = SENTINEL_STR;
        size_t l = SENTINEL_LEN;
        status = twofold_engine_sign_in(engine, CTX, CTX_LEN, wrong, strlen(wrong), &o, &l);
        CHECK(o == SENTINEL_STR);
        if (status == TWOFOLD_INVALID_CREDENTIALS) {
            CHECK(twofold_last_error_retry_after_secs() == 0);
        }
        ++attempts;
    }
    CHECK_STATUS(status, TWOFOLD_RATE_LIMITED);
    CHECK(attempts > 3); /* free_failures is 3 in CONFIG */
    /* Refused without looking at the password: the right one waits too. */
    EXPECT(twofold_engine_sign_in, engine, right, TWOFOLD_RATE_LIMITED);
    uint64_t retry = twofold_last_error_retry_after_secs();
    CHECK(retry >= 1 && retry <= 900);
    CHECK(strlen(twofold_last_error_message()) > 0);

    /* A success does not clear the last error. */
    char args[256];
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    char *out = RUN(twofold_engine_status, engine, args, TWOFOLD_OK);
    twofold_string_free(out);
    CHECK(twofold_last_error_status() == TWOFOLD_RATE_LIMITED);
    CHECK(twofold_last_error_retry_after_secs() == retry);

    pthread_mutex_lock(&s.lock);
    s.now_ms += (retry + 1) * 1000;
    pthread_mutex_unlock(&s.lock);
    out = RUN(twofold_engine_sign_in, engine, right, TWOFOLD_OK);
    CHECK(contains(out, "signed_in"));
    twofold_string_free(out);

    twofold_engine_free(engine);
    store_destroy(&s);
}

/* Whether storage holds what it held: no key added or removed, no commit applied. */
#define UNCHANGED(s, len, commits) (store_len(s) == (len) && (s)->commits == (commits))

/*
 * Callbacks that fail, report conflicts, answer a value they must not, or break the storage
 * contract: each fails the operation with TWOFOLD_STORAGE (a refused commit, after retries,
 * with TWOFOLD_CONFLICT) and nothing is written. Every operation used here writes when its
 * callbacks work.
 */
static void test_failing_callbacks(void) {
    struct store s;
    store_init(&s);
    struct twofold_engine *engine = new_engine(&s);
    char user_id[128], args[256], register_args[256];
    create(engine, "fail@example.com", user_id, sizeof user_id);
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    snprintf(register_args, sizeof register_args,
             "{\"user_id\": \"%s\", \"name\": \"Key\", \"password\": \"correct horse\"}",
             user_id);
    static const char new_account[] =
        "{\"email\": \"new@example.com\", \"password\": \"correct horse\"}";
    static const char wrong_password[] =
        "{\"email\": \"fail@example.com\", \"password\": \"wrong horse\"}";
    size_t before = store_len(&s);
    unsigned long commits = s.commits;

    /* Only TWOFOLD_OK, TWOFOLD_STORAGE and (from commit) TWOFOLD_CONFLICT are documented:
       anything else is a storage failure too, as a ctypes callback that raised may return. */
    const int32_t failing[] = {TWOFOLD_STORAGE, TWOFOLD_CONFLICT, -1, 99, 12345,
                               TWOFOLD_INTERNAL, TWOFOLD_INVALID_INPUT, INT32_MIN};
    for (size_t i = 0; i < sizeof failing / sizeof failing[0]; ++i) {
        s.get_status = failing[i];
        EXPECT(twofold_engine_create_account, engine, new_account, TWOFOLD_STORAGE);
        CHECK(contains(twofold_last_error_message(), "get"));
        EXPECT(twofold_engine_sign_in, engine, wrong_password, TWOFOLD_STORAGE);
        s.get_status = 0;
        CHECK(UNCHANGED(&s, before, commits));

        unsigned long scans = s.scans;
        s.scan_status = failing[i];
        EXPECT(twofold_engine_start_passkey_registration, engine, register_args,
               TWOFOLD_STORAGE);
        CHECK(contains(twofold_last_error_message(), "scan"));
        s.scan_status = 0;
        CHECK(s.scans > scans);
        CHECK(UNCHANGED(&s, before, commits));

        if (failing[i] != TWOFOLD_CONFLICT) {
            s.commit_status = failing[i];
            EXPECT(twofold_engine_create_account, engine, new_account, TWOFOLD_STORAGE);
            CHECK(contains(twofold_last_error_message(), "commit"));
            s.commit_status = 0;
        }

        s.now_status = failing[i];
        EXPECT(twofold_engine_create_account, engine, new_account, TWOFOLD_STORAGE);
        s.now_status = 0;

        s.random_status = failing[i];
        EXPECT(twofold_engine_create_account, engine, new_account, TWOFOLD_STORAGE);
        s.random_status = 0;
        CHECK(UNCHANGED(&s, before, commits));
    }

    /* A commit that always conflicts: retried, then TWOFOLD_CONFLICT. */
    s.conflicts_to_report = 1000;
    EXPECT(twofold_engine_create_account, engine, new_account, TWOFOLD_CONFLICT);
    s.conflicts_to_report = 0;
    CHECK(UNCHANGED(&s, before, commits));

    /* Misbehaving sinks: the library refuses the data and the call fails cleanly. */
    const enum fault get_faults[] = {FAULT_GET_FOUND_TWICE, FAULT_GET_VERSION_ZERO,
                                     FAULT_GET_NULL_VALUE, FAULT_GET_NOT_UTF8};
    for (size_t i = 0; i < sizeof get_faults / sizeof get_faults[0]; ++i) {
        s.fault = get_faults[i];
        s.sink_answer = 0;
        EXPECT(twofold_engine_sign_in, engine, wrong_password, TWOFOLD_STORAGE);
        CHECK(s.sink_answer == TWOFOLD_STORAGE);
        CHECK(contains(twofold_last_error_message(), "get callback"));
        CHECK(UNCHANGED(&s, before, commits));
    }
    CHECK(contains(twofold_last_error_message(), "UTF-8"));
    const enum fault scan_faults[] = {FAULT_SCAN_OUT_OF_ORDER, FAULT_SCAN_OUTSIDE_PREFIX,
                                      FAULT_SCAN_VALUE_NOT_UTF8};
    for (size_t i = 0; i < sizeof scan_faults / sizeof scan_faults[0]; ++i) {
        s.fault = scan_faults[i];
        s.sink_answer = 0;
        EXPECT(twofold_engine_audit_events, engine, args, TWOFOLD_STORAGE);
        CHECK(s.sink_answer == TWOFOLD_STORAGE);
        CHECK(contains(twofold_last_error_message(), "scan callback"));
    }
    CHECK(contains(twofold_last_error_message(), "UTF-8"));
    s.fault = FAULT_NONE;
    CHECK(UNCHANGED(&s, before, commits));

    /* A conflict reported once is retried from a fresh read and succeeds. */
    s.conflicts_to_report = 1;
    char *out = RUN(twofold_engine_create_account, engine, new_account, TWOFOLD_OK);
    CHECK(contains(out, "new@example.com"));
    twofold_string_free(out);
    CHECK(s.commits == commits + 1);

    /* After all that, storage still works and holds exactly what succeeded. */
    out = RUN(twofold_engine_verify_audit_chain, engine, args, TWOFOLD_OK);
    CHECK(contains(out, "\"intact\":true"));
    twofold_string_free(out);

    twofold_engine_free(engine);
    store_destroy(&s);
}

/* ---------------------------------------------------------------- threads */

#define N_THREADS 4
#define ROUNDS 3

struct worker {
    struct twofold_engine *engine;
    pthread_barrier_t *barrier;
    int index;
    twofold_status race_status;
    int failures;
};

#define WORKER_FAIL(w, what)                                                          \
    do {                                                                              \
        ++(w)->failures;                                                              \
        fprintf(stderr, "thread %d: %s: %s\n", (w)->index, (what),                    \
                twofold_last_error_message());                                        \
    } while (0)

/* Runs `fn` on the worker's engine: whether it answered `want` (and, with `part`, an answer
   that contains it). */
static int worker_call(struct worker *w, op_fn fn, const char *args, twofold_status want,
                       const char *part) {
    char *out = NULL;
    size_t out_len = 0;
    twofold_status got = fn(w->engine, CTX, CTX_LEN, args, strlen(args), &out, &out_len);
    int held = got == want && (part == NULL || contains(out, part));
    twofold_string_free(out);
    return held;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    char email[64], args[256], user_id[128];
    snprintf(email, sizeof email, "thread%d@example.com", w->index);
    snprintf(args, sizeof args, "{\"email\": \"%s\", \"password\": \"correct horse\"}", email);

    /* Everyone at once: the same new email; exactly one may win. */
    pthread_barrier_wait(w->barrier);
    static const char race[] = "{\"email\": \"race@example.com\", \"password\": \"correct horse\"}";
    char *out = NULL;
    size_t out_len = 0;
    w->race_status = twofold_engine_create_account(w->engine, CTX, CTX_LEN, race, strlen(race),
                                                   &out, &out_len);
    twofold_string_free(out);

    out = NULL;
    if (twofold_engine_create_account(w->engine, CTX, CTX_LEN, args, strlen(args), &out,
                                      &out_len) != TWOFOLD_OK) {
        WORKER_FAIL(w, "create own account");
        return NULL;
    }
    json_string(out, "user_id", user_id, sizeof user_id);
    twofold_string_free(out);

    for (int round = 0; round < ROUNDS; ++round) {
        /* Each thread's last error is its own, whatever the others do meanwhile: even threads
           fail with invalid_credentials, odd ones with not_found. */
        if (w->index % 2 == 0) {
            snprintf(args, sizeof args, "{\"email\": \"%s\", \"password\": \"wrong horse\"}",
                     email);
            if (!worker_call(w, twofold_engine_sign_in, args, TWOFOLD_INVALID_CREDENTIALS, NULL)) {
                WORKER_FAIL(w, "wrong password not refused");
            }
        } else {
            snprintf(args, sizeof args, "{\"user_id\": \"nobody-%d\"}", w->index);
            if (!worker_call(w, twofold_engine_status, args, TWOFOLD_NOT_FOUND, NULL)) {
                WORKER_FAIL(w, "unknown user not refused");
            }
        }
        snprintf(args, sizeof args, "{\"email\": \"%s\", \"password\": \"correct horse\"}", email);
        if (!worker_call(w, twofold_engine_sign_in, args, TWOFOLD_OK, user_id)) {
            WORKER_FAIL(w, "sign in");
        }
        snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
        if (!worker_call(w, twofold_engine_status, args, TWOFOLD_OK, email)) {
            WORKER_FAIL(w, "status");
        }
        if (twofold_last_error_status() !=
            (w->index % 2 == 0 ? TWOFOLD_INVALID_CREDENTIALS : TWOFOLD_NOT_FOUND)) {
            WORKER_FAIL(w, "last error not own");
        }
    }
    snprintf(args, sizeof args, "{\"user_id\": \"%s\"}", user_id);
    if (!worker_call(w, twofold_engine_verify_audit_chain, args, TWOFOLD_OK, "\"intact\":true")) {
        WORKER_FAIL(w, "verify chain");
    }
    return NULL;
}

static void test_threads(void) {
    struct store s;
    store_init(&s);
    struct twofold_engine *engine = new_engine(&s);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N_THREADS);
    pthread_t threads[N_THREADS];
    struct worker workers[N_THREADS];
    for (int i = 0; i < N_THREADS; ++i) {
        workers[i].engine = engine;
        workers[i].barrier = &barrier;
        workers[i].index = i;
        workers[i].race_status = TWOFOLD_INTERNAL;
        workers[i].failures = 0;
        CHECK(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0);
    }
    int winners = 0;
    for (int i = 0; i < N_THREADS; ++i) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(workers[i].failures == 0);
        if (workers[i].race_status == TWOFOLD_OK) {
            ++winners;
        } else {
            CHECK_STATUS(workers[i].race_status, TWOFOLD_ALREADY_EXISTS);
        }
    }
    CHECK(winners == 1);
    pthread_barrier_destroy(&barrier);
    twofold_engine_free(engine);
    store_destroy(&s);
}

int main(void) {
    CHECK(twofold_last_error_status() == TWOFOLD_OK);
    CHECK(strcmp(twofold_last_error_message(), "") == 0);
    CHECK(twofold_last_error_retry_after_secs() == 0);

    test_version();
    test_status_strings();
    test_engine_new();
    test_default_clock_and_randomness();
    test_operation_input_errors();
    test_generic_call();
    test_account_flows();
    test_rate_limit();
    test_failing_callbacks();
    test_threads();

    return check_report("test_twofold");
}
