/*
 * Unit tests of the registry (actors/registry.c) with real sessions on a
 * real runtime and fake webhook requests and websockets (fake_chat.h): a
 * session is made on first contact and found again, an idle one is freed
 * after idle_ms and one with a socket is not, shutdown, and the race the
 * registry exists to win: threads sending to a few users whose sessions are
 * reaped all the time (idle_ms 1), where every message must be answered
 * exactly once, and, with a history, numbered without a repeat or a gap.
 *
 * Usage: test_registry [THREADS [MESSAGES [MESSAGES_WITH_HISTORY]]], the
 * counts per thread of the two rounds of the race; or test_registry
 * shutdown-race, the shutdown that races new sessions, alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "actors/bot.h"
#include "runtime/error.h"
#include "tests/check.h"
#include "tests/unit/actors/fake_chat.h"

static char dir[] = "/tmp/aw-test-registry-XXXXXX";

/* --- the bot: replies "TEXT#N", N counting the turns of this session --- */

static void on_message(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    const char *n = aw_turn_get_var(turn, "n");
    char count[24], text[160];
    snprintf(count, sizeof(count), "%d", (n != NULL ? atoi(n) : 0) + 1);
    aw_turn_set_var(turn, "n", count);
    snprintf(text, sizeof(text), "%.120s#%s", msg->text != NULL ? msg->text : "", count);
    aw_turn_say(turn, text);
}

static void on_later(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_later(turn, "late", 60000);
}

static aw_bot_t *bot;

/* Sends `text` from `user` on a new webhook request of the test's. */
static fake_sink_t *ask(fake_world_t *w, const char *user, const char *text)
{
    char json[256];
    snprintf(json, sizeof(json), "{\"type\":\"message\",\"user\":\"%s\",\"text\":\"%s\"}", user, text);
    fake_sink_t *s = fake_sink_new(AW_SINK_ALL);
    CHECK(fake_send(w, NULL, s, json) == 0);
    return s;
}

/* The text of the one reply `s` was answered with ("" when not so). */
static void reply_of(fake_sink_t *s, char *out, size_t size)
{
    fake_frame_t f;
    CHECK(fake_sink_wait(s, FAKE_WAIT_MS) == 1);
    CHECK(s->err == 0 && s->n == 1);
    fake_sink_frame(s, 0, &f);
    snprintf(out, size, "%s", f.text);
}

static void expect_reply(fake_world_t *w, const char *user, const char *text, const char *want, int line)
{
    char got[256];
    fake_sink_t *s = ask(w, user, text);
    reply_of(s, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fprintf(stderr, "line %d: %s said %s: got \"%s\", want \"%s\"\n", line, user, text, got, want);
    CHECK(strcmp(got, want) == 0);
    aw_sink_release(&s->super);
}

#define EXPECT_REPLY(w, user, text, want) expect_reply(w, user, text, want, __LINE__)

/* A session is made on first contact and found again: the turns of a user
 * share its variables; nothing is made for a message that may not create. */
static void test_create_and_find(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 60000};
    fake_world_open(&w, NULL, bot, &cfg);
    fake_conn_t *c = fake_conn_new();
    CHECK(aw_registry_count(w.reg) == 0);
    CHECK(fake_detach(&w, "u1", c) == AW_ENOTFOUND);
    CHECK(aw_registry_count(w.reg) == 0);
    EXPECT_REPLY(&w, "u1", "a", "a#1");
    CHECK(aw_registry_count(w.reg) == 1);
    EXPECT_REPLY(&w, "u1", "b", "b#2");
    EXPECT_REPLY(&w, "u2", "c", "c#1");
    EXPECT_REPLY(&w, "u1", "d", "d#3");
    CHECK(aw_registry_count(w.reg) == 2);
    CHECK(fake_detach(&w, "u2", c) == 0); /* found; the socket was never its */
    /* ids that differ in a byte, or only in length, are different users */
    EXPECT_REPLY(&w, "u1x", "e", "e#1");
    EXPECT_REPLY(&w, "u", "f", "f#1");
    CHECK(aw_registry_count(w.reg) == 4);
    /* more users than the table's first buckets hold: it grows */
    for (int i = 0; i < 3000; i++) {
        char user[16];
        snprintf(user, sizeof(user), "many-%d", i);
        aw_msg_t *m = aw_detach_new(&c->super);
        CHECK(aw_registry_send(w.reg, user, strlen(user), m, 1) == 0);
    }
    CHECK(aw_registry_count(w.reg) == 3004);
    EXPECT_REPLY(&w, "u1", "g", "g#4");
    EXPECT_REPLY(&w, "many-2999", "h", "h#1");
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&c->super);
}

