/*
 * `twofold-c demo`: the engine's wiring in a terminal, over the SQLite store with the real
 * clock and the OS CSPRNG. Passkeys need a browser (navigator.credentials), so this stops at
 * the options a browser would be given; everything else is what a C service would do.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "app.h"
#include "kv_store.h"
#include "twofold.h"

static const char EMAIL[] = "ada@example.com";
static const char PASSWORD[] = "correct horse battery staple";

/*
 * The configuration: the relying party (the site's domain and the origins its pages are served
 * from) and the key that authenticates the audit log, which lives outside the database: here
 * the environment (`TWOFOLD_AUDIT_KEY`, e.g. from `openssl rand -hex 32`). Free with cJSON_free.
 */
static char *config_json(void) {
    const char *key = getenv("TWOFOLD_AUDIT_KEY");
    if (key == NULL || *key == '\0') {
        key = TEST_AUDIT_KEY_HEX;
        printf("(TWOFOLD_AUDIT_KEY is not set: using the public test key, which proves nothing)\n");
    }
    cJSON *config = cJSON_CreateObject();
    cJSON_AddStringToObject(config, "rp_id", "localhost");
    cJSON_AddStringToObject(config, "rp_name", "twofold demo");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(config, "origins"),
                         cJSON_CreateString("http://localhost:8080"));
    cJSON *audit_key = cJSON_CreateObject();
    cJSON_AddStringToObject(audit_key, "id", "demo");
    cJSON_AddStringToObject(audit_key, "secret", key);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(config, "audit_keys"), audit_key);
    char *json = cJSON_PrintUnformatted(config);
    cJSON_Delete(config);
    return json;
}

/* Every operation has this signature; the demo passes them around as values. */
typedef twofold_status (*twofold_op)(const struct twofold_engine *engine, const char *ctx,
                                     size_t ctx_len, const char *args, size_t args_len,
                                     char **out, size_t *out_len);

struct demo {
    struct twofold_engine *engine;
    char *ctx; /* the caller, as JSON: what an HTTP host takes from the request */
    int step;
    bool unexpected; /* some step did not answer as the walk-through expects */
};

/*
 * The context of the next calls: the peer's address and user agent, and the device token this
 * browser was given at its last completed sign-in (a web host keeps it in a long-lived HttpOnly
 * cookie), which keeps the owner's attempts apart from an attacker's. Built with cJSON, so a
 * user agent with quotes in it stays JSON.
 */
static void set_context(struct demo *d, const char *device_token) {
    cJSON *ctx = cJSON_CreateObject();
    cJSON_AddStringToObject(ctx, "ip", "203.0.113.7");
    cJSON_AddStringToObject(ctx, "user_agent", "twofold-c demo");
    if (device_token != NULL) {
        cJSON_AddStringToObject(ctx, "device_token", device_token);
    }
    cJSON_free(d->ctx);
    d->ctx = cJSON_PrintUnformatted(ctx);
    cJSON_Delete(ctx);
}

static void heading(struct demo *d, const char *text) {
    printf("\n%d. %s\n", ++d->step, text);
}

/*
 * Runs `op` with `args` (consumed) and prints the outcome. Returns the result, which the caller
 * frees with cJSON_Delete, or NULL on failure; `expect` is the status the walk-through expects.
 */
static cJSON *run(struct demo *d, const char *name, twofold_op op, cJSON *args,
                  twofold_status expect) {
    char *args_json = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    char *out = NULL;
    size_t out_len = 0;
    twofold_status status = TWOFOLD_INTERNAL;
    if (args_json != NULL && d->ctx != NULL) {
        status = op(d->engine, d->ctx, strlen(d->ctx), args_json, strlen(args_json), &out,
                    &out_len);
    }
    cJSON_free(args_json);
    if (status != expect) {
        d->unexpected = true;
    }
    if (status != TWOFOLD_OK) {
        /* A web host maps the code (never the message) to an HTTP status. */
        printf("   %s -> %s: %s\n", name, twofold_status_name(status),
               twofold_last_error_message());
        return NULL;
    }
    cJSON *result = cJSON_ParseWithLength(out, out_len);
    twofold_string_free(out);
    printf("   %s -> ok\n", name);
    return result;
}

