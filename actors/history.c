/*
 * The history actor (history.h). One thread owns the store and handles the
 * requests it takes from its inbox (aw_inbox_t) in the order they were
 * pushed, a take at a time. Appends accumulate into a batch that is written
 * when it is full, when its first record has waited `flush_ms`, or before a
 * page read, so a page sees every record appended before it. A failed write
 * keeps the batch and retries with exponential backoff; chat goes on
 * meanwhile, and only a full queue refuses records.
 *
 * The reads a session waits on (its last key, its missed messages) never wait
 * for the batch to be written: they read the store and add what the batch
 * holds. When the store cannot be read either, the last key comes from what
 * this thread itself knows of the user: the records it holds, and a small
 * table of the highest key it appended or read per user (`marks`). A session
 * numbers from that key, so a store outage holds up no one this process has
 * served; only a user it knows nothing of has to wait for the store.
 *
 * Threading: producers only push to the inbox, which wakes the thread when
 * it waits for what they push (see push). Everything else in this file runs
 * on the history thread alone.
 */
#include "actors/history.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <openssl/rand.h>
#include "actors/journal.h"
#include "actors/metrics.h"
#include "runtime/log.h"
#include "runtime/actor.h"
#include "runtime/error.h"
#include "runtime/inbox.h"

enum { REQ_APPEND, REQ_CLAIM, REQ_RESERVE, REQ_MARK, REQ_TAIL, REQ_MISSED, REQ_PAGE, REQ_LATEST, REQ_STOP };

/* A request. The records of one append (a group) are an array of these in
 * one allocation, followed by the user id they share (new_reqs): the first
 * is the block that is freed, once, when the last record is written. */
typedef struct req {
    aw_inbox_entry_t entry;
    int kind;
    char *user; /* in the block, after the requests */
    size_t user_len;
    int64_t seq, sub, ts_ms; /* APPEND: the key; MISSED, PAGE: the bound */
    int direction, flags;
    aw_buf_t *json;
    struct req *group; /* APPEND: the next record of the same group, written in the same store call */
    int urgent;        /* CLAIM, RESERVE: a turn waits for it now (see push) */
    size_t limit;
    int cut; /* PAGE: AW_HISTORY_PAGE_... */
    void *cb;
    void *data;
} req_t;

struct aw_history {
    aw_history_config_t cfg;
    aw_store_t *store;
    aw_inbox_t inbox; /* appends are lazy pushes, reads and stops eager ones */
    uv_thread_t thread;
    int stopped;    /* atomic: appends are refused */
    int full;       /* atomic: refusing since the last "history_full" log, until there is room */
    uint64_t reads; /* atomic: reads pushed whose callback has not returned */
    unsigned int stop_deadline_ms;
    size_t journal_left; /* records of the last stop's journal not written yet */
    struct local *local; /* reservations answered from the local file, not in the store yet */
    size_t n_local;
    /* history thread only */
    aw_record_t *recs; /* the batch: recs[head..n) */
    aw_buf_t **bufs;
    struct waiter *waits; /* per record: who waits for it to be durable (a claim), or cb NULL */
    struct req **blocks;  /* per record: the request block freed once it is written (on a group's last
                           * record, whose user id is in it), or NULL */
    size_t head, n, cap;
    size_t waited; /* records in the batch that someone waits on: written without waiting for flush_ms */
    uint64_t first_at, retry_at, backoff;
    struct mark *marks; /* MARKS slots, direct-mapped by the user's hash */
    /* statistics, atomic */
    uint64_t appended, written, refused, batches, failures, queued, held_bytes;
    int store_down;
};

/* The highest key this process appended or read for a user. A slot holds one
 * user; a collision evicts the older one, which only means that user's key
 * must be read from the store again. */
#define MARKS 16384
typedef struct mark {
    char *user;
    size_t user_len;
    int64_t seq, sub;
    int flags;        /* AW_TAIL_PROTECTED: a record of the user carried AW_RECORD_PROTECTED;
                       * AW_TAIL_KNOWN: a record of the user was appended or read */
    int64_t reserved; /* the top of the highest reservation this process saw durable and its own, or 0 */
} mark_t;

/* A reservation made durable in the local file while the store was down. */
typedef struct local {
    char *user;
    size_t user_len;
    int64_t top, ts_ms;
    int flags;
    aw_buf_t *json;
} local_t;

/* Who waits for a record to be written, and how the batch may be cut there. */
typedef struct waiter {
    aw_history_done_cb cb; /* NULL: nobody */
    void *data;
    int verify; /* a claim or reservation: answered once the stored one is read back */
    int joined; /* written in the same store call as the next record (a group) */
    int urgent; /* someone waits for it now: the batch is written at once (run) */
} waiter_t;

static int key_above(int64_t seq, int64_t sub, int64_t than_seq, int64_t than_sub)
{
    return seq > than_seq || (seq == than_seq && sub > than_sub);
}

static mark_t *mark_slot(aw_history_t *h, const char *user, size_t user_len)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < user_len; i++)
        x = (x ^ (unsigned char)user[i]) * 1099511628211ull;
    return &h->marks[x % MARKS];
}

/* Raises the user's mark to (seq, sub), and adds `flags` (AW_TAIL_...).
 * History thread. */
static void mark_raise(aw_history_t *h, const char *user, size_t user_len, int64_t seq, int64_t sub,
                       int flags)
{
    mark_t *m = mark_slot(h, user, user_len);
    if (m->user == NULL || m->user_len != user_len || memcmp(m->user, user, user_len) != 0) {
        free(m->user);
        m->user = aw_strndup(user, user_len);
        m->user_len = user_len;
        m->seq = seq;
        m->sub = sub;
        m->flags = 0;
        m->reserved = 0;
    } else if (key_above(seq, sub, m->seq, m->sub)) {
        m->seq = seq;
        m->sub = sub;
    }
    m->flags |= flags;
}

/* The user's mark, or NULL when this process knows nothing of the user. */
static mark_t *mark_find(aw_history_t *h, const char *user, size_t user_len)
{
    mark_t *m = mark_slot(h, user, user_len);
    if (m->user == NULL || m->user_len != user_len || memcmp(m->user, user, user_len) != 0)
        return NULL;
    return m;
}

/*
 * Appends are pushed lazily: while the thread waits for a partial batch's
 * deadline, an append wakes it only when it fills the batch (sleep_until),
 * so that a stream of appends does not cost a wake-up, and its sender a
 * system call, each. A read or a stop wakes it at once.
 */
static int push(aw_history_t *h, req_t *r)
{
    /* Once pushed, `r` belongs to the history thread, which may free it at
     * once: nothing of it is read after. A claim or a reservation wakes the
     * thread: a turn waits on it, and it is written at once (see run). A
     * group a turn waits on (--durable-delivery) is as lazy as any append:
     * a thread that sleeps with nothing held wakes for it anyway, and one
     * that is busy takes it with the next write, without a wake-up each. */
    if (r->kind == REQ_APPEND || r->kind == REQ_MARK || (r->kind == REQ_RESERVE && !r->urgent))
        aw_inbox_push_lazy(&h->inbox, &r->entry);
    else
        aw_inbox_push(&h->inbox, &r->entry);
    return 0;
}

/*
 * `n` requests of `kind` linked as a group, and one copy of the user id, in
 * one allocation. A record is allocated on the thread that appends it and
 * freed on the history thread: with glibc, every such pair takes the slow
 * path of the allocator on both sides (the freeing thread's cache fills, the
 * allocating thread's stays empty), so a turn's records cost one pair, not
 * one per request and one per user id.
 */
