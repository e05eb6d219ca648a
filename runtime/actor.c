/*
 * The actor runtime (actor.h): mailboxes, the worker pool and its run queue.
 *
 * An actor is in one of two states: idle, or scheduled (queued to run, or
 * running). A sender pushes to the lock-free mailbox, then tries to move the
 * actor from idle to scheduled; only the sender that wins that CAS puts it on
 * the run queue, so an actor is queued at most once and runs on one worker at
 * a time. A worker that has run an actor either queues it again (it has more
 * to do, or used up its batch and yields) or marks it idle and then looks at
 * the mailbox once more: a message pushed between its last take and the idle
 * store would otherwise be stranded, and this second look (with the CAS)
 * catches it.
 *
 * The run queue is a FIFO under one mutex, with a condition variable that idle
 * workers sleep on (after a few yields, see linger): a queue operation is a
 * few instructions, far cheaper than the handlers it hands out, and the lock
 * keeps stopping and draining simple to reason about.
 */
#include "runtime/actor.h"

#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "runtime/buf.h"
#include "runtime/error.h"
#include "runtime/internal.h"

enum { IDLE = 0, SCHEDULED = 1 };

uint64_t aw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void aw_msg_release(aw_msg_t *msg)
{
    if (msg->free != NULL)
        msg->free(msg);
    else
        free(msg);
}

static void discard(aw_runtime_t *rt, aw_msg_t *m)
{
    __atomic_add_fetch(&rt->discarded, 1, __ATOMIC_RELAXED);
    aw_msg_release(m);
}

/* Releases every message the actor still holds. Only when nobody can run it. */
static void discard_all(aw_actor_t *a)
{
    while (a->local_head != NULL) {
        aw_msg_t *m = a->local_head;
        a->local_head = (aw_msg_t *)m->entry.next;
        discard(a->rt, m);
    }
    a->local_tail = NULL;
    ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&a->mailbox);
    while (e != NULL) {
        ck_stack_entry_t *next = e->next;
        discard(a->rt, (aw_msg_t *)e);
        e = next;
    }
}

void aw_actor_init(aw_actor_t *a, aw_runtime_t *rt, aw_actor_handle_cb handle, aw_actor_dispose_cb dispose)
{
    a->handle = handle;
    a->dispose = dispose;
    a->rt = rt;
    ck_stack_init(&a->mailbox);
    a->local_head = a->local_tail = NULL;
    a->next_ready = NULL;
    a->state = IDLE;
    a->refcnt = 1;
    a->running = 0;
}

void aw_actor_retain(aw_actor_t *a)
{
    __atomic_add_fetch(&a->refcnt, 1, __ATOMIC_RELAXED);
}

