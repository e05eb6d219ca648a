/*
 * Stress validation of the actor runtime, in the manner of Concurrency Kit's
 * regressions: several producer threads send to thousands of actors at once,
 * and the run checks that nothing is lost, nothing is handled twice, each
 * sender's order is kept for every actor, and no actor ever runs on two
 * threads at once.
 *
 *     runtime_validate [PRODUCERS] [ACTORS] [MESSAGES] [WORKERS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>
#include "runtime/actor.h"

#define MAX_PRODUCERS 16

typedef struct msg {
    aw_msg_t super; /* super.sender: the producer */
    uint32_t n;     /* per (producer, actor) counter */
} msg_t;

typedef struct target {
    aw_actor_t super;
    uint32_t next[MAX_PRODUCERS]; /* the next n expected from each producer */
    uint64_t handled;
    unsigned int inside; /* atomic: threads in the handler right now */
    unsigned int errors;
} target_t;

static unsigned int n_producers = 4, n_actors = 2000, workers = 4;
static uint64_t n_messages = 2000000;
static target_t *targets;
static uint64_t total_handled; /* atomic */

static void handle(aw_actor_t *a, aw_msg_t *m)
{
    target_t *t = (target_t *)a;
    if (__atomic_add_fetch(&t->inside, 1, __ATOMIC_ACQ_REL) != 1)
        t->errors++; /* two threads in one actor */
    msg_t *mm = (msg_t *)m;
    if (mm->n != t->next[m->sender])
        t->errors++; /* lost, duplicated or reordered */
    t->next[m->sender] = mm->n + 1;
    t->handled++;
    __atomic_sub_fetch(&t->inside, 1, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&total_handled, 1, __ATOMIC_RELAXED);
    free(m);
}

static void dispose(aw_actor_t *a)
{
}

static void produce(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint32_t *counters = calloc(n_actors, sizeof(*counters));
    uint64_t share = n_messages / n_producers;
    uint64_t x = 88172645463325252ull ^ id; /* xorshift: a spread of actors */
    for (uint64_t i = 0; i < share; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t a = (uint32_t)(x % n_actors);
        msg_t *m = malloc(sizeof(*m));
        m->super.free = NULL;
        m->super.sender = id;
        m->n = counters[a]++;
        if (aw_actor_send(&targets[a].super, &m->super) != 0)
            abort();
    }
    free(counters);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        n_producers = (unsigned int)atoi(argv[1]);
    if (argc > 2)
        n_actors = (unsigned int)atoi(argv[2]);
    if (argc > 3)
        n_messages = strtoull(argv[3], NULL, 10);
    if (argc > 4)
        workers = (unsigned int)atoi(argv[4]);
    if (n_producers == 0 || n_producers > MAX_PRODUCERS || n_actors == 0) {
        fprintf(stderr, "usage: runtime_validate [PRODUCERS<=16] [ACTORS] [MESSAGES] [WORKERS]\n");
        return 2;
    }
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = workers, .batch = 32};
    if (aw_runtime_create(&rt, &cfg) != 0)
        return 1;
    targets = calloc(n_actors, sizeof(*targets));
    for (unsigned int i = 0; i < n_actors; i++)
        aw_actor_init(&targets[i].super, rt, handle, dispose);
    uint64_t t0 = aw_now_ms();
    uv_thread_t threads[MAX_PRODUCERS];
    for (unsigned int p = 0; p < n_producers; p++)
        uv_thread_create(&threads[p], produce, (void *)(uintptr_t)p);
    for (unsigned int p = 0; p < n_producers; p++)
        uv_thread_join(&threads[p]);
    aw_runtime_stop(rt, 1);
    uint64_t ms = aw_now_ms() - t0;
    uint64_t expect = n_messages / n_producers * n_producers, sum = 0;
    unsigned int errors = 0;
    for (unsigned int i = 0; i < n_actors; i++) {
        errors += targets[i].errors;
        sum += targets[i].handled;
        aw_actor_release(&targets[i].super);
    }
    aw_runtime_stats_t st;
    aw_runtime_get_stats(rt, &st);
    aw_runtime_destroy(rt);
    free(targets);
    printf("runtime_validate: %u producers, %u actors, %u workers: %llu messages in %llu ms, %u errors\n",
           n_producers, n_actors, workers, (unsigned long long)sum, (unsigned long long)ms, errors);
    if (errors != 0 || sum != expect || st.handled != expect || st.discarded != 0) {
        fprintf(stderr, "runtime_validate: FAILED (handled %llu of %llu, %llu discarded, %u errors)\n",
                (unsigned long long)sum, (unsigned long long)expect, (unsigned long long)st.discarded,
                errors);
        return 1;
    }
    return 0;
}
