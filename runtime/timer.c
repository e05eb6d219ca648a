/*
 * Timers (aw_timer_send): one thread and a binary min-heap of deadlines under
 * a mutex. The thread sleeps on a condition variable until the earliest
 * deadline or a new earlier one, then delivers what is due with
 * aw_actor_send, outside the lock. Entries with the same deadline are
 * delivered in the order they were set. Thousands of pending timers cost one
 * heap entry each.
 */
#include <stdlib.h>
#include "runtime/buf.h"
#include "runtime/error.h"
#include "runtime/internal.h"

typedef struct entry {
    uint64_t due, order;
    aw_actor_t *actor; /* a reference, held until delivery */
    aw_msg_t *msg;
} entry_t;

struct aw_timer_heap {
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t wake;
    entry_t *e;
    size_t n, cap;
    uint64_t next_order;
    int stop;
};

static int before(const entry_t *a, const entry_t *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static void sift_up(aw_timer_heap_t *h, size_t i)
{
    while (i > 0 && before(&h->e[i], &h->e[(i - 1) / 2])) {
        entry_t t = h->e[i];
        h->e[i] = h->e[(i - 1) / 2];
        h->e[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void sift_down(aw_timer_heap_t *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && before(&h->e[l], &h->e[m]))
            m = l;
        if (r < h->n && before(&h->e[r], &h->e[m]))
            m = r;
        if (m == i)
            return;
        entry_t t = h->e[i];
        h->e[i] = h->e[m];
        h->e[m] = t;
        i = m;
    }
}

static entry_t pop(aw_timer_heap_t *h)
{
    entry_t top = h->e[0];
    h->e[0] = h->e[--h->n];
    sift_down(h, 0);
    return top;
}

int aw_timer_send(aw_runtime_t *rt, aw_actor_t *actor, aw_msg_t *msg, uint64_t delay_ms)
{
    aw_timer_heap_t *h = rt->timers;
    uv_mutex_lock(&h->lock);
    if (h->stop) {
        uv_mutex_unlock(&h->lock);
        return AW_ESTOPPED;
    }
    if (h->n == h->cap) {
        h->cap = h->cap < 64 ? 64 : h->cap * 2;
        h->e = aw_realloc(h->e, h->cap * sizeof(*h->e));
    }
    aw_actor_retain(actor);
    h->e[h->n] =
        (entry_t){.due = aw_now_ms() + delay_ms, .order = h->next_order++, .actor = actor, .msg = msg};
    sift_up(h, h->n++);
    __atomic_add_fetch(&rt->pending_timers, 1, __ATOMIC_RELAXED);
    if (h->e[0].msg == msg)
        uv_cond_signal(&h->wake); /* a new earliest deadline */
    uv_mutex_unlock(&h->lock);
    return 0;
}

static void deliver(aw_runtime_t *rt, entry_t *e)
{
    __atomic_sub_fetch(&rt->pending_timers, 1, __ATOMIC_RELAXED);
    if (aw_actor_send(e->actor, e->msg) != 0)
        aw_msg_release(e->msg);
    aw_actor_release(e->actor);
}

static void run(void *arg)
{
    aw_runtime_t *rt = arg;
    aw_timer_heap_t *h = rt->timers;
    uv_mutex_lock(&h->lock);
    while (!h->stop) {
        uint64_t now = aw_now_ms();
        if (h->n != 0 && h->e[0].due <= now) {
            entry_t e = pop(h);
            uv_mutex_unlock(&h->lock); /* never send under the lock */
            deliver(rt, &e);
            uv_mutex_lock(&h->lock);
        } else if (h->n != 0) {
            uv_cond_timedwait(&h->wake, &h->lock, (h->e[0].due - now) * 1000000);
        } else {
            uv_cond_wait(&h->wake, &h->lock);
        }
    }
    uv_mutex_unlock(&h->lock);
}

int aw_runtime__timers_start(aw_runtime_t *rt)
{
    aw_timer_heap_t *h = aw_calloc(1, sizeof(*h));
    uv_mutex_init(&h->lock);
    uv_cond_init(&h->wake);
    rt->timers = h;
    if (uv_thread_create(&h->thread, run, rt) != 0) {
        uv_cond_destroy(&h->wake);
        uv_mutex_destroy(&h->lock);
        free(h);
        return AW_EIO;
    }
    return 0;
}

void aw_runtime__timers_stop(aw_runtime_t *rt)
{
    aw_timer_heap_t *h = rt->timers;
    uv_mutex_lock(&h->lock);
    h->stop = 1;
    uv_cond_signal(&h->wake);
    uv_mutex_unlock(&h->lock);
    uv_thread_join(&h->thread);
    for (size_t i = 0; i < h->n; i++) {
        __atomic_sub_fetch(&rt->pending_timers, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&rt->discarded, 1, __ATOMIC_RELAXED);
        aw_msg_release(h->e[i].msg);
        aw_actor_release(h->e[i].actor);
    }
    h->n = 0;
    /* the heap stays until destroy, so that a late aw_timer_send is refused */
}

void aw_runtime__timers_free(aw_runtime_t *rt)
{
    aw_timer_heap_t *h = rt->timers;
    free(h->e);
    uv_cond_destroy(&h->wake);
    uv_mutex_destroy(&h->lock);
    free(h);
}
