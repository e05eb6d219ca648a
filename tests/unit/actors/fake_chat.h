/*
 * What the session and registry tests drive real sessions with, in place of
 * the transport: a fake websocket (aw_conn_t) and a fake webhook request
 * (aw_sink_t) that record what the session sends them, and a "world" that
 * wires a real runtime, registry and history actor (over the fault-injecting
 * store of faulty_store.h) the way main.c does. No socket is opened.
 *
 * Sessions call send and complete on worker threads while the test thread
 * reads what they recorded: each fake keeps its record under its own mutex,
 * and the test waits on its condition variable. Header-only, for tests only.
 */
#ifndef AW_TESTS_FAKE_CHAT_H
#define AW_TESTS_FAKE_CHAT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <yajl/yajl_tree.h>
#include "actors/conn.h"
#include "actors/history.h"
#include "actors/identity.h"
#include "actors/message.h"
#include "actors/registry.h"
#include "actors/session.h"
#include "runtime/actor.h"
#include "tests/unit/actors/faulty_store.h"

/* The one place the tests build a client message for a session: the channel
 * a reply is labelled with follows from what the message came on. */
static inline aw_inbound_t *fake_inbound(aw_message_t *msg, aw_conn_t *conn, aw_sink_t *sink)
{
    return aw_inbound_new(msg, conn, sink, conn != NULL ? AW_CHANNEL_WEBSOCKET : AW_CHANNEL_WEBHOOK);
}

/* How long a test waits for what should come at once. */
#define FAKE_WAIT_MS 10000

/* --- waiting --- */

/* Waits on `cond` until `deadline` (aw_now_ms); returns 0 once it has passed. */
static inline int fake_wait_until(uv_cond_t *cond, uv_mutex_t *lock, uint64_t deadline)
{
    uint64_t now = aw_now_ms();
    if (now >= deadline)
        return 0;
    (void)uv_cond_timedwait(cond, lock, (deadline - now) * 1000000ULL);
    return 1;
}

/* --- a frame, as a client reads it --- */

typedef struct fake_frame {
    char type[32];
    char text[256];
    char code[32];  /* an error's */
    char token[80]; /* "" when absent */
    char user[64];
    char channel[16];
    char mid[72];  /* an ack's or an error's, "" when absent */
    int duplicate; /* an ack's */
    int64_t seq;   /* -1 when absent */
} fake_frame_t;

static inline void fake_copy_str(yajl_val root, const char *key, char *out, size_t size)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(root, path, yajl_t_string);
    snprintf(out, size, "%s", v != NULL ? YAJL_GET_STRING(v) : "");
}

static inline void fake_frame_parse(const char *json, fake_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->seq = -1;
    yajl_val root = yajl_tree_parse(json, NULL, 0);
    if (root == NULL) {
        snprintf(f->type, sizeof(f->type), "UNPARSABLE");
        return;
    }
    fake_copy_str(root, "type", f->type, sizeof(f->type));
    fake_copy_str(root, "text", f->text, sizeof(f->text));
    fake_copy_str(root, "code", f->code, sizeof(f->code));
    fake_copy_str(root, "token", f->token, sizeof(f->token));
    fake_copy_str(root, "user", f->user, sizeof(f->user));
    fake_copy_str(root, "channel", f->channel, sizeof(f->channel));
    fake_copy_str(root, "mid", f->mid, sizeof(f->mid));
    const char *dup[] = {"duplicate", NULL};
    f->duplicate = yajl_tree_get(root, dup, yajl_t_true) != NULL;
    const char *seq[] = {"seq", NULL};
    yajl_val v = yajl_tree_get(root, seq, yajl_t_number);
    if (v != NULL && YAJL_IS_INTEGER(v))
        f->seq = YAJL_GET_INTEGER(v);
    yajl_tree_free(root);
}

/* --- a websocket --- */

typedef struct fake_conn {
    aw_conn_t super;
    uv_mutex_t lock;
    uv_cond_t cond;
    char **frames; /* copies of what was sent, in order; guarded by lock */
    size_t n, cap;
    int closed; /* the close code, 0 while open; guarded by lock */
} fake_conn_t;

static inline void fake_conn_send(aw_conn_t *conn, aw_buf_t *frame)
{
    fake_conn_t *c = (fake_conn_t *)conn;
    uv_mutex_lock(&c->lock);
    if (c->n == c->cap) {
        c->cap = c->cap != 0 ? 2 * c->cap : 16;
        c->frames = aw_realloc(c->frames, c->cap * sizeof(*c->frames));
    }
    c->frames[c->n++] = aw_strndup(frame->data, frame->len);
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->lock);
}

static inline void fake_conn_close(aw_conn_t *conn, int code)
{
    fake_conn_t *c = (fake_conn_t *)conn;
    uv_mutex_lock(&c->lock);
    c->closed = code;
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->lock);
}

