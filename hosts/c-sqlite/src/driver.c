/*
 * `twofold-c --driver`: the conformance protocol (tests/conformance/PROTOCOL.md) over the
 * SQLite store, so the suite tests this host as it runs in production. One JSON request per
 * line on stdin, one answer per line on stdout; logs go to stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "app.h"
#include "kv_store.h"
#include "twofold.h"

/* Where the clock starts, and where `reset` puts it: 2026-01-01T00:00:00Z. */
#define START_MS 1767225600000ULL

/* The protocol's default configuration: the SPEC defaults and the test audit key. */
static const char DEFAULT_CONFIG[] =
    "{\"audit_keys\": [{\"id\": \"test\", \"secret\": \"" TEST_AUDIT_KEY_HEX "\"}]}";

struct driver {
    /* First member, so a `struct driver *` is also the `struct kv_store *` the storage
       callbacks expect, and one `user_data` serves them and the clock. */
    struct kv_store store;
    uint64_t now_ms; /* the settable clock: it moves only when told to */
    struct twofold_engine *engine;
};

static int32_t driver_now(void *user_data, uint64_t *out_ms) {
    const struct driver *d = user_data;
    *out_ms = d->now_ms;
    return TWOFOLD_OK;
}

/* Replaces the engine with one made from `config`; on failure the old one stays. */
static twofold_status new_engine(struct driver *d, const char *config) {
    struct twofold_host host = kv_store_host(&d->store);
    host.now_ms = driver_now; /* randomness stays the OS CSPRNG */
    struct twofold_engine *engine = NULL;
    twofold_status status = twofold_engine_new(config, strlen(config), &host, &engine);
    if (status == TWOFOLD_OK) {
        twofold_engine_free(d->engine);
        d->engine = engine;
    }
    return status;
}

/* ---------------------------------------------------------------- answers */

static void answer_error(cJSON *answer, int32_t status, const char *message) {
    cJSON *error = cJSON_AddObjectToObject(answer, "error");
    cJSON_AddStringToObject(error, "code", twofold_status_name(status));
    cJSON_AddStringToObject(error, "message", message);
}

/* The error of the engine call that just failed on this thread. */
static void answer_engine_error(cJSON *answer, twofold_status status) {
    answer_error(answer, status, twofold_last_error_message());
    if (status == TWOFOLD_RATE_LIMITED) {
        cJSON *error = cJSON_GetObjectItemCaseSensitive(answer, "error");
        cJSON_AddNumberToObject(error, "retry_after_secs",
                                (double)twofold_last_error_retry_after_secs());
    }
}

static void answer_ok(cJSON *answer, const char *json) {
    cJSON_AddRawToObject(answer, "ok", json);
}

/* A JSON number that is a whole number of at most 2^53 (what a double holds exactly). */
static bool as_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    double v = item->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* The arguments as JSON text for the library, or NULL when absent (then `{}` is passed).
   Free with cJSON_free. */
static char *args_text(const cJSON *args) {
    return args ? cJSON_PrintUnformatted(args) : NULL;
}

/* ---------------------------------------------------------------- test-only operations */

static void op_configure(struct driver *d, const cJSON *args, cJSON *answer) {
    char *config = args_text(args);
    twofold_status status = new_engine(d, config ? config : "{}");
    cJSON_free(config);
    if (status == TWOFOLD_OK) {
        answer_ok(answer, "{}");
    } else {
        answer_engine_error(answer, status);
    }
}

static void op_reset(struct driver *d, const cJSON *args, cJSON *answer) {
    (void)args;
    if (kv_store_clear(&d->store) != TWOFOLD_OK) {
        answer_error(answer, TWOFOLD_STORAGE, "could not empty the database");
        return;
    }
    d->now_ms = START_MS;
    twofold_status status = new_engine(d, DEFAULT_CONFIG);
    if (status == TWOFOLD_OK) {
        answer_ok(answer, "{}");
    } else {
        answer_engine_error(answer, status);
    }
}

