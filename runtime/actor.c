/*
 * The actor runtime (actor.h): mailboxes, the worker pool and its run queues.
 *
 * An actor is in one of two states: idle, or scheduled (queued to run, or
 * running). A sender pushes to the lock-free mailbox, then tries to move the
 * actor from idle to scheduled; only the sender that wins that CAS queues it,
 * so an actor is queued at most once and runs on one worker at a time. A
 * worker that has run an actor either queues it again (it has more to do, or
 * used up its batch and yields) or marks it idle and then looks at the
 * mailbox once more: a message pushed between its last take and the idle
 * store would otherwise be stranded, and this second look (with the CAS)
 * catches it.
 *
 * The run queue is one per worker, with no lock: a lock-free stack
 * (`pending`) that any thread pushes a scheduled actor to, and that is taken
 * whole with one exchange, by its owner or by an idle worker that steals it,
 * and reversed into the taker's own FIFO. A worker queues what it schedules
 * on its own stack (the actor it wakes is likely to find the message in its
 * cache); other threads (I/O, timers) spread theirs over the workers in
 * turn. So scheduling costs one CAS on a cache line that is mostly the
 * owner's, and nothing is shared by every send but a read of `sleeping`.
 *
 * Only sleeping takes a lock, on the idle path (see wake_one and the sleep
 * in worker()). Whether anything is scheduled is answered from per-worker
 * counters that only grow (quiet()), so neither draining nor
 * aw_runtime_idle needs the run queues to stand still.
 */
#include "runtime/actor.h"

#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
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

uint64_t aw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
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

/* Takes the runtime's lock, counting the times it was taken already and how
 * long the wait for it took (aw_runtime_stats_t): an uncontended take costs
 * the trylock alone. Only the sleeping side takes it. */
static void sleep_lock(aw_runtime_t *rt)
{
    if (uv_mutex_trylock(&rt->lock) == 0)
        return;
    uint64_t t0 = uv_hrtime();
    uv_mutex_lock(&rt->lock);
    __atomic_add_fetch(&rt->lock_waits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rt->lock_wait_ns, uv_hrtime() - t0, __ATOMIC_RELAXED);
}

/* The value of a worker's `pending` once the runtime has stopped: pushes fail. */
#define CLOSED ((aw_actor_t *)1)

/* The worker this thread is, or NULL on any other thread. */
static __thread aw_worker_t *self;
/* Where a thread that is not a worker queues its next actor. */
static __thread unsigned int next_worker;

/* Pushes `a` on `w`'s stack; -1 once the runtime has stopped. The seq_cst
 * CAS pairs with the load of `sleeping` that follows it in enqueue, against
 * the increment of `sleeping` and the look at every stack in worker(): either
 * the pusher sees a worker going to sleep, or that worker sees the actor. */
