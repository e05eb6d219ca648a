/*
 * Stress validation of inboxes (runtime/inbox.h), in the manner of
 * Concurrency Kit's regressions: several producer threads push to one inbox
 * at once, and the run checks that every item arrives exactly once and, for
 * each producer, in the order it was pushed. Two owners are checked in turn:
 * a thread that collects batches the way the history thread does (it sleeps
 * until its batch is full, an eager push comes, or the batch's deadline
 * passes; with nothing held, until any push), and a libuv loop woken by its
 * inbox's uv_async handle.
 *
 * The producers first push a stream, with pauses of different lengths so
 * that the owner sleeps and is woken every way. Then they push in rounds,
 * each waiting until the owner has received the whole round before the next
 * starts, and the batching owner has no deadline: a round that ends with a
 * full batch is received only if the push that filled it woke the owner, one
 * that ends with an eager push only if that push woke it. A lost wake-up
 * leaves the owner asleep for good: the watchdog fails the run when nothing
 * arrives for WATCHDOG_MS.
 *
 *     inbox_validate [PRODUCERS] [ITEMS] [BATCH] [ROUNDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>
#include "runtime/actor.h"
#include "runtime/inbox.h"

#define MAX_PRODUCERS 16
#define WATCHDOG_MS 10000
#define FLUSH_MS 2

typedef struct item {
    aw_inbox_entry_t entry;
    uint32_t producer, n;
    int eager;
} item_t;

static unsigned int n_producers = 4, batch = 64, rounds = 2000;
static uint64_t n_items = 1000000, stream_total, total;
static aw_inbox_t inbox;
static uv_barrier_t round_start, round_pushed;

/* The owner's checks. */
static uint32_t next[MAX_PRODUCERS];
static uint64_t received, wakes; /* atomic: read by the producers and the watchdog */
static unsigned int errors;

static void push(uint32_t id, uint32_t n, int eager)
{
    item_t *it = malloc(sizeof(*it));
    it->producer = id;
    it->n = n;
    it->eager = eager;
    if (eager)
        aw_inbox_push(&inbox, &it->entry);
    else
        aw_inbox_push_lazy(&inbox, &it->entry);
}

/* Round r: even rounds are lazy pushes of any number ended by one eager push
 * (of producer 0, once all are done); odd rounds are lazy pushes only, one
 * to three whole batches in all, split between the producers. */
static uint32_t round_share(unsigned int r, uint32_t id)
{
    if (r % 2 == 0)
        return (uint32_t)((r * 2654435761u + id * 40503u) % (2 * batch)) + 1;
    uint32_t all = batch * (1 + r / 2 % 3);
    return all / n_producers + (id < all % n_producers);
}

static uint64_t round_total(unsigned int r)
{
    uint64_t sum = r % 2 == 0; /* the eager push */
    for (uint32_t p = 0; p < n_producers; p++)
        sum += round_share(r, p);
    return sum;
}

static void wait_received(uint64_t target)
{
    while (__atomic_load_n(&received, __ATOMIC_ACQUIRE) < target)
        usleep(20);
}

static void produce(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg, n = 0;
    for (uint64_t i = 0; i < n_items / n_producers; i++) {
        push(id, n++, i % 97 == 0); /* mostly lazy, like appends; now and then eager, like a read */
        if (i % 256 == 255)
            usleep(20 + (id * 37 + i) % 300);
    }
    uint64_t target = stream_total;
    for (unsigned int r = 0; r < rounds; r++) {
        uv_barrier_wait(&round_start);
        for (uint32_t k = round_share(r, id); k > 0; k--)
            push(id, n++, 0);
        if (r % 2 == 0) {
            uv_barrier_wait(&round_pushed);
            if (id == 0)
                push(id, n++, 1);
        }
        target += round_total(r);
        wait_received(target);
    }
}

/* Checks and frees what a take handed over, keeping the batching owner's
 * count of items held: a full batch is written, an eager item writes what
 * is held (as a page read does). Returns the count held. */
static size_t receive(aw_inbox_entry_t *e, size_t held, uint64_t *first_at)
{
    uint64_t k = 0;
    while (e != NULL) {
        item_t *it = (item_t *)e;
        e = e->next;
        if (it->producer >= n_producers || it->n != next[it->producer])
            errors++; /* lost, duplicated or reordered */
        else
            next[it->producer]++;
        if (it->eager) {
            held = 0;
        } else {
            if (held == 0)
                *first_at = aw_now_ms();
            if (++held == batch)
                held = 0;
        }
        free(it);
        k++;
    }
    __atomic_add_fetch(&received, k, __ATOMIC_RELEASE);
    return held;
}