/* A session with no socket and nothing to do is freed after idle_ms (and a
 * new one starts afresh); one with an open socket is kept. */
static void test_idle_sessions_are_reaped(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 50};
    fake_world_open(&w, NULL, bot, &cfg);
    fake_conn_t *c = fake_conn_new();
    EXPECT_REPLY(&w, "idle", "a", "a#1");
    CHECK(fake_send(&w, c, NULL, "{\"type\":\"message\",\"user\":\"open\",\"text\":\"x\"}") == 0);
    CHECK(fake_conn_wait(c, 1, FAKE_WAIT_MS) == 1);
    CHECK(fake_wait_sessions(&w, 1, FAKE_WAIT_MS));
    usleep(200000);
    CHECK(aw_registry_count(w.reg) == 1); /* "open" stays while its socket does */
    EXPECT_REPLY(&w, "idle", "b", "b#1");
    CHECK(fake_detach(&w, "open", c) == 0);
    CHECK(fake_wait_sessions(&w, 0, FAKE_WAIT_MS));
    CHECK(fake_detach(&w, "open", c) == AW_ENOTFOUND);
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&c->super);
}

/* Shutdown tells every session to send what waits, then refuses messages
 * (the caller keeps them) without making sessions, so the runtime drains. */
static void test_shutdown(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 60000};
    aw_bot_t *later = aw_bot_new("later");
    aw_bot_on(later, "message", on_later, NULL);
    fake_world_open(&w, NULL, later, &cfg);
    fake_conn_t *c[3];
    for (int i = 0; i < 3; i++) {
        char json[128];
        c[i] = fake_conn_new();
        snprintf(json, sizeof(json), "{\"type\":\"message\",\"user\":\"s%d\",\"text\":\"x\"}", i);
        CHECK(fake_send(&w, c[i], NULL, json) == 0);
    }
    CHECK(fake_wait_sessions(&w, 3, FAKE_WAIT_MS));
    usleep(50000); /* let the turns run: nothing is said before the delay */
    for (int i = 0; i < 3; i++)
        CHECK(fake_conn_count(c[i]) == 0);
    aw_registry_shutdown(w.reg);
    for (int i = 0; i < 3; i++) {
        fake_frame_t f;
        CHECK(fake_conn_wait(c[i], 1, 5000) == 1);
        CHECK(fake_conn_frame(c[i], 0, &f) && strcmp(f.text, "late") == 0 && f.seq == 1);
    }
    fake_sink_t *s = fake_sink_new(AW_SINK_ALL);
    CHECK(fake_send(&w, NULL, s, "{\"type\":\"message\",\"user\":\"s0\",\"text\":\"y\"}") == AW_ESTOPPED);
    CHECK(fake_send(&w, NULL, s, "{\"type\":\"message\",\"user\":\"new\",\"text\":\"y\"}") == AW_ESTOPPED);
    CHECK(aw_registry_count(w.reg) == 3);
    CHECK(fake_world_close(&w) == 0);
    CHECK(s->completed == 0);
    aw_sink_release(&s->super);
    for (int i = 0; i < 3; i++)
        aw_conn_release(&c[i]->super);
    aw_bot_free(later);
}

/* Threads that keep making sessions (a fresh user per message, on a socket
 * of its own) while the registry shuts down. */
typedef struct flood {
    fake_world_t *w;
    int thread;
    fake_conn_t **conns; /* the sockets whose message was accepted */
    int n, cap;
} flood_t;

