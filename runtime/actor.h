/*
 * A small actor runtime that knows nothing about chat. An actor is a struct
 * that embeds aw_actor_t as its first member (`super`) and a handler that is
 * given its messages one at a time. Sending is lock-free (a Concurrency Kit
 * MPSC mailbox); sending to an idle actor schedules it on a fixed pool of
 * worker threads (uv_thread_t), where it handles a bounded batch and yields.
 *
 * Guarantees:
 * - an actor's handler runs on at most one thread at a time, so an actor's own
 *   fields need no lock when only its handler touches them;
 * - messages from any one sending thread are handled in the order sent;
 * - idle workers sleep on a condition variable (no spinning);
 * - a busy actor yields after `batch` messages so others are not starved;
 * - timers deliver a message to an actor after a delay;
 * - stopping drains or discards explicitly, and every message and actor
 *   reference is released exactly once.
 */
#ifndef AW_RUNTIME_ACTOR_H
#define AW_RUNTIME_ACTOR_H

#include <stddef.h>
#include <stdint.h>
#include <ck_stack.h>

typedef struct aw_runtime aw_runtime_t;
typedef struct aw_actor aw_actor_t;
typedef struct aw_msg aw_msg_t;

/* Releases a message. Called exactly once per message: by the handler (through
 * aw_msg_release) or by the runtime when it discards an undelivered message. */
typedef void (*aw_msg_free_cb)(aw_msg_t *msg);

/* The header every message embeds as its first member. */
struct aw_msg {
    ck_stack_entry_t entry; /* mailbox link: owned by the runtime while queued */
    aw_msg_free_cb free;    /* how to release it; NULL means free(3) */
    uint32_t type;          /* the receiver's own message kinds */
    uint32_t sender;        /* free for the sender's use (tests tag producers with it) */
};

/* Handles one message. The handler owns `msg` from then on: it must release it
 * (aw_msg_release) or keep it. Runs on a worker thread. */
typedef void (*aw_actor_handle_cb)(aw_actor_t *actor, aw_msg_t *msg);
/* Called once, on whichever thread drops the last reference, when the actor is
 * no longer referenced nor scheduled; its mailbox is empty by then. The
 * callback frees the enclosing struct. */
typedef void (*aw_actor_dispose_cb)(aw_actor_t *actor);

/* The base of every actor. Fields after `handle` and `dispose` are private to
 * the runtime. */
struct aw_actor {
    aw_actor_handle_cb handle;
    aw_actor_dispose_cb dispose;
    aw_runtime_t *rt;
    /* private */
    ck_stack_t mailbox;     /* MPSC: pushed by anyone, popped by the running worker */
    aw_msg_t *local_head;   /* taken from the mailbox but not yet handled (FIFO) */
    aw_msg_t *local_tail;   /* only the worker running the actor touches these */
    aw_actor_t *next_ready; /* run-queue link: set by whoever queues it, read by the worker that takes it */
    unsigned int state;     /* idle / scheduled, atomic */
    unsigned int refcnt;    /* atomic */
    unsigned int running;   /* atomic; checks "never on two threads" in debug builds */
};

typedef struct aw_runtime_config {
    unsigned int workers; /* worker threads; 0 means the number of cores */
    unsigned int batch;   /* messages an actor handles before it yields; 0 means 64 */
} aw_runtime_config_t;

/* Statistics, read with relaxed atomics: a snapshot, not a consistent cut. */
typedef struct aw_runtime_stats {
    uint64_t handled;      /* messages given to handlers */
    uint64_t discarded;    /* messages released undelivered at stop or dispose */
    uint64_t runs;         /* times an actor was taken off the run queue */
    uint64_t timers;       /* timers pending now */
    uint64_t lock_waits;   /* times a thread found the runtime's lock taken and waited for it */
    uint64_t lock_wait_ns; /* the time those waits took in all */
    uint64_t sleeps;       /* times a worker went to sleep for want of work */
} aw_runtime_stats_t;

/* Creates a runtime and starts its worker threads and its timer thread. On
 * failure returns a negative AW_E... code and creates nothing. Any thread. */
int aw_runtime_create(aw_runtime_t **rt, const aw_runtime_config_t *config);

/* Stops the runtime. With `drain` non-zero, first waits until every mailbox is
 * empty and no actor is running (messages sent meanwhile are handled too;
 * pending timers are not waited for). Then: pending timers are cancelled and
 * their messages released; messages still queued are released undelivered;
 * worker and timer threads are joined. After this, aw_actor_send and
 * aw_timer_send return AW_ESTOPPED. Must not be called from a worker. */
void aw_runtime_stop(aw_runtime_t *rt, int drain);

/* Frees a stopped runtime. Every actor must have been released first. */
void aw_runtime_destroy(aw_runtime_t *rt);

/* Number of worker threads. Any thread. */
unsigned int aw_runtime_workers(aw_runtime_t *rt);

/* Fills `stats`. Any thread. */
void aw_runtime_get_stats(aw_runtime_t *rt, aw_runtime_stats_t *stats);

/* Whether no actor is queued or running right now (a snapshot: a message sent
 * the next moment makes it busy again). Pending timers do not count. Any
 * thread but a worker's, where it is never true. */
int aw_runtime_idle(aw_runtime_t *rt);

/* Initialises the base of an actor with one reference, owned by the caller. */
void aw_actor_init(aw_actor_t *actor, aw_runtime_t *rt, aw_actor_handle_cb handle,
                   aw_actor_dispose_cb dispose);

/* Takes a reference. Any thread, by a holder of a reference. */
void aw_actor_retain(aw_actor_t *actor);

/* Drops a reference; the last one (once the actor is not scheduled) releases
 * any queued messages and calls `dispose`. Any thread. */
void aw_actor_release(aw_actor_t *actor);

/* Queues `msg` for `actor` and schedules it if idle. Lock-free. On success the
 * runtime owns `msg`; on failure (AW_ESTOPPED) the caller still owns it. Any
 * thread, including the actor's own handler. */
int aw_actor_send(aw_actor_t *actor, aw_msg_t *msg);

/* Delivers `msg` to `actor` after `delay_ms` milliseconds, holding a reference
 * to the actor until then. There is no cancel: an actor that no longer wants a
 * timer ignores its message (tag it with a generation number). On failure the
 * caller still owns `msg`. Any thread. */
int aw_timer_send(aw_runtime_t *rt, aw_actor_t *actor, aw_msg_t *msg, uint64_t delay_ms);

/* Releases a message through its free callback. Any thread. */
void aw_msg_release(aw_msg_t *msg);

/* Milliseconds of a monotonic clock. Any thread. */
uint64_t aw_now_ms(void);

/* Milliseconds since the epoch, by the wall clock: for times that other
 * processes or machines read. Any thread. */
uint64_t aw_wall_ms(void);

#endif