static req_t *new_reqs(int kind, size_t n, const char *user, size_t user_len)
{
    req_t *r = aw_calloc(1, n * sizeof(*r) + (user != NULL ? user_len + 1 : 0));
    char *copy = NULL;
    if (user != NULL) {
        copy = (char *)(r + n);
        memcpy(copy, user, user_len);
        copy[user_len] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        r[i].kind = kind;
        r[i].user = copy;
        r[i].user_len = copy != NULL ? user_len : 0;
        r[i].group = i + 1 < n ? &r[i + 1] : NULL;
    }
    return r;
}

static req_t *new_req(int kind, const char *user, size_t user_len)
{
    return new_reqs(kind, 1, user, user_len);
}

/* Frees a block of requests (new_reqs) and the JSON they still hold. */
static void free_req(req_t *r)
{
    for (req_t *g = r; g != NULL; g = g->group)
        aw_buf_release(g->json);
    free(r);
}

/* What a record costs the queue's byte bound. */
static size_t record_bytes(size_t user_len, size_t json_len)
{
    return user_len + json_len;
}

/* Takes room for `n` records of `bytes` in all under both bounds, or
 * refuses them. */
static int reserve_n(aw_history_t *h, size_t n, size_t bytes)
{
    int over = __atomic_add_fetch(&h->queued, n, __ATOMIC_ACQ_REL) > h->cfg.max_queue;
    over |= __atomic_add_fetch(&h->held_bytes, bytes, __ATOMIC_ACQ_REL) > h->cfg.max_bytes;
    if (!over)
        return 0;
    __atomic_sub_fetch(&h->queued, n, __ATOMIC_ACQ_REL);
    __atomic_sub_fetch(&h->held_bytes, bytes, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&h->refused, n, __ATOMIC_RELAXED);
    /* said once per episode: the flag goes down when there is room again */
    if (!__atomic_exchange_n(&h->full, 1, __ATOMIC_ACQ_REL))
        aw_log(AW_LOG_WARN, "history_full",
               "the history queue is full (%zu records or %zu bytes at most): new history is refused until "
               "the store catches up",
               h->cfg.max_queue, h->cfg.max_bytes);
    return AW_EFULL;
}

/* Ends a refusal episode once both bounds have room again. History thread. */
static void maybe_room(aw_history_t *h)
{
    if (!__atomic_load_n(&h->full, __ATOMIC_ACQUIRE))
        return;
    /* a little room, not one record's worth, so that a queue at its bound
     * does not log at every write */
    if (__atomic_load_n(&h->queued, __ATOMIC_ACQUIRE) > h->cfg.max_queue - h->cfg.max_queue / 10 ||
        __atomic_load_n(&h->held_bytes, __ATOMIC_ACQUIRE) > h->cfg.max_bytes - h->cfg.max_bytes / 10)
        return;
    if (__atomic_exchange_n(&h->full, 0, __ATOMIC_ACQ_REL))
        aw_log(AW_LOG_INFO, "history_room",
               "the history queue has room again (%llu record(s) refused so far)",
               (unsigned long long)__atomic_load_n(&h->refused, __ATOMIC_RELAXED));
}

int aw_history_append(aw_history_t *h, const char *user, size_t user_len, int64_t seq, int64_t sub,
                      int64_t ts_ms, int direction, int flags, aw_buf_t *json)
{
    aw_history_item_t item = {seq, sub, ts_ms, direction, flags, json};
    return aw_history_append_group(h, user, user_len, &item, 1, NULL, NULL);
}

/* A record refused by a bound still raises the user's mark: its key may have
 * been handed out (a bot message's seq), and a session that reads the tail
 * from this process later must not number it again. Unbounded, but one
 * small request per refused record, which the chat's own rate bounds. */
static void mark_refused(aw_history_t *h, const char *user, size_t user_len, int64_t seq, int64_t sub)
{
    req_t *r = new_req(REQ_MARK, user, user_len);
    r->seq = seq;
    r->sub = sub;
    push(h, r);
}

int aw_history_append_group(aw_history_t *h, const char *user, size_t user_len,
                            const aw_history_item_t *items, size_t n, aw_history_done_cb cb, void *data)
{
    if (__atomic_load_n(&h->stopped, __ATOMIC_ACQUIRE))
        return AW_ESTOPPED;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += record_bytes(user_len, items[i].json->len);
    if (reserve_n(h, n, bytes) != 0) {
        for (size_t i = 0; i < n; i++)
            mark_refused(h, user, user_len, items[i].seq, items[i].sub);
        return AW_EFULL;
    }
    req_t *first = new_reqs(REQ_APPEND, n, user, user_len);
    for (size_t i = 0; i < n; i++) {
        req_t *r = &first[i];
        r->seq = items[i].seq;
        r->sub = items[i].sub;
        r->ts_ms = items[i].ts_ms;
        r->direction = items[i].direction;
        r->flags = items[i].flags & (AW_RECORD_PROTECTED | AW_RECORD_HANDOFF);
        r->json = aw_buf_retain(items[i].json);
    }
    first->cb = (void *)cb;
    first->data = data;
    if (cb != NULL)
        __atomic_add_fetch(&h->reads, 1, __ATOMIC_SEQ_CST); /* a turn may wait on it, as on a read */
    __atomic_add_fetch(&h->appended, n, __ATOMIC_RELAXED);
    return push(h, first);
}

/* A claim's or reservation's JSON, of `type`: a nonce of 16 random bytes
 * makes each one's record its own, so that reading the stored one back tells
 * whose it is. NULL when no randomness can be had: one without a unique
 * nonce could win twice. */
static aw_buf_t *nonce_json(const char *type)
{
    unsigned char raw[16];
    char nonce[2 * sizeof(raw) + 1], json[128];
    static const char hex[] = "0123456789abcdef";
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    for (size_t i = 0; i < sizeof(raw); i++) {
        nonce[2 * i] = hex[raw[i] >> 4];
        nonce[2 * i + 1] = hex[raw[i] & 15];
    }
    nonce[sizeof(nonce) - 1] = '\0';
    int n = snprintf(json, sizeof(json), "{\"type\":\"%s\",\"nonce\":\"%s\"}", type, nonce);
    return aw_buf_new(json, (size_t)n);
}

/* Queues a record that is answered once it is read back: a claim at (0, 0)
 * or a reservation at (top, -1). */
static int push_verified(aw_history_t *h, int kind, const char *user, size_t user_len, int64_t seq,
                         int64_t sub, int flags, aw_history_done_cb cb, void *data)
{
    if (__atomic_load_n(&h->stopped, __ATOMIC_ACQUIRE))
        return AW_ESTOPPED;
    aw_buf_t *json = nonce_json(kind == REQ_CLAIM ? "identity_claim" : "seq_reservation");
    if (json == NULL)
        return AW_EIO;
    if (kind == REQ_RESERVE) {
        /* Never refused: one small record per SEQ_BLOCK messages of a user,
         * and without it a full queue would stop the user's chat. */
        __atomic_add_fetch(&h->queued, 1, __ATOMIC_ACQ_REL);
        __atomic_add_fetch(&h->held_bytes, record_bytes(user_len, json->len), __ATOMIC_ACQ_REL);
    } else if (reserve_n(h, 1, record_bytes(user_len, json->len)) != 0) {
        aw_buf_release(json);
        return AW_EFULL;
    }
    req_t *r = new_req(kind, user, user_len);
    r->seq = seq;
    r->sub = sub;
    r->ts_ms = (int64_t)aw_wall_ms();
    r->direction = AW_RECORD_OUT;
    r->flags = flags & ~AW_RESERVE_AHEAD;
    r->urgent = !(flags & AW_RESERVE_AHEAD);
    r->json = json;
    r->cb = (void *)cb;
    r->data = data;
    /* counted like a read: a turn waits on it (push_read) */
    __atomic_add_fetch(&h->reads, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&h->appended, 1, __ATOMIC_RELAXED);
    return push(h, r);
}

