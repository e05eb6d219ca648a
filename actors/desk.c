/*
 * The operators' desk (desk.h): an array of the conversations that are not
 * with the bot and an array of open consoles, under one mutex. Both stay
 * small (the people waiting for a person, the operators on duty), so a
 * change rewrites the whole list and sends it to every console: one frame,
 * shared by all of them.
 */
#include "actors/desk.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "actors/internal.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/bytes.h"
#include "store/store.h"

typedef struct entry {
    char *user;
    size_t user_len;
    aw_handoff_t h;
} entry_t;

typedef struct console {
    aw_conn_t *conn;
    char op[AW_OPERATOR_NAME_MAX + 1];
} console_t;

struct aw_desk {
    pthread_mutex_t lock;
    entry_t *entries;
    size_t n_entries;
    console_t *consoles;
    size_t n_consoles;
    const aw_desk_peers_t *peers; /* atomic: set before the server listens */
    /* While a reload reads the store: the users told meanwhile, whose
     * state the reload must not overwrite with an older one. */
    int reloading;
    char **told;
    size_t n_told;
};

aw_desk_t *aw_desk_create(void)
{
    aw_desk_t *d = aw_calloc(1, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

void aw_desk_set_peers(aw_desk_t *d, const aw_desk_peers_t *peers)
{
    __atomic_store_n(&d->peers, peers, __ATOMIC_RELEASE);
}

static const aw_desk_peers_t *peers_of(aw_desk_t *d)
{
    return __atomic_load_n(&d->peers, __ATOMIC_ACQUIRE);
}

static void forget_told(aw_desk_t *d)
{
    for (size_t i = 0; i < d->n_told; i++)
        free(d->told[i]);
    free(d->told);
    d->told = NULL;
    d->n_told = 0;
}

void aw_desk_destroy(aw_desk_t *d)
{
    if (d == NULL)
        return;
    forget_told(d);
    for (size_t i = 0; i < d->n_entries; i++)
        free(d->entries[i].user);
    for (size_t i = 0; i < d->n_consoles; i++)
        aw_conn_release(d->consoles[i].conn);
    free(d->entries);
    free(d->consoles);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static entry_t *find(aw_desk_t *d, const char *user, size_t user_len)
{
    for (size_t i = 0; i < d->n_entries; i++)
        if (d->entries[i].user_len == user_len && memcmp(d->entries[i].user, user, user_len) == 0)
            return &d->entries[i];
    return NULL;
}

/* Keeps or forgets one user's state; the lock is held. */
static void put(aw_desk_t *d, const char *user, size_t user_len, const aw_handoff_t *h)
{
    entry_t *e = find(d, user, user_len);
    if (h->state == AW_HANDOFF_BOT) {
        if (e != NULL) {
            free(e->user);
            *e = d->entries[--d->n_entries];
        }
        return;
    }
    if (e == NULL) {
        d->entries = aw_realloc(d->entries, (d->n_entries + 1) * sizeof(*d->entries));
        e = &d->entries[d->n_entries++];
        e->user = aw_strndup(user, user_len);
        e->user_len = user_len;
    }
    e->h = *h;
}

static int by_wait(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    return x->h.since_ms < y->h.since_ms ? -1 : x->h.since_ms > y->h.since_ms;
}

/* The list every console shows: {"type":"queue","waiting":[...],"owned":[...]},
 * each oldest first. The lock is held. */
static aw_buf_t *write_queue(aw_desk_t *d)
{
    entry_t **sorted = aw_alloc((d->n_entries + 1) * sizeof(*sorted));
    for (size_t i = 0; i < d->n_entries; i++)
        sorted[i] = &d->entries[i];
    qsort(sorted, d->n_entries, sizeof(*sorted), by_wait);
    jw_t w;
    jw_init(&w, 64 + d->n_entries * 128);
    jw_raw(&w, "{\"type\":\"queue\"", 15);
    for (int pass = 0; pass < 2; pass++) {
        int state = pass == 0 ? AW_HANDOFF_WAITING : AW_HANDOFF_OWNED;
        if (pass == 0)
            JW_KEY(&w, "waiting");
        else
            JW_KEY(&w, "owned");
        jw_char(&w, '[');
        int first = 1;
        for (size_t i = 0; i < d->n_entries; i++) {
            const entry_t *e = sorted[i];
            if (e->h.state != state)
                continue;
            if (!first)
                jw_char(&w, ',');
            first = 0;
            jw_raw(&w, "{\"user\":", 8);
            jw_str(&w, e->user, e->user_len);
            JW_KEY(&w, "reason");
            jw_cstr(&w, e->h.reason);
            JW_KEY(&w, "since");
            jw_int(&w, e->h.since_ms);
            if (state == AW_HANDOFF_OWNED) {
                JW_KEY(&w, "operator");
                jw_cstr(&w, e->h.operator_name);
                JW_KEY(&w, "owned");
                jw_int(&w, e->h.owned_ms);
            }
            jw_char(&w, '}');
        }
        jw_char(&w, ']');
    }
    JW_KEY(&w, "now");
    jw_int(&w, (int64_t)aw_wall_ms());
    jw_char(&w, '}');
    free(sorted);
    return jw_finish(&w);
}

/* Keeps one user's state and sends every console the new list. */
static void set(aw_desk_t *d, const char *user, size_t user_len, const aw_handoff_t *h)
{
    pthread_mutex_lock(&d->lock);
    put(d, user, user_len, h);
    if (d->reloading) {
        d->told = aw_realloc(d->told, (d->n_told + 1) * sizeof(*d->told));
        d->told[d->n_told++] = aw_strndup(user, user_len);
    }
    aw_buf_t *f = write_queue(d);
    for (size_t i = 0; i < d->n_consoles; i++)
        d->consoles[i].conn->send(d->consoles[i].conn, f);
    pthread_mutex_unlock(&d->lock);
    aw_buf_release(f);
}

void aw_desk_set(aw_desk_t *d, const char *user, size_t user_len, const aw_handoff_t *h)
{
    set(d, user, user_len, h);
    const aw_desk_peers_t *p = peers_of(d);
    if (p != NULL)
        p->changed(p->data, user, user_len, h);
}

void aw_desk_apply(aw_desk_t *d, const char *user, size_t user_len, const aw_handoff_t *h)
{
    set(d, user, user_len, h);
}

int aw_desk_get(aw_desk_t *d, const char *user, size_t user_len, aw_handoff_t *h)
{
    pthread_mutex_lock(&d->lock);
    entry_t *e = find(d, user, user_len);
    if (e != NULL)
        *h = e->h;
    pthread_mutex_unlock(&d->lock);
    return e != NULL;
}

static int online(aw_desk_t *d, const char *op);

/* The operators here changed: the other nodes hear it. */
static void presence_changed(aw_desk_t *d)
{
    const aw_desk_peers_t *p = peers_of(d);
    if (p != NULL)
        p->presence(p->data);
}

void aw_desk_join(aw_desk_t *d, aw_conn_t *conn, const char *op)
{
    pthread_mutex_lock(&d->lock);
    int first = !online(d, op);
    d->consoles = aw_realloc(d->consoles, (d->n_consoles + 1) * sizeof(*d->consoles));
    console_t *c = &d->consoles[d->n_consoles++];
    c->conn = aw_conn_retain(conn);
    snprintf(c->op, sizeof(c->op), "%s", op);
    aw_buf_t *f = write_queue(d);
    conn->send(conn, f);
    pthread_mutex_unlock(&d->lock);
    aw_buf_release(f);
    if (first)
        presence_changed(d);
}

static int online(aw_desk_t *d, const char *op)
{
    for (size_t i = 0; i < d->n_consoles; i++)
        if (strcmp(d->consoles[i].op, op) == 0)
            return 1;
    return 0;
}

static char **owned_by(aw_desk_t *d, const char *op, char ***owners)
{
    char **users = NULL;
    size_t n = 0;
    if (owners != NULL)
        *owners = NULL;
    for (size_t i = 0; i < d->n_entries; i++) {
        const entry_t *e = &d->entries[i];
        if (e->h.state == AW_HANDOFF_OWNED && (op == NULL || strcmp(e->h.operator_name, op) == 0)) {
            users = aw_realloc(users, (n + 2) * sizeof(*users));
            users[n] = aw_strndup(e->user, e->user_len);
            users[n + 1] = NULL;
            if (owners != NULL) {
                *owners = aw_realloc(*owners, (n + 2) * sizeof(**owners));
                (*owners)[n] = aw_strndup(e->h.operator_name, strlen(e->h.operator_name));
                (*owners)[n + 1] = NULL;
            }
            n++;
        }
    }
    return users;
}

char **aw_desk_leave(aw_desk_t *d, aw_conn_t *conn, int *last)
{
    char op[AW_OPERATOR_NAME_MAX + 1] = "";
    char **users = NULL;
    aw_conn_t *gone = NULL;
    *last = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_consoles; i++) {
        if (d->consoles[i].conn == conn) {
            gone = conn;
            memcpy(op, d->consoles[i].op, sizeof(op));
            d->consoles[i] = d->consoles[--d->n_consoles];
            break;
        }
    }
    if (gone != NULL && !online(d, op)) {
        *last = 1;
        users = owned_by(d, op, NULL);
    }
    pthread_mutex_unlock(&d->lock);
    aw_conn_release(gone);
    if (*last)
        presence_changed(d);
    return users;
}

int aw_desk_online(aw_desk_t *d, const char *op)
{
    pthread_mutex_lock(&d->lock);
    int on = online(d, op);
    pthread_mutex_unlock(&d->lock);
    /* not under the desk's lock: the cluster takes its own (desk.h) */
    const aw_desk_peers_t *p = peers_of(d);
    return on || (p != NULL && p->online(p->data, op));
}

char **aw_desk_owned_by(aw_desk_t *d, const char *op, char ***owners)
{
    pthread_mutex_lock(&d->lock);
    char **users = owned_by(d, op, owners);
    pthread_mutex_unlock(&d->lock);
    return users;
}

char *aw_desk_operators(aw_desk_t *d)
{
    aw_bytes_t out;
    aw_bytes_init(&out, 64);
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_consoles; i++) {
        size_t j = 0;
        while (j < i && strcmp(d->consoles[j].op, d->consoles[i].op) != 0)
            j++;
        if (j == i) {
            aw_bytes_append(&out, d->consoles[i].op, strlen(d->consoles[i].op));
            aw_bytes_append(&out, "\n", 1);
        }
    }
    pthread_mutex_unlock(&d->lock);
    aw_buf_t *b = aw_bytes_finish(&out);
    char *s = aw_strndup(b->data, b->len);
    aw_buf_release(b);
    return s;
}

void aw_desk_counts(aw_desk_t *d, uint64_t *waiting, uint64_t *owned)
{
    *waiting = *owned = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_entries; i++) {
        if (d->entries[i].h.state == AW_HANDOFF_WAITING)
            (*waiting)++;
        else if (d->entries[i].h.state == AW_HANDOFF_OWNED)
            (*owned)++;
    }
    pthread_mutex_unlock(&d->lock);
}

