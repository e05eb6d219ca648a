/*
 * The registry (registry.h): a hash table of sessions split into shards, each
 * behind its own mutex, so that I/O threads routing messages for different
 * users rarely wait on each other. The lock is held only to find or insert a
 * session and push one message; sessions are never called under it.
 *
 * Reaping relies on one rule: every message routed to a session is counted
 * (`inflight`) and pushed while the shard lock is held. A session that takes
 * the lock and sees nothing in flight therefore knows no message can reach it
 * any more once it is unlinked.
 */
#include "actors/registry.h"

#include <pthread.h>
#include <string.h>
#include "actors/internal.h"
#include "runtime/error.h"

#define SHARDS 64

typedef struct shard {
    pthread_mutex_t lock;
    aw_session_t **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
} shard_t;

struct aw_registry {
    aw_runtime_t *rt;
    const aw_chat_config_t *cfg;
    shard_t shards[SHARDS];
    int stopped; /* atomic */
    aw_registry_router_fn router;
    void *router_data;
};

/* FNV-1a, 64 bits. */
static uint64_t hash_user(const char *user, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)user[i];
        h *= 1099511628211ULL;
    }
    return h;
}

aw_registry_t *aw_registry_create(aw_runtime_t *rt, const aw_chat_config_t *cfg)
{
    aw_registry_t *reg = aw_calloc(1, sizeof(*reg));
    reg->rt = rt;
    reg->cfg = cfg;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&reg->shards[i].lock, NULL);
        reg->shards[i].n_buckets = 16;
        reg->shards[i].buckets = aw_calloc(16, sizeof(aw_session_t *));
    }
    return reg;
}

static shard_t *shard_of(aw_registry_t *reg, uint64_t h)
{
    return &reg->shards[h % SHARDS];
}

static int is_user(const aw_session_t *s, uint64_t h, const char *user, size_t len)
{
    return s->hash == h && s->user_len == len && memcmp(s->user, user, len) == 0;
}

/* Where the session of `user` that messages go to is (departing ones are
 * passed over), or where a new one goes. */
static aw_session_t **slot_of(shard_t *sh, uint64_t h, const char *user, size_t len)
{
    aw_session_t **p = &sh->buckets[(h / SHARDS) & (sh->n_buckets - 1)];
    while (*p != NULL && ((*p)->departing || !is_user(*p, h, user, len)))
        p = &(*p)->next_in_bucket;
    return p;
}

/* Where `s` itself is, or NULL. */
static aw_session_t **slot_of_session(shard_t *sh, aw_session_t *s)
{
    aw_session_t **p = &sh->buckets[(s->hash / SHARDS) & (sh->n_buckets - 1)];
    while (*p != NULL && *p != s)
        p = &(*p)->next_in_bucket;
    return *p == s ? p : NULL;
}

/* Sends `m` to `s` (shard lock held), counted in flight like a routed
 * message; frees it when the runtime refuses it. */
static void send_locked(aw_session_t *s, aw_msg_t *m)
{
    __atomic_add_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
    if (aw_actor_send(&s->super, m) != 0) {
        __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
        aw_msg_release(m);
    }
}

