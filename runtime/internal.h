/*
 * What the files of runtime/ share: the runtime's own state, the timer
 * thread's entry points (timer.c), which the runtime starts and stops, and
 * the lock-free half of an inbox (inbox.c), which actor mailboxes use too,
 * with scheduling on the run queue as their wake-up (actor.c).
 */
#ifndef AW_RUNTIME_INTERNAL_H
#define AW_RUNTIME_INTERNAL_H

#include <ck_stack.h>
#include <uv.h>
#include "runtime/actor.h"

typedef struct aw_timer_heap aw_timer_heap_t;

/* A worker and its share of the run queue. `pending` is written by every
 * thread that queues an actor here and sits alone in its cache line; the
 * rest is the owner's, read by others only as counters. */
typedef struct aw_worker {
    aw_actor_t *pending; /* lock-free stack of queued actors (next_ready); CLOSED once stopped */
    char pad_[64 - sizeof(aw_actor_t *)];
    aw_runtime_t *rt;
    unsigned int index;
    uv_thread_t thread;
    aw_actor_t *local_head, *local_tail; /* taken from a `pending`, FIFO; the owner's alone */
    uint64_t handled, runs;              /* atomic; the owner adds */
    uint64_t scheduled;           /* atomic, only grows: actors the owner moved from idle to scheduled */
    uint64_t unscheduled;         /* atomic, only grows: actors the owner moved from scheduled to idle */
    uint64_t scheduled_by_others; /* atomic, only grows: as `scheduled`, by threads that are not workers */
} __attribute__((aligned(64))) aw_worker_t;

struct aw_runtime {
    unsigned int n_workers, batch;
    aw_worker_t *workers;               /* n_workers of them, each in its own cache lines */
    uv_mutex_t lock;                    /* the sleeping side only: guards the waits on `work` and `idle` */
    uv_cond_t work;                     /* an actor was queued, or the runtime stops */
    uv_cond_t idle;                     /* a worker found nothing to do (a drain waits for that) */
    unsigned int sleeping;              /* atomic, changed under `lock`: workers waiting on `work` */
    unsigned int waking;                /* atomic: a wake-up is on its way to a sleeping worker */
    unsigned int drain_waiters;         /* under `lock`: aw_runtime_stop calls waiting on `idle` */
    int stopped;                        /* atomic */
    uint64_t discarded, pending_timers; /* atomic */
    uint64_t lock_waits, lock_wait_ns, sleeps; /* atomic */
    aw_timer_heap_t *timers;
};

/* Starts the timer thread; 0 or AW_EIO. */
int aw_runtime__timers_start(aw_runtime_t *rt);

/* Stops the timer thread, releasing every pending message and reference;
 * later aw_timer_send calls answer AW_ESTOPPED. */
void aw_runtime__timers_stop(aw_runtime_t *rt);

/* Frees what the timers use. */
void aw_runtime__timers_free(aw_runtime_t *rt);

/* Whether a Concurrency Kit stack (a mailbox) is empty, read atomically:
 * CK_STACK_ISEMPTY is a plain read, a data race against a concurrent push.
 * Any thread; the answer may be stale by the time it is used. */
static inline int aw_inbox__empty(ck_stack_t *stack)
{
    return __atomic_load_n(&stack->head, __ATOMIC_ACQUIRE) == NULL;
}

/* Takes everything pushed to a Concurrency Kit stack so far, oldest first
 * (the stack hands it over newest first), linked by `next`. For the one
 * thread that consumes the stack. */
static inline ck_stack_entry_t *aw_inbox__take_fifo(ck_stack_t *stack)
{
    ck_stack_entry_t *e = ck_stack_batch_pop_upmc(stack), *fifo = NULL;
    while (e != NULL) {
        ck_stack_entry_t *next = e->next;
        e->next = fifo;
        fifo = e;
        e = next;
    }
    return fifo;
}

#endif