static void flood_thread(void *arg)
{
    flood_t *f = arg;
    for (int i = 0; i < 1000000; i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"type\":\"message\",\"user\":\"f%d-%d\",\"text\":\"x\"}", f->thread,
                 i);
        fake_conn_t *c = fake_conn_new();
        if (fake_send(f->w, c, NULL, json) != 0) {
            aw_conn_release(&c->super);
            return;
        }
        if (f->n == f->cap) {
            f->cap = f->cap != 0 ? 2 * f->cap : 256;
            f->conns = realloc(f->conns, (size_t)f->cap * sizeof(*f->conns));
        }
        f->conns[f->n++] = c;
    }
}

/* Every message the registry accepted while it shut down is in a session
 * that was told to shut down: its delayed reply is sent at once, not lost
 * when the runtime stops. Fails today: aw_registry_send checks `stopped`
 * before it takes the shard lock, and aw_registry_shutdown sets it only
 * after visiting every shard, so a session made in a shard already visited
 * is accepted and never told (hundreds of the thousands made during one
 * shutdown). */
static void test_shutdown_while_sessions_are_made(void)
{
    enum { FLOODERS = 2 };
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 60000};
    aw_bot_t *later = aw_bot_new("later");
    aw_bot_on(later, "message", on_later, NULL);
    fake_world_open(&w, NULL, later, &cfg);
    flood_t f[FLOODERS];
    uv_thread_t t[FLOODERS];
    for (int i = 0; i < FLOODERS; i++) {
        f[i] = (flood_t){.w = &w, .thread = i};
        CHECK(uv_thread_create(&t[i], flood_thread, &f[i]) == 0);
    }
    uv_sleep(100); /* thousands of sessions: the shutdown takes a while to visit them */
    aw_registry_shutdown(w.reg);
    for (int i = 0; i < FLOODERS; i++)
        uv_thread_join(&t[i]);
    uint64_t deadline = aw_now_ms() + 3000;
    int accepted = 0, missing = 0;
    for (int i = 0; i < FLOODERS; i++) {
        for (int k = 0; k < f[i].n; k++) {
            uint64_t now = aw_now_ms();
            accepted++;
            missing +=
                fake_conn_wait(f[i].conns[k], 1, now < deadline ? (unsigned int)(deadline - now) : 0) != 1;
        }
    }
    if (missing != 0)
        fprintf(stderr, "shutdown: %d of %d accepted messages never had their delayed reply\n", missing,
                accepted);
    CHECK(accepted > 0 && missing == 0);
    CHECK(fake_world_close(&w) == 0);
    for (int i = 0; i < FLOODERS; i++) {
        for (int k = 0; k < f[i].n; k++)
            aw_conn_release(&f[i].conns[k]->super);
        free(f[i].conns);
    }
    aw_bot_free(later);
}

/* --- the reaping race --- */

enum { USERS = 3 };

typedef struct hammer {
    fake_world_t *w;
    int thread, messages;
    fake_sink_t **sinks; /* [messages], the requests this thread sent */
    unsigned int seed;
} hammer_t;