int aw_history_claim(aw_history_t *h, const char *user, size_t user_len, aw_history_done_cb cb, void *data)
{
    return push_verified(h, REQ_CLAIM, user, user_len, 0, 0, AW_RECORD_CLAIM, cb, data);
}

int aw_history_reserve(aw_history_t *h, const char *user, size_t user_len, int64_t top, int flags,
                       aw_history_done_cb cb, void *data)
{
    if (top < 1)
        return AW_EINVAL;
    return push_verified(h, REQ_RESERVE, user, user_len, top, -1,
                         AW_RECORD_RESERVE | (flags & (AW_RECORD_PROTECTED | AW_RESERVE_AHEAD)), cb, data);
}

/* Reads are counted from here until their callback has returned, so that a
 * stop can wait for the turns that wait on them (main.c): such a turn is in
 * no actor's mailbox until the answer is sent to it, which the callback does. */
static int push_read(aw_history_t *h, req_t *r)
{
    __atomic_add_fetch(&h->reads, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->stopped, __ATOMIC_ACQUIRE)) {
        __atomic_sub_fetch(&h->reads, 1, __ATOMIC_SEQ_CST);
        free_req(r);
        return AW_ESTOPPED;
    }
    return push(h, r);
}

/* Reads are done once answered; a record's waiter once the record is written
 * (batch_drop_written, waiter_answer). */
static void read_done(aw_history_t *h, req_t *r)
{
    if (r->kind == REQ_TAIL || r->kind == REQ_MISSED || r->kind == REQ_PAGE || r->kind == REQ_LATEST)
        __atomic_sub_fetch(&h->reads, 1, __ATOMIC_SEQ_CST);
}

/* Calls a record's waiter with `err`, and ends its count as a read. */
static void waiter_answer(aw_history_t *h, waiter_t *w, int err)
{
    if (w->cb == NULL)
        return;
    w->cb(err, w->data);
    w->cb = NULL;
    __atomic_sub_fetch(&h->reads, 1, __ATOMIC_SEQ_CST);
}

int aw_history_tail(aw_history_t *h, const char *user, size_t user_len, aw_history_tail_cb cb, void *data)
{
    req_t *r = new_req(REQ_TAIL, user, user_len);
    r->cb = (void *)cb;
    r->data = data;
    return push_read(h, r);
}

int aw_history_missed(aw_history_t *h, const char *user, size_t user_len, int64_t after_seq, size_t max,
                      aw_history_frames_cb cb, void *data)
{
    req_t *r = new_req(REQ_MISSED, user, user_len);
    r->seq = after_seq;
    r->limit = max;
    r->cb = (void *)cb;
    r->data = data;
    return push_read(h, r);
}

int aw_history_page(aw_history_t *h, const char *user, size_t user_len, int64_t before_seq, size_t limit,
                    int cut, aw_history_page_cb cb, void *data)
{
    req_t *r = new_req(REQ_PAGE, user, user_len);
    r->seq = before_seq;
    r->limit = limit;
    r->cut = cut;
    r->cb = (void *)cb;
    r->data = data;
    return push_read(h, r);
}

int aw_history_latest(aw_history_t *h, int flag, aw_history_latest_cb cb, void *data)
{
    req_t *r = new_req(REQ_LATEST, NULL, 0);
    r->flags = flag;
    r->cb = (void *)cb;
    r->data = data;
    return push_read(h, r);
}

void aw_history_get_stats(aw_history_t *h, aw_history_stats_t *s)
{
    s->appended = __atomic_load_n(&h->appended, __ATOMIC_RELAXED);
    s->written = __atomic_load_n(&h->written, __ATOMIC_RELAXED);
    s->refused = __atomic_load_n(&h->refused, __ATOMIC_RELAXED);
    s->batches = __atomic_load_n(&h->batches, __ATOMIC_RELAXED);
    s->failures = __atomic_load_n(&h->failures, __ATOMIC_RELAXED);
    s->queued = __atomic_load_n(&h->queued, __ATOMIC_RELAXED);
    s->held_bytes = __atomic_load_n(&h->held_bytes, __ATOMIC_RELAXED);
    s->reads = __atomic_load_n(&h->reads, __ATOMIC_SEQ_CST);
    s->store_down = __atomic_load_n(&h->store_down, __ATOMIC_RELAXED);
}

/* --- the batch --- */

/* Adds one record, taking over the request's JSON; its user id stays in the
 * request's block, which `block` hands over on the block's last record. */
static void batch_put(aw_history_t *h, req_t *r, waiter_t w, req_t *block)
{
    if (h->n == h->cap) {
        if (h->head > h->n / 2) {
            /* reclaim the written prefix before growing */
            memmove(h->recs, h->recs + h->head, (h->n - h->head) * sizeof(*h->recs));
            memmove(h->bufs, h->bufs + h->head, (h->n - h->head) * sizeof(*h->bufs));
            memmove(h->waits, h->waits + h->head, (h->n - h->head) * sizeof(*h->waits));
            memmove(h->blocks, h->blocks + h->head, (h->n - h->head) * sizeof(*h->blocks));
            h->n -= h->head;
            h->head = 0;
        } else {
            h->cap = h->cap < 64 ? 64 : h->cap * 2;
            h->recs = aw_realloc(h->recs, h->cap * sizeof(*h->recs));
            h->bufs = aw_realloc(h->bufs, h->cap * sizeof(*h->bufs));
            h->waits = aw_realloc(h->waits, h->cap * sizeof(*h->waits));
            h->blocks = aw_realloc(h->blocks, h->cap * sizeof(*h->blocks));
        }
    }
    if (h->n == h->head)
        h->first_at = aw_now_ms();
    aw_record_t *rec = &h->recs[h->n];
    rec->user = r->user; /* lives as long as the block */
    rec->user_len = r->user_len;
    rec->seq = r->seq;
    rec->sub = r->sub;
    rec->ts_ms = r->ts_ms;
    rec->direction = r->direction;
    rec->flags = r->flags;
    rec->json = r->json->data;
    rec->json_len = r->json->len;
    /* a reservation numbers nothing by itself: the mark keeps message keys */
    if (!(rec->flags & AW_RECORD_RESERVE))
        mark_raise(h, rec->user, rec->user_len, rec->seq, rec->sub,
                   AW_TAIL_KNOWN | ((rec->flags & AW_RECORD_PROTECTED) ? AW_TAIL_PROTECTED : 0));
    h->bufs[h->n] = r->json;
    h->waits[h->n] = w;
    h->blocks[h->n] = block;
    h->waited += w.cb != NULL && w.urgent;
    h->n++;
    r->json = NULL;
}

/* Adds a request's records, taking over its block: one record, or a group
 * whose waiter is on its last record and whose records are joined so that
 * no write cuts between them. The block goes with the last record: a group
 * is written whole (flush), so it is freed after every record of it. */
static void batch_add(aw_history_t *h, req_t *r)
{
    if (r->kind != REQ_APPEND) {
        batch_put(h, r, (waiter_t){(aw_history_done_cb)r->cb, r->data, 1, 0, r->urgent}, r);
        return;
    }
    waiter_t last = {(aw_history_done_cb)r->cb, r->data, 0, 0, 1};
    for (req_t *g = r; g != NULL; g = g->group)
        batch_put(h, g, g->group != NULL ? (waiter_t){NULL, NULL, 0, 1, 0} : last,
                  g->group != NULL ? NULL : r);
}

