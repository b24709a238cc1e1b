/* The "Using the C library" example of the README, built and run by ffi/tests/run-c-tests.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twofold.h"

/* Storage stubs that keep nothing; a real host runs these against its database. */
static int32_t get(void *db, const char *key, size_t key_len, twofold_record_fn found,
                   struct twofold_record_sink *sink) {
    (void)db, (void)key, (void)key_len, (void)found, (void)sink;
    return TWOFOLD_OK; /* not found: `found` is not called */
}

static int32_t scan(void *db, const char *prefix, size_t prefix_len, const char *after,
                    size_t after_len, size_t limit, twofold_entry_fn emit,
                    struct twofold_entry_sink *sink) {
    (void)db, (void)prefix, (void)prefix_len, (void)after, (void)after_len, (void)limit;
    (void)emit, (void)sink;
    return TWOFOLD_OK; /* no entries */
}

static int32_t commit(void *db, const struct twofold_write *writes, size_t n) {
    (void)db;
    for (size_t i = 0; i < n; ++i) {
        printf("%s %.*s\n", writes[i].value ? "put" : "delete", (int)writes[i].key_len,
               writes[i].key);
    }
    return TWOFOLD_OK; /* all applied */
}

int main(void) {
    /* NULL clock and randomness: the system clock and the OS CSPRNG. */
    struct twofold_host host = {TWOFOLD_HOST_VERSION, NULL, get, scan, commit, NULL, NULL};
    /* The audit log's key lives outside the database and the source: `openssl rand -hex 32`. */
    const char *audit_key = getenv("TWOFOLD_AUDIT_KEY");
    if (audit_key == NULL) {
        fprintf(stderr, "set TWOFOLD_AUDIT_KEY to 64 hex digits\n");
        return 1;
    }
    char config[512];
    snprintf(config, sizeof config,
             "{\"rp_id\": \"example.com\", \"rp_name\": \"Example\","
             " \"origins\": [\"https://example.com\"],"
             " \"audit_keys\": [{\"id\": \"2026-01\", \"secret\": \"%.128s\"}]}",
             audit_key);
    struct twofold_engine *engine = NULL;
    if (twofold_engine_new(config, strlen(config), &host, &engine) != TWOFOLD_OK) {
        fprintf(stderr, "config: %s\n", twofold_last_error_message());
        return 1;
    }

    /* Who is calling (for the audit log and the throttling): the request's peer and browser. */
    const char *ctx = "{\"ip\": \"203.0.113.7\", \"user_agent\": \"Mozilla/5.0\"}";
    const char *args = "{\"email\": \"ada@example.com\", \"password\": \"correct horse\"}";
    char *result = NULL;
    size_t result_len = 0;
    twofold_status status = twofold_engine_create_account(engine, ctx, strlen(ctx), args,
                                                          strlen(args), &result, &result_len);
    if (status == TWOFOLD_OK) {
        printf("%s\n", result); /* {"user_id":"...","email":"ada@example.com"} */
        twofold_string_free(result);
    } else {
        fprintf(stderr, "%s: %s\n", twofold_status_name(status), twofold_last_error_message());
    }
    twofold_engine_free(engine);
    return status == TWOFOLD_OK ? 0 : 1;
}
