/*
 * The history actor: the only caller of the store. It has a thread of its own,
 * because a store call may block (a disk, a network round trip) and must
 * never hold up a worker or an I/O thread. Anyone appends records to its
 * lock-free mailbox; it writes them in batches (flush at `batch` records or
 * `flush_ms` after the first one waits), retries with backoff while the store
 * is down, keeps what it holds, and refuses new records only when its bounded
 * queue is full. Reads go through the same mailbox and see every record
 * appended before them: a page after writing it, the reads a session waits on
 * (its last key, its missed messages) from the store and the records held,
 * without waiting for a write, so that a store that refuses writes holds up
 * no one's chat.
 *
 * Callbacks run on the history thread: they must only hand their result on
 * (send to an actor, post to a loop), never block.
 */
#ifndef AW_ACTORS_HISTORY_H
#define AW_ACTORS_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include "runtime/buf.h"
#include "store/store.h"

typedef struct aw_history aw_history_t;

typedef struct aw_history_config {
    size_t batch;             /* records per write; 0 means 512 */
    unsigned flush_ms;        /* longest wait before a partial batch is written; 0 means 5 */
    size_t max_queue;         /* records held at most (written or not); 0 means 1,000,000 */
    size_t max_bytes;         /* bytes of records (JSON and user id) held at most; 0 means 256 MiB */
    const char *journal;      /* the journal file (journal.h): where a stop keeps what the store did not
                               * take, written to the store at the next start; NULL: none */
    const char *reservations; /* where seq reservations are made durable while the store is down
                               * (history.c, "local reservations"); NULL: they wait for the store */
} aw_history_config_t;

typedef struct aw_history_stats {
    uint64_t appended;   /* records accepted */
    uint64_t written;    /* records the store acknowledged */
    uint64_t refused;    /* records refused because the queue was at a bound */
    uint64_t batches;    /* successful writes */
    uint64_t failures;   /* failed writes (each retried) */
    uint64_t queued;     /* records held now */
    uint64_t held_bytes; /* their bytes (JSON and user id), bounded by max_bytes */
    uint64_t reads;      /* reads asked for whose callback has not returned yet */
    int store_down;      /* the last write or read failed */
} aw_history_stats_t;

/* Starts the history thread on `store` (owned by the history from then on,
 * closed by aw_history_stop). With a journal left by the last stop, its
 * records are written to the store first, before this returns; if the store
 * does not take them, they are held like new records (the reads above see
 * them) and written when it does, and the journal is removed only then. A
 * damaged journal is set aside as FILE.bad, and nothing of it is written.
 * Main thread. */
aw_history_t *aw_history_start(aw_store_t *store, const aw_history_config_t *config);

/* Queues one record; the user id and JSON are copied (`json` is retained).
 * `flags`: AW_RECORD_PROTECTED when the user's id is protected (store.h).
 * Returns 0, AW_EFULL when the queue is at either bound (records or bytes),
 * AW_ESTOPPED after stop. Refusals are counted, and logged once per episode
 * (from the first refusal until the queue has room again). Any thread. */
int aw_history_append(aw_history_t *h, const char *user, size_t user_len, int64_t seq, int64_t sub,
                      int64_t ts_ms, int direction, int flags, aw_buf_t *json);

/* What aw_history_tail says of a user besides the key. */
enum {
    /* The user's newest record (stored or held) was written while the id was
     * protected (AW_RECORD_PROTECTED), or this process saw such a record. */
    AW_TAIL_PROTECTED = 1,
    /* Some record of the user exists: a message, or the identity claim
     * (AW_RECORD_CLAIM). Such an id is never issued a token again. */
    AW_TAIL_KNOWN = 2,
};

/* The person's newest messages aw_history_tail hands back, at most. */
#define AW_HISTORY_TAIL_RECENT 128