/* What claim_verify compares the stored claim with. */
typedef struct claim_cmp {
    const aw_record_t *mine;
    int found, same;
} claim_cmp_t;

static void claim_compare(const aw_record_t *rec, void *data)
{
    claim_cmp_t *c = data;
    c->found = 1;
    c->same = (rec->flags & c->mine->flags & (AW_RECORD_CLAIM | AW_RECORD_RESERVE)) &&
              rec->seq == c->mine->seq && rec->sub == c->mine->sub && rec->json_len == c->mine->json_len &&
              memcmp(rec->json, c->mine->json, rec->json_len) == 0;
}

/* Reads back the user's stored claim or reservation once `mine` has been
 * written: 0 when it is `mine` (the same nonce), AW_EEXIST when another was
 * stored first (the append kept it, as it keeps any record already stored).
 * A reservation that is ours raises the user's mark: numbers up to its top
 * may be handed out by the next session of this process too. */
static int claim_verify(aw_history_t *h, const aw_record_t *mine)
{
    claim_cmp_t c = {mine, 0, 0};
    int more;
    if (aw_store_read(h->store, mine->user, mine->user_len, mine->seq, mine->sub + 1, 1, claim_compare, &c,
                      &more) != 0)
        return AW_EUNAVAILABLE;
    if (!c.found || !c.same)
        return AW_EEXIST;
    mark_t *m = (mine->flags & AW_RECORD_RESERVE) ? mark_find(h, mine->user, mine->user_len) : NULL;
    if (m != NULL && mine->seq > m->reserved)
        m->reserved = mine->seq;
    return 0;
}

/* Holds a record read back from a file of this history's (the journal, the
 * local reservations) in the batch, past the bounds if need be: nothing of
 * it may go. Before the thread starts. */
static void hold_from_file(aw_history_t *h, const aw_record_t *rec)
{
    req_t *r = new_req(REQ_APPEND, rec->user, rec->user_len);
    r->seq = rec->seq;
    r->sub = rec->sub;
    r->ts_ms = rec->ts_ms;
    r->direction = rec->direction;
    r->flags = rec->flags;
    r->json = aw_buf_new(rec->json, rec->json_len);
    __atomic_add_fetch(&h->queued, 1, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&h->held_bytes, record_bytes(rec->user_len, rec->json_len), __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&h->appended, 1, __ATOMIC_RELAXED);
    batch_put(h, r, (waiter_t){0}, r);
}

/*
 * Local reservations. A seq reservation is asked for before numbers are
 * handed out; while the store takes no writes it cannot become durable
 * there, and the user's chat would wait for the store. So the history makes
 * it durable in a file of its own (config `reservations`, the journal's
 * format, replaced whole and synced) and answers it at once; the record
 * stays in the batch and goes to the store when it is back, and the file
 * is emptied then. At the next start, a file left by a crash is read
 * first: its reservations raise their users' marks, so numbering goes on
 * above them, and they are written to the store like any held record. The
 * first-writer check of the store is skipped for them: while the store is
 * down nobody else can number the user anyway (history.h, tail).
 */
static int local_save(aw_history_t *h)
{
    if (h->n_local == 0)
        return unlink(h->cfg.reservations) == 0 || errno == ENOENT ? 0 : AW_EIO;
    aw_record_t *recs = aw_alloc(h->n_local * sizeof(*recs));
    for (size_t i = 0; i < h->n_local; i++) {
        local_t *l = &h->local[i];
        recs[i] = (aw_record_t){l->user,       l->user_len, l->top,        -1,          l->ts_ms,
                                AW_RECORD_OUT, l->flags,    l->json->data, l->json->len};
    }
    int err = aw_journal_write(h->cfg.reservations, recs, h->n_local);
    free(recs);
    return err;
}

static void local_push(aw_history_t *h, const char *user, size_t user_len, int64_t top, int64_t ts_ms,
                       int flags, aw_buf_t *json)
{
    h->local = aw_realloc(h->local, (h->n_local + 1) * sizeof(*h->local));
    h->local[h->n_local++] =
        (local_t){aw_strndup(user, user_len), user_len, top, ts_ms, flags, aw_buf_retain(json)};
}

static void local_drop(aw_history_t *h, size_t i)
{
    free(h->local[i].user);
    aw_buf_release(h->local[i].json);
    h->local[i] = h->local[--h->n_local];
}

/* Answers the reservation held at `i`, if it waits, from the local file. */
static void answer_locally(aw_history_t *h, size_t i)
{
    aw_record_t *rec = &h->recs[i];
    if (h->cfg.reservations == NULL || h->waits[i].cb == NULL || !(rec->flags & AW_RECORD_RESERVE))
        return;
    local_push(h, rec->user, rec->user_len, rec->seq, rec->ts_ms, rec->flags, h->bufs[i]);
    if (local_save(h) != 0) {
        local_drop(h, h->n_local - 1); /* not durable anywhere: it waits for the store */
        return;
    }
    mark_t *m = mark_find(h, rec->user, rec->user_len);
    if (m != NULL && rec->seq > m->reserved)
        m->reserved = rec->seq;
    h->waited -= h->waits[i].urgent != 0;
    waiter_answer(h, &h->waits[i], 0);
}

/* A reservation reached the store: the local file no longer needs it. */
static void local_written(aw_history_t *h, const aw_record_t *rec)
{
    for (size_t i = 0; i < h->n_local; i++) {
        local_t *l = &h->local[i];
        if (l->top == rec->seq && l->user_len == rec->user_len &&
            memcmp(l->user, rec->user, l->user_len) == 0) {
            local_drop(h, i);
            if (local_save(h) != 0)
                aw_log(AW_LOG_WARN, "seq_reservations",
                       "cannot rewrite %s: it keeps a reservation the store has", h->cfg.reservations);
            return;
        }
    }
}

static void local_add(const aw_record_t *rec, void *data)
{
    aw_history_t *h = data;
    aw_buf_t *json = aw_buf_new(rec->json, rec->json_len);
    local_push(h, rec->user, rec->user_len, rec->seq, rec->ts_ms, rec->flags, json);
    aw_buf_release(json);
    mark_raise(h, rec->user, rec->user_len, rec->seq, 0, AW_TAIL_KNOWN);
    hold_from_file(h, rec);
}

/* Takes in the local reservations a crash left, before the thread starts.
 * A damaged file (a broken disk: it is replaced whole, never written in
 * place) is set aside as FILE.bad and said loudly: numbering may then
 * repeat numbers handed out while the store was down before the crash. */
static void local_recover(aw_history_t *h)
{
    char *buf;
    size_t len, n = 0;
    int err = aw_journal_load(h->cfg.reservations, &buf, &len);
    if (err == AW_ENOTFOUND)
        return;
    if (err == 0)
        err = aw_journal_parse(buf, len, local_add, h, &n);
    free(buf);
    if (err != 0) {
        char bad[4096];
        snprintf(bad, sizeof(bad), "%s.bad", h->cfg.reservations);
        rename(h->cfg.reservations, bad);
        aw_log(AW_LOG_ERROR, "seq_reservations",
               "%s is damaged or unreadable: set aside as %s; numbers handed out while the store was down "
               "before the last stop may be handed out again",
               h->cfg.reservations, bad);
        return;
    }
    aw_log(AW_LOG_INFO, "seq_reservations",
           "%zu seq reservation(s) made while the store was down: numbering goes on above them", n);
}

