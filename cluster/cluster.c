/*
 * The cluster (cluster.h). Three parts:
 *
 * - Membership. Every node publishes a heartbeat on `<name>.members` every
 *   heartbeat_ms; a member not heard from for dead_ms is dead, one that says
 *   it leaves stops taking users at once, one that says it is gone is
 *   forgotten. A node declares no one dead while it is itself cut off from
 *   NATS (or has just come back): it cannot tell then who is alive.
 * - Homes. A user's home is the live member with the highest hash of (its
 *   id, the user id): rendezvous hashing, so a join or a leave moves only
 *   the users of the member that came or went. When the view changes, the
 *   sessions here whose user lives elsewhere now are let go
 *   (aw_registry_move_away) and the sockets here attached to a session
 *   elsewhere whose home changed are closed with 1012: their clients
 *   reconnect, with last_seq, and reach the new home.
 * - Forwarding. Each node subscribes to `<name>.node.<id>`, where everything
 *   addressed to it arrives in order per sender. A client message whose
 *   home is elsewhere goes there with the ids of its socket and request;
 *   the home makes a remote connection (per socket) and a remote sink (per
 *   request) that send frames and answers back. The sending side keeps, per
 *   socket, which home it is attached to, and per request, what waits for
 *   the answer; each answer must come from the node it was sent to.
 *
 * Locks: `view_lock` (a rwlock) guards the members and the view; `tab_lock`
 * guards the tables of sockets, requests and remote connections. When both
 * are held, view_lock is taken first. Nothing is published under either.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <nats/nats.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "actors/json.h"
#include "actors/reply.h"
#include "actors/session.h"
#include "cluster/wire.h"
#include "runtime/bytes.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define MAX_MEMBERS 256
#define SUBJECT_MAX 160
/* Bytes of the names of the operators with a console open on a member, as
 * its heartbeat says: about 60 operators of 64 bytes, more of shorter names. */
#define OPS_MAX 4096
/* How long after a change of the view a new session waits for the user's
 * previous home to let go (see fence); and for how long at most. */
#define FENCE_WINDOW_MS 60000
#define FENCE_TIMEOUT_MS 10000
/* This node's state before it takes users: it listens to the heartbeats for
 * a while first (see join_when_ready), so that it knows every member before
 * any member sends it a user. Never published. */
#define STATE_JOINING 0

typedef struct member {
    char id[AW_WIRE_MAX_NODE + 1];
    uint64_t hid; /* hash of the id */
    uint64_t inc;
    uint64_t seen_ms;
    int state; /* AW_WIRE_UP or AW_WIRE_LEAVING */
    char host[AW_WIRE_MAX_NODE + 1];
    char store[16];
    int warned;        /* the SQLite-on-two-hosts warning was logged */
    char ops[OPS_MAX]; /* "\n", then each operator with a console open there and "\n" */
} member_t;

/* Chained hash tables keyed by 64 bits. */
typedef struct hent {
    struct hent *next;
    uint64_t key;
} hent_t;

typedef struct htab {
    hent_t **b;
    size_t n_b; /* a power of two */
    size_t count;
} htab_t;

/* A socket of this node attached to a session on another node; or a
 * console of this node as it speaks to the session of one user elsewhere
 * (out_console_t, in its own table): the frames that session sends come
 * back here. */
typedef struct out_conn {
    hent_t h; /* key: the socket's id; a console's: see console_key */
    aw_conn_t *conn;
    char home[AW_WIRE_MAX_NODE + 1];
    char *user;
    size_t user_len;
} out_conn_t;

typedef out_conn_t out_console_t;

/* A request of this node waiting for another node's answer. */
typedef struct out_req {
    hent_t h;                   /* key: the request's id */
    aw_sink_t *sink;            /* a turn or a push, or NULL */
    aw_history_page_cb on_page; /* a history read, or NULL */
    void *page_data;
    void (*on_fence)(void *arg); /* a release (see aw_cluster_fence), or NULL */
    void *fence_arg;
    char home[AW_WIRE_MAX_NODE + 1];
    uint64_t deadline_ms;
} out_req_t;

/* A socket of another node, as the session here sees it. */
typedef struct remote_conn {
    aw_conn_t super;
    hent_t h; /* key: see proxy_key */
    aw_cluster_t *cl;
    char node[AW_WIRE_MAX_NODE + 1];
    uint64_t inc;
    uint64_t origin_id;
    char *user;
    size_t user_len;
    int console; /* an operator's console, one per (console, user); else a user's socket */
} remote_conn_t;

/* A request of another node, as the session here sees it. */
typedef struct remote_sink {
    aw_sink_t super;
    aw_cluster_t *cl;
    char node[AW_WIRE_MAX_NODE + 1];
    uint64_t req_id;
    int done; /* atomic */
} remote_sink_t;

/* A history read another node asked for. */
typedef struct remote_read {
    aw_cluster_t *cl;
    char node[AW_WIRE_MAX_NODE + 1];
    uint64_t req_id;
} remote_read_t;

struct aw_cluster {
    aw_cluster_config_t cfg;
    char name[AW_WIRE_MAX_NODE + 1];
    char self_subject[SUBJECT_MAX];
    char members_subject[SUBJECT_MAX];
    char desk_subject[SUBJECT_MAX];
    unsigned char key[AW_WIRE_KEY_LEN];
    char host[AW_WIRE_MAX_NODE + 1];
    unsigned int heartbeat_ms, dead_ms, request_ms;

    natsOptions *opts;
    natsConnection *nc;
    natsSubscription *sub_members, *sub_self, *sub_desk;
    aw_desk_peers_t peers; /* what the desk calls (cfg.desk) */

    pthread_rwlock_t view_lock;
    member_t members[MAX_MEMBERS]; /* [0] is this node */
    size_t n_members;
    int connected;            /* atomic */
    uint64_t connected_since; /* under view_lock */
    uint64_t changed_ms;      /* when the view last changed; under view_lock */
    char server[128];         /* the NATS server connected to last; under view_lock */

    pthread_mutex_t tab_lock;
    htab_t out_conns, out_reqs, remotes, out_consoles;
    uint64_t next_req; /* under tab_lock */

    pthread_t beat;
    pthread_mutex_t beat_lock;
    pthread_cond_t beat_cond;
    int stopping; /* under beat_lock */
    int closing;  /* atomic: aw_cluster_stop closes the NATS connection */

    aw_cluster_stats_t stats; /* counters: atomic */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define COUNT(cl, field) __atomic_add_fetch(&(cl)->stats.field, 1, __ATOMIC_RELAXED)

/* --- hashing --- */

/* 64-bit FNV-1a from `h` (FNV's offset basis to start). */
static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The finaliser of MurmurHash3: every bit of the input moves every bit out. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_id(const char *id)
{
    return mix(fnv(id, strlen(id), 14695981039346656037ULL));
}

/* --- hash tables --- */

static void ht_init(htab_t *t)
{
    t->n_b = 64;
    t->b = aw_calloc(t->n_b, sizeof(*t->b));
    t->count = 0;
}

static void ht_put(htab_t *t, hent_t *e)
{
    if (t->count >= t->n_b * 2) {
        size_t n = t->n_b * 2;
        hent_t **b = aw_calloc(n, sizeof(*b));
        for (size_t i = 0; i < t->n_b; i++) {
            while (t->b[i] != NULL) {
                hent_t *x = t->b[i];
                t->b[i] = x->next;
                x->next = b[mix(x->key) & (n - 1)];
                b[mix(x->key) & (n - 1)] = x;
            }
        }
        free(t->b);
        t->b = b;
        t->n_b = n;
    }
    hent_t **slot = &t->b[mix(e->key) & (t->n_b - 1)];
    e->next = *slot;
    *slot = e;
    t->count++;
}

static hent_t **ht_slot(htab_t *t, uint64_t key, int (*eq)(const hent_t *, const void *), const void *ctx)
{
    hent_t **p = &t->b[mix(key) & (t->n_b - 1)];
    while (*p != NULL && !((*p)->key == key && (eq == NULL || eq(*p, ctx))))
        p = &(*p)->next;
    return p;
}

static hent_t *ht_get(htab_t *t, uint64_t key, int (*eq)(const hent_t *, const void *), const void *ctx)
{
    return *ht_slot(t, key, eq, ctx);
}

static hent_t *ht_take(htab_t *t, uint64_t key, int (*eq)(const hent_t *, const void *), const void *ctx)
{
    hent_t **p = ht_slot(t, key, eq, ctx), *e = *p;
    if (e != NULL) {
        *p = e->next;
        t->count--;
    }
    return e;
}

/* Takes every entry for which `pick` says yes out of the table, into a list. */
static hent_t *ht_take_if(htab_t *t, int (*pick)(const hent_t *, const void *), const void *ctx)
{
    hent_t *list = NULL;
    for (size_t i = 0; i < t->n_b; i++) {
        hent_t **p = &t->b[i];
        while (*p != NULL) {
            hent_t *e = *p;
            if (pick == NULL || pick(e, ctx)) {
                *p = e->next;
                t->count--;
                e->next = list;
                list = e;
            } else {
                p = &e->next;
            }
        }
    }
    return list;
}

#define ENTRY_OF(type, e) ((type *)((char *)(e)-offsetof(type, h)))

/* --- members and homes --- */

/* The member of `id` (view_lock held), or NULL. */
static member_t *member_of(aw_cluster_t *cl, const char *id)
{
    for (size_t i = 0; i < cl->n_members; i++)
        if (strcmp(cl->members[i].id, id) == 0)
            return &cl->members[i];
    return NULL;
}

/* The home of `user` in the view (view_lock held): the index of a member. */
static size_t home_index(aw_cluster_t *cl, const char *user, size_t user_len)
{
    uint64_t uh = fnv(user, user_len, 14695981039346656037ULL), best = 0;
    size_t at = 0;
    int found = 0;
    for (size_t i = 0; i < cl->n_members; i++) {
        if (cl->members[i].state != AW_WIRE_UP)
            continue;
        uint64_t score = mix(uh ^ cl->members[i].hid);
        if (!found || score > best) {
            best = score;
            at = i;
            found = 1;
        }
    }
    /* nobody takes users (this node leaves, alone): it keeps its own */
    return found ? at : 0;
}

static int stays_here(void *data, const char *user, size_t user_len)
{
    return home_index(data, user, user_len) == 0;
}

int aw_cluster_is_home(aw_cluster_t *cl, const char *user, size_t user_len)
{
    pthread_rwlock_rdlock(&cl->view_lock);
    int here = home_index(cl, user, user_len) == 0;
    pthread_rwlock_unlock(&cl->view_lock);
    return here;
}

const char *aw_cluster_node_id(const aw_cluster_t *cl)
{
    return cl->members[0].id;
}

/* --- publishing --- */

static int publish_to(aw_cluster_t *cl, const char *subject, const char *kind, int64_t a, int64_t b,
                      int64_t c, const char *user, size_t user_len, const void *body, size_t body_len)
{
    if (!__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE))
        return AW_EUNAVAILABLE;
    aw_bytes_t out;
    aw_bytes_init(&out, AW_WIRE_MAC_LEN + 128 + user_len + body_len);
    aw_wire_build(&out, cl->key, subject, kind, cl->members[0].id, cl->members[0].inc, a, b, c, user,
                  user_len, body, body_len);
    aw_buf_t *msg = aw_bytes_finish(&out);
    natsStatus s = natsConnection_Publish(cl->nc, subject, msg->data, (int)msg->len);
    aw_buf_release(msg);
    return s == NATS_OK ? 0 : AW_EUNAVAILABLE;
}