void aw_desk_free_list(char **users)
{
    for (size_t i = 0; users != NULL && users[i] != NULL; i++)
        free(users[i]);
    free(users);
}

/* --- loading at start --- */

typedef struct load_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
    aw_desk_t *desk;
} load_wait_t;

static void on_latest(int err, const aw_record_t *recs, size_t n, void *data)
{
    load_wait_t *w = data; /* history thread */
    for (size_t i = 0; err == 0 && i < n; i++) {
        aw_handoff_t h;
        if (aw_handoff_parse(&h, recs[i].json, recs[i].json_len) != 0) {
            aw_log(AW_LOG_WARN, "handoff_record", "a handoff record of user %.*s could not be read: skipped",
                   (int)recs[i].user_len, recs[i].user);
            continue;
        }
        pthread_mutex_lock(&w->desk->lock);
        put(w->desk, recs[i].user, recs[i].user_len, &h);
        pthread_mutex_unlock(&w->desk->lock);
    }
    pthread_mutex_lock(&w->lock);
    w->err = err;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* History thread: a reload's answer. Users told meanwhile keep what they
 * were told; the consoles are sent the list once. */
typedef struct reload {
    aw_desk_t *desk;
    void (*done)(void *arg);
    void *arg;
} reload_t;

static void on_reloaded(int err, const aw_record_t *recs, size_t n, void *data)
{
    reload_t *r = data;
    aw_desk_t *d = r->desk;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; err == 0 && i < n; i++) {
        aw_handoff_t h;
        size_t t = 0;
        while (t < d->n_told &&
               (strlen(d->told[t]) != recs[i].user_len || memcmp(d->told[t], recs[i].user, recs[i].user_len)))
            t++;
        if (t == d->n_told && aw_handoff_parse(&h, recs[i].json, recs[i].json_len) == 0)
            put(d, recs[i].user, recs[i].user_len, &h);
    }
    if (--d->reloading == 0)
        forget_told(d);
    aw_buf_t *f = write_queue(d);
    for (size_t i = 0; i < d->n_consoles; i++)
        d->consoles[i].conn->send(d->consoles[i].conn, f);
    pthread_mutex_unlock(&d->lock);
    aw_buf_release(f);
    if (err != 0)
        aw_log(AW_LOG_WARN, "handoff_load",
               "the conversations waiting for a person could not be read again (%s)", aw_strerror(err));
    if (r->done != NULL)
        r->done(r->arg);
    free(r);
}

