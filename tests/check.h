/*
 * The checks of the C tests: CHECK records a failure with its place and goes
 * on, so one run reports every broken expectation; check_exit ends the test
 * with the count. Header-only, for tests only.
 */
#ifndef AW_TESTS_CHECK_H
#define AW_TESTS_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            check_failures++;                                                                                \
        }                                                                                                    \
    } while (0)

/* Returns the exit code of test `name`: 0 when every check held. */
static inline int check_exit(const char *name)
{
    if (check_failures != 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#endif