static cJSON *user_args(const char *user_id, const char *password) {
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "user_id", user_id);
    if (password != NULL) {
        cJSON_AddStringToObject(args, "password", password);
    }
    return args;
}

static cJSON *sign_in_args(const char *password) {
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "email", EMAIL);
    cJSON_AddStringToObject(args, "password", password);
    cJSON_AddBoolToObject(args, "remember_me", true);
    return args;
}

static const char *text(const cJSON *object, const char *field) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(object, field));
    return s ? s : "?";
}

static double number(const cJSON *object, const char *field) {
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(object, field));
}

static const char *yes_no(const cJSON *object, const char *field) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(object, field)) ? "true" : "false";
}

static void print_status(const cJSON *status) {
    printf("   two_factor_enabled %s, %d passkeys, %.0f backup codes left, security epoch %.0f\n",
           yes_no(status, "two_factor_enabled"),
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(status, "passkeys")),
           number(status, "backup_codes_remaining"), number(status, "security_epoch"));
}

static void print_events(const cJSON *page) {
    const cJSON *event;
    cJSON_ArrayForEach(event, cJSON_GetObjectItemCaseSensitive(page, "events")) {
        time_t secs = (time_t)(number(event, "at") / 1000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&secs, &tm) != NULL) {
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", &tm);
        }
        char *details = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(event, "details"));
        bool notify = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(event, "notify"));
        printf("   #%-3.0f %s  %-24s %s%s  mac %.12s...\n", number(event, "seq"), when,
               text(event, "kind"), details ? details : "", notify ? "  notify" : "",
               text(event, "mac"));
        cJSON_free(details);
    }
}

