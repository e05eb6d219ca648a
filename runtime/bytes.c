/*
 * Growable byte strings (bytes.h): what is not inline there. The string is
 * an aw_buf_t from the first byte on, its header in front of the bytes, so
 * that aw_bytes_finish only fills in the header; growing reallocates header
 * and bytes together.
 */
#include "runtime/bytes.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MIN_CAP 64

static void resize(aw_bytes_t *b, size_t cap)
{
    if (cap > SIZE_MAX - sizeof(*b->buf)) {
        fprintf(stderr, "anywhere: out of memory (a string of %zu bytes)\n", cap);
        abort();
    }
    /* realloc(NULL) costs more than malloc */
    b->buf = b->buf == NULL ? aw_alloc(sizeof(*b->buf) + cap) : aw_realloc(b->buf, sizeof(*b->buf) + cap);
    b->cap = cap;
}

void aw_bytes__grow(aw_bytes_t *b, size_t n)
{
    if (n > SIZE_MAX - 1 - b->len) {
        fprintf(stderr, "anywhere: out of memory (a string of more than %zu bytes)\n", b->len);
        abort();
    }
    size_t need = b->len + n + 1, cap = b->cap < MIN_CAP ? MIN_CAP : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    resize(b, cap);
}

void aw_bytes_appendf(aw_bytes_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf != NULL ? b->buf->data + b->len : NULL, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        /* did not fit: again, with room made for it */
        va_start(ap, fmt);
        vsnprintf(aw_bytes_reserve(b, (size_t)n), (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void aw_bytes_dispose(aw_bytes_t *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}
