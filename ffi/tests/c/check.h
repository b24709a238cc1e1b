/*
 * The checks of the C tests (ffi/tests/c, hosts/c-sqlite/tests): a failed check is reported with
 * its place and the run goes on; `check_report` prints the counts as the runners read them.
 */
#ifndef TWOFOLD_TEST_CHECK_H
#define TWOFOLD_TEST_CHECK_H

#include <stdio.h>

#include "twofold.h"

static int passed, failed;

/* Counts one check; a failed one is reported at `file:line`. Answers whether it held. */
static inline int check_at(int held, const char *file, int line, const char *what) {
    if (held) {
        ++passed;
    } else {
        ++failed;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
    return held;
}

/* Counts one status check; a wrong status is reported with both names and the last error. */
static inline void check_status_at(twofold_status got, twofold_status want, const char *file,
                                   int line, const char *what) {
    if (check_at(got == want, file, line, what)) {
        return;
    }
    fprintf(stderr, "%s:%d: %s is %s (%d), wanted %s (%d): %s\n", file, line, what,
            twofold_status_name(got), (int)got, twofold_status_name(want), (int)want,
            twofold_last_error_message());
}

#define CHECK(cond) check_at((cond) != 0, __FILE__, __LINE__, #cond)
#define CHECK_STATUS(got, want) check_status_at((got), (want), __FILE__, __LINE__, #got)

/* Prints `name: N passed, M failed`; answers the exit status. */
static inline int check_report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif /* TWOFOLD_TEST_CHECK_H */