static int publish(aw_cluster_t *cl, const char *node, const char *kind, int64_t a, int64_t b, int64_t c,
                   const char *user, size_t user_len, const void *body, size_t body_len)
{
    char subject[SUBJECT_MAX];
    snprintf(subject, sizeof(subject), "%s.node.%s", cl->name, node);
    return publish_to(cl, subject, kind, a, b, c, user, user_len, body, body_len);
}

/* --- the remote connection and sink (the home's side) --- */

static uint64_t proxy_key(const char *node, uint64_t inc, uint64_t id)
{
    return mix(hash_id(node) ^ mix(inc) ^ id);
}

/* A console's proxy: one per user it speaks to. */
static uint64_t console_proxy_key(const char *node, uint64_t inc, uint64_t id, const char *user,
                                  size_t user_len)
{
    return mix(proxy_key(node, inc, id) ^ fnv(user, user_len, 14695981039346656037ULL));
}

typedef struct proxy_id {
    const char *node;
    uint64_t inc, id;
    int console;
    const char *user; /* a console's: the user */
    size_t user_len;
} proxy_id_t;

static int proxy_eq(const hent_t *e, const void *ctx)
{
    const remote_conn_t *r = ENTRY_OF(remote_conn_t, e);
    const proxy_id_t *p = ctx;
    return r->origin_id == p->id && r->inc == p->inc && r->console == p->console &&
           strcmp(r->node, p->node) == 0 &&
           (!p->console || (r->user_len == p->user_len && memcmp(r->user, p->user, p->user_len) == 0));
}

static void remote_send(aw_conn_t *conn, aw_buf_t *frame)
{
    remote_conn_t *r = (remote_conn_t *)conn;
    if (__atomic_load_n(&conn->closed, __ATOMIC_ACQUIRE))
        return;
    if (r->console)
        publish(r->cl, r->node, AW_WIRE_FRAME, (int64_t)r->origin_id, 0, 1, r->user, r->user_len, frame->data,
                frame->len);
    else
        publish(r->cl, r->node, AW_WIRE_FRAME, (int64_t)r->origin_id, 0, 0, NULL, 0, frame->data, frame->len);
}

static void remote_close(aw_conn_t *conn, int code)
{
    remote_conn_t *r = (remote_conn_t *)conn;
    /* a session closes its user's sockets, never a console (it is told
     * "moved" instead) */
    if (__atomic_load_n(&conn->closed, __ATOMIC_ACQUIRE) || r->console)
        return;
    publish(r->cl, r->node, AW_WIRE_CLOSE, (int64_t)r->origin_id, code, 0, NULL, 0, NULL, 0);
}

static void remote_conn_dispose(aw_conn_t *conn)
{
    remote_conn_t *r = (remote_conn_t *)conn;
    free(r->user);
    free(r);
}

/* Detaches a remote connection taken out of the table: the session hears
 * that its socket has gone. */
static void retire_remote(aw_cluster_t *cl, remote_conn_t *r)
{
    __atomic_store_n(&r->super.closed, 1, __ATOMIC_RELEASE);
    aw_msg_t *m = aw_detach_new(&r->super);
    if (aw_registry_send_here(cl->cfg.registry, r->user, r->user_len, m, 0) != 0)
        aw_msg_release(m);
    aw_conn_release(&r->super); /* the table's */
}

static void remote_complete(aw_sink_t *sink, aw_buf_t *const *frames, size_t n, int err)
{
    remote_sink_t *r = (remote_sink_t *)sink;
    if (__atomic_exchange_n(&r->done, 1, __ATOMIC_ACQ_REL))
        return;
    aw_bytes_t body;
    aw_bytes_init(&body, 256);
    aw_wire_put_item(&body, sink->token, strlen(sink->token));
    aw_wire_put_item(&body, sink->ack, strlen(sink->ack));
    for (size_t i = 0; i < n; i++)
        aw_wire_put_item(&body, frames[i]->data, frames[i]->len);
    aw_buf_t *b = aw_bytes_finish(&body);
    publish(r->cl, r->node, AW_WIRE_DONE, (int64_t)r->req_id, err, (int64_t)n, NULL, 0, b->data, b->len);
    aw_buf_release(b);
}

static void remote_sink_dispose(aw_sink_t *sink)
{
    free(sink);
}

/* A remote sink that tells the node of `m` it is done when completed. */
static aw_sink_t *remote_sink_new(aw_cluster_t *cl, const aw_wire_msg_t *m, int mode)
{
    remote_sink_t *r = aw_calloc(1, sizeof(*r));
    r->super.refcnt = 1;
    r->super.mode = mode;
    r->super.complete = remote_complete;
    r->super.dispose = remote_sink_dispose;
    r->cl = cl;
    snprintf(r->node, sizeof(r->node), "%s", m->node);
    r->req_id = (uint64_t)m->b;
    return &r->super;
}

/* A new proxy for socket or console `id` of the sender of `m`, put in the
 * table (tab_lock held) with a reference for it and one for the caller. */
static remote_conn_t *remote_conn_new(aw_cluster_t *cl, const aw_wire_msg_t *m, uint64_t id, int console,
                                      uint64_t key)
{
    remote_conn_t *r = aw_calloc(1, sizeof(*r));
    r->super.refcnt = 2;
    r->super.id = id;
    r->super.send = remote_send;
    r->super.close = remote_close;
    r->super.dispose = remote_conn_dispose;
    r->cl = cl;
    snprintf(r->node, sizeof(r->node), "%s", m->node);
    r->inc = m->incarnation;
    r->origin_id = id;
    r->user = aw_strndup(m->user, m->user_len);
    r->user_len = m->user_len;
    r->console = console;
    r->h.key = key;
    ht_put(&cl->remotes, &r->h);
    return r;
}

/* The remote connection for socket `id` of the sender of `m`, made on its
 * first message; one reference for the caller. NULL when that socket spoke
 * for another user before: a node speaks for its sockets' users only. */
static remote_conn_t *remote_conn_get(aw_cluster_t *cl, const aw_wire_msg_t *m, uint64_t id)
{
    proxy_id_t pid = {m->node, m->incarnation, id};
    uint64_t key = proxy_key(m->node, m->incarnation, id);
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_get(&cl->remotes, key, proxy_eq, &pid);
    remote_conn_t *r = NULL;
    if (e != NULL) {
        r = ENTRY_OF(remote_conn_t, e);
        if (r->user_len != m->user_len || memcmp(r->user, m->user, m->user_len) != 0)
            r = NULL;
        else
            aw_conn_retain(&r->super);
    } else {
        r = remote_conn_new(cl, m, id, 0, key);
    }
    pthread_mutex_unlock(&cl->tab_lock);
    return r;
}

/* The proxy of console `id` of the sender of `m` for the user of `m`, made
 * on its first request; one reference for the caller. */
static remote_conn_t *remote_console_get(aw_cluster_t *cl, const aw_wire_msg_t *m, uint64_t id)
{
    proxy_id_t pid = {m->node, m->incarnation, id, 1, m->user, m->user_len};
    uint64_t key = console_proxy_key(m->node, m->incarnation, id, m->user, m->user_len);
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_get(&cl->remotes, key, proxy_eq, &pid);
    remote_conn_t *r = NULL;
    if (e != NULL) {
        r = ENTRY_OF(remote_conn_t, e);
        aw_conn_retain(&r->super);
    } else {
        r = remote_conn_new(cl, m, id, 1, key);
    }
    pthread_mutex_unlock(&cl->tab_lock);
    return r;
}

/* --- the router (the sending side) --- */

static out_conn_t *out_conn_new(uint64_t key, aw_conn_t *conn, const char *home, const char *user,
                                size_t user_len)
{
    out_conn_t *o = aw_calloc(1, sizeof(*o));
    o->h.key = key;
    o->conn = aw_conn_retain(conn);
    snprintf(o->home, sizeof(o->home), "%s", home);
    o->user = aw_strndup(user, user_len);
    o->user_len = user_len;
    return o;
}

static void release_out_conn(out_conn_t *o)
{
    aw_conn_release(o->conn);
    free(o->user);
    free(o);
}

/* A socket here has closed: when it is attached to a session elsewhere, that
 * session hears it. Returns 1 when it was. */
static int route_detach(aw_cluster_t *cl, aw_conn_t *conn)
{
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_take(&cl->out_conns, conn->id, NULL, NULL);
    pthread_mutex_unlock(&cl->tab_lock);
    if (e == NULL)
        return 0;
    out_conn_t *o = ENTRY_OF(out_conn_t, e);
    publish(cl, o->home, AW_WIRE_DETACH, (int64_t)conn->id, 0, 0, o->user, o->user_len, NULL, 0);
    release_out_conn(o);
    return 1;
}

/* Notes that socket `conn` of `user` speaks to a session on `home`. A socket
 * that spoke to another home before is detached from it first. */
static void attach_out(aw_cluster_t *cl, aw_conn_t *conn, const char *home, const char *user, size_t user_len)
{
    char old[AW_WIRE_MAX_NODE + 1] = "";
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_get(&cl->out_conns, conn->id, NULL, NULL);
    if (e != NULL) {
        out_conn_t *o = ENTRY_OF(out_conn_t, e);
        if (strcmp(o->home, home) != 0) {
            snprintf(old, sizeof(old), "%s", o->home);
            snprintf(o->home, sizeof(o->home), "%s", home);
        }
    } else {
        ht_put(&cl->out_conns, &out_conn_new(conn->id, conn, home, user, user_len)->h);
    }
    pthread_mutex_unlock(&cl->tab_lock);
    if (old[0] != '\0')
        publish(cl, old, AW_WIRE_DETACH, (int64_t)conn->id, 0, 0, user, user_len, NULL, 0);
}

static uint64_t add_request(aw_cluster_t *cl, aw_sink_t *sink, aw_history_page_cb on_page, void *data,
                            const char *home)
{
    out_req_t *q = aw_calloc(1, sizeof(*q));
    q->sink = sink != NULL ? aw_sink_retain(sink) : NULL;
    q->on_page = on_page;
    q->page_data = data;
    snprintf(q->home, sizeof(q->home), "%s", home);
    q->deadline_ms = now_ms() + cl->request_ms;
    pthread_mutex_lock(&cl->tab_lock);
    q->h.key = ++cl->next_req;
    ht_put(&cl->out_reqs, &q->h);
    pthread_mutex_unlock(&cl->tab_lock);
    return q->h.key;
}