static void batch_drop_written(aw_history_t *h, size_t k)
{
    size_t bytes = 0;
    for (size_t i = h->head; i < h->head + k; i++) {
        if (h->waits[i].cb != NULL) {
            h->waited -= h->waits[i].urgent != 0;
            waiter_answer(h, &h->waits[i], h->waits[i].verify ? claim_verify(h, &h->recs[i]) : 0);
        } else if ((h->recs[i].flags & AW_RECORD_RESERVE) && h->n_local != 0)
            local_written(h, &h->recs[i]);
        bytes += record_bytes(h->recs[i].user_len, h->recs[i].json_len);
        free(h->blocks[i]);
        aw_buf_release(h->bufs[i]);
    }
    __atomic_sub_fetch(&h->held_bytes, bytes, __ATOMIC_ACQ_REL);
    h->head += k;
    if (h->head == h->n)
        h->head = h->n = 0;
    __atomic_sub_fetch(&h->queued, k, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&h->written, k, __ATOMIC_RELAXED);
    maybe_room(h);
    /* the journal's records were added first, so they are written first */
    if (h->journal_left != 0) {
        h->journal_left -= k < h->journal_left ? k : h->journal_left;
        if (h->journal_left == 0) {
            unlink(h->cfg.journal);
            aw_log(AW_LOG_INFO, "history_journal",
                   "the records kept in %s at the last stop are in the store now", h->cfg.journal);
        }
    }
}

/* Writes everything held. A backlog (the store was slower than the chat) goes
 * in transactions of up to GROUP batches: each transaction costs a sync and
 * rewrites every index page it touches, and records of many users touch
 * most of the index's leaves whatever their number, so fewer, larger
 * transactions catch up faster (bench/README.md, "History benchmark"). The
 * price is that a read waits behind a transaction of up to GROUP * batch
 * records while the store is behind. Returns 0, or the store's error after
 * scheduling a retry. */
#define GROUP 64
static int flush(aw_history_t *h)
{
    while (h->head < h->n) {
        size_t k = h->n - h->head;
        if (k > h->cfg.batch * GROUP)
            k = h->cfg.batch * GROUP;
        while (h->waits[h->head + k - 1].joined)
            k++; /* never cut a group: it is held whole, since it is pushed whole */
        uint64_t t0 = aw_now_ms();
        int err = aw_store_append(h->store, h->recs + h->head, k);
        if (err == 0)
            aw_metrics_store_write(aw_now_ms() - t0, k);
        if (err != 0) {
            __atomic_add_fetch(&h->failures, 1, __ATOMIC_RELAXED);
            if (!__atomic_exchange_n(&h->store_down, 1, __ATOMIC_RELAXED))
                aw_log(AW_LOG_WARN, "store_down",
                       "history store (%s) failed: %s; holding %zu record(s) and retrying",
                       aw_store_backend(h->store), aw_strerror(err), h->n - h->head);
            h->backoff = h->backoff == 0 ? 50 : (h->backoff * 2 > 5000 ? 5000 : h->backoff * 2);
            h->retry_at = aw_now_ms() + h->backoff;
            for (size_t i = h->head; i < h->n; i++)
                answer_locally(h, i); /* chat need not wait for the store to number */
            return err;
        }
        if (__atomic_exchange_n(&h->store_down, 0, __ATOMIC_RELAXED))
            aw_log(AW_LOG_INFO, "store_up", "history store (%s) is back", aw_store_backend(h->store));
        h->backoff = 0;
        h->retry_at = 0;
        __atomic_add_fetch(&h->batches, 1, __ATOMIC_RELAXED);
        batch_drop_written(h, k);
    }
    return 0;
}

/* Flushes unless a retry is not due yet. */
static int flush_if_possible(aw_history_t *h)
{
    if (h->head == h->n)
        return 0;
    if (h->retry_at != 0 && aw_now_ms() < h->retry_at)
        return AW_EUNAVAILABLE;
    return flush(h);
}

/* --- reads (history thread) --- */

typedef struct collect {
    aw_record_t *recs;
    aw_buf_t **json;
    size_t n, cap;
    int claims;  /* keep identity claims and reservations (only the tail wants them; no one is shown one) */
    size_t seen; /* records read, kept or not */
    int64_t first_seq, first_sub; /* the key of the oldest one read */
} collect_t;

#define HIDDEN                                                                                               \
    (AW_RECORD_CLAIM | AW_RECORD_RESERVE | AW_RECORD_HANDOFF) /* records never shown in history              \
                                                               */

static void on_record(const aw_record_t *rec, void *data)
{
    collect_t *c = data;
    if (c->seen++ == 0) { /* a page comes oldest first */
        c->first_seq = rec->seq;
        c->first_sub = rec->sub;
    }
    if ((rec->flags & HIDDEN) && !c->claims)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap < 16 ? 16 : c->cap * 2;
        c->recs = aw_realloc(c->recs, c->cap * sizeof(*c->recs));
        c->json = aw_realloc(c->json, c->cap * sizeof(*c->json));
    }
    c->recs[c->n] = *rec;
    c->recs[c->n].user = NULL; /* not kept */
    c->json[c->n] = aw_buf_new(rec->json, rec->json_len);
    c->recs[c->n].json = c->json[c->n]->data;
    c->n++;
}

static void collect_free(collect_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        aw_buf_release(c->json[i]);
    free(c->recs);
    free(c->json);
    memset(c, 0, sizeof(*c));
}

static int read_page(aw_history_t *h, req_t *r, int64_t bseq, int64_t bsub, size_t limit, collect_t *out,
                     int *more)
{
    *more = 0;
    return aw_store_read(h->store, r->user, r->user_len, bseq, bsub, limit, on_record, out, more);
}

/* Reads up to `limit` records that may be shown, below (bseq, bsub): a page
 * that met claims or reservations, which are not shown, is completed from
 * older records. */
static int read_visible(aw_history_t *h, req_t *r, int64_t bseq, int64_t bsub, size_t limit, collect_t *out,
                        int *more)
{
    int err = read_page(h, r, bseq, bsub, limit, out, more);
    while (err == 0 && *more && out->n < limit && out->seen != 0) {
        collect_t older = {0};
        err = read_page(h, r, out->first_seq, out->first_sub, limit - out->n, &older, more);
        if (err == 0 && older.seen == 0) {
            collect_free(&older);
            *more = 0;
            break;
        }
        int64_t first_seq = older.first_seq, first_sub = older.first_sub;
        for (size_t k = 0; err == 0 && k < out->n; k++)
            on_record(&out->recs[k], &older);
        if (err == 0) {
            older.first_seq = first_seq;
            older.first_sub = first_sub;
            collect_free(out);
            *out = older;
        } else {
            collect_free(&older);
        }
    }
    return err;
}

/* What the tail read gathers of a user, from the store and the batch. */
typedef struct tail_acc {
    int found;         /* a message or claim */
    int64_t seq, sub;  /* the newest one's key */
    int64_t top;       /* the top of the newest reservation, 0 for none */
    int flags;         /* AW_TAIL_... */
    aw_buf_t **recent; /* the person's newest messages with a `mid`, newest first */
    size_t n_recent, max_recent;
    int with_mids;     /* some were found: read on for the rest of the window */
    aw_buf_t *handoff; /* the newest handoff record met (a reference), or NULL */
} tail_acc_t;

/* Adds one record. Protection, once proved, is never taken back, so each
 * record written after the proof carries it: any record that does tells. */
