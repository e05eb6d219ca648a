/*
 * The history store: one small interface in front of the backends, chosen by
 * the URI's scheme from one table, as redis chooses a connection type.
 * `sqlite:PATH` (the default, store/sqlite.c) and `mongodb://...`
 * (store/mongo.c). Only the history actor calls a store, from one thread at
 * a time, so a backend needs no locking of its own beyond what its library
 * demands; a slow database therefore never blocks a worker or an I/O thread.
 *
 * Adding a backend is one file and one table row: the file defines an
 * aw_store_backend_t (store/internal.h: its schemes, name, open function and
 * operations), the table in store.c gets a row for it, and
 * store/CMakeLists.txt compiles the file. tests/unit/store/conformance.c
 * holds every backend to the contract below: give it a ctest entry with a
 * URI of the new backend.
 *
 * A record is one message of one user, in either direction, kept as the JSON
 * object that was sent or received. Records of a user are ordered by the key
 * (seq, sub): a bot message has the user's sequence number `seq` and sub 0; a
 * message the person sent after bot message `seq` has that same `seq` and sub
 * 1, 2, ... The key is unique per user, which makes a retried batch
 * idempotent: appending a record whose (user, seq, sub) is already stored
 * changes nothing. Besides pages of one user, a store lists the newest
 * record of a kind for every user (aw_store_latest), which a start reads
 * the conversations that wait for a person from.
 */
#ifndef AW_STORE_H
#define AW_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct aw_store aw_store_t;

enum {
    AW_RECORD_IN = 0,  /* the person sent it: stored type "message_received" */
    AW_RECORD_OUT = 1, /* the bot sent it: type "message", with its seq */
};

/* Flags of a record. */
enum {
    /* Written while the user's id was protected: a client had proved the
     * user's token, so speakers without it are guests (docs/protocol.md,
     * Identity). A user's newest record tells a restarted server whether
     * the id is protected. */
    AW_RECORD_PROTECTED = 1,
    /* The user's identity claim: the record that says this id has been
     * issued its token (docs/protocol.md, Identity). It has the key (0, 0),
     * below every message of the user, so it is written once per user and a
     * second claim of the same id finds it taken; it is never shown in
     * history. */
    AW_RECORD_CLAIM = 2,
    /* A reservation of the user's seq numbers up to the record's `seq` (docs/protocol.md, Delivery):
     * key (seq, -1), just below the bot message it reserves up to, so the
     * newest one tells a restarted server where numbering may go on. Never
     * shown in history. */
    AW_RECORD_RESERVE = 4,
    /* A change of who answers the user: the bot, or a person (actors/handoff.h).
     * It takes the key a message of the person would take next, so the
     * user's newest one is the state now; never shown in history, and listed
     * for every user at start by aw_store_latest. */
    AW_RECORD_HANDOFF = 8,
};

typedef struct aw_record {
    const char *user; /* user id, UTF-8, 1..256 bytes */
    size_t user_len;
    int64_t seq;   /* see the key above; >= 0 */
    int64_t sub;   /* 0 for a bot message, >= 1 for the person's, -1 for a reservation */
    int64_t ts_ms; /* milliseconds since the epoch */
    int direction; /* AW_RECORD_IN or AW_RECORD_OUT */
    int flags;     /* AW_RECORD_PROTECTED, AW_RECORD_CLAIM, AW_RECORD_RESERVE or 0 */
    /* The whole message object, as the client will get it back. A backend
     * that keeps the object rather than its text may space it its own way; a
     * claim or a reservation comes back byte for byte (the history actor
     * compares it). */
    const char *json;
    size_t json_len;
} aw_record_t;

/* Receives one record of a page; pointers are valid during the call only. */
typedef void (*aw_store_record_cb)(const aw_record_t *record, void *data);

/* An option of one backend, such as MongoDB's write concern
 * {"mongodb", "w", "majority"}. The backend of that name reads it and
 * refuses a key it does not know; the others ignore it, so a caller may
 * pass the options of every backend whichever the URI names. The keys a
 * backend reads are listed at the top of its file. */
typedef struct aw_store_param {
    const char *backend; /* a backend's name, as aw_store_backend() gives it */
    const char *key;
    const char *value;
} aw_store_param_t;

typedef struct aw_store_options {
    /* How long one store call may wait (SQLite's busy timeout, MongoDB's
     * connect and server selection timeouts); 0 means 5000. Every backend
     * honours it. */
    int timeout_ms;
    /* `n_params` options of single backends, read during aw_store_open only;
     * of two with the same backend and key, the later counts. */
    const aw_store_param_t *params;
    size_t n_params;
} aw_store_options_t;

/* Opens the store named by `uri`: "sqlite:PATH" or "mongodb://..." /
 * "mongodb+srv://...". Creates the schema or indexes if missing. `options`
 * may be NULL. Returns 0, or AW_EINVAL for an unknown scheme or a param key
 * the backend does not know, AW_EUNAVAILABLE when the store cannot be
 * reached, AW_EIO / AW_ESTORE otherwise. */
int aw_store_open(aw_store_t **store, const char *uri, const aw_store_options_t *options);

/* Writes `n` records as one batch (one transaction in SQLite, one unordered
 * insert in MongoDB). Records already stored (same user, seq, sub) are kept
 * as they are and count as written. Returns 0 when the whole batch is
 * durable; AW_EUNAVAILABLE when the store is unreachable (retry later, the
 * same batch again is safe); AW_ESTORE or AW_EIO on other failures. */
int aw_store_append(aw_store_t *store, const aw_record_t *records, size_t n);

/* Reads the latest `limit` records of `user` whose key is below
 * (before_seq, before_sub), and calls `cb` for each, OLDEST FIRST. Use
 * INT64_MAX, INT64_MAX for "the latest". Sets `*more` to 1 when older records
 * exist beyond this page. Returns 0, or a negative AW_E... code (nothing is
 * reported through `cb` then). */
int aw_store_read(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq,
                  int64_t before_sub, size_t limit, aw_store_record_cb cb, void *data, int *more);

/* Calls `cb` once for each user with a record that has every bit of `flag`
 * set, with the newest such record of that user (the highest key), in no
 * particular order. A scan of the whole store: for a start, not for a
 * turn. Returns 0, or a negative AW_E... code (`cb` may have been called
 * for some users then); AW_EINVAL for a flag of 0 or a backend without
 * the operation. */
int aw_store_latest(aw_store_t *store, int flag, aw_store_record_cb cb, void *data);

/* Calls `cb` once with the newest record of `user` (the highest key) that
 * has every bit of `flag` set, or not at all when the user has none. Read
 * when a user's session loads: a backend keeps it cheap (an index of the
 * records with AW_RECORD_HANDOFF). Returns 0, or a negative AW_E... code
 * (AW_EINVAL as aw_store_latest). */
int aw_store_latest_of(aw_store_t *store, const char *user, size_t user_len, int flag, aw_store_record_cb cb,
                       void *data);

/* A short name of the backend ("sqlite", "mongodb"), for logs and metrics. */
const char *aw_store_backend(aw_store_t *store);

/* Closes the store and frees it. */
void aw_store_close(aw_store_t *store);

#endif