/* Answers a request nobody else will: `unavailable`. */
static void fail_request(out_req_t *q)
{
    if (q->sink != NULL) {
        q->sink->complete(q->sink, NULL, 0, AW_EUNAVAILABLE);
        aw_sink_release(q->sink);
    }
    if (q->on_page != NULL)
        q->on_page(AW_EUNAVAILABLE, NULL, q->page_data);
    if (q->on_fence != NULL)
        q->on_fence(q->fence_arg); /* the previous home is gone: nothing to wait for */
    free(q);
}

static out_req_t *take_request(aw_cluster_t *cl, uint64_t id)
{
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_take(&cl->out_reqs, id, NULL, NULL);
    pthread_mutex_unlock(&cl->tab_lock);
    return e != NULL ? ENTRY_OF(out_req_t, e) : NULL;
}

/* --- consoles of this node and sessions elsewhere --- */

static uint64_t console_key(uint64_t id, const char *user, size_t user_len)
{
    return mix(id ^ fnv(user, user_len, 14695981039346656037ULL));
}

typedef struct console_pick {
    aw_conn_t *conn; /* NULL: any */
    uint64_t id;     /* the console's id; 0: any */
    const char *node;
    const char *user; /* NULL: any */
    size_t user_len;
} console_pick_t;

static int console_at(const hent_t *e, const void *ctx)
{
    const out_console_t *o = ENTRY_OF(out_console_t, e);
    const console_pick_t *p = ctx;
    return (p->conn == NULL || o->conn == p->conn) && (p->id == 0 || o->conn->id == p->id) &&
           (p->node == NULL || strcmp(o->home, p->node) == 0) &&
           (p->user == NULL || (o->user_len == p->user_len && memcmp(o->user, p->user, p->user_len) == 0));
}

/* Tells the homes of the console entries in the list `e` that the console
 * is done with their user, and frees them. */
static void detach_consoles(aw_cluster_t *cl, hent_t *e)
{
    while (e != NULL) {
        out_console_t *o = ENTRY_OF(out_console_t, e);
        e = e->next;
        publish(cl, o->home, AW_WIRE_DETACH, (int64_t)o->conn->id, 0, 1, o->user, o->user_len, NULL, 0);
        release_out_conn(o);
    }
}

/* Notes that `console` speaks to the session of `user` on `home` (NULL:
 * here now), and detaches it from the home it spoke to before, if another. */
static void attach_console(aw_cluster_t *cl, aw_conn_t *console, const char *home, const char *user,
                           size_t user_len)
{
    console_pick_t pick = {console, 0, NULL, user, user_len};
    uint64_t key = console_key(console->id, user, user_len);
    hent_t *old = NULL;
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_get(&cl->out_consoles, key, console_at, &pick);
    if (e != NULL && (home == NULL || strcmp(ENTRY_OF(out_console_t, e)->home, home) != 0)) {
        old = ht_take(&cl->out_consoles, key, console_at, &pick);
        old->next = NULL;
        e = NULL;
    }
    if (e == NULL && home != NULL)
        ht_put(&cl->out_consoles, &out_conn_new(key, console, home, user, user_len)->h);
    pthread_mutex_unlock(&cl->tab_lock);
    detach_consoles(cl, old);
}

void aw_cluster_console_closed(aw_cluster_t *cl, aw_conn_t *console)
{
    console_pick_t pick = {console, 0, NULL, NULL, 0};
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *gone = ht_take_if(&cl->out_consoles, console_at, &pick);
    pthread_mutex_unlock(&cl->tab_lock);
    detach_consoles(cl, gone);
}

/* A handoff request (actors/session.h) for a user homed elsewhere goes to
 * the home, as a client message does: one of POST /api/handoff, and one of
 * a console here, whose proxy there (one per console and user) sends back
 * what the session answers and shows it. */
static int route_handoff(aw_cluster_t *cl, const char *home, const char *user, size_t user_len,
                         aw_handoff_msg_t *m)
{
    if (!__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE))
        return AW_EUNAVAILABLE;
    if (m->console != NULL)
        attach_console(cl, m->console, home, user, user_len);
    aw_bytes_t body;
    aw_bytes_init(&body, 64);
    aw_wire_put_item(&body, m->operator_name, strlen(m->operator_name));
    aw_wire_put_item(&body, m->text != NULL ? "1" : "0", 1);
    aw_wire_put_item(&body, m->text != NULL ? m->text : "", m->text != NULL ? strlen(m->text) : 0);
    aw_buf_t *b = aw_bytes_finish(&body);
    int err = publish(cl, home, AW_WIRE_HANDOFF, m->op, m->console != NULL ? (int64_t)m->console->id : 0, 0,
                      user, user_len, b->data, b->len);
    aw_buf_release(b);
    if (err != 0)
        return err;
    COUNT(cl, forwarded_out);
    aw_msg_release(&m->super);
    return AW_REGISTRY_TAKEN;
}

static int route(void *data, const char *user, size_t user_len, aw_msg_t *msg, int create)
{
    aw_cluster_t *cl = data;
    (void)create;
    if (msg->type == AW_SESSION_DETACH) {
        if (!route_detach(cl, ((aw_inbound_t *)msg)->conn))
            return AW_REGISTRY_HERE;
        aw_msg_release(msg); /* taken: its home heard it */
        return AW_REGISTRY_TAKEN;
    }
    if (msg->type != AW_SESSION_INBOUND && msg->type != AW_SESSION_HANDOFF)
        return AW_REGISTRY_HERE;
    char home[AW_WIRE_MAX_NODE + 1];
    pthread_rwlock_rdlock(&cl->view_lock);
    size_t at = home_index(cl, user, user_len);
    if (at != 0)
        memcpy(home, cl->members[at].id, sizeof(home));
    pthread_rwlock_unlock(&cl->view_lock);
    if (msg->type == AW_SESSION_HANDOFF) {
        aw_handoff_msg_t *h = (aw_handoff_msg_t *)msg;
        if (at != 0)
            return route_handoff(cl, home, user, user_len, h);
        if (h->console != NULL)
            attach_console(cl, h->console, NULL, user, user_len); /* here, now */
        return AW_REGISTRY_HERE;
    }
    aw_inbound_t *in = (aw_inbound_t *)msg;
    if (at == 0) {
        /* here, now: a socket that spoke to a session elsewhere leaves it */
        if (in->conn != NULL)
            route_detach(cl, in->conn);
        return AW_REGISTRY_HERE;
    }
    if (!__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE))
        return AW_EUNAVAILABLE;
    aw_buf_t *body = in->push != NULL ? aw_push_write(in->push, user, user_len) : aw_json_write(in->msg.root);
    uint64_t req = 0;
    if (in->sink != NULL)
        req = add_request(cl, in->sink, NULL, NULL, home);
    if (in->conn != NULL)
        attach_out(cl, in->conn, home, user, user_len);
    int64_t c = (int64_t)in->channel | (in->sink != NULL ? (int64_t)in->sink->mode << 4 : 0);
    int err = publish(cl, home, AW_WIRE_INBOUND, in->conn != NULL ? (int64_t)in->conn->id : 0, (int64_t)req,
                      c, user, user_len, body->data, body->len);
    aw_buf_release(body);
    if (err != 0) {
        out_req_t *q = req != 0 ? take_request(cl, req) : NULL;
        if (q != NULL) {
            aw_sink_release(q->sink);
            free(q);
        }
        return err;
    }
    COUNT(cl, forwarded_out);
    aw_msg_release(msg);
    return AW_REGISTRY_TAKEN;
}

int aw_cluster_read_page(aw_cluster_t *cl, const char *user, size_t user_len, int64_t before, size_t limit,
                         int cut, aw_history_page_cb cb, void *data)
{
    char home[AW_WIRE_MAX_NODE + 1];
    pthread_rwlock_rdlock(&cl->view_lock);
    size_t at = home_index(cl, user, user_len);
    if (at != 0)
        memcpy(home, cl->members[at].id, sizeof(home));
    pthread_rwlock_unlock(&cl->view_lock);
    if (at == 0)
        return 1;
    if (!__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE))
        return AW_EUNAVAILABLE;
    uint64_t req = add_request(cl, NULL, cb, data, home);
    int64_t c = (int64_t)limit | (int64_t)cut << 32;
    if (publish(cl, home, AW_WIRE_PAGE, (int64_t)req, before, c, user, user_len, NULL, 0) != 0) {
        out_req_t *q = take_request(cl, req);
        free(q);
        return AW_EUNAVAILABLE;
    }
    return 0;
}

/* --- what arrives (nats.c's threads) --- */

/* History thread: a page read for another node goes back to it. */
static void on_page_read(int err, const aw_history_page_t *page, void *data)
{
    remote_read_t *r = data;
    aw_bytes_t body;
    aw_bytes_init(&body, 1024);
    int64_t c = 0;
    if (page != NULL) {
        for (size_t i = 0; i < page->n; i++)
            aw_wire_put_item(&body, page->records[i]->data, page->records[i]->len);
        c = (page->more ? 1 : 0) | page->before << 1;
    }
    aw_buf_t *b = aw_bytes_finish(&body);
    publish(r->cl, r->node, AW_WIRE_PAGE_DONE, (int64_t)r->req_id, err, c, NULL, 0, b->data, b->len);
    aw_buf_release(b);
    free(r);
}

