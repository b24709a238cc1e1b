/* The two modes of twofold-c, each over the SQLite database at `db_path`. */
#ifndef TWOFOLD_C_APP_H
#define TWOFOLD_C_APP_H

/*
 * The audit key of the test configuration (`twofold_testkit::TEST_AUDIT_KEY_HEX`, id `test`):
 * the conformance protocol's default configuration names it, and the demo falls back to it.
 * It is public, so it proves nothing: a real host reads its own key from a secret store or the
 * environment, never from source.
 */
#define TEST_AUDIT_KEY_HEX "8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4"

/* `--driver`: the conformance protocol on stdin/stdout. Returns the exit status. */
int driver_main(const char *db_path);

/* `demo`: a walk through the engine in the terminal. Returns the exit status. */
int demo_main(const char *db_path);

#endif /* TWOFOLD_C_APP_H */
