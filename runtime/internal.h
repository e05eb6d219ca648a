/*
 * What the files of runtime/ share: the runtime's own state, and the timer
 * thread's entry points (timer.c), which the runtime starts and stops.
 */
#ifndef AW_RUNTIME_INTERNAL_H
#define AW_RUNTIME_INTERNAL_H

#include <uv.h>
#include "runtime/actor.h"

typedef struct aw_timer_heap aw_timer_heap_t;

struct aw_runtime {
    unsigned int n_workers, batch;
    uv_thread_t *workers;
    uv_mutex_t lock;         /* guards the run queue and the counts below it */
    uv_cond_t work;          /* an actor was queued, or the runtime stops */
    uv_cond_t idle;          /* a worker found nothing to do */
    aw_actor_t *head, *tail; /* the run queue, FIFO */
    unsigned int sleeping;   /* workers waiting on `work` */
    unsigned int busy;       /* workers running an actor */
    unsigned int queued;     /* actors on the run queue; atomic, changed under `lock` */
    int stopped;             /* written under `lock`, read atomically by senders */
    uint64_t handled, discarded, runs, pending_timers; /* atomic */
    aw_timer_heap_t *timers;
};

/* Starts the timer thread; 0 or AW_EIO. */
int aw_runtime__timers_start(aw_runtime_t *rt);

/* Stops the timer thread, releasing every pending message and reference;
 * later aw_timer_send calls answer AW_ESTOPPED. */
void aw_runtime__timers_stop(aw_runtime_t *rt);

/* Frees what the timers use. */
void aw_runtime__timers_free(aw_runtime_t *rt);

#endif
