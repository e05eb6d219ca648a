/*
 * A growable byte string that becomes an aw_buf_t (buf.h) when it is done:
 * the bytes are written in place into what will be the buffer, so finishing
 * copies nothing. For JSON frames and bodies, pages of history, the metrics
 * text, a bot's answer: whatever is built piece by piece and then sent or
 * kept whole. One thread writes it; the aw_buf_t it becomes may be shared.
 *
 * Room doubles as it is needed, so n appends cost O(n) copies in all. A
 * zeroed aw_bytes_t is an empty one that has allocated nothing yet.
 */
#ifndef AW_RUNTIME_BYTES_H
#define AW_RUNTIME_BYTES_H

#include <stddef.h>
#include <string.h>
#include "runtime/buf.h"

typedef struct aw_bytes {
    /* buf->data[0..len) are the bytes written so far; buf is NULL until room
     * is first made. buf->len and the final NUL are set by aw_bytes_finish. */
    aw_buf_t *buf;
    size_t len;
    size_t cap; /* bytes of buf->data, room for the final NUL included */
} aw_bytes_t;

/* Starts an empty string with room for `cap` bytes and the final NUL made
 * at once (nothing is allocated when `cap` is 0). */
static inline void aw_bytes_init(aw_bytes_t *bytes, size_t cap)
{
    bytes->buf = cap != 0 ? (aw_buf_t *)aw_alloc(sizeof(*bytes->buf) + cap + 1) : NULL;
    bytes->len = 0;
    bytes->cap = cap != 0 ? cap + 1 : 0;
}

/* Makes room for `n` more bytes and the final NUL, at least doubling the
 * room. Out of memory aborts. Use aw_bytes_reserve. */
void aw_bytes__grow(aw_bytes_t *bytes, size_t n);

/* Returns where the next `n` bytes go, with room for them and the final
 * NUL. The caller writes at most `n` bytes there, then adds what it wrote to
 * `len`. */
static inline char *aw_bytes_reserve(aw_bytes_t *bytes, size_t n)
{
    if (n >= bytes->cap - bytes->len) /* cap is len + 1 at least, once there is a buf */
        aw_bytes__grow(bytes, n);
    return bytes->buf->data + bytes->len;
}

/* Appends `n` bytes (none when `n` is 0, and `p` may then be NULL). */
static inline void aw_bytes_append(aw_bytes_t *bytes, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(aw_bytes_reserve(bytes, n), p, n);
    bytes->len += n;
}

/* Appends one byte. */
static inline void aw_bytes_appendc(aw_bytes_t *bytes, char c)
{
    *aw_bytes_reserve(bytes, 1) = c;
    bytes->len++;
}

/* Appends what printf would print; an encoding error appends nothing. */
void aw_bytes_appendf(aw_bytes_t *bytes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the bytes written as a buffer with one reference, owned by the
 * caller, NUL-terminated after `len` bytes; `bytes` is empty and allocated
 * nothing again. */
static inline aw_buf_t *aw_bytes_finish(aw_bytes_t *bytes)
{
    aw_buf_t *buf = bytes->buf != NULL ? bytes->buf : (aw_buf_t *)aw_alloc(sizeof(*buf) + 1);
    buf->refcnt = 1;
    buf->len = bytes->len;
    buf->data[bytes->len] = '\0';
    bytes->buf = NULL;
    bytes->len = bytes->cap = 0;
    return buf;
}

/* Frees the bytes written, unfinished; `bytes` is empty again. */
void aw_bytes_dispose(aw_bytes_t *bytes);

#endif