static void tail_add(tail_acc_t *t, const aw_record_t *rec, aw_buf_t *json)
{
    t->flags |= (rec->flags & AW_RECORD_PROTECTED) ? AW_TAIL_PROTECTED : 0;
    if (rec->flags & AW_RECORD_RESERVE) {
        if (rec->seq > t->top)
            t->top = rec->seq;
        return;
    }
    t->flags |= AW_TAIL_KNOWN;
    if ((rec->flags & AW_RECORD_HANDOFF) && t->handoff == NULL)
        t->handoff = aw_buf_retain(json); /* records come newest first */
    if (!t->found || key_above(rec->seq, rec->sub, t->seq, t->sub)) {
        t->found = 1;
        t->seq = rec->seq;
        t->sub = rec->sub;
    }
    /* only the messages that carry a client's id matter to the session */
    if (rec->direction == AW_RECORD_IN && !(rec->flags & (AW_RECORD_CLAIM | AW_RECORD_HANDOFF)) &&
        t->n_recent < t->max_recent && memmem(json->data, json->len, "\"mid\"", 5) != NULL) {
        t->recent[t->n_recent++] = aw_buf_retain(json);
        t->with_mids = 1;
    }
}

/* Reads the user's newest records from the store: a short first page, and
 * when its person's messages carry client ids (`mid`), pages on until the
 * tail's share of them is found or TAIL_PAGES pages are read, so that a
 * user whose clients send no ids costs one small read. The newest message
 * and reservation are in the first page unless a bot message was followed
 * by more of the person's messages than it holds; the reservation, below
 * them, then numbers nothing above that bot message anyway. */
#define TAIL_FIRST 16
#define TAIL_PAGE 256
#define TAIL_PAGES 4
static int tail_read_store(aw_history_t *h, req_t *r, tail_acc_t *t)
{
    int64_t bseq = INT64_MAX, bsub = INT64_MAX;
    int more = 1, err = 0;
    for (int p = 0; p < TAIL_PAGES && more && t->n_recent < t->max_recent && (p == 0 || t->with_mids); p++) {
        collect_t c = {.claims = 1}; /* a claim alone makes the id known */
        if ((err = read_page(h, r, bseq, bsub, p == 0 ? TAIL_FIRST : TAIL_PAGE, &c, &more)) != 0) {
            collect_free(&c);
            return err;
        }
        for (size_t i = c.n; i-- > 0;)
            tail_add(t, &c.recs[i], c.json[i]);
        if (c.n != 0) {
            bseq = c.recs[0].seq;
            bsub = c.recs[0].sub;
        }
        more = more && c.n != 0;
        collect_free(&c);
    }
    return 0;
}

static void keep_handoff(const aw_record_t *rec, void *data)
{
    *(aw_buf_t **)data = aw_buf_new(rec->json, rec->json_len);
}

/* Who answers the user, for the tail: the newest handoff record held, else
 * the newest the tail's pages met, else the store's (an index lookup: it may
 * be older than every page read). `err`: the pages' read. The answer's
 * buffer stays in `t` (released by the caller). */
static void tail_handoff(aw_history_t *h, req_t *r, int err, tail_acc_t *held, tail_acc_t *t,
                         aw_history_tail_t *tail)
{
    if (held->handoff != NULL || t->handoff != NULL) {
        tail->handoff = held->handoff != NULL ? held->handoff : t->handoff;
        tail->handoff_known = 1;
        return;
    }
    if (err == 0 && aw_store_latest_of(h->store, r->user, r->user_len, AW_RECORD_HANDOFF, keep_handoff,
                                       &t->handoff) == 0) {
        tail->handoff = t->handoff;
        tail->handoff_known = 1;
    }
}

/* The user's last key (history.h). The store is read as it is, without
 * writing the batch first: a store that refuses writes must not hold up a
 * session's first turn. Every record of the user that is not in the store
 * yet is in the batch, and raised the user's mark when it was added, so the
 * answer is the store's key or the mark, whichever is higher. When the store
 * cannot be read, the mark (or, if a collision evicted it, the records held)
 * is still exact: whatever this process appended for the user was numbered
 * after a key read from the store, and only this process writes the user's
 * records. With neither, the answer is AW_EUNAVAILABLE.
 *
 * Reservations: a session may go on numbering inside a block only if this
 * process reserved it and saw it durable (the mark's `reserved`) and nobody
 * has reserved above it since; otherwise it numbers above the newest
 * reservation, and no number anyone handed out is above that. */
static void do_tail(aw_history_t *h, req_t *r)
{
    aw_buf_t *held_recent[AW_HISTORY_TAIL_RECENT], *recent[AW_HISTORY_TAIL_RECENT];
    tail_acc_t held = {.recent = held_recent, .max_recent = AW_HISTORY_TAIL_RECENT};
    for (size_t i = h->n; i-- > h->head;) { /* the held records are the newest */
        const aw_record_t *rec = &h->recs[i];
        if (rec->user_len == r->user_len && memcmp(rec->user, r->user, r->user_len) == 0)
            tail_add(&held, rec, h->bufs[i]);
    }
    memcpy(recent, held_recent, held.n_recent * sizeof(*recent));
    tail_acc_t t = {.recent = recent + held.n_recent, .max_recent = AW_HISTORY_TAIL_RECENT - held.n_recent};
    int err = tail_read_store(h, r, &t);
    int flags = t.flags | held.flags;
    int64_t seq = 0, sub = 0;
    if (t.found) {
        seq = t.seq;
        sub = t.sub;
    }
    if (held.found && key_above(held.seq, held.sub, seq, sub)) {
        seq = held.seq;
        sub = held.sub;
    }
    mark_t *m = mark_find(h, r->user, r->user_len);
    if (m != NULL) {
        flags |= m->flags;
        if (key_above(m->seq, m->sub, seq, sub)) {
            seq = m->seq;
            sub = m->sub;
        }
    }
    int known = err == 0 || m != NULL || held.found;
    int64_t reserved = 0;
    if (m != NULL && m->reserved != 0 && (err != 0 || m->reserved >= t.top))
        reserved = m->reserved;
    else if (t.top > seq)
        seq = t.top, sub = 0; /* above the newest durable reservation */
    if (sub < 0)
        sub = 0;
    size_t n_recent = held.n_recent + t.n_recent;
    if (known) {
        mark_raise(h, r->user, r->user_len, seq, sub, flags);
        aw_history_tail_t tail = {seq, sub, reserved, flags, recent, n_recent};
        tail_handoff(h, r, err, &held, &t, &tail);
        ((aw_history_tail_cb)r->cb)(0, &tail, r->data);
    } else {
        ((aw_history_tail_cb)r->cb)(AW_EUNAVAILABLE, NULL, r->data);
    }
    for (size_t i = 0; i < n_recent; i++)
        aw_buf_release(recent[i]);
    aw_buf_release(held.handoff);
    aw_buf_release(t.handoff);
}

/* Merges the stored bot messages (`stored`, newest first) with the ones the
 * batch holds for the user above `after` (oldest first, as appended) into
 * frames oldest first, each seq once (a write that failed half way may have
 * stored some), the newest `max` of them. */