static void take_inbound(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    int channel = (int)(m->c & 0xf), mode = (int)((m->c >> 4) & 0xf);
    if (channel < 0 || channel >= AW_CHANNEL_N || m->user_len == 0) {
        COUNT(cl, dropped_bad);
        return;
    }
    aw_inbound_t *in = NULL;
    aw_reply_t *push = NULL;
    aw_message_t msg;
    char user[AW_MAX_USER_LEN];
    size_t user_len = 0;
    int err;
    if (channel == AW_CHANNEL_PUSH) {
        err = aw_push_parse(m->body, m->body_len, user, &user_len, &push);
    } else {
        err = aw_message_parse(&msg, m->body, m->body_len);
        if (err == 0) {
            user_len = msg.user_len;
            memcpy(user, msg.user, user_len);
        }
    }
    if (err != 0 || user_len != m->user_len || memcmp(user, m->user, user_len) != 0) {
        if (err == 0 && push != NULL)
            aw_reply_free(push);
        else if (err == 0)
            aw_message_dispose(&msg);
        COUNT(cl, dropped_bad);
        return;
    }
    aw_sink_t *sink = m->b != 0 ? remote_sink_new(cl, m, mode) : NULL;
    remote_conn_t *conn = NULL;
    if (m->a != 0 && (conn = remote_conn_get(cl, m, (uint64_t)m->a)) == NULL) {
        COUNT(cl, dropped_stranger);
        if (push != NULL)
            aw_reply_free(push);
        else
            aw_message_dispose(&msg);
        aw_sink_release(sink);
        return;
    }
    if (push != NULL) {
        if (sink == NULL) {
            aw_reply_free(push);
            aw_conn_release(conn ? &conn->super : NULL);
            COUNT(cl, dropped_bad);
            return;
        }
        in = aw_push_new(push, sink);
    } else {
        in = aw_inbound_new(&msg, conn != NULL ? &conn->super : NULL, sink, (aw_channel_t)channel);
    }
    if (conn != NULL)
        aw_conn_release(&conn->super); /* the inbound holds its own */
    aw_sink_t *answer = sink != NULL ? aw_sink_retain(sink) : NULL;
    aw_sink_release(sink);
    COUNT(cl, forwarded_in);
    if (aw_registry_send_here(cl->cfg.registry, m->user, m->user_len, &in->super, 1) != 0) {
        /* stopping: the sender's client hears it (with the message's mid)
         * and tries again elsewhere */
        aw_buf_t *f = aw_frame_error_mid(AW_EUNAVAILABLE, in->msg.mid, in->msg.mid_len);
        aw_msg_release(&in->super);
        if (answer != NULL)
            answer->complete(answer, NULL, 0, AW_EUNAVAILABLE);
        else if (m->a != 0)
            publish(cl, m->node, AW_WIRE_FRAME, m->a, 0, 0, NULL, 0, f->data, f->len);
        aw_buf_release(f);
    }
    aw_sink_release(answer);
}

/* A handoff request of POST /api/handoff or of a console at another node,
 * for a user homed here. */
static void take_handoff(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    const char *p = m->body, *name, *has, *text;
    size_t left = m->body_len, name_len, has_len, text_len;
    if (m->user_len == 0 || m->a < AW_HANDOFF_OP_REQUEST || m->a > AW_HANDOFF_OP_GONE ||
        aw_wire_next_item(&p, &left, &name, &name_len) != 0 || name_len > AW_OPERATOR_NAME_MAX ||
        aw_wire_next_item(&p, &left, &has, &has_len) != 0 || has_len != 1 ||
        aw_wire_next_item(&p, &left, &text, &text_len) != 0 || left != 0 || memchr(name, '\0', name_len) ||
        memchr(text, '\0', text_len)) {
        COUNT(cl, dropped_bad);
        return;
    }
    remote_conn_t *console = m->b != 0 ? remote_console_get(cl, m, (uint64_t)m->b) : NULL;
    char *n = aw_strndup(name, name_len), *t = has[0] == '1' ? aw_strndup(text, text_len) : NULL;
    aw_handoff_msg_t *h = aw_handoff_msg_new((int)m->a, n, console != NULL ? &console->super : NULL, t);
    free(n);
    free(t);
    if (console != NULL)
        aw_conn_release(&console->super); /* the request holds its own */
    COUNT(cl, forwarded_in);
    if (aw_registry_send_here(cl->cfg.registry, m->user, m->user_len, &h->super, 1) != 0)
        aw_msg_release(&h->super);
}

static void take_detach(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    int console = m->c == 1;
    proxy_id_t pid = {m->node, m->incarnation, (uint64_t)m->a, console, m->user, m->user_len};
    uint64_t key = console ? console_proxy_key(m->node, m->incarnation, (uint64_t)m->a, m->user, m->user_len)
                           : proxy_key(m->node, m->incarnation, (uint64_t)m->a);
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_take(&cl->remotes, key, proxy_eq, &pid);
    pthread_mutex_unlock(&cl->tab_lock);
    if (e != NULL)
        retire_remote(cl, ENTRY_OF(remote_conn_t, e));
}

/* A frame or a close for socket `a`, from the node it is attached to. */
static void take_for_socket(aw_cluster_t *cl, const aw_wire_msg_t *m, int close)
{
    aw_conn_t *conn = NULL;
    hent_t *e = NULL;
    pthread_mutex_lock(&cl->tab_lock);
    if (m->c == 1) {
        /* a console's: for one of its users (never closed by a session) */
        console_pick_t pick = {NULL, (uint64_t)m->a, NULL, m->user, m->user_len};
        e = ht_get(&cl->out_consoles, console_key((uint64_t)m->a, m->user, m->user_len), console_at, &pick);
        if (e != NULL && !close && strcmp(ENTRY_OF(out_console_t, e)->home, m->node) == 0)
            conn = aw_conn_retain(ENTRY_OF(out_console_t, e)->conn);
    } else {
        e = ht_get(&cl->out_conns, (uint64_t)m->a, NULL, NULL);
        if (e != NULL && strcmp(ENTRY_OF(out_conn_t, e)->home, m->node) == 0)
            conn = aw_conn_retain(ENTRY_OF(out_conn_t, e)->conn);
    }
    pthread_mutex_unlock(&cl->tab_lock);
    if (conn == NULL) {
        /* the socket has gone (late), or speaks to another node (a stranger) */
        if (e == NULL)
            COUNT(cl, dropped_late);
        else
            COUNT(cl, dropped_stranger);
        return;
    }
    if (close) {
        conn->close(conn, (int)m->b);
    } else {
        aw_buf_t *frame = aw_buf_new(m->body, m->body_len);
        conn->send(conn, frame);
        aw_buf_release(frame);
    }
    aw_conn_release(conn);
}

static out_req_t *take_answered(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *e = ht_get(&cl->out_reqs, (uint64_t)m->a, NULL, NULL);
    out_req_t *q = NULL;
    if (e != NULL && strcmp(ENTRY_OF(out_req_t, e)->home, m->node) == 0)
        q = ENTRY_OF(out_req_t, ht_take(&cl->out_reqs, (uint64_t)m->a, NULL, NULL));
    pthread_mutex_unlock(&cl->tab_lock);
    if (e == NULL)
        COUNT(cl, dropped_late); /* answered already, or given up */
    else if (q == NULL)
        COUNT(cl, dropped_stranger);
    return q;
}

static void take_done(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    const char *p = m->body, *token, *ack;
    size_t left = m->body_len, token_len, ack_len;
    if (m->c < 0 || m->c > 4096 || m->b > 0 || aw_wire_next_item(&p, &left, &token, &token_len) != 0 ||
        aw_wire_next_item(&p, &left, &ack, &ack_len) != 0 || token_len > 64 || ack_len > 64) {
        COUNT(cl, dropped_bad);
        return;
    }
    size_t n = (size_t)m->c;
    aw_buf_t **frames = aw_calloc(n + 1, sizeof(*frames));
    for (size_t i = 0; i < n; i++) {
        const char *f;
        size_t f_len;
        if (aw_wire_next_item(&p, &left, &f, &f_len) != 0) {
            for (size_t j = 0; j < i; j++)
                aw_buf_release(frames[j]);
            free(frames);
            COUNT(cl, dropped_bad);
            return;
        }
        frames[i] = aw_buf_new(f, f_len);
    }
    out_req_t *q = left == 0 ? take_answered(cl, m) : NULL;
    if (q != NULL && q->sink != NULL) {
        memcpy(q->sink->token, token, token_len);
        q->sink->token[token_len] = '\0';
        memcpy(q->sink->ack, ack, ack_len);
        q->sink->ack[ack_len] = '\0';
        q->sink->complete(q->sink, frames, n, (int)m->b);
        aw_sink_release(q->sink);
        free(q);
    } else if (q != NULL) {
        fail_request(q);
    } else if (left != 0) {
        COUNT(cl, dropped_bad);
    }
    for (size_t i = 0; i < n; i++)
        aw_buf_release(frames[i]);
    free(frames);
}

static void take_page_done(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    const char *p = m->body;
    size_t left = m->body_len, n = 0, cap = 16;
    aw_buf_t **records = aw_alloc(cap * sizeof(*records));
    while (left != 0) {
        const char *r;
        size_t r_len;
        if (aw_wire_next_item(&p, &left, &r, &r_len) != 0)
            break;
        if (n == cap)
            records = aw_realloc(records, (cap *= 2) * sizeof(*records));
        records[n++] = aw_buf_new(r, r_len);
    }
    out_req_t *q = left == 0 && m->b <= 0 ? take_answered(cl, m) : NULL;
    if (left != 0 || m->b > 0)
        COUNT(cl, dropped_bad);
    if (q != NULL && q->on_page != NULL) {
        aw_history_page_t page = {records, n, (int)(m->c & 1), m->c >> 1};
        if (m->b < 0)
            q->on_page((int)m->b, NULL, q->page_data);
        else
            q->on_page(0, &page, q->page_data);
        free(q);
    } else if (q != NULL) {
        fail_request(q);
    }
    for (size_t i = 0; i < n; i++)
        aw_buf_release(records[i]);
    free(records);
}

static void take_page(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    remote_read_t *r = aw_calloc(1, sizeof(*r));
    r->cl = cl;
    snprintf(r->node, sizeof(r->node), "%s", m->node);
    r->req_id = (uint64_t)m->a;
    int64_t limit = m->c & 0xffffffff, cut = m->c >> 32;
    if (m->user_len == 0 || limit <= 0 || limit > 100000 || cut < 0 || cut > 8) {
        COUNT(cl, dropped_bad);
        free(r);
        return;
    }
    if (cl->cfg.history == NULL || aw_history_page(cl->cfg.history, m->user, m->user_len, m->b, (size_t)limit,
                                                   (int)cut, on_page_read, r) != 0)
        on_page_read(AW_EUNAVAILABLE, NULL, r);
}

/*
 * The hand-over of a user whose home moved here from a live node (a join, or
 * a node leaving): its previous home may still be finishing a turn of the
 * user and writing its records. A new session here waits (the chat's fence)
 * until that node says nothing of the user is left there, so that it reads
 * where the user's history ends only once it has ended there: no message is
 * handed to the bot twice and no reply numbered below one shown. The
 * previous home is the member that would be the user's home if this node
 * were not (leaving ones included). Only within FENCE_WINDOW_MS of a change
 * of the view: otherwise no session of the user can be left elsewhere.
 */
void aw_cluster_fence(void *data, const char *user, size_t user_len, void (*done)(void *arg), void *arg)
{
    aw_cluster_t *cl = data;
    char prev[AW_WIRE_MAX_NODE + 1] = "";
    pthread_rwlock_rdlock(&cl->view_lock);
    if (now_ms() - cl->changed_ms < FENCE_WINDOW_MS) {
        uint64_t uh = fnv(user, user_len, 14695981039346656037ULL), best = 0;
        for (size_t i = 1; i < cl->n_members; i++) {
            uint64_t score = mix(uh ^ cl->members[i].hid);
            if (prev[0] == '\0' || score > best) {
                best = score;
                memcpy(prev, cl->members[i].id, sizeof(prev));
            }
        }
    }
    pthread_rwlock_unlock(&cl->view_lock);
    if (prev[0] == '\0' || !__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE)) {
        done(arg);
        return;
    }
    out_req_t *q = aw_calloc(1, sizeof(*q));
    q->on_fence = done;
    q->fence_arg = arg;
    snprintf(q->home, sizeof(q->home), "%s", prev);
    q->deadline_ms = now_ms() + FENCE_TIMEOUT_MS;
    pthread_mutex_lock(&cl->tab_lock);
    q->h.key = ++cl->next_req;
    uint64_t req = q->h.key;
    ht_put(&cl->out_reqs, &q->h);
    pthread_mutex_unlock(&cl->tab_lock);
    COUNT(cl, fences);
    if (publish(cl, prev, AW_WIRE_RELEASE, (int64_t)req, 0, 0, user, user_len, NULL, 0) != 0) {
        out_req_t *mine = take_request(cl, req);
        if (mine != NULL)
            fail_request(mine);
    }
}

