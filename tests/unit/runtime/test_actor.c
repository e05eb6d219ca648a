/*
 * Unit tests of the actor runtime (runtime/actor.c): per-sender order, a
 * handler sending to itself, fairness between a flooded actor and another,
 * references and dispose, stopping with and without draining, and sending
 * after stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "runtime/actor.h"
#include "runtime/error.h"
#include "tests/check.h"

typedef struct counter {
    aw_actor_t super;
    unsigned int seen;           /* messages handled */
    unsigned int next;           /* the next expected sequence number */
    unsigned int in_order;       /* 0 once one came out of order */
    unsigned int echo;           /* messages to send to itself */
    unsigned int disposed;       /* atomic */
    unsigned int first_other_at; /* `seen` of the flood when the other actor first ran */
    struct counter *watch;
} counter_t;

static unsigned int freed; /* atomic: messages released */

#define SELF 0x80000000u  /* tags the messages an actor sends itself */
#define BLOCK 0x40000000u /* holds the worker until `released` is set */

static int released; /* atomic */

static void msg_free(aw_msg_t *m)
{
    __atomic_add_fetch(&freed, 1, __ATOMIC_RELAXED);
    free(m);
}

static aw_msg_t *new_msg(uint32_t n)
{
    aw_msg_t *m = calloc(1, sizeof(*m));
    m->type = n;
    m->free = msg_free;
    return m;
}

static void handle(aw_actor_t *a, aw_msg_t *m)
{
    counter_t *c = (counter_t *)a;
    if (m->type == BLOCK) {
        while (!__atomic_load_n(&released, __ATOMIC_ACQUIRE))
            usleep(100);
        aw_msg_release(m);
        return;
    }
    if (!(m->type & SELF)) {
        if (m->type != c->next)
            c->in_order = 0;
        c->next = m->type + 1;
    }
    __atomic_add_fetch(&c->seen, 1, __ATOMIC_RELEASE);
    if (c->watch != NULL && c->first_other_at == 0)
        c->first_other_at = __atomic_load_n(&c->watch->seen, __ATOMIC_RELAXED) + 1;
    if (c->echo != 0) {
        c->echo--;
        aw_actor_send(a, new_msg(SELF | c->echo)); /* to itself, from inside a handler */
    }
    aw_msg_release(m);
}

static void dispose(aw_actor_t *a)
{
    __atomic_add_fetch(&((counter_t *)a)->disposed, 1, __ATOMIC_RELAXED);
}

static void init(counter_t *c, aw_runtime_t *rt)
{
    *c = (counter_t){.in_order = 1};
    aw_actor_init(&c->super, rt, handle, dispose);
}

static void wait_seen(counter_t *c, unsigned int n)
{
    for (int i = 0; i < 5000 && __atomic_load_n(&c->seen, __ATOMIC_ACQUIRE) < n; i++)
        usleep(1000);
}

static void test_order_and_self_send(void)
{
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = 4, .batch = 8};
    CHECK(aw_runtime_create(&rt, &cfg) == 0);
    CHECK(aw_runtime_workers(rt) == 4);
    counter_t c;
    init(&c, rt);
    c.echo = 100;
    for (uint32_t i = 0; i < 1000; i++)
        CHECK(aw_actor_send(&c.super, new_msg(i)) == 0);
    aw_runtime_stop(rt, 1); /* draining handles the self-sent ones too */
    CHECK(c.seen == 1100);
    CHECK(c.in_order); /* the outside sender's 1000 in order, whatever came between */
    aw_runtime_stats_t st;
    aw_runtime_get_stats(rt, &st);
    CHECK(st.handled == c.seen);
    CHECK(c.disposed == 0);
    aw_actor_release(&c.super);
    CHECK(c.disposed == 1);
    aw_runtime_destroy(rt);
}

static void test_fairness(void)
{
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = 1, .batch = 16};
    CHECK(aw_runtime_create(&rt, &cfg) == 0);
    counter_t flood, other;
    init(&flood, rt);
    init(&other, rt);
    other.watch = &flood;
    /* Hold the only worker inside the flooded actor while both mailboxes
     * fill, so the other actor is queued behind a long flood. */
    aw_actor_send(&flood.super, new_msg(BLOCK));
    for (uint32_t i = 0; i < 100000; i++)
        aw_actor_send(&flood.super, new_msg(i));
    aw_actor_send(&other.super, new_msg(0));
    __atomic_store_n(&released, 1, __ATOMIC_RELEASE);
    wait_seen(&other, 1);
    wait_seen(&flood, 100000);
    CHECK(other.seen == 1);
    /* one worker: the other actor ran after one batch of the flood, not after all of it */
    CHECK(other.first_other_at != 0 && other.first_other_at <= 16 + 1);
    CHECK(flood.in_order && flood.seen == 100000);
    aw_runtime_stop(rt, 1);
    aw_actor_release(&flood.super);
    aw_actor_release(&other.super);
    aw_runtime_destroy(rt);
}

static void test_stop_discards(void)
{
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = 1, .batch = 1};
    CHECK(aw_runtime_create(&rt, &cfg) == 0);
    counter_t c;
    init(&c, rt);
    __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < 50000; i++)
        aw_actor_send(&c.super, new_msg(i));
    aw_runtime_stop(rt, 0);
    aw_runtime_stats_t st;
    aw_runtime_get_stats(rt, &st);
    aw_msg_t *late = new_msg(0);
    CHECK(aw_actor_send(&c.super, late) == AW_ESTOPPED); /* the caller keeps it */
    aw_msg_release(late);
    aw_actor_release(&c.super); /* anything left in the mailbox goes now */
    aw_runtime_get_stats(rt, &st);
    CHECK(c.disposed == 1);
    CHECK(st.handled + st.discarded == 50000);
    CHECK(__atomic_load_n(&freed, __ATOMIC_RELAXED) == 50001);
    aw_runtime_destroy(rt);
}

static void test_release_discards_pending(void)
{
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = 2};
    CHECK(aw_runtime_create(&rt, &cfg) == 0);
    counter_t c;
    init(&c, rt);
    aw_actor_retain(&c.super);
    aw_actor_release(&c.super);
    CHECK(c.disposed == 0); /* one reference is still held */
    aw_runtime_stop(rt, 1);
    __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
    aw_actor_release(&c.super);
    CHECK(c.disposed == 1);
    aw_runtime_destroy(rt);
}

int main(void)
{
    test_order_and_self_send();
    test_fairness();
    test_stop_discards();
    test_release_discards_pending();
    return check_exit("test_actor");
}