static void op_set_clock(struct driver *d, const cJSON *args, cJSON *answer) {
    uint64_t now_ms;
    if (!as_u64(cJSON_GetObjectItemCaseSensitive(args, "now_ms"), &now_ms)) {
        answer_error(answer, TWOFOLD_INVALID_INPUT, "set_clock needs now_ms, a whole number");
        return;
    }
    d->now_ms = now_ms;
    answer_ok(answer, "{}");
}

static void op_advance_clock(struct driver *d, const cJSON *args, cJSON *answer) {
    uint64_t ms;
    if (!as_u64(cJSON_GetObjectItemCaseSensitive(args, "ms"), &ms) || ms > UINT64_MAX - d->now_ms) {
        answer_error(answer, TWOFOLD_INVALID_INPUT,
                     "advance_clock needs ms, a whole number that keeps the clock in range");
        return;
    }
    d->now_ms += ms;
    answer_ok(answer, "{}");
}

static void op_seed(struct driver *d, const cJSON *args, cJSON *answer) {
    (void)d;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(args, "seed");
    if (!cJSON_IsNumber(seed) || seed->valuedouble < 0) {
        answer_error(answer, TWOFOLD_INVALID_INPUT, "seed needs seed, a whole number");
        return;
    }
    answer_ok(answer, "{\"seeded\":false}"); /* randomness stays the OS CSPRNG */
}

static const struct {
    const char *name;
    void (*run)(struct driver *d, const cJSON *args, cJSON *answer);
    const char *member; /* the one member args may have ("" none); NULL: the engine checks */
} TEST_OPS[] = {
    {"configure", op_configure, NULL},
    {"reset", op_reset, ""},
    {"set_clock", op_set_clock, "now_ms"},
    {"advance_clock", op_advance_clock, "ms"},
    {"seed", op_seed, "seed"},
};

