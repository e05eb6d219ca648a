/*
 * Unit tests of runtime timers: delivery in deadline order and never early,
 * and timers pending at stop release their message and actor reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "runtime/actor.h"
#include "runtime/error.h"
#include "tests/check.h"

typedef struct tmsg {
    aw_msg_t super;
    uint64_t due;
} tmsg_t;

typedef struct rec {
    aw_actor_t super;
    uint32_t order[64];
    unsigned int n, early;
    unsigned int disposed;
} rec_t;

static unsigned int freed;

static void tfree(aw_msg_t *m)
{
    __atomic_add_fetch(&freed, 1, __ATOMIC_RELAXED);
    free(m);
}

static void handle(aw_actor_t *a, aw_msg_t *m)
{
    rec_t *r = (rec_t *)a;
    if (aw_now_ms() < ((tmsg_t *)m)->due)
        r->early++;
    if (r->n < 64)
        r->order[r->n] = m->type;
    __atomic_add_fetch(&r->n, 1, __ATOMIC_RELEASE);
    aw_msg_release(m);
}

static void dispose(aw_actor_t *a)
{
    ((rec_t *)a)->disposed++;
}

static void set(aw_runtime_t *rt, rec_t *r, uint32_t tag, uint64_t delay)
{
    tmsg_t *m = calloc(1, sizeof(*m));
    m->super.type = tag;
    m->super.free = tfree;
    m->due = aw_now_ms() + delay;
    CHECK(aw_timer_send(rt, &r->super, &m->super, delay) == 0);
}

int main(void)
{
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = 2};
    CHECK(aw_runtime_create(&rt, &cfg) == 0);
    rec_t r = {0};
    aw_actor_init(&r.super, rt, handle, dispose);
    set(rt, &r, 3, 90);
    set(rt, &r, 1, 30);
    set(rt, &r, 2, 60);
    set(rt, &r, 0, 0);
    for (int i = 0; i < 2000 && __atomic_load_n(&r.n, __ATOMIC_ACQUIRE) < 4; i++)
        usleep(1000);
    CHECK(r.n == 4);
    CHECK(r.order[0] == 0 && r.order[1] == 1 && r.order[2] == 2 && r.order[3] == 3);
    CHECK(r.early == 0);

    /* thousands pending at stop: all released, the actor reference too */
    __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < 5000; i++)
        set(rt, &r, 100 + i, 60000 + i);
    aw_runtime_stats_t st;
    aw_runtime_get_stats(rt, &st);
    CHECK(st.timers == 5000);
    aw_runtime_stop(rt, 1);
    CHECK(__atomic_load_n(&freed, __ATOMIC_RELAXED) == 5000);
    aw_runtime_get_stats(rt, &st);
    CHECK(st.timers == 0);
    tmsg_t *late = calloc(1, sizeof(*late));
    CHECK(aw_timer_send(rt, &r.super, &late->super, 1) == AW_ESTOPPED);
    free(late);
    CHECK(r.disposed == 0);
    aw_actor_release(&r.super);
    CHECK(r.disposed == 1);
    aw_runtime_destroy(rt);
    return check_exit("test_timer");
}
