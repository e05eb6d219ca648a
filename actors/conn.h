/*
 * The seam between the chat and the transport: the channel a message came
 * on, a connection that frames are sent to (a websocket), and a sink that
 * takes the replies of one HTTP turn. The session actor sees nothing else of
 * sockets. transport/ implements both for its websockets and requests; a
 * connection that lives on another process (a socket held by another node)
 * implements the same two structs, and the chat does not change.
 *
 * What an implementation must guarantee:
 * - Threads. `send`, `close` and `complete` are called from any thread (a
 *   worker running the session, mostly) and must not block: they queue the
 *   work for the thread that owns the socket or request and return.
 * - Order. Frames passed to `send` by one thread reach the client in the
 *   order sent; a `close` goes out after every frame queued before it. A
 *   session sends all of a user's frames from its own handler, which runs on
 *   one thread at a time, so a user's frames arrive in the order numbered.
 * - Ownership. `send` and `complete` take their own references to frames
 *   (aw_buf_t); the caller keeps its own. A frame is never changed once sent:
 *   one buffer is shared by every socket it goes to.
 * - Reference counts. Each struct starts with one reference, its owner's.
 *   Whoever keeps a pointer past the call that gave it retains it, and
 *   releases it when done; `dispose` runs once, on whichever thread drops the
 *   last reference, so it must be safe on any thread. A connection whose
 *   client has gone stays valid while referenced: `send` on it just drops
 *   the frame.
 * - Lifetime of a turn. `complete` is called at most once per sink. A sink
 *   whose request was abandoned (the client left, the turn timed out) still
 *   accepts `complete` and ignores it.
 * - Flow. `held` counts the client messages of a connection that sessions
 *   still hold; the transport may stop reading the client while it is high
 *   (the session never waits on it).
 */
#ifndef AW_ACTORS_CONN_H
#define AW_ACTORS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include "runtime/buf.h"

typedef struct aw_conn aw_conn_t;
typedef struct aw_sink aw_sink_t;

/* The channel a message came on: set by the transport that received it, and
 * carried by the session to the frames and counters of its turn. */
typedef enum aw_channel {
    AW_CHANNEL_WEBSOCKET, /* a frame on a websocket */
    AW_CHANNEL_WEBHOOK,   /* POST /botkit/receive or /api/messages */
    AW_CHANNEL_PUSH,      /* POST /api/send: the bot's own message to a user ("api" in /metrics) */
    AW_CHANNEL_N
} aw_channel_t;

/* The channel a bot message travels on: a push reaches its user over the
 * user's websockets, so it goes, is labelled (the `channel` of its frame)
 * and is counted as a websocket message. */
static inline aw_channel_t aw_channel_out(aw_channel_t in)
{
    return in == AW_CHANNEL_PUSH ? AW_CHANNEL_WEBSOCKET : in;
}

/* The `channel` field of a bot message's frame, for a channel of aw_channel_out. */
static inline const char *aw_channel_frame_name(aw_channel_t out)
{
    return out == AW_CHANNEL_WEBHOOK ? "webhook" : "websocket";
}

struct aw_conn {
    unsigned int refcnt; /* atomic */
    uint64_t id;         /* unique in the process, for logs */
    /* Client messages from this connection that a session still holds
     * (waiting in its mailbox or for their turn): aw_inbound_new counts one
     * up, its free counts it down, and the transport stops reading a socket
     * while it has too many. Atomic. */
    unsigned int held;
    /* Set by the transport, before it sends the session the detach, once
     * the client has gone: a session attaches no closed connection (a
     * message of it may wait for its turn past the detach). Atomic. */
    int closed;
    /* Queues `frame` (a JSON text) on the connection; takes its own reference.
     * Frames sent by one thread are written in order; several queued before
     * the I/O thread runs go out in one write. Any thread. */
    void (*send)(aw_conn_t *conn, aw_buf_t *frame);
    /* Closes the websocket with `code` after what was queued. Any thread. */
    void (*close)(aw_conn_t *conn, int code);
    /* Frees the connection once the last reference is gone. */
    void (*dispose)(aw_conn_t *conn);
};

static inline aw_conn_t *aw_conn_retain(aw_conn_t *c)
{
    __atomic_add_fetch(&c->refcnt, 1, __ATOMIC_RELAXED);
    return c;
}

static inline void aw_conn_release(aw_conn_t *c)
{
    if (c != NULL && __atomic_sub_fetch(&c->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        c->dispose(c);
}

enum {
    AW_SINK_FIRST = 0, /* POST /botkit/receive: one message object, or {} */
    AW_SINK_ALL = 1,   /* POST /api/messages: an array of every reply */
    AW_SINK_BODY = 2,  /* a history route: frames[0] is the whole answer body */
    AW_SINK_PUSH = 3,  /* POST /api/send: frames[0] is the 202 answer body */
};

struct aw_sink {
    unsigned int refcnt; /* atomic */
    int mode;            /* AW_SINK_FIRST, AW_SINK_ALL, AW_SINK_BODY or AW_SINK_PUSH */
    /* The identity token a greeting of this turn issued (the webhook twin of
     * the websocket `session` frame), or "". Written by the session before it
     * calls complete, read by the transport once it is called. */
    char token[65];
    /* The `mid` of the client message this turn took (docs/protocol.md,
     * Delivery), or "": the transport acknowledges it in a header. Written
     * and read like `token`. */
    char ack[65];
    /* Answers the request with `n` reply frames (0 for none), or with the
     * error `err` (< 0) when err is not 0. Called at most once; takes its
     * own references to the frames. Any thread. */
    void (*complete)(aw_sink_t *sink, aw_buf_t *const *frames, size_t n, int err);
    void (*dispose)(aw_sink_t *sink);
};

static inline aw_sink_t *aw_sink_retain(aw_sink_t *s)
{
    __atomic_add_fetch(&s->refcnt, 1, __ATOMIC_RELAXED);
    return s;
}

static inline void aw_sink_release(aw_sink_t *s)
{
    if (s != NULL && __atomic_sub_fetch(&s->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        s->dispose(s);
}

#endif
