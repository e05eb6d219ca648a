/*
 * A reference-counted, immutable byte buffer: a payload that goes to many
 * sockets (every tab of a user) is built once and shared, never copied per
 * socket. Header-only; the count is atomic, so any thread may retain or
 * release, but the bytes must not change once the buffer is shared.
 */
#ifndef AW_RUNTIME_BUF_H
#define AW_RUNTIME_BUF_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct aw_buf {
    unsigned int refcnt; /* atomic */
    size_t len;
    char data[]; /* len bytes, then a NUL for convenience */
} aw_buf_t;

/* Aborts the process: out of memory is not handled anywhere in the server, so
 * every allocation that can fail goes through these. */
static inline void *aw_alloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL && size != 0) {
        fprintf(stderr, "anywhere: out of memory (%zu bytes)\n", size);
        abort();
    }
    return p;
}

static inline void *aw_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL && n != 0 && size != 0) {
        fprintf(stderr, "anywhere: out of memory (%zu bytes)\n", n * size);
        abort();
    }
    return p;
}

static inline void *aw_realloc(void *old, size_t size)
{
    void *p = realloc(old, size);
    if (p == NULL && size != 0) {
        fprintf(stderr, "anywhere: out of memory (%zu bytes)\n", size);
        abort();
    }
    return p;
}

static inline char *aw_strndup(const char *s, size_t len)
{
    char *p = aw_alloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* A new buffer holding a copy of `len` bytes, with one reference. */
static inline aw_buf_t *aw_buf_new(const void *bytes, size_t len)
{
    aw_buf_t *b = aw_alloc(sizeof(*b) + len + 1);
    b->refcnt = 1;
    b->len = len;
    if (len != 0)
        memcpy(b->data, bytes, len);
    b->data[len] = '\0';
    return b;
}

static inline aw_buf_t *aw_buf_retain(aw_buf_t *b)
{
    __atomic_add_fetch(&b->refcnt, 1, __ATOMIC_RELAXED);
    return b;
}

static inline void aw_buf_release(aw_buf_t *b)
{
    if (b != NULL && __atomic_sub_fetch(&b->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

#endif