static inline void fake_conn_dispose(aw_conn_t *conn)
{
    fake_conn_t *c = (fake_conn_t *)conn;
    for (size_t i = 0; i < c->n; i++)
        free(c->frames[i]);
    free(c->frames);
    uv_cond_destroy(&c->cond);
    uv_mutex_destroy(&c->lock);
    free(c);
}

/* A new open connection with one reference, the test's. */
static inline fake_conn_t *fake_conn_new(void)
{
    static uint64_t ids; /* atomic */
    fake_conn_t *c = aw_calloc(1, sizeof(*c));
    c->super.refcnt = 1;
    c->super.id = __atomic_add_fetch(&ids, 1, __ATOMIC_RELAXED);
    c->super.send = fake_conn_send;
    c->super.close = fake_conn_close;
    c->super.dispose = fake_conn_dispose;
    uv_mutex_init(&c->lock);
    uv_cond_init(&c->cond);
    return c;
}

/* The number of frames sent to `c` so far. */
static inline size_t fake_conn_count(fake_conn_t *c)
{
    uv_mutex_lock(&c->lock);
    size_t n = c->n;
    uv_mutex_unlock(&c->lock);
    return n;
}

/* Waits until `c` has been sent at least `n` frames, or `ms` have passed;
 * returns how many it has. */
static inline size_t fake_conn_wait(fake_conn_t *c, size_t n, unsigned int ms)
{
    uint64_t deadline = aw_now_ms() + ms;
    uv_mutex_lock(&c->lock);
    while (c->n < n && fake_wait_until(&c->cond, &c->lock, deadline))
        ;
    size_t got = c->n;
    uv_mutex_unlock(&c->lock);
    return got;
}

/* Frame `i` sent to `c`, parsed; returns 0 when there is no such frame
 * (`f` then has type ""). */
static inline int fake_conn_frame(fake_conn_t *c, size_t i, fake_frame_t *f)
{
    char *json = NULL;
    uv_mutex_lock(&c->lock);
    if (i < c->n)
        json = strdup(c->frames[i]);
    uv_mutex_unlock(&c->lock);
    if (json == NULL) {
        memset(f, 0, sizeof(*f));
        f->seq = -1;
        return 0;
    }
    fake_frame_parse(json, f);
    free(json);
    return 1;
}

/* Prints every frame `c` got, for a failing check. */
static inline void fake_conn_dump(fake_conn_t *c, const char *name)
{
    uv_mutex_lock(&c->lock);
    fprintf(stderr, "frames of %s:\n", name);
    for (size_t i = 0; i < c->n; i++)
        fprintf(stderr, "  %zu: %s\n", i, c->frames[i]);
    uv_mutex_unlock(&c->lock);
}

/* --- a webhook request --- */

typedef struct fake_sink {
    aw_sink_t super;
    uv_mutex_t lock;
    uv_cond_t cond;
    int completed; /* times complete was called; guarded by lock */
    int err;
    char **frames; /* copies of the answer's frames */
    size_t n;
    char token[AW_TOKEN_LEN + 1]; /* super.token as complete found it */
    char ack[72];                 /* super.ack as complete found it */
} fake_sink_t;

static inline void fake_sink_complete(aw_sink_t *sink, aw_buf_t *const *frames, size_t n, int err)
{
    fake_sink_t *s = (fake_sink_t *)sink;
    uv_mutex_lock(&s->lock);
    if (s->completed++ == 0) {
        s->err = err;
        s->frames = aw_calloc(n != 0 ? n : 1, sizeof(*s->frames));
        for (size_t i = 0; i < n; i++)
            s->frames[i] = aw_strndup(frames[i]->data, frames[i]->len);
        s->n = n;
        memcpy(s->token, s->super.token, sizeof(s->token));
        memcpy(s->ack, s->super.ack, sizeof(s->super.ack));
    }
    uv_cond_broadcast(&s->cond);
    uv_mutex_unlock(&s->lock);
}

static inline void fake_sink_dispose(aw_sink_t *sink)
{
    fake_sink_t *s = (fake_sink_t *)sink;
    for (size_t i = 0; i < s->n; i++)
        free(s->frames[i]);
    free(s->frames);
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->lock);
    free(s);
}

/* A new request waiting for its answer (`mode`: AW_SINK_FIRST or
 * AW_SINK_ALL), with one reference, the test's. */
static inline fake_sink_t *fake_sink_new(int mode)
{
    fake_sink_t *s = aw_calloc(1, sizeof(*s));
    s->super.refcnt = 1;
    s->super.mode = mode;
    s->super.complete = fake_sink_complete;
    s->super.dispose = fake_sink_dispose;
    uv_mutex_init(&s->lock);
    uv_cond_init(&s->cond);
    return s;
}