/* The registry let go of the user: its new home hears it. */
static void on_released(void *arg)
{
    remote_read_t *r = arg;
    publish(r->cl, r->node, AW_WIRE_RELEASED, (int64_t)r->req_id, 0, 0, NULL, 0, NULL, 0);
    free(r);
}

static void take_release(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    if (m->user_len == 0) {
        COUNT(cl, dropped_bad);
        return;
    }
    remote_read_t *r = aw_calloc(1, sizeof(*r));
    r->cl = cl;
    snprintf(r->node, sizeof(r->node), "%s", m->node);
    r->req_id = (uint64_t)m->a;
    aw_registry_release(cl->cfg.registry, m->user, m->user_len, on_released, r);
}

static void take_released(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    out_req_t *q = take_answered(cl, m);
    if (q == NULL)
        return;
    if (q->on_fence != NULL)
        q->on_fence(q->fence_arg);
    q->on_fence = NULL;
    fail_request(q); /* frees it; nothing else waits on a release */
}

/* A signed message of a node not heard from yet (or from its previous
 * run): dropped, but a client message is answered `unavailable` (with its
 * mid) so that its client sends it again rather than wait for ever. Only the
 * node that signed it hears the answer. */
static void refuse_stranger(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    if (strcmp(m->kind, AW_WIRE_INBOUND) != 0)
        return;
    if (m->b != 0) {
        aw_bytes_t body;
        aw_bytes_init(&body, 16);
        aw_wire_put_item(&body, "", 0);
        aw_wire_put_item(&body, "", 0);
        aw_buf_t *b = aw_bytes_finish(&body);
        publish(cl, m->node, AW_WIRE_DONE, m->b, AW_EUNAVAILABLE, 0, NULL, 0, b->data, b->len);
        aw_buf_release(b);
    } else if (m->a != 0) {
        aw_message_t msg;
        int ok = aw_message_parse(&msg, m->body, m->body_len) == 0;
        aw_buf_t *f = aw_frame_error_mid(AW_EUNAVAILABLE, ok ? msg.mid : NULL, ok ? msg.mid_len : 0);
        publish(cl, m->node, AW_WIRE_FRAME, m->a, 0, 0, NULL, 0, f->data, f->len);
        aw_buf_release(f);
        if (ok)
            aw_message_dispose(&msg);
    }
}

/* Whether the sender of `m` is a live member in its current incarnation. */
static int from_member(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    pthread_rwlock_rdlock(&cl->view_lock);
    member_t *mb = member_of(cl, m->node);
    int ok = mb != NULL && mb != &cl->members[0] && mb->inc == m->incarnation;
    pthread_rwlock_unlock(&cl->view_lock);
    return ok;
}

/* Reads a message NATS delivered (wire.h): 0, or the reason it is not one
 * of the cluster's. */
static int read_msg(aw_cluster_t *cl, natsMsg *nm, aw_wire_msg_t *m)
{
    return aw_wire_parse(cl->key, natsMsg_GetSubject(nm), natsMsg_GetData(nm),
                         (size_t)natsMsg_GetDataLength(nm), m);
}

static void on_node_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *closure)
{
    aw_cluster_t *cl = closure;
    (void)nc;
    (void)sub;
    aw_wire_msg_t m;
    if (read_msg(cl, nm, &m) != 0) {
        COUNT(cl, dropped_bad);
    } else if (!from_member(cl, &m)) {
        COUNT(cl, dropped_stranger);
        refuse_stranger(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_INBOUND) == 0) {
        take_inbound(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_DETACH) == 0) {
        take_detach(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_HANDOFF) == 0) {
        take_handoff(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_FRAME) == 0) {
        take_for_socket(cl, &m, 0);
    } else if (strcmp(m.kind, AW_WIRE_CLOSE) == 0) {
        take_for_socket(cl, &m, 1);
    } else if (strcmp(m.kind, AW_WIRE_DONE) == 0) {
        take_done(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_PAGE) == 0) {
        take_page(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_PAGE_DONE) == 0) {
        take_page_done(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_RELEASE) == 0) {
        take_release(cl, &m);
    } else if (strcmp(m.kind, AW_WIRE_RELEASED) == 0) {
        take_released(cl, &m);
    } else {
        COUNT(cl, dropped_bad);
    }
    natsMsg_Destroy(nm);
}

/* --- the operators' desk, shared by every node ---
 *
 * Each node's desk lists every node's conversations with a person: a session
 * that changes its user's state tells the other desks on `<name>.desk`, and a
 * node that may have missed some (its start, a NATS outage) reads them from
 * the store again. Which operators have a console open where rides on the
 * heartbeats, so that an owner's grace period (actors/handoff.h) ends only
 * when they have no console on any node. Nothing here is called under the
 * desk's lock, and the desk is never called under view_lock or tab_lock. */

static int own_state(aw_cluster_t *cl);
static void beat(aw_cluster_t *cl, int state);
static void desk_catch_up(aw_cluster_t *cl, void (*done)(void *arg));

static void desk_changed(void *data, const char *user, size_t user_len, const aw_handoff_t *h)
{
    aw_cluster_t *cl = data;
    aw_buf_t *record = aw_handoff_write(h);
    publish_to(cl, cl->desk_subject, AW_WIRE_DESK, 0, 0, 0, user, user_len, record->data, record->len);
    aw_buf_release(record);
}

static int desk_online(void *data, const char *op)
{
    aw_cluster_t *cl = data;
    char line[AW_OPERATOR_NAME_MAX + 3];
    snprintf(line, sizeof(line), "\n%s\n", op);
    int on = 0;
    pthread_rwlock_rdlock(&cl->view_lock);
    for (size_t i = 1; i < cl->n_members && !on; i++)
        on = strstr(cl->members[i].ops, line) != NULL;
    pthread_rwlock_unlock(&cl->view_lock);
    return on;
}

/* The operators here changed: the others hear it now, not at the next beat. */
static void desk_presence(void *data)
{
    aw_cluster_t *cl = data;
    int state = own_state(cl);
    if (state != STATE_JOINING)
        beat(cl, state);
}

void aw_cluster_operators_changed(aw_cluster_t *cl)
{
    desk_presence(cl);
}

int aw_cluster_ready(aw_cluster_t *cl)
{
    return own_state(cl) != STATE_JOINING;
}

static void on_desk_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *closure)
{
    aw_cluster_t *cl = closure;
    (void)nc;
    (void)sub;
    aw_wire_msg_t m;
    aw_handoff_t h;
    int bad = read_msg(cl, nm, &m) != 0, reload = !bad && strcmp(m.kind, AW_WIRE_DESK_RELOAD) == 0;
    if (!bad && reload)
        bad = m.user_len != 0 || m.body_len != 0;
    else if (!bad)
        bad = strcmp(m.kind, AW_WIRE_DESK) != 0 || m.user_len == 0 ||
              aw_handoff_parse(&h, m.body, m.body_len) != 0;
    if (bad)
        COUNT(cl, dropped_bad);
    else if (reload)
        desk_catch_up(cl, NULL); /* from a node that may not be a member again yet; asks nothing but a read */
    else if (!from_member(cl, &m))
        COUNT(cl, dropped_stranger);
    else if (cl->cfg.desk != NULL)
        aw_desk_apply(cl->cfg.desk, m.user, m.user_len, &h);
    natsMsg_Destroy(nm);
}

/* After a change of the view or of who has a console open: the owned
 * conversations homed here whose owner has no console on any node start
 * their grace period, unless it runs (a node that held the owner's consoles
 * died, or this node took users whose owner is away). */
static void sweep_owners(aw_cluster_t *cl)
{
    if (cl->cfg.desk == NULL || own_state(cl) == STATE_JOINING)
        return;
    char **owners = NULL;
    char **users = aw_desk_owned_by(cl->cfg.desk, NULL, &owners);
    for (size_t i = 0; users != NULL && users[i] != NULL; i++) {
        size_t len = strlen(users[i]);
        if (!aw_cluster_is_home(cl, users[i], len) || aw_desk_online(cl->cfg.desk, owners[i]))
            continue;
        aw_handoff_msg_t *m = aw_handoff_msg_new(AW_HANDOFF_OP_AWAY, owners[i], NULL, NULL);
        if (aw_registry_send_here(cl->cfg.registry, users[i], len, &m->super, 1) != 0)
            aw_msg_release(&m->super);
    }
    aw_desk_free_list(users);
    aw_desk_free_list(owners);
}

/* This node may have missed what the others told (it was starting, or cut
 * off from NATS), or another node was cut off: its desk reads the store
 * again, then calls `done`, if any. */
static void desk_catch_up(aw_cluster_t *cl, void (*done)(void *arg))
{
    if (cl->cfg.desk != NULL && cl->cfg.history != NULL)
        aw_desk_reload(cl->cfg.desk, cl->cfg.history, done, cl);
}

/* History thread, after a reload that wrote what this node held: the
 * others read what it changed while it was cut off. */
static void ask_reload(void *arg)
{
    aw_cluster_t *cl = arg;
    publish_to(cl, cl->desk_subject, AW_WIRE_DESK_RELOAD, 0, 0, 0, NULL, 0, NULL, 0);
}

/* --- membership --- */

/* Everything that waits on `node` (NULL: on any other node) is given up:
 * sockets attached to it are closed with 1012 (their clients come back
 * through a live node), requests answered `unavailable`, consoles told
 * their conversations there moved, and its sockets' and consoles' remote
 * connections here detached. */
typedef struct node_pick {
    const char *node;
} node_pick_t;

static int out_conn_at(const hent_t *e, const void *ctx)
{
    const node_pick_t *p = ctx;
    return p->node == NULL || strcmp(ENTRY_OF(out_conn_t, e)->home, p->node) == 0;
}

static int out_req_at(const hent_t *e, const void *ctx)
{
    const node_pick_t *p = ctx;
    return p->node == NULL || strcmp(ENTRY_OF(out_req_t, e)->home, p->node) == 0;
}

static int remote_from(const hent_t *e, const void *ctx)
{
    const node_pick_t *p = ctx;
    return p->node == NULL || strcmp(ENTRY_OF(remote_conn_t, e)->node, p->node) == 0;
}

