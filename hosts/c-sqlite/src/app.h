/* The two modes of twofold-c, each over the SQLite database at `db_path`. */
#ifndef TWOFOLD_C_APP_H
#define TWOFOLD_C_APP_H

/* `--driver`: the conformance protocol on stdin/stdout. Returns the exit status. */
int driver_main(const char *db_path);

/* `demo`: a walk through the engine in the terminal. Returns the exit status. */
int demo_main(const char *db_path);

#endif /* TWOFOLD_C_APP_H */