static aw_buf_t **merge_missed(aw_history_t *h, req_t *r, const collect_t *stored, size_t *n)
{
    collect_t held = {0};
    for (size_t i = h->head; i < h->n; i++) {
        const aw_record_t *rec = &h->recs[i];
        if (rec->direction == AW_RECORD_OUT && !(rec->flags & HIDDEN) && rec->seq > r->seq &&
            rec->user_len == r->user_len && memcmp(rec->user, r->user, r->user_len) == 0)
            on_record(rec, &held);
    }
    aw_buf_t **frames = aw_alloc((stored->n + held.n + 1) * sizeof(*frames));
    size_t k = 0, a = stored->n, b = 0;
    int64_t last = r->seq;
    while (a > 0 || b < held.n) {
        int from_store = b == held.n || (a > 0 && stored->recs[a - 1].seq <= held.recs[b].seq);
        const aw_record_t *rec = from_store ? &stored->recs[a - 1] : &held.recs[b];
        aw_buf_t *json = from_store ? stored->json[a - 1] : held.json[b];
        from_store ? a-- : b++;
        if (rec->seq > last) {
            frames[k++] = aw_buf_retain(json);
            last = rec->seq;
        }
    }
    collect_free(&held);
    size_t skip = k > r->limit ? k - r->limit : 0;
    for (size_t i = 0; i < skip; i++)
        aw_buf_release(frames[i]);
    memmove(frames, frames + skip, (k - skip) * sizeof(*frames));
    *n = k - skip;
    return frames;
}

/* The bot messages a session missed. Like the last key, read without writing
 * the batch first, and completed from it. */
static void do_missed(aw_history_t *h, req_t *r)
{
    collect_t all = {0}; /* newest first across pages */
    int more = 1, err = 0, done = 0;
    int64_t bseq = INT64_MAX, bsub = INT64_MAX;
    while (err == 0 && more && !done) {
        collect_t c = {0};
        if ((err = read_page(h, r, bseq, bsub, 200, &c, &more)) != 0)
            break;
        for (size_t i = c.n; i-- > 0 && !done;) {
            if (c.recs[i].seq <= r->seq || all.n >= r->limit) {
                done = 1;
            } else if (c.recs[i].direction == AW_RECORD_OUT) {
                on_record(&c.recs[i], &all);
            }
        }
        if (c.n != 0) {
            bseq = c.recs[0].seq;
            bsub = c.recs[0].sub;
        }
        more = more && c.n != 0;
        collect_free(&c);
    }
    aw_buf_t **frames = NULL;
    size_t n = 0;
    if (err == 0) {
        frames = merge_missed(h, r, &all, &n);
        if (n == 0) {
            free(frames);
            frames = NULL;
        }
    }
    ((aw_history_frames_cb)r->cb)(err, frames, n, r->data);
    collect_free(&all);
}

/* The paging read: cut the page at a bot message so that the next page, read
 * "before" it, starts exactly where this one ends. */
static int page_before(aw_history_t *h, req_t *r, collect_t *c, size_t *from, int *more, int64_t *before)
{
    int err = read_visible(h, r, r->seq, 0, r->limit, c, more);
    if (err != 0 || c->n == 0) {
        *before = 0;
        return err;
    }
    size_t i = 0;
    while (i < c->n && c->recs[i].sub != 0)
        i++;
    if (i < c->n) {
        *from = i;
        *more = *more || i > 0;
        *before = c->recs[i].seq;
        return 0;
    }
    /* The page holds only the person's messages after one bot message: take
     * the rest of that group too, so the cut can fall on the bot message. */
    int64_t group = c->recs[c->n - 1].seq;
    while (*more && c->recs[0].seq == group && c->recs[0].sub != 0) {
        collect_t older = {0};
        if ((err = read_page(h, r, c->recs[0].seq, c->recs[0].sub, 200, &older, more)) != 0)
            return err;
        for (size_t k = 0; k < c->n; k++)
            on_record(&c->recs[k], &older);
        collect_free(c);
        *c = older;
    }
    *from = 0;
    while (*from < c->n && c->recs[*from].seq < c->recs[c->n - 1].seq)
        (*from)++;
    *more = *more || *from > 0;
    *before = c->recs[*from].seq;
    return 0;
}

static void do_page(aw_history_t *h, req_t *r)
{
    collect_t c = {0};
    size_t from = 0;
    int more = 0, err = flush_if_possible(h);
    int64_t before = 0;
    if (err == 0 && r->cut == AW_HISTORY_PAGE_LATEST)
        err = read_visible(h, r, INT64_MAX, INT64_MAX, r->limit, &c, &more);
    else if (err == 0)
        err = page_before(h, r, &c, &from, &more, &before);
    aw_history_page_t page = {c.n != 0 ? c.json + from : NULL, c.n - from, more, before};
    ((aw_history_page_cb)r->cb)(err, err == 0 ? &page : NULL, r->data);
    collect_free(&c);
}

typedef struct latest_acc {
    aw_record_t *recs;
    char **keep; /* each record's user id and JSON, one after the other */
    size_t n, cap;
} latest_acc_t;

static void latest_add(const aw_record_t *rec, void *data)
{
    latest_acc_t *a = data;
    if (a->n == a->cap) {
        a->cap = a->cap < 16 ? 16 : a->cap * 2;
        a->recs = aw_realloc(a->recs, a->cap * sizeof(*a->recs));
        a->keep = aw_realloc(a->keep, a->cap * sizeof(*a->keep));
    }
    char *k = aw_alloc(rec->user_len + rec->json_len + 2);
    memcpy(k, rec->user, rec->user_len);
    k[rec->user_len] = '\0';
    memcpy(k + rec->user_len + 1, rec->json, rec->json_len);
    k[rec->user_len + 1 + rec->json_len] = '\0';
    a->keep[a->n] = k;
    a->recs[a->n] = *rec;
    a->recs[a->n].user = k;
    a->recs[a->n].json = k + rec->user_len + 1;
    a->n++;
}

/* What the store holds, once what is held is written: a start reads it
 * before anyone chats, so the batch is nearly always empty. */
static void do_latest(aw_history_t *h, req_t *r)
{
    latest_acc_t a = {0};
    int err = flush_if_possible(h);
    if (err == 0)
        err = aw_store_latest(h->store, r->flags, latest_add, &a);
    ((aw_history_latest_cb)r->cb)(err, err == 0 ? a.recs : NULL, err == 0 ? a.n : 0, r->data);
    for (size_t i = 0; i < a.n; i++)
        free(a.keep[i]);
    free(a.recs);
    free(a.keep);
}

/* --- the thread --- */

static void answer_stopped(req_t *r)
{
    if (r->kind == REQ_TAIL)
        ((aw_history_tail_cb)r->cb)(AW_ESTOPPED, NULL, r->data);
    else if (r->kind == REQ_MISSED)
        ((aw_history_frames_cb)r->cb)(AW_ESTOPPED, NULL, 0, r->data);
    else if (r->kind == REQ_PAGE)
        ((aw_history_page_cb)r->cb)(AW_ESTOPPED, NULL, r->data);
    else if (r->kind == REQ_LATEST)
        ((aw_history_latest_cb)r->cb)(AW_ESTOPPED, NULL, 0, r->data);
}

/* Handles the requests of one take, oldest first; returns 1 once a stop was
 * seen. */
static int handle(aw_history_t *h, aw_inbox_entry_t *taken)
{
    int stop = 0;
    while (taken != NULL) {
        req_t *r = (req_t *)taken;
        taken = taken->next; /* before `r` is freed */
        switch (r->kind) {
        case REQ_APPEND:
        case REQ_CLAIM:
        case REQ_RESERVE:
            batch_add(h, r); /* written after this take, all together; the batch frees `r` */
            if (r->kind == REQ_RESERVE && __atomic_load_n(&h->store_down, __ATOMIC_RELAXED))
                answer_locally(h, h->n - 1);
            continue;
        case REQ_MARK:
            mark_raise(h, r->user, r->user_len, r->seq, r->sub, AW_TAIL_KNOWN);
            break;
        case REQ_TAIL:
            stop ? answer_stopped(r) : do_tail(h, r);
            break;
        case REQ_MISSED:
            stop ? answer_stopped(r) : do_missed(h, r);
            break;
        case REQ_PAGE:
            stop ? answer_stopped(r) : do_page(h, r);
            break;
        case REQ_LATEST:
            stop ? answer_stopped(r) : do_latest(h, r);
            break;
        case REQ_STOP:
            stop = 1;
            break;
        }
        read_done(h, r);
        free_req(r);
    }
    return stop;
}