static void give_up_on(aw_cluster_t *cl, const char *node)
{
    node_pick_t pick = {node};
    console_pick_t consoles_at = {NULL, 0, node, NULL, 0};
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *conns = ht_take_if(&cl->out_conns, out_conn_at, &pick);
    hent_t *reqs = ht_take_if(&cl->out_reqs, out_req_at, &pick);
    hent_t *remotes = ht_take_if(&cl->remotes, remote_from, &pick);
    hent_t *consoles = ht_take_if(&cl->out_consoles, console_at, &consoles_at);
    pthread_mutex_unlock(&cl->tab_lock);
    while (consoles != NULL) {
        /* the console opens the conversation again, at the user's new home */
        out_console_t *o = ENTRY_OF(out_console_t, consoles);
        consoles = consoles->next;
        if (node != NULL) {
            aw_buf_t *f = aw_handoff_frame("moved", o->user, o->user_len, NULL, NULL);
            o->conn->send(o->conn, f);
            aw_buf_release(f);
        }
        release_out_conn(o);
    }
    while (conns != NULL) {
        out_conn_t *o = ENTRY_OF(out_conn_t, conns);
        conns = conns->next;
        o->conn->close(o->conn, 1012);
        release_out_conn(o);
    }
    while (reqs != NULL) {
        out_req_t *q = ENTRY_OF(out_req_t, reqs);
        reqs = reqs->next;
        fail_request(q);
    }
    while (remotes != NULL) {
        remote_conn_t *r = ENTRY_OF(remote_conn_t, remotes);
        remotes = remotes->next;
        retire_remote(cl, r);
    }
}

/* Sockets here attached to a session elsewhere whose user lives on another
 * node now: closed with 1012 (view_lock held, for reading at least). */
static int moved_elsewhere(const hent_t *e, const void *ctx)
{
    aw_cluster_t *cl = (aw_cluster_t *)ctx;
    const out_conn_t *o = ENTRY_OF(out_conn_t, e);
    size_t at = home_index(cl, o->user, o->user_len);
    return strcmp(cl->members[at].id, o->home) != 0;
}

/* The view changed (view_lock held for writing): lets go of the sessions
 * whose user lives elsewhere now, and returns the sockets here attached to
 * a session whose home moved, for send_on once the lock is released. */
static hent_t *view_changed(aw_cluster_t *cl)
{
    cl->changed_ms = now_ms();
    size_t moved = aw_registry_move_away(cl->cfg.registry, stays_here, cl);
    __atomic_add_fetch(&cl->stats.moves, moved, __ATOMIC_RELAXED);
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *conns = ht_take_if(&cl->out_conns, moved_elsewhere, cl);
    pthread_mutex_unlock(&cl->tab_lock);
    size_t up = 0, closed = 0;
    for (size_t i = 0; i < cl->n_members; i++)
        up += cl->members[i].state == AW_WIRE_UP;
    for (hent_t *e = conns; e != NULL; e = e->next)
        closed++;
    aw_log(AW_LOG_INFO, "cluster_view",
           "%zu members take users; %zu sessions moved away, %zu sockets sent on", up, moved, closed);
    return conns;
}

/* Closes the sockets view_changed returned with 1012 (their clients come
 * back, and reach the new home), and tells their old home they have gone.
 * No lock held. */
static void send_on(aw_cluster_t *cl, hent_t *conns)
{
    while (conns != NULL) {
        out_conn_t *o = ENTRY_OF(out_conn_t, conns);
        conns = conns->next;
        publish(cl, o->home, AW_WIRE_DETACH, (int64_t)o->conn->id, 0, 0, o->user, o->user_len, NULL, 0);
        o->conn->close(o->conn, 1012);
        release_out_conn(o);
    }
}

/* Removes member `i` (view_lock held for writing); returns its id. */
static void forget(aw_cluster_t *cl, size_t i, char id[AW_WIRE_MAX_NODE + 1])
{
    memcpy(id, cl->members[i].id, AW_WIRE_MAX_NODE + 1);
    cl->members[i] = cl->members[--cl->n_members];
}

static void beat(aw_cluster_t *cl, int state);

/* The next line of a heartbeat's lines (see beat), without its "\n"; 0 at
 * the end. */
static int next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end)
        return 0;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *line = *p;
    *len = (size_t)((nl != NULL ? nl : end) - *p);
    *p = nl != NULL ? nl + 1 : end;
    return 1;
}

/* The operators with a console open on member `mb`, from the lines of its
 * heartbeat, as "\nNAME\n...": past OPS_MAX, the first ones (view_lock
 * held for writing). */
static void consoles_of(member_t *mb, const char *p, size_t len)
{
    const char *end = p + len, *line;
    size_t n = 0, at = 1;
    mb->ops[0] = '\n';
    while (next_line(&p, end, &line, &n)) {
        if (n < 3 || line[0] != 'o' || line[1] != ' ' || !aw_operator_name_valid(line + 2, n - 2) ||
            at + n - 1 >= sizeof(mb->ops))
            continue;
        memcpy(mb->ops + at, line + 2, n - 2);
        at += n - 2;
        mb->ops[at++] = '\n';
    }
    mb->ops[at] = '\0';
}

/* The operators' epoch and sign-outs another node's heartbeat says; the
 * later time wins (no lock held). */
static void sign_outs_of(aw_cluster_t *cl, const char *p, size_t len)
{
    const char *end = p + len, *line;
    size_t n;
    if (cl->cfg.operators == NULL)
        return;
    while (next_line(&p, end, &line, &n)) {
        char buf[AW_OPERATOR_NAME_MAX + 32], name[AW_OPERATOR_NAME_MAX + 1];
        unsigned long long ms;
        if (n < 3 || line[1] != ' ' || n >= sizeof(buf))
            continue;
        memcpy(buf, line, n);
        buf[n] = '\0';
        if (buf[0] == 'e' && sscanf(buf + 2, "%llu", &ms) == 1)
            aw_operators_set_epoch(cl->cfg.operators, ms);
        else if (buf[0] == 's' && sscanf(buf + 2, "%64s %llu", name, &ms) == 2)
            aw_operators_signed_out(cl->cfg.operators, name, strlen(name), ms);
    }
}

static void on_heartbeat(aw_cluster_t *cl, const aw_wire_msg_t *m)
{
    if (strcmp(m->node, cl->members[0].id) == 0)
        return; /* our own (NATS echoes unless told not to), or a node with our id */
    char gone[AW_WIRE_MAX_NODE + 1] = "";
    char before[OPS_MAX] = "";
    int changed = 0, greet = 0, present = 0;
    pthread_rwlock_wrlock(&cl->view_lock);
    member_t *mb = member_of(cl, m->node);
    if (mb != NULL)
        memcpy(before, mb->ops, sizeof(before));
    if (mb != NULL && mb->inc != m->incarnation) {
        /* the same id, started again: what it held is gone */
        aw_log(AW_LOG_WARN, "cluster_restart", "node %s started again", m->node);
        forget(cl, (size_t)(mb - cl->members), gone);
        COUNT(cl, deaths);
        changed = 1;
        mb = NULL;
    }
    if (m->a == AW_WIRE_GONE) {
        if (mb != NULL) {
            aw_log(AW_LOG_INFO, "cluster_leave", "node %s has left", m->node);
            forget(cl, (size_t)(mb - cl->members), gone);
            changed = 1;
        }
    } else if (mb == NULL && cl->n_members < MAX_MEMBERS) {
        mb = &cl->members[cl->n_members++];
        memset(mb, 0, sizeof(*mb));
        snprintf(mb->id, sizeof(mb->id), "%s", m->node);
        mb->hid = hash_id(mb->id);
        mb->inc = m->incarnation;
        mb->state = m->a == AW_WIRE_LEAVING ? AW_WIRE_LEAVING : AW_WIRE_UP;
        aw_log(AW_LOG_INFO, "cluster_join", "node %s joined", m->node);
        COUNT(cl, joins);
        changed = 1;
        greet = 1;
    } else if (mb != NULL && m->a == AW_WIRE_LEAVING && mb->state == AW_WIRE_UP) {
        mb->state = AW_WIRE_LEAVING;
        aw_log(AW_LOG_INFO, "cluster_leaving", "node %s is leaving", m->node);
        COUNT(cl, leaves);
        changed = 1;
    }
    if (mb != NULL) {
        mb->seen_ms = now_ms();
        /* "host store", then lines (see beat) */
        const char *nl = memchr(m->body, '\n', m->body_len);
        size_t line = nl != NULL ? (size_t)(nl - m->body) : m->body_len;
        const char *sp = memchr(m->body, ' ', line);
        if (sp != NULL && (size_t)(sp - m->body) <= AW_WIRE_MAX_NODE &&
            (size_t)(m->body + line - sp - 1) < sizeof(mb->store)) {
            memcpy(mb->host, m->body, (size_t)(sp - m->body));
            mb->host[sp - m->body] = '\0';
            memcpy(mb->store, sp + 1, (size_t)(m->body + line - sp - 1));
            mb->store[m->body + line - sp - 1] = '\0';
        }
        consoles_of(mb, m->body + line, m->body_len - line);
        present = strcmp(before, mb->ops) != 0;
        if (!mb->warned && strcmp(mb->store, "sqlite") == 0 && strcmp(cl->cfg.store_kind, "sqlite") == 0 &&
            mb->host[0] != '\0' && strcmp(mb->host, cl->host) != 0) {
            mb->warned = 1;
            aw_log(
                AW_LOG_ERROR, "cluster_store",
                "node %s runs on host %s and this one on %s, and both keep history in SQLite: a SQLite file "
                "is shared only by processes of one machine, so users moving between them lose history "
                "and numbering. Give every node the same MONGO_URI.",
                mb->id, mb->host, cl->host);
        }
    }
    hent_t *resend = changed ? view_changed(cl) : NULL;
    int state = cl->members[0].state;
    pthread_rwlock_unlock(&cl->view_lock);
    send_on(cl, resend);
    if (gone[0] != '\0')
        give_up_on(cl, gone);
    sign_outs_of(cl, m->body, m->body_len);
    if (changed || present)
        sweep_owners(cl);
    /* a newcomer hears this node now rather than in up to a period */
    if (greet && state != STATE_JOINING)
        beat(cl, state);
}

static void on_members_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *closure)
{
    aw_cluster_t *cl = closure;
    (void)nc;
    (void)sub;
    aw_wire_msg_t m;
    if (read_msg(cl, nm, &m) != 0 || strcmp(m.kind, AW_WIRE_HEARTBEAT) != 0 || m.a < AW_WIRE_UP ||
        m.a > AW_WIRE_GONE)
        COUNT(cl, dropped_bad);
    else
        on_heartbeat(cl, &m);
    natsMsg_Destroy(nm);
}