/* Where a user's numbering goes on, as aw_history_tail answers it. */
typedef struct aw_history_tail {
    /* The key to number above: the newest message's, or (R, 0) when R, the
     * top of the user's newest seq reservation (AW_RECORD_RESERVE), is above
     * it and not `reserved`. A sub of -1 never comes back. */
    int64_t seq, sub;
    /* The top of a reservation this process made and saw durable, which no
     * one has reserved above since (0 when there is none): numbers above
     * `seq` up to it may be handed out without reserving again. */
    int64_t reserved;
    int flags; /* AW_TAIL_PROTECTED and AW_TAIL_KNOWN as they apply */
    /* The JSON of the person's newest messages that carry a client's id
     * (`mid`, docs/protocol.md, Delivery), newest first, at most
     * AW_HISTORY_TAIL_RECENT: lent for the call. */
    aw_buf_t *const *recent;
    size_t n_recent;
    /* Who answers the user: the JSON of the user's newest handoff record
     * (AW_RECORD_HANDOFF, held or stored; lent for the call), or NULL for
     * none; `handoff_known` is 0 when the store could not be read for it
     * and nothing was held (`handoff` is NULL then, and says nothing). */
    aw_buf_t *handoff;
    int handoff_known;
} aw_history_tail_t;

/* The latest key of a user, so that numbering continues after a restart and
 * never repeats. It never waits for held records to be written: the store is
 * read as it is and the records held are added. `err` is
 * - 0: `tail` is exact. Either the store was read, or it could not be and the
 *   answer comes from what this process appended or read for the user
 *   (records are numbered after a key read from the store, and only this
 *   process writes them, so that is the latest key too). Number from it.
 * - AW_EUNAVAILABLE: the store cannot be read and this process holds nothing
 *   of the user (first contact, or the first since a restart). Numbering now
 *   could repeat a stored seq: ask again later.
 * - AW_ESTOPPED: the history is stopping.
 * `tail` is NULL unless err is 0. Pending reads are counted in the stats
 * (`reads`) until their callback has returned. Any thread; the callback runs
 * on the history thread. */
typedef void (*aw_history_tail_cb)(int err, const aw_history_tail_t *tail, void *data);
int aw_history_tail(aw_history_t *h, const char *user, size_t user_len, aw_history_tail_cb cb, void *data);

/* Called once records are durable, or a claim or reservation is decided. */
typedef void (*aw_history_done_cb)(int err, void *data);

/* One record of aw_history_append_group. */
typedef struct aw_history_item {
    int64_t seq, sub, ts_ms;
    int direction; /* AW_RECORD_IN or AW_RECORD_OUT */
    int flags;     /* AW_RECORD_PROTECTED, AW_RECORD_HANDOFF, both or 0 */
    aw_buf_t *json;
} aw_history_item_t;

/* Queues `n` records of `user` (1..16) to be written in one store call, so
 * that a crash keeps all of them or none; the items' JSON is retained. When
 * `cb` is not NULL it is called once they are durable (0), or with
 * AW_ESTOPPED when the history stopped first (they are then in the journal,
 * or lost). Returns 0, AW_EFULL (none is queued) or AW_ESTOPPED, without
 * calling `cb`. A pending `cb` is counted in the stats' `reads`. Any thread;
 * the callback runs on the history thread. */
int aw_history_append_group(aw_history_t *h, const char *user, size_t user_len,
                            const aw_history_item_t *items, size_t n, aw_history_done_cb cb, void *data);

/* Reserves the user's seq numbers up to `top` (docs/protocol.md, Delivery):
 * appends a reservation record (AW_RECORD_RESERVE, key (top, -1), with a
 * random nonce) with the other records and, once it is durable, reads the
 * stored one back. `cb` gets
 * - 0: the stored reservation is this call's: numbers up to `top` are the
 *   caller's to hand out;
 * - AW_EEXIST: someone reserved that block first: read the tail again;
 * - AW_EUNAVAILABLE: written but not read back: ask again;
 * - AW_ESTOPPED: the history stopped before it was written.
 * While the store is down the reservation is held and retried like any
 * record. `flags`: AW_RECORD_PROTECTED when the user's id is, and
 * AW_RESERVE_AHEAD (below). Returns 0, or
 * AW_EFULL / AW_ESTOPPED / AW_EIO (no randomness) without calling `cb`.
 * Counted in `reads` until the callback has returned. Any thread; the
 * callback runs on the history thread. */
enum {
    /* aw_history_reserve: the reservation is asked for ahead of need, and is
     * written with the next batch; without it, a turn waits for it and it
     * is written at once. */
    AW_RESERVE_AHEAD = 0x100,
};
int aw_history_reserve(aw_history_t *h, const char *user, size_t user_len, int64_t top, int flags,
                       aw_history_done_cb cb, void *data);