/* Sleeps until a request arrives or `until` (ms of aw_now_ms; 0: no limit).
 * With no limit, any request wakes the thread. With one, the batch waits for
 * its deadline or a retry: only a read, a stop, or the append that fills the
 * batch wakes it. A batch already full waits for its retry, which appends
 * cannot bring nearer: only a read or a stop wakes it. */
static void sleep_until(aw_history_t *h, uint64_t until)
{
    size_t held = h->n - h->head;
    if (until == 0)
        aw_inbox_wait(&h->inbox, 0, 1);
    else
        aw_inbox_wait(&h->inbox, until, held < h->cfg.batch ? h->cfg.batch - held : SIZE_MAX);
}

static void final_flush(aw_history_t *h)
{
    uint64_t deadline = aw_now_ms() + h->stop_deadline_ms;
    while (h->head < h->n && flush(h) != 0 && aw_now_ms() < deadline)
        sleep_until(h, h->retry_at < deadline ? h->retry_at : deadline);
}

static void run(void *arg)
{
    aw_history_t *h = arg;
    for (;;) {
        if (handle(h, aw_inbox_take(&h->inbox))) {
            /* appends that raced with the stop are still written */
            handle(h, aw_inbox_take(&h->inbox));
            final_flush(h);
            return;
        }
        /* A full batch goes at once; so does one that someone waits on
         * (a turn with --durable-delivery, a claim, a reservation): the
         * store's commit is the wait, and what arrives meanwhile goes in the
         * next write together (group commit). */
        if ((h->n - h->head >= h->cfg.batch || h->waited != 0) && flush_if_possible(h) == 0)
            continue;
        uint64_t until = 0;
        if (h->head < h->n) {
            until = h->retry_at != 0 ? h->retry_at : h->first_at + h->cfg.flush_ms;
            if (aw_now_ms() >= until) {
                flush(h);
                continue;
            }
        }
        sleep_until(h, until);
    }
}

/* --- the journal --- */

static void journal_add(const aw_record_t *rec, void *data)
{
    hold_from_file((aw_history_t *)data, rec);
}

/* Takes the last stop's journal in, before the thread starts (see history.h). */
static void recover(aw_history_t *h)
{
    char *buf;
    size_t len, n = 0;
    int err = aw_journal_load(h->cfg.journal, &buf, &len);
    if (err == AW_ENOTFOUND)
        return;
    if (err == 0)
        err = aw_journal_parse(buf, len, journal_add, h, &n);
    free(buf);
    if (err != 0) {
        char bad[4096];
        snprintf(bad, sizeof(bad), "%s.bad", h->cfg.journal);
        rename(h->cfg.journal, bad);
        aw_log(AW_LOG_ERROR, "history_journal",
               "the history journal %s is damaged or unreadable: set aside as %s, nothing of it written",
               h->cfg.journal, bad);
        return;
    }
    aw_log(AW_LOG_INFO, "history_journal",
           "%zu record(s) the store did not take at the last stop: writing them", n);
    h->journal_left = n;
    if (n == 0) {
        unlink(h->cfg.journal);
    } else if (flush(h) != 0) {
        aw_log(
            AW_LOG_WARN, "history_journal",
            "the store does not take them yet: they are held and written when it does (%s stays until then)",
            h->cfg.journal);
    }
}

/* At stop: writes what the store did not take to the journal, claims and
 * reservations aside (no token was issued for them, no number handed out
 * under them). Returns the number of records lost. */
static size_t keep_unwritten(aw_history_t *h)
{
    aw_record_t *keep = aw_alloc((h->n - h->head + 1) * sizeof(*keep));
    size_t n = 0;
    for (size_t i = h->head; i < h->n; i++)
        if (!(h->recs[i].flags & HIDDEN))
            keep[n++] = h->recs[i];
    if (n != 0 && h->cfg.journal != NULL && aw_journal_write(h->cfg.journal, keep, n) == 0) {
        aw_log(AW_LOG_WARN, "history_journal",
               "the store did not take %zu record(s) before the stop: kept in %s, written at the next start",
               n, h->cfg.journal);
        n = 0;
    } else if (n != 0) {
        aw_log(AW_LOG_ERROR, "history_lost", "%zu history record(s) could not be written before exit", n);
    }
    free(keep);
    return n;
}

aw_history_t *aw_history_start(aw_store_t *store, const aw_history_config_t *cfg)
{
    aw_history_t *h = aw_calloc(1, sizeof(*h));
    h->cfg = *cfg;
    if (h->cfg.batch == 0)
        h->cfg.batch = 512;
    if (h->cfg.flush_ms == 0)
        h->cfg.flush_ms = 5;
    if (h->cfg.max_queue == 0)
        h->cfg.max_queue = 1000000;
    if (h->cfg.max_bytes == 0)
        h->cfg.max_bytes = (size_t)256 << 20;
    h->store = store;
    h->marks = aw_calloc(MARKS, sizeof(*h->marks));
    aw_inbox_init_wait(&h->inbox);
    if (h->cfg.reservations != NULL)
        local_recover(h);
    if (h->cfg.journal != NULL)
        recover(h);
    uv_thread_create(&h->thread, run, h);
    return h;
}

size_t aw_history_stop(aw_history_t *h, unsigned int deadline_ms)
{
    h->stop_deadline_ms = deadline_ms;
    __atomic_store_n(&h->stopped, 1, __ATOMIC_RELEASE);
    push(h, new_req(REQ_STOP, NULL, 0));
    uv_thread_join(&h->thread);
    /* Requests that passed the stopped check but arrived after the thread's
     * last look: appends join what is left to journal, the rest is answered.
     * The thread is gone: this thread owns the batch now. */
    for (aw_inbox_entry_t *taken = aw_inbox_take(&h->inbox); taken != NULL;) {
        req_t *r = (req_t *)taken;
        taken = taken->next;
        if (r->kind == REQ_APPEND) {
            batch_add(h, r); /* the batch frees it */
            continue;
        }
        if (r->kind == REQ_MARK) {
            /* nothing will be numbered any more */
        } else if (r->kind == REQ_CLAIM || r->kind == REQ_RESERVE) {
            waiter_t w = {(aw_history_done_cb)r->cb, r->data};
            waiter_answer(h, &w, AW_ESTOPPED);
        } else {
            answer_stopped(r);
        }
        read_done(h, r);
        free_req(r);
    }
    size_t lost = keep_unwritten(h);
    for (size_t i = h->head; i < h->n; i++) {
        waiter_answer(h, &h->waits[i], AW_ESTOPPED);
        free(h->blocks[i]);
        aw_buf_release(h->bufs[i]);
    }
    free(h->recs);
    free(h->bufs);
    free(h->waits);
    free(h->blocks);
    while (h->n_local != 0)
        local_drop(h, 0); /* the file keeps what the store did not take */
    free(h->local);
    for (size_t i = 0; i < MARKS; i++)
        free(h->marks[i].user);
    free(h->marks);
    aw_store_close(h->store);
    aw_inbox_dispose(&h->inbox);
    free(h);
    return lost;
}