/* Whether every member of `args` is `member`, as the engine refuses unknown fields too. */
static bool only_member(const cJSON *args, const char *member) {
    const cJSON *field;
    cJSON_ArrayForEach(field, args) {
        if (member == NULL || strcmp(field->string, member) != 0) {
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- engine operations */

/*
 * `context` (absent or null: nobody known) and `args` (absent: `{}`) go to the engine as JSON,
 * as they came: the engine checks their members, as it does for a web host's.
 */
static void engine_op(struct driver *d, const char *op, const cJSON *args, const cJSON *context,
                      cJSON *answer) {
    if (context != NULL && !cJSON_IsNull(context) && !cJSON_IsObject(context)) {
        answer_error(answer, TWOFOLD_INVALID_INPUT, "context must be a JSON object");
        return;
    }
    char *ctx_json = cJSON_IsObject(context) ? cJSON_PrintUnformatted(context) : NULL;
    char *args_json = args_text(args);
    if ((cJSON_IsObject(context) && ctx_json == NULL) || (args != NULL && args_json == NULL)) {
        cJSON_free(ctx_json);
        cJSON_free(args_json);
        answer_error(answer, TWOFOLD_INTERNAL, "out of memory");
        return;
    }
    const char *ctx = ctx_json ? ctx_json : "{}";
    const char *text = args_json ? args_json : "{}";
    char *out = NULL;
    size_t out_len = 0;
    twofold_status status = twofold_engine_call(d->engine, ctx, strlen(ctx), op, strlen(op), text,
                                                strlen(text), &out, &out_len);
    cJSON_free(ctx_json);
    cJSON_free(args_json);
    if (status == TWOFOLD_OK) {
        answer_ok(answer, out);
        twofold_string_free(out);
    } else {
        answer_engine_error(answer, status); /* an unknown op is invalid_input here too */
    }
}

/* ---------------------------------------------------------------- the loop */

/* Whether `s[len]` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates). */
static bool is_utf8(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t extra;
        uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= extra) {
            return false;
        }
        for (size_t k = 1; k <= extra; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

/* JSON allows no raw control characters but tab as whitespace; cJSON lets them through. */
static bool has_control_chars(const char *s, size_t len) {
    for (size_t i = 0; i < len; ++i) {
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t') {
            return true;
        }
    }
    return false;
}

/*
 * Answers one request line (`line[len]` is its terminating NUL); the result is freed with
 * cJSON_free (NULL when out of memory).
 */
static char *handle_line(struct driver *d, const char *line, size_t len) {
    /* cJSON accepts invalid UTF-8, so check it first. Including the NUL makes cJSON refuse
     * anything after the document. */
    bool utf8 = is_utf8((const unsigned char *)line, len) && !has_control_chars(line, len);
    cJSON *request = utf8 ? cJSON_ParseWithLengthOpts(line, len + 1, NULL, true) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(request, "id");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(request, "op");
    cJSON *answer = cJSON_CreateObject();
    if (cJSON_IsNumber(id)) {
        /* cJSON prints doubles with 15 digits; ids up to 2^53 are echoed exactly. */
        char digits[40];
        double v = id->valuedouble;
        if (v == (double)(int64_t)v && v >= -9007199254740992.0 && v <= 9007199254740992.0) {
            snprintf(digits, sizeof digits, "%" PRId64, (int64_t)v);
        } else {
            snprintf(digits, sizeof digits, "%.17g", v);
        }
        cJSON_AddItemToObject(answer, "id", cJSON_CreateRaw(digits));
    } else {
        cJSON_AddNullToObject(answer, "id");
    }
    if (!utf8) {
        answer_error(answer, TWOFOLD_INVALID_INPUT,
                     "the request is not valid UTF-8 JSON (or has raw control characters)");
    } else if (request == NULL) {
        answer_error(answer, TWOFOLD_INVALID_INPUT, "the request is not valid JSON");
    } else if (!cJSON_IsObject(request) || !cJSON_IsNumber(id) || !cJSON_IsString(op)) {
        answer_error(answer, TWOFOLD_INVALID_INPUT,
                     "a request is a JSON object with a numeric id and a string op");
    } else {
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(request, "args");
        size_t i = 0;
        while (i < sizeof TEST_OPS / sizeof TEST_OPS[0] &&
               strcmp(TEST_OPS[i].name, op->valuestring) != 0) {
            ++i;
        }
        if (i < sizeof TEST_OPS / sizeof TEST_OPS[0]) {
            if (args != NULL && !cJSON_IsObject(args)) {
                answer_error(answer, TWOFOLD_INVALID_INPUT, "args must be a JSON object");
            } else if (TEST_OPS[i].member != NULL && !only_member(args, TEST_OPS[i].member)) {
                answer_error(answer, TWOFOLD_INVALID_INPUT, "args has an unknown member");
            } else {
                TEST_OPS[i].run(d, args, answer);
            }
        } else {
            engine_op(d, op->valuestring, args,
                      cJSON_GetObjectItemCaseSensitive(request, "context"), answer);
        }
    }
    char *out = cJSON_PrintUnformatted(answer);
    cJSON_Delete(answer);
    cJSON_Delete(request);
    return out;
}

int driver_main(const char *db_path) {
    struct driver d = {.now_ms = START_MS};
    if (kv_store_open(&d.store, db_path) != TWOFOLD_OK) {
        return 1;
    }
    if (new_engine(&d, DEFAULT_CONFIG) != TWOFOLD_OK) {
        fprintf(stderr, "twofold-c: %s\n", twofold_last_error_message());
        kv_store_close(&d.store);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) != -1) {
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            --len;
        }
        line[len] = '\0';
        if (strspn(line, " \t") >= len) {
            continue; /* a blank line is no request */
        }
        char *out = handle_line(&d, line, len);
        if (out != NULL) {
            puts(out);
        } else {
            puts("{\"id\":null,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
        }
        fflush(stdout);
        cJSON_free(out);
    }
    free(line);
    twofold_engine_free(d.engine);
    kv_store_close(&d.store);
    return 0;
}