static void batch_owner(void)
{
    size_t held = 0;
    uint64_t first_at = 0;
    for (;;) {
        held = receive(aw_inbox_take(&inbox), held, &first_at);
        uint64_t got = __atomic_load_n(&received, __ATOMIC_RELAXED);
        if (got == total)
            return;
        /* the stream's partial batches have a deadline; the rounds' none */
        uint64_t until = got < stream_total && held != 0 ? first_at + FLUSH_MS : 0;
        if (until != 0 && aw_now_ms() >= until) {
            held = 0;
            continue;
        }
        __atomic_add_fetch(&wakes, 1, __ATOMIC_RELAXED);
        aw_inbox_wait(&inbox, until, held == 0 ? 1 : batch - held);
    }
}

static void on_push(aw_inbox_t *in, void *data)
{
    uint64_t ignored;
    __atomic_add_fetch(&wakes, 1, __ATOMIC_RELAXED);
    receive(aw_inbox_take(in), 0, &ignored);
    if (__atomic_load_n(&received, __ATOMIC_RELAXED) == total)
        uv_stop(data);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void watchdog(void *arg)
{
    uint64_t last = 0, since = aw_now_ms();
    while (__atomic_load_n(&received, __ATOMIC_RELAXED) < total) {
        uv_sleep(50);
        uint64_t now = __atomic_load_n(&received, __ATOMIC_RELAXED);
        if (now != last) {
            last = now;
            since = aw_now_ms();
        } else if (aw_now_ms() - since > WATCHDOG_MS) {
            fprintf(stderr, "inbox_validate: no progress for %d ms at %llu of %llu items: a lost wake-up\n",
                    WATCHDOG_MS, (unsigned long long)now, (unsigned long long)total);
            exit(1); /* the owner sleeps for good: nothing to join */
        }
    }
}

/* Runs the producers against the owner `kind` ("thread" or "loop"). */
static int run(const char *kind)
{
    uv_loop_t loop;
    int async = kind[0] == 'l';
    for (unsigned int p = 0; p < n_producers; p++)
        next[p] = 0;
    received = wakes = 0;
    errors = 0;
    if (async) {
        uv_loop_init(&loop);
        aw_inbox_init_async(&inbox, &loop, on_push, &loop);
    } else {
        aw_inbox_init_wait(&inbox);
    }
    uv_thread_t threads[MAX_PRODUCERS], dog;
    uint64_t t0 = aw_now_ms();
    uv_thread_create(&dog, watchdog, NULL);
    for (unsigned int p = 0; p < n_producers; p++)
        uv_thread_create(&threads[p], produce, (void *)(uintptr_t)p);
    if (async)
        uv_run(&loop, UV_RUN_DEFAULT);
    else
        batch_owner();
    for (unsigned int p = 0; p < n_producers; p++)
        uv_thread_join(&threads[p]);
    uv_thread_join(&dog);
    uint64_t ignored;
    receive(aw_inbox_take(&inbox), 0, &ignored); /* nothing may be left */
    uint64_t ms = aw_now_ms() - t0;
    if (async) {
        uv_walk(&loop, close_any, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    aw_inbox_dispose(&inbox);
    uint64_t sum = 0;
    for (unsigned int p = 0; p < n_producers; p++)
        sum += next[p];
    printf("inbox_validate: %s owner, %u producers, %u rounds: %llu items in %llu ms, %llu wake-ups, %u "
           "errors\n",
           kind, n_producers, rounds, (unsigned long long)received, (unsigned long long)ms,
           (unsigned long long)wakes, errors);
    return errors != 0 || received != total || sum != total;
}

int main(int argc, char **argv)
{
    uint64_t arg[4] = {n_producers, n_items, batch, rounds}; /* the defaults */
    for (int i = 1; i < argc && i <= 4; i++)
        arg[i - 1] = strtoull(argv[i], NULL, 10);
    n_producers = (unsigned int)arg[0];
    n_items = arg[1];
    batch = (unsigned int)arg[2];
    rounds = (unsigned int)arg[3];
    if (n_producers == 0 || n_producers > MAX_PRODUCERS || batch == 0) {
        fprintf(stderr, "usage: inbox_validate [PRODUCERS<=16] [ITEMS] [BATCH] [ROUNDS]\n");
        return 2;
    }
    stream_total = total = n_items / n_producers * n_producers;
    for (unsigned int r = 0; r < rounds; r++)
        total += round_total(r);
    uv_barrier_init(&round_start, n_producers);
    uv_barrier_init(&round_pushed, n_producers);
    int failed = run("thread");
    failed |= run("loop");
    uv_barrier_destroy(&round_start);
    uv_barrier_destroy(&round_pushed);
    if (failed)
        fprintf(stderr, "inbox_validate: FAILED\n");
    return failed;
}
