/*
 * Unit tests of inboxes (runtime/inbox.h): a take hands over everything
 * pushed so far, oldest first, and nothing twice; a loop's inbox runs its
 * callback once for a burst of pushes; a thread's inbox wakes its owner for
 * an eager push or a bare wake-up, for the lazy push it waits for and at its
 * deadline, and not for the lazy pushes before that one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>
#include "runtime/actor.h"
#include "runtime/inbox.h"
#include "tests/check.h"

typedef struct item {
    aw_inbox_entry_t entry;
    int n;
} item_t;

static item_t items[1000];

/* Takes the inbox and checks it holds items[from..to), in order. */
static void expect_take(aw_inbox_t *in, int from, int to)
{
    int n = from;
    for (aw_inbox_entry_t *e = aw_inbox_take(in); e != NULL; e = e->next, n++)
        CHECK(n < to && ((item_t *)e)->n == n);
    CHECK(n == to);
}

static void test_order(void)
{
    aw_inbox_t in;
    aw_inbox_init_wait(&in);
    CHECK(aw_inbox_take(&in) == NULL); /* empty */
    for (int i = 0; i < 1000; i++) {
        items[i].n = i;
        if (i % 3 == 0)
            aw_inbox_push(&in, &items[i].entry);
        else
            aw_inbox_push_lazy(&in, &items[i].entry);
    }
    expect_take(&in, 0, 1000);
    CHECK(aw_inbox_take(&in) == NULL); /* nothing twice */
    aw_inbox_push(&in, &items[7].entry);
    items[7].n = 0;
    expect_take(&in, 0, 1);
    aw_inbox_dispose(&in);
}

/* --- a loop's inbox --- */

typedef struct loop_ctx {
    int calls, taken;
} loop_ctx_t;

static void on_push(aw_inbox_t *in, void *data)
{
    loop_ctx_t *c = data;
    c->calls++;
    for (aw_inbox_entry_t *e = aw_inbox_take(in); e != NULL; e = e->next) {
        CHECK(((item_t *)e)->n == c->taken);
        c->taken++;
    }
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void test_async(void)
{
    uv_loop_t loop;
    loop_ctx_t c = {0};
    aw_inbox_t in;
    CHECK(uv_loop_init(&loop) == 0);
    CHECK(aw_inbox_init_async(&in, &loop, on_push, &c) == 0);
    for (int i = 0; i < 100; i++) {
        items[i].n = i;
        aw_inbox_push(&in, &items[i].entry);
    }
    /* a burst: one callback takes it all */
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(c.calls == 1 && c.taken == 100);
    for (int i = 100; i < 110; i++) {
        items[i].n = i;
        aw_inbox_push_lazy(&in, &items[i].entry); /* a loop's inbox: lazy wakes too */
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(c.calls == 2 && c.taken == 110);
    aw_inbox_wake(&in); /* nothing pushed: the callback runs, and takes nothing */
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(c.calls == 3 && c.taken == 110);
    aw_inbox_dispose(&in); /* does nothing to a loop's inbox */
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

/* --- a thread's inbox --- */

typedef struct waiter {
    aw_inbox_t *in;
    uint64_t until; /* relative here: ms from the start of the wait, 0 for none */
    size_t want;
    uint64_t waited; /* ms */
    int done;        /* atomic */
} waiter_t;

static void wait_thread(void *arg)
{
    waiter_t *w = arg;
    uint64_t t0 = aw_now_ms();
    aw_inbox_wait(w->in, w->until == 0 ? 0 : t0 + w->until, w->want);
    w->waited = aw_now_ms() - t0;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

static int is_done(waiter_t *w)
{
    return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

/* Starts an owner waiting; gives it time to go to sleep. */
static void start_waiting(uv_thread_t *t, waiter_t *w, aw_inbox_t *in, uint64_t until, size_t want)
{
    *w = (waiter_t){in, until, want, 0, 0};
    uv_thread_create(t, wait_thread, w);
    usleep(50000);
}

/* Whether the owner wakes within `ms`. */
static int wakes_within(waiter_t *w, int ms)
{
    for (int i = 0; i < ms && !is_done(w); i++)
        usleep(1000);
    return is_done(w);
}

/* Pushes items[from..to), lazily or not. */
static void push_items(aw_inbox_t *in, int from, int to, int lazy)
{
    for (int i = from; i < to; i++) {
        items[i].n = i;
        if (lazy)
            aw_inbox_push_lazy(in, &items[i].entry);
        else
            aw_inbox_push(in, &items[i].entry);
    }
}

/* Checks the owner wakes, and ends its thread. */
static void check_woken(uv_thread_t *t, waiter_t *w)
{
    CHECK(wakes_within(w, 5000));
    uv_thread_join(t);
}

static void test_wait(void)
{
    aw_inbox_t in;
    aw_inbox_init_wait(&in);
    uv_thread_t t;
    waiter_t w;

    /* nothing comes: the deadline */
    uint64_t t0 = aw_now_ms();
    aw_inbox_wait(&in, t0 + 60, 1);
    CHECK(aw_now_ms() - t0 >= 59);

    /* already there: no sleep, whatever the deadline */
    push_items(&in, 0, 1, 0);
    t0 = aw_now_ms();
    aw_inbox_wait(&in, 0, SIZE_MAX);
    CHECK(aw_now_ms() - t0 < 1000);
    expect_take(&in, 0, 1);
    t0 = aw_now_ms();
    aw_inbox_wait(&in, t0 + 5000, 0); /* want 0: returns at once */
    CHECK(aw_now_ms() - t0 < 1000);

    /* idle (no deadline, want 1): any push wakes the owner */
    start_waiting(&t, &w, &in, 0, 1);
    CHECK(!is_done(&w));
    push_items(&in, 0, 1, 1);
    check_woken(&t, &w);
    expect_take(&in, 0, 1);

    /* a partial batch: lazy pushes before the one it waits for do not wake it */
    start_waiting(&t, &w, &in, 0, 3);
    push_items(&in, 0, 2, 1);
    CHECK(!wakes_within(&w, 200));
    push_items(&in, 2, 3, 1); /* the third */
    check_woken(&t, &w);
    expect_take(&in, 0, 3);

    /* an eager push wakes an owner that waits for lazy ones */
    start_waiting(&t, &w, &in, 0, SIZE_MAX);
    push_items(&in, 0, 1, 1);
    CHECK(!wakes_within(&w, 100));
    push_items(&in, 1, 2, 0);
    check_woken(&t, &w);
    expect_take(&in, 0, 2);

    /* a wake-up with nothing pushed, as for a stop */
    start_waiting(&t, &w, &in, 0, SIZE_MAX);
    aw_inbox_wake(&in);
    check_woken(&t, &w);
    CHECK(aw_inbox_take(&in) == NULL);

    /* lazy pushes that never make the count: the deadline wakes it */
    start_waiting(&t, &w, &in, 300, SIZE_MAX);
    push_items(&in, 0, 50, 1);
    check_woken(&t, &w);
    CHECK(w.waited >= 299);
    expect_take(&in, 0, 50);

    /* the count starts at the last take: what was taken does not count */
    push_items(&in, 0, 2, 1);
    expect_take(&in, 0, 2);
    start_waiting(&t, &w, &in, 0, 2);
    push_items(&in, 0, 1, 1);
    CHECK(!wakes_within(&w, 100));
    push_items(&in, 1, 2, 1);
    check_woken(&t, &w);
    expect_take(&in, 0, 2);
    aw_inbox_dispose(&in);
}

int main(void)
{
    test_order();
    test_async();
    test_wait();
    return check_exit("test_inbox");
}