static void hammer_thread(void *arg)
{
    hammer_t *h = arg;
    for (int i = 0; i < h->messages; i++) {
        char user[16], text[32];
        snprintf(user, sizeof(user), "r%d", (int)(rand_r(&h->seed) % USERS));
        snprintf(text, sizeof(text), "%d-%d", h->thread, i);
        h->sinks[i] = ask(h->w, user, text);
        /* pauses now and then, so that sessions go idle and are reaped
         * while the other threads send */
        unsigned int r = rand_r(&h->seed) % 8;
        if (r < 2)
            usleep(rand_r(&h->seed) % 2000);
        else if (r < 4)
            uv_sleep(0);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Runs `threads` threads of `messages` messages each against sessions with
 * idle_ms 1; with `db`, sessions keep a history and number from it. */
static void race(int threads, int messages, const char *db)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 1};
    fake_world_open(&w, db, bot, &cfg);
    hammer_t *h = calloc((size_t)threads, sizeof(*h));
    uv_thread_t *t = calloc((size_t)threads, sizeof(*t));
    for (int i = 0; i < threads; i++) {
        h[i] = (hammer_t){.w = &w, .thread = i, .messages = messages, .seed = 7u * (unsigned)i + 1};
        h[i].sinks = calloc((size_t)messages, sizeof(*h[i].sinks));
        CHECK(uv_thread_create(&t[i], hammer_thread, &h[i]) == 0);
    }
    for (int i = 0; i < threads; i++)
        uv_thread_join(&t[i]);

    /* every request answered, with its own text; "#1" marks a fresh session */
    uint64_t deadline = aw_now_ms() + 30000;
    int unanswered = 0, wrong = 0, fresh = 0;
    int64_t *seqs[USERS];
    size_t n_seqs[USERS] = {0};
    for (int u = 0; u < USERS; u++)
        seqs[u] = calloc((size_t)threads * (size_t)messages, sizeof(int64_t));
    for (int i = 0; i < threads; i++) {
        for (int m = 0; m < messages; m++) {
            fake_sink_t *s = h[i].sinks[m];
            uint64_t now = aw_now_ms();
            if (fake_sink_wait(s, now < deadline ? (unsigned int)(deadline - now) : 0) != 1) {
                unanswered++;
                continue;
            }
            fake_frame_t f;
            char want[32];
            snprintf(want, sizeof(want), "%d-%d#", i, m);
            if (s->err != 0 || s->n != 1 || !fake_sink_frame(s, 0, &f) ||
                strncmp(f.text, want, strlen(want)) != 0) {
                wrong++;
                continue;
            }
            fresh += strcmp(f.text + strlen(want), "1") == 0;
            int u = f.user[1] - '0';
            if (u >= 0 && u < USERS)
                seqs[u][n_seqs[u]++] = f.seq;
        }
    }
    CHECK(fake_world_close(&w) == 0);

    /* nothing answered twice, even late */
    int twice = 0;
    for (int i = 0; i < threads; i++) {
        for (int m = 0; m < messages; m++) {
            twice += h[i].sinks[m]->completed > 1;
            aw_sink_release(&h[i].sinks[m]->super);
        }
        free(h[i].sinks);
    }
    /* with a history, each user's replies are numbered 1..N: none repeated
     * by a new session, none skipped */
    int misnumbered = 0;
    for (int u = 0; db != NULL && u < USERS; u++) {
        qsort(seqs[u], n_seqs[u], sizeof(int64_t), cmp_i64);
        for (size_t k = 0; k < n_seqs[u]; k++)
            misnumbered += seqs[u][k] != (int64_t)k + 1;
    }
    printf("race (%s): %d threads x %d messages, %d sessions made\n", db != NULL ? "history" : "no history",
           threads, messages, fresh);
    if (unanswered || wrong || twice || misnumbered)
        fprintf(stderr, "race: %d unanswered, %d wrong, %d answered twice, %d misnumbered\n", unanswered,
                wrong, twice, misnumbered);
    CHECK(unanswered == 0 && wrong == 0 && twice == 0 && misnumbered == 0);
    /* the race was run: sessions were reaped and made again meanwhile */
    CHECK(fresh > USERS);
    for (int u = 0; u < USERS; u++)
        free(seqs[u]);
    free(h);
    free(t);
}

/* See the usage at the top; "shutdown-race" runs only
 * test_shutdown_while_sessions_are_made (see CMakeLists.txt). */
int main(int argc, char **argv)
{
    int shutdown_race = argc > 1 && strcmp(argv[1], "shutdown-race") == 0;
    int threads = argc > 1 && !shutdown_race ? atoi(argv[1]) : 4;
    int messages = argc > 2 ? atoi(argv[2]) : 2000;
    int with_history = argc > 3 ? atoi(argv[3]) : 3000;
    if (mkdtemp(dir) == NULL)
        return 1;
    bot = aw_bot_new("count");
    aw_bot_on(bot, "message", on_message, NULL);
    if (shutdown_race) {
        for (int round = 0; round < 3; round++) /* each round loses the race only now and then */
            test_shutdown_while_sessions_are_made();
    } else {
        test_create_and_find();
        test_idle_sessions_are_reaped();
        test_shutdown();
        race(threads, messages, NULL);
        char db[300];
        snprintf(db, sizeof(db), "%s/race.db", dir);
        race(threads, with_history, db);
    }
    aw_bot_free(bot);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit(shutdown_race ? "test_registry shutdown-race" : "test_registry");
}