int aw_desk_reload(aw_desk_t *d, aw_history_t *history, void (*done)(void *arg), void *arg)
{
    pthread_mutex_lock(&d->lock);
    d->reloading++;
    pthread_mutex_unlock(&d->lock);
    reload_t *r = aw_alloc(sizeof(*r));
    *r = (reload_t){d, done, arg};
    int err = aw_history_latest(history, AW_RECORD_HANDOFF, on_reloaded, r);
    if (err != 0) {
        free(r);
        pthread_mutex_lock(&d->lock);
        if (--d->reloading == 0)
            forget_told(d);
        pthread_mutex_unlock(&d->lock);
    }
    return err;
}

int aw_desk_load(aw_desk_t *desk, aw_history_t *history)
{
    load_wait_t w = {.desk = desk};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    int err = aw_history_latest(history, AW_RECORD_HANDOFF, on_latest, &w);
    if (err == 0) {
        /* the history answers every read, within the store's timeout */
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        err = w.err;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    uint64_t waiting, owned;
    aw_desk_counts(desk, &waiting, &owned);
    if (err != 0)
        aw_log(AW_LOG_WARN, "handoff_load",
               "the conversations waiting for a person could not be read from the store (%s)",
               aw_strerror(err));
    else if (waiting + owned != 0)
        aw_log(AW_LOG_INFO, "handoff_load", "%llu conversation(s) wait for a person, %llu owned by one",
               (unsigned long long)waiting, (unsigned long long)owned);
    return err;
}
