/*
 * twofold-c: a C program embedding libtwofold over SQLite, the model for a non-Rust backend.
 *
 *   twofold-c demo [--db PATH]       walk through the engine in the terminal
 *   twofold-c --driver [--db PATH]   speak tests/conformance/PROTOCOL.md on stdin/stdout
 *
 * Without --db the database is a fresh file in a temporary directory, removed at exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "twofold.h"

static int usage(FILE *to, int status) {
    fprintf(to, "usage: twofold-c demo [--db PATH]\n"
                "       twofold-c --driver [--db PATH]\n"
                "       twofold-c --version\n");
    return status;
}

/* Removes the temporary database and its directory (WAL leaves -wal/-shm after a crash). */
static void remove_temp(const char *dir, const char *db) {
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[4200];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; ++i) {
        snprintf(path, sizeof path, "%s%s", db, suffixes[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(int argc, char **argv) {
    enum { NONE, DEMO, DRIVER } mode = NONE;
    const char *db = NULL;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "demo") == 0 && mode == NONE) {
            mode = DEMO;
        } else if (strcmp(argv[i], "--driver") == 0 && mode == NONE) {
            mode = DRIVER;
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("twofold-c, libtwofold %s\n", twofold_version());
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return usage(stdout, 0);
        } else {
            return usage(stderr, 2);
        }
    }
    if (mode == NONE) {
        return usage(stderr, 2);
    }

    char dir[4096] = "";
    char temp_db[4200] = "";
    if (db == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/twofold-c-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            perror("twofold-c: cannot make a temporary directory");
            return 1;
        }
        snprintf(temp_db, sizeof temp_db, "%s/twofold.db", dir);
        db = temp_db;
    }
    int status = mode == DEMO ? demo_main(db) : driver_main(db);
    if (*dir) {
        remove_temp(dir, temp_db);
    }
    return status;
}
