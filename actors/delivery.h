/*
 * Two pieces of the delivery guarantees (docs/protocol.md, Delivery) that a
 * session keeps per user: the window of client message ids (`mid`) it has
 * taken, so that a message sent again is known as a duplicate, and, with
 * --durable-delivery, the queue of what it has sent but may not show yet:
 * frames and webhook answers held until the records they stand for are
 * durable, released in the order they were queued. Both belong to one
 * session and are used from its handler only: no locking.
 */
#ifndef AW_ACTORS_DELIVERY_H
#define AW_ACTORS_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include "actors/conn.h"
#include "runtime/buf.h"

/* The client message ids a session remembers, at most. */
#define AW_MID_WINDOW 128

/* The last AW_MID_WINDOW ids taken, as 64-bit hashes (a collision would
 * only ever merge two messages of the same user, with odds of about one in
 * 2^57 per message). Zeroed is empty; the ring is allocated on the first
 * add, so that users whose clients send no `mid` pay nothing. */
typedef struct aw_mid_window {
    uint64_t *ring;
    unsigned int n, head;
} aw_mid_window_t;

/* Whether `mid` (`len` bytes) is in the window. */
int aw_mid_window_has(const aw_mid_window_t *w, const char *mid, size_t len);

/* Adds `mid`, forgetting the oldest once the window is full. */
void aw_mid_window_add(aw_mid_window_t *w, const char *mid, size_t len);

/* Frees the ring; the window is empty again. */
void aw_mid_window_clear(aw_mid_window_t *w);

/* What a held entry does when it is released. */
enum {
    AW_HELD_FRAME, /* send `frame` as the session's deliver() does: to `conn` (the turn's socket, or NULL)
                    * and, unless `guest`, every verified socket */
    AW_HELD_SINK,  /* answer the webhook `sink` with `frames` (or the error `err`) */
};

typedef struct aw_held {
    uint64_t group; /* released once the records of every group up to this one are durable */
    int kind;       /* AW_HELD_... */
    aw_buf_t *frame;
    aw_conn_t *conn; /* a reference, or NULL */
    int guest;
    int64_t seq;     /* the bot message's seq (kept in the session's ring when released), or -1 */
    aw_sink_t *sink; /* a reference */
    aw_buf_t **frames;
    size_t n_frames;
    int err;
} aw_held_t;

/* The queue of held entries, oldest first. Zeroed is empty. */
typedef struct aw_held_queue {
    aw_held_t *q;
    size_t head, n, cap;
} aw_held_queue_t;

/* Queues `e`, taking over its references (frame, conn, sink, frames). */
void aw_held_push(aw_held_queue_t *q, const aw_held_t *e);

/* The oldest entry whose group is at most `durable`, removed from the
 * queue: the caller takes its references over and releases them with
 * aw_held_dispose. Returns 0 when there is none. */
int aw_held_pop(aw_held_queue_t *q, uint64_t durable, aw_held_t *out);

/* Whether anything is held. */
static inline int aw_held_any(const aw_held_queue_t *q)
{
    return q->n != q->head;
}

/* Releases the references of a popped entry. */
void aw_held_dispose(aw_held_t *e);

/* Releases everything still held, unsent, and frees the queue. */
void aw_held_clear(aw_held_queue_t *q);

#endif
