/*
 * The window of client message ids and the queue of held deliveries
 * (delivery.h). Small data structures of one session, with no thread of
 * their own.
 */
#include "actors/delivery.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a over the id, then a final mix so that ids differing in their last
 * bytes differ in every bit. */
static uint64_t mid_hash(const char *mid, size_t len)
{
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        x = (x ^ (unsigned char)mid[i]) * 1099511628211ull;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

int aw_mid_window_has(const aw_mid_window_t *w, const char *mid, size_t len)
{
    uint64_t x = mid_hash(mid, len);
    for (unsigned int i = 0; i < w->n; i++)
        if (w->ring[i] == x)
            return 1;
    return 0;
}

void aw_mid_window_add(aw_mid_window_t *w, const char *mid, size_t len)
{
    if (w->ring == NULL)
        w->ring = aw_calloc(AW_MID_WINDOW, sizeof(*w->ring));
    uint64_t x = mid_hash(mid, len);
    if (w->n < AW_MID_WINDOW) {
        w->ring[w->n++] = x;
        return;
    }
    w->ring[w->head] = x; /* the oldest goes */
    w->head = (w->head + 1) % AW_MID_WINDOW;
}

void aw_mid_window_clear(aw_mid_window_t *w)
{
    free(w->ring);
    memset(w, 0, sizeof(*w));
}

void aw_held_push(aw_held_queue_t *q, const aw_held_t *e)
{
    if (q->n == q->cap) {
        if (q->head != 0) {
            memmove(q->q, q->q + q->head, (q->n - q->head) * sizeof(*q->q));
            q->n -= q->head;
            q->head = 0;
        } else {
            q->cap = q->cap < 8 ? 8 : q->cap * 2;
            q->q = aw_realloc(q->q, q->cap * sizeof(*q->q));
        }
    }
    q->q[q->n++] = *e;
}

int aw_held_pop(aw_held_queue_t *q, uint64_t durable, aw_held_t *out)
{
    if (q->head == q->n || q->q[q->head].group > durable)
        return 0;
    *out = q->q[q->head++];
    if (q->head == q->n)
        q->head = q->n = 0;
    return 1;
}

void aw_held_dispose(aw_held_t *e)
{
    aw_buf_release(e->frame);
    aw_conn_release(e->conn);
    if (e->sink != NULL)
        aw_sink_release(e->sink);
    for (size_t i = 0; i < e->n_frames; i++)
        aw_buf_release(e->frames[i]);
    free(e->frames);
    memset(e, 0, sizeof(*e));
}

void aw_held_clear(aw_held_queue_t *q)
{
    for (size_t i = q->head; i < q->n; i++)
        aw_held_dispose(&q->q[i]);
    free(q->q);
    memset(q, 0, sizeof(*q));
}