static int push(aw_worker_t *w, aw_actor_t *a)
{
    aw_actor_t *head = __atomic_load_n(&w->pending, __ATOMIC_RELAXED);
    do {
        if (head == CLOSED)
            return -1;
        a->next_ready = head;
    } while (!__atomic_compare_exchange_n(&w->pending, &head, a, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return 0;
}

/* Wakes one sleeping worker, if any sleeps and no wake-up is already on its
 * way: one worker woken is enough, for it takes what it finds anywhere and
 * will look everywhere again before it sleeps. */
static void wake_one(aw_runtime_t *rt)
{
    if (__atomic_load_n(&rt->sleeping, __ATOMIC_SEQ_CST) == 0)
        return;
    unsigned int no = 0;
    if (!__atomic_compare_exchange_n(&rt->waking, &no, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return;
    sleep_lock(rt);
    /* `sleeping` counts the workers in the wait (it changes under the lock):
     * with none, every worker is awake and will look at every stack before
     * it sleeps, so the wake-up is not needed, and must not stay marked on
     * its way. */
    if (rt->sleeping != 0)
        uv_cond_signal(&rt->work);
    else
        __atomic_store_n(&rt->waking, 0, __ATOMIC_RELEASE);
    uv_mutex_unlock(&rt->lock);
}

/* Counts a move from idle to scheduled, made by this thread. */
static void count_scheduled(aw_runtime_t *rt, aw_worker_t **target)
{
    if (self != NULL && self->rt == rt) {
        __atomic_add_fetch(&self->scheduled, 1, __ATOMIC_RELEASE);
        *target = self;
    } else {
        *target = &rt->workers[next_worker++ % rt->n_workers];
        __atomic_add_fetch(&(*target)->scheduled_by_others, 1, __ATOMIC_RELEASE);
    }
}

/* Queues an actor this thread has just moved from idle to scheduled (`fresh`)
 * or that stays scheduled after a run, taking a reference for the queue. */
static void enqueue(aw_runtime_t *rt, aw_actor_t *a, int fresh)
{
    aw_worker_t *w = self != NULL && self->rt == rt ? self : NULL;
    if (fresh)
        count_scheduled(rt, &w);
    aw_actor_retain(a);
    if (push(w, a) != 0) {
        /* Stopped: nothing will run it. It stays marked scheduled so no one
         * queues it again; its messages go when its last reference does. */
        aw_actor_release(a);
        return;
    }
    wake_one(rt);
}

int aw_actor_send(aw_actor_t *a, aw_msg_t *msg)
{
    aw_runtime_t *rt = a->rt;
    if (__atomic_load_n(&rt->stopped, __ATOMIC_ACQUIRE))
        return AW_ESTOPPED;
    ck_stack_push_upmc(&a->mailbox, &msg->entry);
    unsigned int idle = IDLE;
    if (__atomic_compare_exchange_n(&a->state, &idle, SCHEDULED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        enqueue(rt, a, 1);
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
static int run_batch(aw_worker_t *w, aw_actor_t *a)
{
    aw_runtime_t *rt = w->rt;
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
    __atomic_store_n(&w->handled, w->handled + n, __ATOMIC_RELAXED); /* the owner alone writes it */
    __atomic_store_n(&a->running, 0, __ATOMIC_RELEASE);
    return a->local_head != NULL || !aw_inbox__empty(&a->mailbox);
}

/* After a run: queue it again, or mark it idle (see the top of the file). */
static void after_run(aw_worker_t *w, aw_actor_t *a, int more)
{
    if (more) {
        enqueue(w->rt, a, 0);
    } else {
        __atomic_store_n(&a->state, IDLE, __ATOMIC_SEQ_CST);
        /* release: whoever reads this count and then the others sees the
         * scheduling that preceded this run (quiet()) */
        __atomic_add_fetch(&w->unscheduled, 1, __ATOMIC_RELEASE);
        unsigned int idle = IDLE;
        if (!aw_inbox__empty(&a->mailbox) &&
            __atomic_compare_exchange_n(&a->state, &idle, SCHEDULED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            enqueue(w->rt, a, 1);
    }
    aw_actor_release(a); /* the reference of the run just done */
}

/* Takes all of `from`'s stack into `w`'s FIFO, oldest first; whether there
 * was anything. The exchange makes the pushers' writes to the actors
 * visible; any number of workers may take from one stack at once. */
static int take(aw_worker_t *w, aw_worker_t *from)
{
    if (__atomic_load_n(&from->pending, __ATOMIC_RELAXED) == NULL)
        return 0; /* a read, not a write, of a line that is not ours */
    aw_actor_t *a = __atomic_exchange_n(&from->pending, NULL, __ATOMIC_ACQUIRE), *fifo = NULL;
    if (a == NULL)
        return 0;
    w->local_tail = a;
    while (a != NULL) {
        aw_actor_t *next = a->next_ready;
        a->next_ready = fifo;
        fifo = a;
        a = next;
    }
    w->local_head = fifo;
    return 1;
}

/* The next actor for `w` to run: its own FIFO, its own stack, then the
 * others' stacks in turn from its neighbour on; NULL when all are empty. */
static aw_actor_t *next_actor(aw_worker_t *w)
{
    aw_runtime_t *rt = w->rt;
    if (w->local_head == NULL && !take(w, w)) {
        unsigned int i = 1;
        while (i < rt->n_workers && !take(w, &rt->workers[(w->index + i) % rt->n_workers]))
            i++;
        if (i == rt->n_workers)
            return NULL;
    }
    aw_actor_t *a = w->local_head;
    w->local_head = a->next_ready;
    if (w->local_head == NULL)
        w->local_tail = NULL;
    return a;
}

/* Whether any worker's stack holds an actor (seq_cst: see push). */
static int any_pending(aw_runtime_t *rt)
{
    for (unsigned int i = 0; i < rt->n_workers; i++)
        if (__atomic_load_n(&rt->workers[i].pending, __ATOMIC_SEQ_CST) != NULL)
            return 1;
    return 0;
}

/*
 * Whether no actor is scheduled, from counters that only grow. Every move
 * to idle (unscheduled) follows its own move to scheduled, and the two are
 * linked by release and acquire (the count, the push and the take). Reading
 * every `unscheduled` first (sum U), then every scheduled count (sum S): at
 * any moment t between the two passes, U <= idled(t) <= scheduled(t) <= S.
 * S == U means that at t nothing was scheduled: nothing queued, nothing
 * running. A snapshot, like the answer of aw_runtime_idle.
 */
static int quiet(aw_runtime_t *rt)
{
    uint64_t u = 0, s = 0;
    for (unsigned int i = 0; i < rt->n_workers; i++)
        u += __atomic_load_n(&rt->workers[i].unscheduled, __ATOMIC_ACQUIRE);
    for (unsigned int i = 0; i < rt->n_workers; i++)
        s += __atomic_load_n(&rt->workers[i].scheduled, __ATOMIC_ACQUIRE) +
             __atomic_load_n(&rt->workers[i].scheduled_by_others, __ATOMIC_ACQUIRE);
    return s == u;
}

/*
 * Before a worker sleeps, it yields its core up to SPIN times while every
 * run queue stays empty, and goes back to work as soon as something is
 * queued. Under load the next actor is usually queued within those few
 * yields, so the worker is not put to sleep and woken again for each one:
 * every such wake was a futex call on the sender's thread (an I/O thread) and
 * a switch that often preempted it (bench/README.md has the counts before
 * and after). A yield gives the core to any thread that wants it, so this
 * costs nothing a busy thread needs; an idle server pays SPIN system calls
 * per wake.
 */
#define SPIN 8
static void linger(aw_runtime_t *rt)
{
    for (int i = 0; i < SPIN && !any_pending(rt) && !__atomic_load_n(&rt->stopped, __ATOMIC_ACQUIRE); i++)
        sched_yield();
}

/* Sleeps until woken, unless there is work or the runtime stops. A worker
 * counts itself in `sleeping` before it looks at every stack one last time;
 * see push for why no actor can be queued unseen in between. */
static void sleep_until_woken(aw_runtime_t *rt)
{
    sleep_lock(rt);
    __atomic_add_fetch(&rt->sleeping, 1, __ATOMIC_SEQ_CST);
    if (!any_pending(rt) && !__atomic_load_n(&rt->stopped, __ATOMIC_ACQUIRE)) {
        __atomic_add_fetch(&rt->sleeps, 1, __ATOMIC_RELAXED);
        if (rt->drain_waiters != 0)
            uv_cond_broadcast(&rt->idle); /* a drain waits for a worker with nothing to do */
        uv_cond_wait(&rt->work, &rt->lock);
    }
    __atomic_sub_fetch(&rt->sleeping, 1, __ATOMIC_SEQ_CST);
    /* Awake, for whatever reason: any wake-up on its way may be sent again,
     * and this worker looks everywhere before it sleeps again. */
    __atomic_store_n(&rt->waking, 0, __ATOMIC_RELEASE);
    uv_mutex_unlock(&rt->lock);
}

static void worker(void *arg)
{
    aw_worker_t *w = arg;
    aw_runtime_t *rt = w->rt;
    self = w;
    while (!__atomic_load_n(&rt->stopped, __ATOMIC_ACQUIRE)) {
        aw_actor_t *a = next_actor(w);
        if (a == NULL) {
            linger(rt);
            if (!any_pending(rt))
                sleep_until_woken(rt);
            continue;
        }
        __atomic_store_n(&w->runs, w->runs + 1, __ATOMIC_RELAXED); /* the owner alone writes it */
        after_run(w, a, run_batch(w, a));
    }
    self = NULL;
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
    if (posix_memalign((void **)&rt->workers, 64, rt->n_workers * sizeof(*rt->workers)) != 0) {
        fprintf(stderr, "anywhere: out of memory\n");
        abort();
    }
    memset(rt->workers, 0, rt->n_workers * sizeof(*rt->workers));
    for (unsigned int i = 0; i < rt->n_workers; i++) {
        rt->workers[i].rt = rt;
        rt->workers[i].index = i;
    }
    if (aw_runtime__timers_start(rt) != 0) {
        free(rt->workers);
        free(rt);
        return AW_EIO;
    }
    for (unsigned int i = 0; i < rt->n_workers; i++) {
        if (uv_thread_create(&rt->workers[i].thread, worker, &rt->workers[i]) != 0) {
            fprintf(stderr, "anywhere: cannot start worker thread %u\n", i);
            abort(); /* a half-started pool cannot be stopped cleanly */
        }
    }
    *out = rt;
    return 0;
}

/* Releases the actors a stopped runtime still had queued, and the queue's
 * references; closes every stack, so that a push racing with the stop fails
 * instead of queueing an actor no one would release. After the join. */
static void discard_queued(aw_runtime_t *rt)
{
    for (unsigned int i = 0; i < rt->n_workers; i++) {
        aw_worker_t *w = &rt->workers[i];
        aw_actor_t *a = __atomic_exchange_n(&w->pending, CLOSED, __ATOMIC_ACQ_REL);
        while (a != NULL) {
            aw_actor_t *next = a->next_ready;
            discard_all(a);
            aw_actor_release(a);
            a = next;
        }
        while (w->local_head != NULL) {
            a = w->local_head;
            w->local_head = a->next_ready;
            discard_all(a);
            aw_actor_release(a);
        }
        w->local_tail = NULL;
    }
}

void aw_runtime_stop(aw_runtime_t *rt, int drain)
{
    sleep_lock(rt);
    /* Drained: nothing scheduled (a running handler may schedule more, which
     * the loop then waits for too). A worker that finds nothing to do
     * signals `idle` under the lock, after its last run's count. */
    while (drain && !__atomic_load_n(&rt->stopped, __ATOMIC_ACQUIRE) && !quiet(rt)) {
        rt->drain_waiters++;
        uv_cond_wait(&rt->idle, &rt->lock);
        rt->drain_waiters--;
    }
    __atomic_store_n(&rt->stopped, 1, __ATOMIC_SEQ_CST);
    uv_cond_broadcast(&rt->work);
    uv_mutex_unlock(&rt->lock);
    for (unsigned int i = 0; i < rt->n_workers; i++)
        uv_thread_join(&rt->workers[i].thread);
    aw_runtime__timers_stop(rt);
    discard_queued(rt);
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
    return quiet(rt);
}

void aw_runtime_get_stats(aw_runtime_t *rt, aw_runtime_stats_t *s)
{
    s->handled = s->runs = 0;
    for (unsigned int i = 0; i < rt->n_workers; i++) {
        s->handled += __atomic_load_n(&rt->workers[i].handled, __ATOMIC_RELAXED);
        s->runs += __atomic_load_n(&rt->workers[i].runs, __ATOMIC_RELAXED);
    }
    s->discarded = __atomic_load_n(&rt->discarded, __ATOMIC_RELAXED);
    s->timers = __atomic_load_n(&rt->pending_timers, __ATOMIC_RELAXED);
    s->lock_waits = __atomic_load_n(&rt->lock_waits, __ATOMIC_RELAXED);
    s->lock_wait_ns = __atomic_load_n(&rt->lock_wait_ns, __ATOMIC_RELAXED);
    s->sleeps = __atomic_load_n(&rt->sleeps, __ATOMIC_RELAXED);
}
