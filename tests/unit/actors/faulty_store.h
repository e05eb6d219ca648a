/*
 * A history store for tests that fails on demand: it stands in front of a
 * real store (SQLite in a temporary folder) and refuses writes or reads while
 * the test says so, or reports writes that succeeded as failed. The history
 * actor calls it from its own thread while the test flips the switches from
 * another, so the switches are atomics. Header-only, for tests only; it is
 * the one place the actors' tests fill in a store backend's operations.
 */
#ifndef AW_TESTS_FAULTY_STORE_H
#define AW_TESTS_FAULTY_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include "runtime/buf.h"
#include "runtime/error.h"
#include "store/internal.h"

typedef struct faulty {
    aw_store_t super;
    aw_store_t *real;
    int fail_writes, fail_reads; /* atomic: refuse with AW_EUNAVAILABLE while set */
    int lie_writes;              /* atomic: that many writes succeed but are reported failed */
} faulty_t;

static int faulty_append(aw_store_t *st, const aw_record_t *r, size_t n)
{
    faulty_t *f = (faulty_t *)st;
    if (__atomic_load_n(&f->fail_writes, __ATOMIC_SEQ_CST))
        return AW_EUNAVAILABLE;
    int err = aw_store_append(f->real, r, n);
    if (err == 0 && __atomic_load_n(&f->lie_writes, __ATOMIC_SEQ_CST) > 0) {
        __atomic_sub_fetch(&f->lie_writes, 1, __ATOMIC_SEQ_CST);
        return AW_EUNAVAILABLE;
    }
    return err;
}

static int faulty_read(aw_store_t *st, const char *user, size_t user_len, int64_t bseq, int64_t bsub,
                       size_t limit, aw_store_record_cb cb, void *data, int *more)
{
    faulty_t *f = (faulty_t *)st;
    if (__atomic_load_n(&f->fail_reads, __ATOMIC_SEQ_CST))
        return AW_EUNAVAILABLE;
    return aw_store_read(f->real, user, user_len, bseq, bsub, limit, cb, data, more);
}

static int faulty_latest(aw_store_t *st, int flag, aw_store_record_cb cb, void *data)
{
    faulty_t *f = (faulty_t *)st;
    if (__atomic_load_n(&f->fail_reads, __ATOMIC_SEQ_CST))
        return AW_EUNAVAILABLE;
    return aw_store_latest(f->real, flag, cb, data);
}

static int faulty_latest_of(aw_store_t *st, const char *user, size_t user_len, int flag,
                            aw_store_record_cb cb, void *data)
{
    faulty_t *f = (faulty_t *)st;
    if (__atomic_load_n(&f->fail_reads, __ATOMIC_SEQ_CST))
        return AW_EUNAVAILABLE;
    return aw_store_latest_of(f->real, user, user_len, flag, cb, data);
}

static void faulty_close(aw_store_t *st)
{
    aw_store_close(((faulty_t *)st)->real);
    free(st);
}

static const aw_store_backend_t faulty_backend = {.name = "faulty",
                                                  .append = faulty_append,
                                                  .read = faulty_read,
                                                  .latest = faulty_latest,
                                                  .latest_of = faulty_latest_of,
                                                  .close = faulty_close};

/* Opens the real store at `uri` behind a faulty one that refuses writes from
 * the start when `fail_writes` is set; ends the test when the real store
 * cannot be opened. The history actor that is given it closes it. */
static inline faulty_t *faulty_open(const char *uri, int fail_writes)
{
    faulty_t *f = aw_calloc(1, sizeof(*f));
    f->super.backend = &faulty_backend;
    f->fail_writes = fail_writes;
    if (aw_store_open(&f->real, uri, NULL) != 0) {
        fprintf(stderr, "cannot open %s\n", uri);
        exit(1);
    }
    return f;
}

/* Flips a switch of `f` (&f->fail_writes, &f->fail_reads, &f->lie_writes). */
static inline void faulty_set(int *field, int value)
{
    __atomic_store_n(field, value, __ATOMIC_SEQ_CST);
}

#endif