/* Whether this node takes users (AW_WIRE_UP) or leaves. */
static int own_state(aw_cluster_t *cl)
{
    pthread_rwlock_rdlock(&cl->view_lock);
    int state = cl->members[0].state;
    pthread_rwlock_unlock(&cl->view_lock);
    return state;
}

/* Appends each line of `lines` ("...\n" each) with `tag` and a space. */
static void put_lines(aw_bytes_t *out, char tag, const char *lines)
{
    for (const char *p = lines, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        aw_bytes_appendc(out, tag);
        aw_bytes_appendc(out, ' ');
        aw_bytes_append(out, p, (size_t)(nl - p + 1));
    }
}

/* A heartbeat's body: "host store\n", then a line for each operator with
 * a console open here ("o NAME"), the operators' epoch ("e MS") and each
 * sign-out still young enough to matter ("s NAME MS"). */
static void beat(aw_cluster_t *cl, int state)
{
    aw_bytes_t body;
    aw_bytes_init(&body, 128);
    aw_bytes_appendf(&body, "%s %s\n", cl->host, cl->cfg.store_kind);
    if (cl->cfg.desk != NULL && state != AW_WIRE_GONE) {
        char *ops = aw_desk_operators(cl->cfg.desk);
        put_lines(&body, 'o', ops);
        free(ops);
    }
    if (cl->cfg.operators != NULL) {
        aw_bytes_appendf(&body, "e %llu\n", (unsigned long long)aw_operators_epoch(cl->cfg.operators));
        char *outs = aw_operators_sign_outs(cl->cfg.operators, aw_wall_ms());
        put_lines(&body, 's', outs);
        free(outs);
    }
    aw_buf_t *b = aw_bytes_finish(&body);
    publish_to(cl, cl->members_subject, AW_WIRE_HEARTBEAT, state, 0, 0, NULL, 0, b->data, b->len);
    aw_buf_release(b);
}

/* Members not heard from for dead_ms are dead: forgotten, and what waits on
 * them given up. Not while this node is cut off, nor just after. */
static void find_dead(aw_cluster_t *cl)
{
    uint64_t now = now_ms();
    /* Most times no one is silent: a look under the read lock spares the
     * routers a wait for the write lock four times a second. */
    int silent = 0;
    pthread_rwlock_rdlock(&cl->view_lock);
    for (size_t i = 1; i < cl->n_members && !silent; i++)
        silent = now - cl->members[i].seen_ms >= cl->dead_ms;
    pthread_rwlock_unlock(&cl->view_lock);
    if (!silent)
        return;
    char dead[MAX_MEMBERS][AW_WIRE_MAX_NODE + 1];
    size_t n_dead = 0;
    hent_t *resend = NULL;
    pthread_rwlock_wrlock(&cl->view_lock);
    if (__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE) && now - cl->connected_since >= cl->dead_ms) {
        for (size_t i = 1; i < cl->n_members;) {
            if (now - cl->members[i].seen_ms >= cl->dead_ms) {
                aw_log(AW_LOG_WARN, "cluster_dead", "node %s was not heard from for %u ms: declared dead",
                       cl->members[i].id, cl->dead_ms);
                forget(cl, i, dead[n_dead++]);
                COUNT(cl, deaths);
            } else {
                i++;
            }
        }
        if (n_dead != 0)
            resend = view_changed(cl);
    }
    pthread_rwlock_unlock(&cl->view_lock);
    send_on(cl, resend);
    for (size_t i = 0; i < n_dead; i++)
        give_up_on(cl, dead[i]);
    if (n_dead != 0)
        sweep_owners(cl);
}

/* Requests no answer came for within request_ms: a message lost between two
 * live nodes. */
static int overdue(const hent_t *e, const void *ctx)
{
    return ENTRY_OF(out_req_t, e)->deadline_ms <= *(const uint64_t *)ctx;
}

static void sweep_requests(aw_cluster_t *cl)
{
    uint64_t now = now_ms();
    pthread_mutex_lock(&cl->tab_lock);
    hent_t *reqs = ht_take_if(&cl->out_reqs, overdue, &now);
    pthread_mutex_unlock(&cl->tab_lock);
    while (reqs != NULL) {
        out_req_t *q = ENTRY_OF(out_req_t, reqs);
        reqs = reqs->next;
        fail_request(q);
    }
}

/* A node listens to the heartbeats for one period and a quarter once
 * connected, then takes users and says so: by then it has heard every live
 * member, so it has their ids (a message from a node it has not heard of is
 * dropped) and knows the users' previous homes (aw_cluster_fence) before
 * anyone sends it a user. */
static void join_when_ready(aw_cluster_t *cl)
{
    if (!__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE) || own_state(cl) != STATE_JOINING)
        return;
    hent_t *resend = NULL;
    int joined = 0;
    pthread_rwlock_wrlock(&cl->view_lock);
    if (cl->members[0].state == STATE_JOINING &&
        now_ms() - cl->connected_since >= cl->heartbeat_ms + cl->heartbeat_ms / 4) {
        cl->members[0].state = AW_WIRE_UP;
        resend = view_changed(cl);
        joined = cl->n_members == 1 ? 2 : 1; /* 2: alone, the cluster's first node */
        aw_log(AW_LOG_INFO, "cluster_joined", "node %s takes users", cl->members[0].id);
    }
    pthread_rwlock_unlock(&cl->view_lock);
    send_on(cl, resend);
    if (joined == 2 && cl->cfg.operators != NULL)
        aw_operators_set_epoch(cl->cfg.operators,
                               aw_wall_ms()); /* a start of the cluster signs everybody out */
    if (joined) {
        desk_catch_up(cl, NULL);
        sweep_owners(cl);
    }
}

static void *beat_main(void *arg)
{
    aw_cluster_t *cl = arg;
    uint64_t next_beat = 0;
    pthread_mutex_lock(&cl->beat_lock);
    while (!cl->stopping) {
        pthread_mutex_unlock(&cl->beat_lock);
        uint64_t now = now_ms();
        join_when_ready(cl);
        int state = own_state(cl);
        if (now >= next_beat && state != STATE_JOINING) {
            beat(cl, state);
            next_beat = now + cl->heartbeat_ms;
        }
        find_dead(cl);
        sweep_requests(cl);
        pthread_mutex_lock(&cl->beat_lock);
        if (cl->stopping)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t step = cl->heartbeat_ms / 4 != 0 ? cl->heartbeat_ms / 4 : 1;
        until.tv_sec += (time_t)(step / 1000);
        until.tv_nsec += (long)(step % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cl->beat_cond, &cl->beat_lock, &until);
    }
    pthread_mutex_unlock(&cl->beat_lock);
    return NULL;
}

/* --- the NATS connection's events --- */

/* The URL of the server connected to, for logs and /healthz: without the
 * credentials it may carry, and with nothing JSON would need escaped. */
static void server_url(natsConnection *nc, char *out, size_t size)
{
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    const char *from = url, *scheme = strstr(url, "://"), *at = scheme != NULL ? strchr(scheme, '@') : NULL;
    size_t n = 0;
    if (at != NULL) {
        size_t head = (size_t)(scheme + 3 - url);
        for (; n < head && n + 1 < size; n++)
            out[n] = url[n];
        from = at + 1;
    }
    for (; *from != '\0' && n + 1 < size; from++)
        out[n++] = (*from == '"' || *from == '\\' || (unsigned char)*from < 0x20) ? '_' : *from;
    out[n] = '\0';
}

static void on_connected(natsConnection *nc, void *closure)
{
    aw_cluster_t *cl = closure;
    char url[128];
    server_url(nc, url, sizeof(url));
    pthread_rwlock_wrlock(&cl->view_lock);
    uint64_t now = now_ms();
    cl->connected_since = now;
    snprintf(cl->server, sizeof(cl->server), "%s", url);
    for (size_t i = 1; i < cl->n_members; i++)
        cl->members[i].seen_ms = now; /* they get a fair chance to be heard again */
    pthread_rwlock_unlock(&cl->view_lock);
    __atomic_store_n(&cl->connected, 1, __ATOMIC_RELEASE);
    aw_log(AW_LOG_INFO, "nats_connected", "connected to NATS at %s", url);
    int state = own_state(cl);
    if (state != STATE_JOINING)
        beat(cl, state);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    COUNT((aw_cluster_t *)closure, reconnects);
    on_connected(nc, closure);
    desk_catch_up(closure, ask_reload);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    aw_cluster_t *cl = closure;
    (void)nc;
    if (!__atomic_exchange_n(&cl->connected, 0, __ATOMIC_ACQ_REL) ||
        __atomic_load_n(&cl->closing, __ATOMIC_ACQUIRE))
        return; /* not lost: closed by aw_cluster_stop */
    /* What was in flight may be lost: every socket attached across nodes
     * reconnects and recovers with last_seq, every request is answered. */
    aw_log(AW_LOG_WARN, "nats_disconnected",
           "lost the NATS connection; users homed elsewhere get unavailable");
    give_up_on(cl, NULL);
}

/* nats.c gave up on the connection (not by aw_cluster_stop): a server that
 * refuses the credentials twice in a row, most likely. */
static void on_closed(natsConnection *nc, void *closure)
{
    aw_cluster_t *cl = closure;
    char err[160] = "";
    const char *text = NULL;
    (void)nc;
    if (__atomic_load_n(&cl->closing, __ATOMIC_ACQUIRE))
        return;
    natsConnection_GetLastError(cl->nc, &text);
    snprintf(err, sizeof(err), "%s", text != NULL ? text : "closed");
    aw_log(AW_LOG_ERROR, "nats_closed",
           "NATS closed this node's connection for good (%s): check --nats and its credentials; users homed "
           "elsewhere get unavailable until this node is restarted",
           err);
    on_disconnected(nc, closure);
}

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    aw_cluster_t *cl = closure;
    (void)nc;
    (void)sub;
    COUNT(cl, nats_errors);
    aw_log(AW_LOG_WARN, "nats_error", "NATS: %s", natsStatus_GetText(err));
}

/* --- start and stop --- */

static int name_ok(const char *s)
{
    return s != NULL && aw_wire_node_ok(s, strlen(s));
}

static void default_node_id(char out[AW_WIRE_MAX_NODE + 1], const char *host)
{
    char tmp[AW_WIRE_MAX_NODE + 1];
    snprintf(tmp, sizeof(tmp), "%.40s-%ld", host, (long)getpid());
    for (char *p = tmp; *p != '\0'; p++)
        if (!aw_wire_node_ok(p, 1))
            *p = '_';
    memcpy(out, tmp, sizeof(tmp));
}

