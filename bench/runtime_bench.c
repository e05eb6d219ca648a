/*
 * runtime_bench: the actor runtime alone (runtime/actor.h), with nothing of
 * chat. A ring of actors passes tokens: each handler forwards the message it
 * was given to the next actor of the ring, so every message handled is one
 * send, and no message is allocated once the run is going. Each worker count
 * asked for gets a fresh runtime and the same load; the bench prints messages
 * per second in all, per worker and per second of CPU (the figure to compare
 * on a machine others use too), and what the runtime's own counters say
 * about its run queue: the times a thread waited for a lock and how long,
 * and the times a worker went to sleep.
 *
 *   runtime_bench [-a ACTORS] [-t TOKENS] [-s SECONDS] [-b BATCH] [WORKERS...]
 *
 * Defaults: 1,000 actors, 10,000 tokens, 2 s, batch 64, workers 1 2 4.
 * A worker count above the number of cores measures the runtime
 * oversubscribed, which is how a run queue's lock is at its worst.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>
#include "runtime/actor.h"
#include "runtime/buf.h"

#define MAX_RUNS 16

typedef struct ring_actor {
    aw_actor_t super;
    aw_actor_t *next;
} ring_actor_t;

static int stopping; /* atomic: handlers drop their token instead of passing it */

static void handle(aw_actor_t *a, aw_msg_t *m)
{
    ring_actor_t *r = (ring_actor_t *)a;
    if (__atomic_load_n(&stopping, __ATOMIC_RELAXED) || aw_actor_send(r->next, m) != 0)
        aw_msg_release(m);
}

static void dispose(aw_actor_t *a)
{
}

typedef struct result {
    double msgs_per_s, runs_per_s, cpu_s;
    aw_runtime_stats_t st;
} result_t;

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(unsigned int workers, unsigned int n_actors, unsigned int tokens, double secs,
                unsigned int batch, result_t *res)
{
    aw_runtime_t *rt;
    aw_runtime_config_t cfg = {.workers = workers, .batch = batch};
    if (aw_runtime_create(&rt, &cfg) != 0) {
        fprintf(stderr, "runtime_bench: cannot start the runtime\n");
        exit(1);
    }
    ring_actor_t *ring = aw_calloc(n_actors, sizeof(*ring));
    for (unsigned int i = 0; i < n_actors; i++)
        aw_actor_init(&ring[i].super, rt, handle, dispose);
    for (unsigned int i = 0; i < n_actors; i++)
        ring[i].next = &ring[(i + 1) % n_actors].super;
    __atomic_store_n(&stopping, 0, __ATOMIC_RELAXED);
    aw_runtime_stats_t st0, st1;
    aw_runtime_get_stats(rt, &st0);
    double c0 = cpu_seconds();
    uint64_t t0 = uv_hrtime();
    for (unsigned int i = 0; i < tokens; i++) {
        aw_msg_t *m = aw_calloc(1, sizeof(*m));
        if (aw_actor_send(&ring[i % n_actors].super, m) != 0)
            free(m);
    }
    usleep((useconds_t)(secs * 1e6));
    aw_runtime_get_stats(rt, &st1);
    uint64_t t1 = uv_hrtime();
    double c1 = cpu_seconds();
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    aw_runtime_stop(rt, 1);
    for (unsigned int i = 0; i < n_actors; i++)
        aw_actor_release(&ring[i].super);
    aw_runtime_destroy(rt);
    free(ring);
    double el = (double)(t1 - t0) / 1e9;
    res->msgs_per_s = (double)(st1.handled - st0.handled) / el;
    res->runs_per_s = (double)(st1.runs - st0.runs) / el;
    res->cpu_s = c1 - c0;
    res->st = st1;
    res->st.lock_waits -= st0.lock_waits;
    res->st.lock_wait_ns -= st0.lock_wait_ns;
    res->st.sleeps -= st0.sleeps;
}

int main(int argc, char **argv)
{
    unsigned int n_actors = 1000, tokens = 10000, batch = 64, workers[MAX_RUNS], n_runs = 0;
    double secs = 2;
    int opt;
    while ((opt = getopt(argc, argv, "a:t:s:b:")) != -1) {
        switch (opt) {
        case 'a':
            n_actors = (unsigned int)atoi(optarg);
            break;
        case 't':
            tokens = (unsigned int)atoi(optarg);
            break;
        case 's':
            secs = atof(optarg);
            break;
        case 'b':
            batch = (unsigned int)atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: runtime_bench [-a ACTORS] [-t TOKENS] [-s SECONDS] [-b BATCH] [WORKERS...]\n");
            return 2;
        }
    }
    for (int i = optind; i < argc && n_runs < MAX_RUNS; i++)
        workers[n_runs++] = (unsigned int)atoi(argv[i]);
    if (n_runs == 0) {
        workers[0] = 1, workers[1] = 2, workers[2] = 4;
        n_runs = 3;
    }
    if (n_actors == 0 || tokens == 0 || secs <= 0) {
        fprintf(stderr, "runtime_bench: actors, tokens and seconds must be positive\n");
        return 2;
    }
    printf("runtime_bench: %u actors in a ring, %u tokens, batch %u, %.1f s a run, %ld cores\n", n_actors,
           tokens, batch, secs, sysconf(_SC_NPROCESSORS_ONLN));
    printf("| workers |      msg/s | msg/s per worker | msg per CPU s | runs/s    | CPU s | lock waits/s | "
           "lock wait ms/s | sleeps/s |\n");
    printf("| ------- | ---------- | ---------------- | ------------- | --------- | ----- | ------------ | "
           "-------------- | -------- |\n");
    for (unsigned int i = 0; i < n_runs; i++) {
        if (workers[i] == 0)
            continue;
        result_t r;
        run(workers[i], n_actors, tokens, secs, batch, &r);
        printf("| %7u | %10.0f | %16.0f | %13.0f | %9.0f | %5.2f | %12.0f | %14.2f | %8.0f |\n", workers[i],
               r.msgs_per_s, r.msgs_per_s / workers[i], r.msgs_per_s * secs / r.cpu_s, r.runs_per_s, r.cpu_s,
               r.st.lock_waits / secs, r.st.lock_wait_ns / 1e6 / secs, r.st.sleeps / secs);
        fflush(stdout);
    }
    return 0;
}