void aw_actor_release(aw_actor_t *a)
{
    if (__atomic_sub_fetch(&a->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The last reference: not scheduled (scheduling holds one), so no worker
     * touches the actor, and no sender can either. */
    discard_all(a);
    a->dispose(a);
}

/* Takes the run queue's lock, counting the times it was taken already and
 * how long the wait for it took (aw_runtime_stats_t): an uncontended take
 * costs the trylock alone. */
static void queue_lock(aw_runtime_t *rt)
{
    if (uv_mutex_trylock(&rt->lock) == 0)
        return;
    uint64_t t0 = uv_hrtime();
    uv_mutex_lock(&rt->lock);
    __atomic_add_fetch(&rt->lock_waits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rt->lock_wait_ns, uv_hrtime() - t0, __ATOMIC_RELAXED);
}

/* Puts a scheduled actor on the run queue, taking a reference for it. */
static void enqueue(aw_runtime_t *rt, aw_actor_t *a)
{
    aw_actor_retain(a);
    queue_lock(rt);
    if (rt->stopped) {
        /* Nothing will run it: keep it marked scheduled so no one queues it
         * again; its messages go when its last reference does. */
        uv_mutex_unlock(&rt->lock);
        aw_actor_release(a);
        return;
    }
    a->next_ready = NULL;
    if (rt->tail != NULL)
        rt->tail->next_ready = a;
    else
        rt->head = a;
    rt->tail = a;
    __atomic_add_fetch(&rt->queued, 1, __ATOMIC_RELEASE);
    if (rt->sleeping != 0)
        uv_cond_signal(&rt->work);
    uv_mutex_unlock(&rt->lock);
}

int aw_actor_send(aw_actor_t *a, aw_msg_t *msg)
{
    aw_runtime_t *rt = a->rt;
    if (__atomic_load_n(&rt->stopped, __ATOMIC_ACQUIRE))
        return AW_ESTOPPED;
    ck_stack_push_upmc(&a->mailbox, &msg->entry);
    unsigned int idle = IDLE;
    if (__atomic_compare_exchange_n(&a->state, &idle, SCHEDULED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        enqueue(rt, a);
    return 0;
}

/* Moves what the mailbox holds to the local FIFO, oldest first. */
static void take_mailbox(aw_actor_t *a)
{
    ck_stack_entry_t *fifo = aw_inbox__take_fifo(&a->mailbox), *last = fifo;
    if (fifo == NULL)
        return;
    while (last->next != NULL)
        last = last->next;
    if (a->local_tail != NULL)
        a->local_tail->entry.next = fifo;
    else
        a->local_head = (aw_msg_t *)fifo;
    a->local_tail = (aw_msg_t *)last;
}

/* Runs up to `batch` messages; returns 1 when the actor has more to do. */
static int run_batch(aw_runtime_t *rt, aw_actor_t *a)
{
    if (__atomic_exchange_n(&a->running, 1, __ATOMIC_ACQ_REL) != 0) {
        fprintf(stderr, "anywhere: runtime invariant broken: an actor runs on two threads\n");
        abort();
    }
    unsigned int n = 0;
    while (n < rt->batch) {
        if (a->local_head == NULL)
            take_mailbox(a);
        aw_msg_t *m = a->local_head;
        if (m == NULL)
            break;
        a->local_head = (aw_msg_t *)m->entry.next;
        if (a->local_head == NULL)
            a->local_tail = NULL;
        m->entry.next = NULL;
        a->handle(a, m);
        n++;
    }
    __atomic_add_fetch(&rt->handled, n, __ATOMIC_RELAXED);
    __atomic_store_n(&a->running, 0, __ATOMIC_RELEASE);
    return a->local_head != NULL || !aw_inbox__empty(&a->mailbox);
}

/* After a run: queue it again, or mark it idle (see the top of the file). */
static void after_run(aw_runtime_t *rt, aw_actor_t *a, int more)
{
    if (more) {
        enqueue(rt, a);
    } else {
        __atomic_store_n(&a->state, IDLE, __ATOMIC_SEQ_CST);
        unsigned int idle = IDLE;
        if (!aw_inbox__empty(&a->mailbox) &&
            __atomic_compare_exchange_n(&a->state, &idle, SCHEDULED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            enqueue(rt, a);
    }
    aw_actor_release(a); /* the reference of the run just done */
}

/*
 * Before a worker sleeps, it yields its core up to SPIN times while the run
 * queue stays empty, and goes back to work as soon as something is queued.
 * Under load the next actor is usually queued within those few yields, so
 * the worker is not put to sleep and woken again for each one: every such
 * wake was a futex call on the sender's thread (an I/O thread) and a switch
 * that often preempted it (bench/README.md has the counts before and after).
 * A yield gives the core to any thread that wants it, so this costs nothing
 * a busy thread needs; an idle server pays SPIN system calls per wake.
 */
#define SPIN 8
static void linger(aw_runtime_t *rt)
{
    uv_mutex_unlock(&rt->lock);
    for (int i = 0; i < SPIN && __atomic_load_n(&rt->queued, __ATOMIC_ACQUIRE) == 0; i++)
        sched_yield();
    queue_lock(rt);
}

static void worker(void *arg)
{
    aw_runtime_t *rt = arg;
    queue_lock(rt);
    for (;;) {
        if (rt->head == NULL && !rt->stopped)
            linger(rt);
        while (rt->head == NULL && !rt->stopped) {
            rt->sleeping++;
            __atomic_add_fetch(&rt->sleeps, 1, __ATOMIC_RELAXED);
            if (rt->busy == 0)
                uv_cond_broadcast(&rt->idle); /* a drain may be waiting for this */
            uv_cond_wait(&rt->work, &rt->lock);
            rt->sleeping--;
        }
        if (rt->stopped)
            break;
        aw_actor_t *a = rt->head;
        rt->head = a->next_ready;
        if (rt->head == NULL)
            rt->tail = NULL;
        __atomic_sub_fetch(&rt->queued, 1, __ATOMIC_RELAXED);
        rt->busy++;
        uv_mutex_unlock(&rt->lock);
        __atomic_add_fetch(&rt->runs, 1, __ATOMIC_RELAXED);
        after_run(rt, a, run_batch(rt, a));
        queue_lock(rt);
        rt->busy--;
    }
    uv_mutex_unlock(&rt->lock);
}

int aw_runtime_create(aw_runtime_t **out, const aw_runtime_config_t *cfg)
{
    aw_runtime_t *rt = aw_calloc(1, sizeof(*rt));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    rt->n_workers = cfg != NULL && cfg->workers != 0 ? cfg->workers : (unsigned int)(cores > 0 ? cores : 1);
    rt->batch = cfg != NULL && cfg->batch != 0 ? cfg->batch : 64;
    uv_mutex_init(&rt->lock);
    uv_cond_init(&rt->work);
    uv_cond_init(&rt->idle);
    rt->workers = aw_calloc(rt->n_workers, sizeof(*rt->workers));
    if (aw_runtime__timers_start(rt) != 0) {
        free(rt->workers);
        free(rt);
        return AW_EIO;
    }
    for (unsigned int i = 0; i < rt->n_workers; i++) {
        if (uv_thread_create(&rt->workers[i], worker, rt) != 0) {
            fprintf(stderr, "anywhere: cannot start worker thread %u\n", i);
            abort(); /* a half-started pool cannot be stopped cleanly */
        }
    }
    *out = rt;
    return 0;
}

void aw_runtime_stop(aw_runtime_t *rt, int drain)
{
    uv_mutex_lock(&rt->lock);
    /* Drained: nothing queued, nobody running (a running handler may queue
     * more, which the loop then waits for too). */
    while (drain && !rt->stopped && (rt->head != NULL || rt->busy != 0))
        uv_cond_wait(&rt->idle, &rt->lock);
    __atomic_store_n(&rt->stopped, 1, __ATOMIC_RELEASE);
    uv_cond_broadcast(&rt->work);
    uv_mutex_unlock(&rt->lock);
    for (unsigned int i = 0; i < rt->n_workers; i++)
        uv_thread_join(&rt->workers[i]);
    aw_runtime__timers_stop(rt);
    /* What is still queued will not run: release it, and the queue's refs. */
    while (rt->head != NULL) {
        aw_actor_t *a = rt->head;
        rt->head = a->next_ready;
        discard_all(a);
        aw_actor_release(a);
    }
    rt->tail = NULL;
}

void aw_runtime_destroy(aw_runtime_t *rt)
{
    aw_runtime__timers_free(rt);
    uv_cond_destroy(&rt->work);
    uv_cond_destroy(&rt->idle);
    uv_mutex_destroy(&rt->lock);
    free(rt->workers);
    free(rt);
}

unsigned int aw_runtime_workers(aw_runtime_t *rt)
{
    return rt->n_workers;
}

int aw_runtime_idle(aw_runtime_t *rt)
{
    uv_mutex_lock(&rt->lock);
    int idle = rt->head == NULL && rt->busy == 0;
    uv_mutex_unlock(&rt->lock);
    return idle;
}

void aw_runtime_get_stats(aw_runtime_t *rt, aw_runtime_stats_t *s)
{
    s->handled = __atomic_load_n(&rt->handled, __ATOMIC_RELAXED);
    s->discarded = __atomic_load_n(&rt->discarded, __ATOMIC_RELAXED);
    s->runs = __atomic_load_n(&rt->runs, __ATOMIC_RELAXED);
    s->timers = __atomic_load_n(&rt->pending_timers, __ATOMIC_RELAXED);
    s->lock_waits = __atomic_load_n(&rt->lock_waits, __ATOMIC_RELAXED);
    s->lock_wait_ns = __atomic_load_n(&rt->lock_wait_ns, __ATOMIC_RELAXED);
    s->sleeps = __atomic_load_n(&rt->sleeps, __ATOMIC_RELAXED);
}