/* Claims the identity of `user` before its token is issued: appends the
 * user's claim record (AW_RECORD_CLAIM, key (0, 0), carrying a random nonce)
 * with the other records, and calls `cb` once it is durable:
 * - 0: the stored claim is this call's (its nonce was read back), so no
 *   other claim of the id, by this process or another sharing the store,
 *   ever succeeds: the caller may issue the token;
 * - AW_EEXIST: the id was claimed before (the stored claim is another's);
 * - AW_EUNAVAILABLE: the claim was written but could not be read back;
 * - AW_ESTOPPED: the history stopped before the claim was written.
 * While the store is down the claim is held and retried like any record, and
 * the callback waits. Returns 0, or AW_EFULL / AW_ESTOPPED / AW_EIO (no
 * randomness for the nonce) without calling `cb`. Counted in the stats' `reads` until the callback has
 * returned. Any thread; the callback runs on the history thread. */
int aw_history_claim(aw_history_t *h, const char *user, size_t user_len, aw_history_done_cb cb, void *data);

/* The bot messages of a user with after_seq < seq, oldest first, at most
 * `max` of them; `frames` are references the callback takes over. */
typedef void (*aw_history_frames_cb)(int err, aw_buf_t **frames, size_t n, void *data);
int aw_history_missed(aw_history_t *h, const char *user, size_t user_len, int64_t after_seq, size_t max,
                      aw_history_frames_cb cb, void *data);

/* How aw_history_page cuts a page. */
enum {
    /* The latest `limit` records, as they fall; `before_seq` is not used. */
    AW_HISTORY_PAGE_LATEST,
    /* At most `limit` records before bot message `before_seq` (INT64_MAX: the
     * latest), never splitting the messages that follow one bot message, so
     * that paging with the page's `before` neither repeats nor skips one. */
    AW_HISTORY_PAGE_BEFORE,
};

/* A page of a user's history: the records as they were appended (each the
 * JSON of one message), oldest first, never an identity claim, a seq
 * reservation or a handoff record. */
typedef struct aw_history_page {
    aw_buf_t *const *records;
    size_t n;
    int more;       /* older records exist */
    int64_t before; /* AW_HISTORY_PAGE_BEFORE: the bot message the page starts at, the `before_seq` of the
                     * next page (0 for an empty page); 0 with AW_HISTORY_PAGE_LATEST */
} aw_history_page_t;

/* Reads a page of `user`'s history, cut as `cut` (AW_HISTORY_PAGE_...)
 * says, after writing the records held, so that it sees every record
 * appended before it (while the store refuses that write, the answer is its
 * error). The callback gets the page, or NULL with err < 0; the page and its
 * records are lent for the call only (retain a record to keep it). How a
 * page is shown, as an HTTP body, is the transport's business. Returns 0, or
 * AW_ESTOPPED without calling `cb`. Counted in the stats' `reads` until the
 * callback has returned. Any thread; the callback runs on the history
 * thread. */
typedef void (*aw_history_page_cb)(int err, const aw_history_page_t *page, void *data);
int aw_history_page(aw_history_t *h, const char *user, size_t user_len, int64_t before_seq, size_t limit,
                    int cut, aw_history_page_cb cb, void *data);

/* The newest record of each user that has every bit of `flag` set
 * (aw_store_latest), after writing what is held; `recs` are lent for the
 * call. A store that refuses the write or the read answers its error
 * (AW_EUNAVAILABLE) and no records. Returns 0, or AW_ESTOPPED without
 * calling `cb`. Counted in the stats' `reads` until the callback has
 * returned. Any thread; the callback runs on the history thread. */
typedef void (*aw_history_latest_cb)(int err, const aw_record_t *recs, size_t n, void *data);
int aw_history_latest(aw_history_t *h, int flag, aw_history_latest_cb cb, void *data);

/* Fills `stats`. Any thread. */
void aw_history_get_stats(aw_history_t *h, aw_history_stats_t *stats);

/* Writes everything still queued, retrying for at most `deadline_ms`, then
 * stops the thread and closes the store. What the store did not take goes to
 * the journal (when configured), fsynced, for the next start. Returns the
 * number of records lost: neither written nor journaled. Pending reads and
 * claims are answered AW_ESTOPPED. Main thread. */
size_t aw_history_stop(aw_history_t *h, unsigned int deadline_ms);

#endif