/* Waits until `s` is answered or `ms` have passed; returns the times it was. */
static inline int fake_sink_wait(fake_sink_t *s, unsigned int ms)
{
    uint64_t deadline = aw_now_ms() + ms;
    uv_mutex_lock(&s->lock);
    while (s->completed == 0 && fake_wait_until(&s->cond, &s->lock, deadline))
        ;
    int n = s->completed;
    uv_mutex_unlock(&s->lock);
    return n;
}

/* Answer frame `i` of a completed `s`, parsed; 0 when there is none. */
static inline int fake_sink_frame(fake_sink_t *s, size_t i, fake_frame_t *f)
{
    uv_mutex_lock(&s->lock);
    int ok = s->completed != 0 && i < s->n;
    if (ok)
        fake_frame_parse(s->frames[i], f);
    uv_mutex_unlock(&s->lock);
    if (!ok) {
        memset(f, 0, sizeof(*f));
        f->seq = -1;
    }
    return ok;
}

/* --- a server without its transport --- */

static const unsigned char fake_secret[] = "the secret of the tests";
#define FAKE_SECRET_LEN (sizeof(fake_secret) - 1)

typedef struct fake_world {
    aw_runtime_t *rt;
    aw_registry_t *reg;
    aw_history_t *history; /* NULL without a store */
    faulty_t *store;       /* the history's store, for the test to fail on demand */
    aw_chat_config_t cfg;
} fake_world_t;

/* Starts a runtime of two workers, a history over the SQLite file `db` (NULL:
 * no history) behind a faulty store, and a registry whose sessions run `bot`
 * with `cfg` (bot, secret and history are filled in here). */
static inline void fake_world_open(fake_world_t *w, const char *db, const aw_bot_t *bot,
                                   const aw_chat_config_t *cfg)
{
    memset(w, 0, sizeof(*w));
    aw_runtime_config_t rc = {.workers = 2};
    if (aw_runtime_create(&w->rt, &rc) != 0) {
        fprintf(stderr, "cannot start the runtime\n");
        exit(1);
    }
    if (db != NULL) {
        char uri[512];
        snprintf(uri, sizeof(uri), "sqlite:%s", db);
        w->store = faulty_open(uri, 0);
        aw_history_config_t hc = {.batch = 64, .flush_ms = 1};
        w->history = aw_history_start(&w->store->super, &hc);
    }
    w->cfg = *cfg;
    w->cfg.bot = bot;
    w->cfg.secret = fake_secret;
    w->cfg.secret_len = FAKE_SECRET_LEN;
    w->cfg.history = w->history;
    w->reg = aw_registry_create(w->rt, &w->cfg);
}

/* Stops everything in the order main.c does; returns the records the
 * history lost. The fakes the test still holds stay valid. */
static inline size_t fake_world_close(fake_world_t *w)
{
    size_t lost = 0;
    aw_registry_shutdown(w->reg);
    aw_runtime_stop(w->rt, 1);
    if (w->history != NULL)
        lost = aw_history_stop(w->history, 2000);
    aw_registry_destroy(w->reg);
    aw_runtime_destroy(w->rt);
    return lost;
}

/* The token of `user` under the tests' secret. */
static inline void fake_token(const char *user, char out[AW_TOKEN_LEN + 1])
{
    aw_identity_token(fake_secret, FAKE_SECRET_LEN, user, strlen(user), out);
}

/* Sends the client message `json` as if it came on `conn` or in the
 * webhook request `sink`, through the registry as the transport does.
 * Returns what aw_registry_send returned. */
static inline int fake_send(fake_world_t *w, fake_conn_t *conn, fake_sink_t *sink, const char *json)
{
    aw_message_t msg;
    if (aw_message_parse(&msg, json, strlen(json)) != 0) {
        fprintf(stderr, "the test's message does not parse: %s\n", json);
        exit(1);
    }
    aw_inbound_t *in =
        fake_inbound(&msg, conn != NULL ? &conn->super : NULL, sink != NULL ? &sink->super : NULL);
    int err = aw_registry_send(w->reg, in->msg.user, in->msg.user_len, &in->super, 1);
    if (err != 0)
        aw_msg_release(&in->super);
    return err;
}

/* Tells the session of `user` that `conn` has closed, as the transport does. */
static inline int fake_detach(fake_world_t *w, const char *user, fake_conn_t *conn)
{
    aw_msg_t *m = aw_detach_new(&conn->super);
    int err = aw_registry_send(w->reg, user, strlen(user), m, 0);
    if (err != 0)
        aw_msg_release(m);
    return err;
}

/* Waits until the registry holds `n` sessions, or `ms` have passed;
 * returns whether it does. */
static inline int fake_wait_sessions(fake_world_t *w, size_t n, unsigned int ms)
{
    uint64_t deadline = aw_now_ms() + ms;
    while (aw_registry_count(w->reg) != n && aw_now_ms() < deadline)
        uv_sleep(2);
    return aw_registry_count(w->reg) == n;
}

#endif