static void walk_through(struct demo *d) {
    heading(d, "Sign up as ada@example.com");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "email", EMAIL);
    cJSON_AddStringToObject(args, "password", PASSWORD);
    cJSON *account = run(d, "create_account", twofold_engine_create_account, args, TWOFOLD_OK);
    if (account != NULL) {
        printf("   user_id %s, email %s\n", text(account, "user_id"), text(account, "email"));
    } else if (twofold_last_error_status() == TWOFOLD_ALREADY_EXISTS) {
        d->unexpected = false; /* a database kept from an earlier run (--db) */
        printf("   (the account is left from an earlier run on this database)\n");
    }
    cJSON_Delete(account);

    heading(d, "Sign in with the password: two-factor is off, so this signs in");
    cJSON *signed_in = run(d, "sign_in", twofold_engine_sign_in, sign_in_args(PASSWORD),
                           TWOFOLD_OK);
    if (signed_in == NULL) {
        return;
    }
    char user_id[128];
    snprintf(user_id, sizeof user_id, "%s", text(signed_in, "user_id"));
    printf("   status %s, user_id %s, remember_me %s, security epoch %.0f\n",
           text(signed_in, "status"), user_id, yes_no(signed_in, "remember_me"),
           number(signed_in, "security_epoch"));
    printf("   a device token for this browser: kept in a cookie, sent in later contexts\n");
    set_context(d, text(signed_in, "device_token"));
    cJSON_Delete(signed_in);

    heading(d, "Sign in with a wrong password: counted for this device, and audited");
    run(d, "sign_in", twofold_engine_sign_in, sign_in_args("not the password"),
        TWOFOLD_INVALID_CREDENTIALS);

    heading(d, "Status");
    cJSON *status = run(d, "status", twofold_engine_status, user_args(user_id, NULL), TWOFOLD_OK);
    if (status != NULL) {
        print_status(status);
    }
    cJSON_Delete(status);

    heading(d, "Turn two-factor on: refused, the user has no passkey yet");
    cJSON_Delete(run(d, "enable_two_factor", twofold_engine_enable_two_factor,
                     user_args(user_id, PASSWORD), TWOFOLD_NO_PASSKEY));

    heading(d, "Regenerate backup codes: refused, two-factor is off");
    cJSON_Delete(run(d, "regenerate_backup_codes", twofold_engine_regenerate_backup_codes,
                     user_args(user_id, PASSWORD), TWOFOLD_NOT_ENABLED));

    heading(d, "Change the password: the security epoch grows, so end the user's other sessions");
    args = user_args(user_id, NULL);
    cJSON_AddStringToObject(args, "current_password", PASSWORD);
    cJSON_AddStringToObject(args, "new_password", "a brand new passphrase");
    cJSON *changed = run(d, "change_password", twofold_engine_change_password, args, TWOFOLD_OK);
    if (changed != NULL) {
        printf("   security epoch %.0f\n", number(changed, "security_epoch"));
    }
    cJSON_Delete(changed);

    heading(d, "Reset it after a reset link proved the email is hers (2FA would stay as it is)");
    args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "email", EMAIL);
    cJSON_AddStringToObject(args, "new_password", PASSWORD);
    cJSON *reset = run(d, "reset_password", twofold_engine_reset_password, args, TWOFOLD_OK);
    if (reset != NULL) {
        printf("   security epoch %.0f\n", number(reset, "security_epoch"));
    }
    cJSON_Delete(reset);

    heading(d, "Start registering a passkey");
    args = user_args(user_id, PASSWORD);
    cJSON_AddStringToObject(args, "name", "Laptop");
    cJSON *started = run(d, "start_passkey_registration",
                         twofold_engine_start_passkey_registration, args, TWOFOLD_OK);
    if (started != NULL) {
        const cJSON *options = cJSON_GetObjectItemCaseSensitive(started, "options");
        printf("   creation options: rp %s, challenge %.16s...\n",
               text(cJSON_GetObjectItemCaseSensitive(options, "rp"), "id"),
               text(options, "challenge"));
        printf("   Passkeys need a browser: a page hands these options to\n"
               "   navigator.credentials.create() (via parseCreationOptionsFromJSON) and\n"
               "   posts credential.toJSON() back to finish_passkey_registration, which turns\n"
               "   two-factor on and returns 10 backup codes, shown that once. A terminal\n"
               "   cannot, so the walk-through stops here; the web demo does the rest.\n");
    }
    cJSON_Delete(started);

    heading(d, "Audit log, newest first");
    args = user_args(user_id, NULL);
    cJSON_AddNumberToObject(args, "limit", 10);
    cJSON *page = run(d, "audit_events", twofold_engine_audit_events, args, TWOFOLD_OK);
    print_events(page);
    cJSON_Delete(page);

    heading(d, "Take an anchor of the audit log, to keep outside the database");
    cJSON *anchor = run(d, "audit_anchor", twofold_engine_audit_anchor, user_args(user_id, NULL),
                        TWOFOLD_OK);
    if (anchor != NULL) {
        printf("   seq %.0f, mac %.12s...\n", number(anchor, "seq"), text(anchor, "mac"));
    }

    heading(d, "Verify the audit log's chain of MACs, against the anchor");
    args = user_args(user_id, NULL);
    if (anchor != NULL) {
        cJSON_AddItemToObject(args, "anchor", anchor);
    }
    cJSON *report = run(d, "verify_audit_chain", twofold_engine_verify_audit_chain, args,
                        TWOFOLD_OK);
    if (report != NULL) {
        printf("   intact %s, %.0f events checked\n", yes_no(report, "intact"),
               number(report, "events_checked"));
    }
    cJSON_Delete(report);
}

int demo_main(const char *db_path) {
    struct kv_store store;
    if (kv_store_open(&store, db_path) != TWOFOLD_OK) {
        return 1;
    }
    /* NULL now_ms and fill_random in the host table: the system clock and the OS CSPRNG. */
    struct twofold_host host = kv_store_host(&store);
    struct demo d = {0};
    set_context(&d, NULL);
    char *config = config_json();
    twofold_status status = config != NULL
                                ? twofold_engine_new(config, strlen(config), &host, &d.engine)
                                : TWOFOLD_INTERNAL;
    cJSON_free(config);
    if (status != TWOFOLD_OK) {
        fprintf(stderr, "twofold-c: %s\n", twofold_last_error_message());
        cJSON_free(d.ctx);
        kv_store_close(&store);
        return 1;
    }
    printf("twofold %s demo over SQLite (%s), with the real clock and OS randomness\n",
           twofold_version(), db_path);
    walk_through(&d);
    printf(d.unexpected ? "\nSome step did not answer as expected.\n" : "\nDone.\n");
    twofold_engine_free(d.engine);
    cJSON_free(d.ctx);
    kv_store_close(&store);
    return d.unexpected ? 1 : 0;
}