static void grow(shard_t *sh)
{
    size_t n = sh->n_buckets * 2;
    aw_session_t **b = aw_calloc(n, sizeof(*b));
    for (size_t i = 0; i < sh->n_buckets; i++) {
        aw_session_t *s = sh->buckets[i];
        while (s != NULL) {
            aw_session_t *next = s->next_in_bucket;
            size_t at = (s->hash / SHARDS) & (n - 1);
            s->next_in_bucket = b[at];
            b[at] = s;
            s = next;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->n_buckets = n;
}

void aw_registry_set_router(aw_registry_t *reg, aw_registry_router_fn fn, void *data)
{
    reg->router = fn;
    reg->router_data = data;
}

int aw_registry_send(aw_registry_t *reg, const char *user, size_t user_len, aw_msg_t *msg, int create)
{
    if (reg->router != NULL) {
        int r = reg->router(reg->router_data, user, user_len, msg, create);
        if (r != AW_REGISTRY_HERE)
            return r == AW_REGISTRY_TAKEN ? 0 : r;
    }
    return aw_registry_send_here(reg, user, user_len, msg, create);
}

int aw_registry_send_here(aw_registry_t *reg, const char *user, size_t user_len, aw_msg_t *msg, int create)
{
    if (__atomic_load_n(&reg->stopped, __ATOMIC_ACQUIRE))
        return AW_ESTOPPED;
    uint64_t h = hash_user(user, user_len);
    shard_t *sh = shard_of(reg, h);
    int err = 0;
    pthread_mutex_lock(&sh->lock);
    /* Again under the lock: a shutdown that visited this shard already would
     * never tell a session made now to finish. */
    if (__atomic_load_n(&reg->stopped, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&sh->lock);
        return AW_ESTOPPED;
    }
    aw_session_t **p = slot_of(sh, h, user, user_len);
    if (*p == NULL && create) {
        *p = aw_session__new(reg, reg->rt, reg->cfg, user, user_len, h);
        if (++sh->count > sh->n_buckets * 2) {
            grow(sh);
            p = slot_of(sh, h, user, user_len);
        }
    }
    aw_session_t *s = *p;
    if (s == NULL) {
        err = AW_ENOTFOUND;
    } else {
        __atomic_add_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
        if ((err = aw_actor_send(&s->super, msg)) != 0)
            __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
    }
    pthread_mutex_unlock(&sh->lock);
    return err;
}

int aw_registry__reap(aw_registry_t *reg, aw_session_t *s)
{
    shard_t *sh = shard_of(reg, s->hash);
    int removed = 0;
    pthread_mutex_lock(&sh->lock);
    if (__atomic_load_n(&s->inflight, __ATOMIC_ACQUIRE) == 0) {
        aw_session_t **p = slot_of_session(sh, s);
        if (p != NULL) {
            *p = s->next_in_bucket;
            sh->count--;
            removed = 1;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    if (removed)
        aw_actor_release(&s->super); /* the registry's reference */
    return removed;
}

size_t aw_registry_move_away(aw_registry_t *reg, int (*stays)(void *data, const char *user, size_t user_len),
                             void *data)
{
    size_t moved = 0;
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &reg->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->n_buckets; b++) {
            for (aw_session_t *s = sh->buckets[b]; s != NULL; s = s->next_in_bucket) {
                if (s->departing || stays(data, s->user, s->user_len))
                    continue;
                /* No message reaches it through the registry any more; it
                 * stays listed until it has finished, for aw_registry_release. */
                s->departing = 1;
                send_locked(s, aw_moved_msg_new());
                moved++;
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
    return moved;
}

/* Counts down the sessions of one release; the last one tells the caller. */
typedef struct release_all {
    unsigned int left; /* atomic */
    void (*done)(void *arg);
    void *arg;
} release_all_t;

static void one_released(void *arg)
{
    release_all_t *all = arg;
    if (__atomic_sub_fetch(&all->left, 1, __ATOMIC_ACQ_REL) == 0) {
        all->done(all->arg);
        free(all);
    }
}

void aw_registry_release(aw_registry_t *reg, const char *user, size_t user_len, void (*done)(void *arg),
                         void *arg)
{
    uint64_t h = hash_user(user, user_len);
    shard_t *sh = shard_of(reg, h);
    release_all_t *all = aw_calloc(1, sizeof(*all));
    all->left = 1; /* this call's own, dropped below: no early answer while sending */
    all->done = done;
    all->arg = arg;
    pthread_mutex_lock(&sh->lock);
    for (aw_session_t *s = sh->buckets[(h / SHARDS) & (sh->n_buckets - 1)]; s != NULL;
         s = s->next_in_bucket) {
        if (!is_user(s, h, user, user_len))
            continue;
        s->departing = 1;
        __atomic_add_fetch(&all->left, 1, __ATOMIC_ACQ_REL);
        send_locked(s, &aw_release_new(one_released, all)->super);
    }
    pthread_mutex_unlock(&sh->lock);
    one_released(all);
}

void aw_registry_shutdown(aw_registry_t *reg)
{
    /* Refusing first: a send checks `stopped` under the shard lock, so once a
     * shard is visited below, no session can appear in it untold. */
    __atomic_store_n(&reg->stopped, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &reg->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->n_buckets; b++) {
            for (aw_session_t *s = sh->buckets[b]; s != NULL; s = s->next_in_bucket) {
                send_locked(s, aw_shutdown_msg_new());
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

size_t aw_registry_count(aw_registry_t *reg)
{
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&reg->shards[i].lock);
        n += reg->shards[i].count;
        pthread_mutex_unlock(&reg->shards[i].lock);
    }
    return n;
}

void aw_registry_destroy(aw_registry_t *reg)
{
    __atomic_store_n(&reg->stopped, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &reg->shards[i];
        for (size_t b = 0; b < sh->n_buckets; b++) {
            aw_session_t *s = sh->buckets[b];
            while (s != NULL) {
                aw_session_t *next = s->next_in_bucket;
                aw_actor_release(&s->super);
                s = next;
            }
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(reg);
}