int aw_cluster_start(aw_cluster_t **out, const aw_cluster_config_t *cfg)
{
    if (!name_ok(cfg->name)) {
        fprintf(stderr, "anywhere: --cluster must be 1 to 64 of A-Z a-z 0-9 _ -\n");
        return AW_EINVAL;
    }
    if (cfg->node_id != NULL && !name_ok(cfg->node_id)) {
        fprintf(stderr, "anywhere: --node-id must be 1 to 64 of A-Z a-z 0-9 _ -\n");
        return AW_EINVAL;
    }
    aw_cluster_t *cl = aw_calloc(1, sizeof(*cl));
    cl->cfg = *cfg;
    snprintf(cl->name, sizeof(cl->name), "%s", cfg->name);
    cl->heartbeat_ms = cfg->heartbeat_ms != 0 ? cfg->heartbeat_ms : 1000;
    cl->dead_ms = cfg->dead_ms != 0 ? cfg->dead_ms : cl->heartbeat_ms * 7 / 2;
    cl->request_ms = cfg->request_ms != 0 ? cfg->request_ms : 70000;
    if (gethostname(cl->host, sizeof(cl->host) - 1) != 0)
        snprintf(cl->host, sizeof(cl->host), "unknown");
    for (char *p = cl->host; *p != '\0'; p++)
        if (*p == ' ')
            *p = '_';
    member_t *self = &cl->members[0];
    if (cfg->node_id != NULL)
        snprintf(self->id, sizeof(self->id), "%s", cfg->node_id);
    else
        default_node_id(self->id, cl->host);
    self->hid = hash_id(self->id);
    if (RAND_bytes((unsigned char *)&self->inc, sizeof(self->inc)) != 1)
        self->inc = (uint64_t)now_ms() ^ (uint64_t)getpid() << 32;
    self->inc >>= 1; /* printed and read as a signed-safe number */
    self->state = STATE_JOINING;
    cl->n_members = 1;
    snprintf(cl->self_subject, sizeof(cl->self_subject), "%s.node.%s", cl->name, self->id);
    snprintf(cl->members_subject, sizeof(cl->members_subject), "%s.members", cl->name);
    snprintf(cl->desk_subject, sizeof(cl->desk_subject), "%s.desk", cl->name);
    self->ops[0] = '\n';
    /* the key every node derives alike from the shared secret */
    char label[128];
    int label_len = snprintf(label, sizeof(label), "anywhere cluster %s", cl->name);
    unsigned int key_len = 0;
    HMAC(EVP_sha256(), cfg->secret, (int)cfg->secret_len, (const unsigned char *)label, (size_t)label_len,
         cl->key, &key_len);
    pthread_rwlock_init(&cl->view_lock, NULL);
    pthread_mutex_init(&cl->tab_lock, NULL);
    pthread_mutex_init(&cl->beat_lock, NULL);
    pthread_cond_init(&cl->beat_cond, NULL);
    ht_init(&cl->out_conns);
    ht_init(&cl->out_reqs);
    ht_init(&cl->remotes);
    ht_init(&cl->out_consoles);

    natsStatus s = natsOptions_Create(&cl->opts);
    /* "a,b,c": each a server of the same NATS cluster */
    char *urls = aw_strndup(cfg->urls, strlen(cfg->urls)), *save = NULL;
    const char *servers[64];
    int n_servers = 0;
    for (char *u = strtok_r(urls, ",", &save); u != NULL && n_servers < 64; u = strtok_r(NULL, ",", &save))
        if (*u != '\0')
            servers[n_servers++] = u;
    if (s == NATS_OK)
        s = n_servers != 0 ? natsOptions_SetServers(cl->opts, servers, n_servers) : NATS_INVALID_ARG;
    free(urls);
    if (s == NATS_OK)
        s = natsOptions_SetName(cl->opts, self->id);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(cl->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(cl->opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(cl->opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(cl->opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(cl->opts, 2000);
    /* Nothing is kept to send after a reconnect: it would arrive late and
     * out of its order; a publish while cut off fails at once instead. */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(cl->opts, 0);
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(cl->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(cl->opts, on_disconnected, cl);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(cl->opts, on_reconnected, cl);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(cl->opts, on_nats_error, cl);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(cl->opts, on_closed, cl);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(cl->opts, true, on_connected, cl);
    if (s == NATS_OK && cfg->creds_file != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(cl->opts, cfg->creds_file, NULL);
    if (s == NATS_OK && cfg->ca_file != NULL)
        s = natsOptions_LoadCATrustedCertificates(cl->opts, cfg->ca_file);
    if (s != NATS_OK) {
        fprintf(stderr, "anywhere: NATS options: %s\n", natsStatus_GetText(s));
        natsOptions_Destroy(cl->opts);
        free(cl);
        return AW_EINVAL;
    }
    s = natsConnection_Connect(&cl->nc, cl->opts);
    if (s == NATS_OK) {
        on_connected(cl->nc, cl);
    } else if (s != NATS_NOT_YET_CONNECTED) {
        /* never the URLs: they may carry a password */
        fprintf(stderr, "anywhere: NATS: %s\n", natsStatus_GetText(s));
        natsOptions_Destroy(cl->opts);
        free(cl);
        return AW_EINVAL;
    } else {
        aw_log(AW_LOG_WARN, "nats_waiting", "no NATS server of --nats answers yet; trying on");
    }
    s = natsConnection_Subscribe(&cl->sub_members, cl->nc, cl->members_subject, on_members_msg, cl);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&cl->sub_self, cl->nc, cl->self_subject, on_node_msg, cl);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(cl->sub_self, 1000000, 512 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(cl->sub_members, 100000, 64 * 1024 * 1024);
    if (s == NATS_OK && cfg->desk != NULL)
        s = natsConnection_Subscribe(&cl->sub_desk, cl->nc, cl->desk_subject, on_desk_msg, cl);
    if (s != NATS_OK && natsConnection_IsClosed(cl->nc)) {
        /* NATS refused this node for good (its credentials, most likely),
         * while it subscribed: whichever step met the closed connection
         * failed (closed, or an invalid subscription). It runs alone, and
         * says so (on_closed, /healthz). */
        s = NATS_OK;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "anywhere: NATS subscribe: %s\n", natsStatus_GetText(s));
        natsConnection_Destroy(cl->nc);
        natsOptions_Destroy(cl->opts);
        free(cl);
        return AW_EINVAL;
    }
    aw_registry_set_router(cfg->registry, route, cl);
    if (cfg->desk != NULL) {
        cl->peers = (aw_desk_peers_t){cl, desk_changed, desk_online, desk_presence};
        aw_desk_set_peers(cfg->desk, &cl->peers);
    }
    pthread_create(&cl->beat, NULL, beat_main, cl);
    aw_log(AW_LOG_INFO, "cluster_start", "node %s joins cluster %s", self->id, cl->name);
    *out = cl;
    return 0;
}

void aw_cluster_leave(aw_cluster_t *cl)
{
    pthread_rwlock_wrlock(&cl->view_lock);
    cl->members[0].state = AW_WIRE_LEAVING;
    hent_t *resend = view_changed(cl);
    pthread_rwlock_unlock(&cl->view_lock);
    send_on(cl, resend);
    beat(cl, AW_WIRE_LEAVING);
    if (__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE))
        natsConnection_FlushTimeout(cl->nc, 1000);
    aw_log(AW_LOG_INFO, "cluster_leaving", "node %s leaves cluster %s", cl->members[0].id, cl->name);
}

void aw_cluster_stop(aw_cluster_t *cl)
{
    pthread_mutex_lock(&cl->beat_lock);
    cl->stopping = 1;
    pthread_cond_signal(&cl->beat_cond);
    pthread_mutex_unlock(&cl->beat_lock);
    pthread_join(cl->beat, NULL);
    beat(cl, AW_WIRE_GONE);
    if (__atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE))
        natsConnection_FlushTimeout(cl->nc, 1000);
    if (cl->cfg.desk != NULL)
        aw_desk_set_peers(cl->cfg.desk, NULL);
    natsSubscription_Unsubscribe(cl->sub_members);
    natsSubscription_Unsubscribe(cl->sub_self);
    if (cl->sub_desk != NULL)
        natsSubscription_Unsubscribe(cl->sub_desk);
    __atomic_store_n(&cl->closing, 1, __ATOMIC_RELEASE);
    natsConnection_Close(cl->nc);
    natsSubscription_Destroy(cl->sub_members);
    natsSubscription_Destroy(cl->sub_self);
    natsSubscription_Destroy(cl->sub_desk);
    natsConnection_Destroy(cl->nc);
    natsOptions_Destroy(cl->opts);
    nats_CloseAndWait(2000); /* no callback of nats.c runs after this */
    __atomic_store_n(&cl->connected, 0, __ATOMIC_RELEASE);
    aw_registry_set_router(cl->cfg.registry, NULL, NULL);
    give_up_on(cl, NULL);
    free(cl->out_conns.b);
    free(cl->out_reqs.b);
    free(cl->remotes.b);
    free(cl->out_consoles.b);
    pthread_rwlock_destroy(&cl->view_lock);
    pthread_mutex_destroy(&cl->tab_lock);
    pthread_mutex_destroy(&cl->beat_lock);
    pthread_cond_destroy(&cl->beat_cond);
    aw_log(AW_LOG_INFO, "cluster_stop", "node %s has left cluster %s", cl->members[0].id, cl->name);
    free(cl);
}

void aw_cluster_get_stats(aw_cluster_t *cl, aw_cluster_stats_t *st)
{
    *st = (aw_cluster_stats_t){0};
    st->forwarded_out = __atomic_load_n(&cl->stats.forwarded_out, __ATOMIC_RELAXED);
    st->forwarded_in = __atomic_load_n(&cl->stats.forwarded_in, __ATOMIC_RELAXED);
    st->moves = __atomic_load_n(&cl->stats.moves, __ATOMIC_RELAXED);
    st->fences = __atomic_load_n(&cl->stats.fences, __ATOMIC_RELAXED);
    st->joins = __atomic_load_n(&cl->stats.joins, __ATOMIC_RELAXED);
    st->leaves = __atomic_load_n(&cl->stats.leaves, __ATOMIC_RELAXED);
    st->deaths = __atomic_load_n(&cl->stats.deaths, __ATOMIC_RELAXED);
    st->reconnects = __atomic_load_n(&cl->stats.reconnects, __ATOMIC_RELAXED);
    st->nats_errors = __atomic_load_n(&cl->stats.nats_errors, __ATOMIC_RELAXED);
    st->dropped_bad = __atomic_load_n(&cl->stats.dropped_bad, __ATOMIC_RELAXED);
    st->dropped_stranger = __atomic_load_n(&cl->stats.dropped_stranger, __ATOMIC_RELAXED);
    st->dropped_late = __atomic_load_n(&cl->stats.dropped_late, __ATOMIC_RELAXED);
    st->connected = __atomic_load_n(&cl->connected, __ATOMIC_ACQUIRE);
    pthread_rwlock_rdlock(&cl->view_lock);
    for (size_t i = 0; i < cl->n_members; i++)
        st->members += cl->members[i].state == AW_WIRE_UP;
    snprintf(st->server, sizeof(st->server), "%s", cl->server);
    pthread_rwlock_unlock(&cl->view_lock);
    st->homes = aw_registry_count(cl->cfg.registry);
}
