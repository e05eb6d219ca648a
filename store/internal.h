/*
 * What the store backends share with store.c: the descriptor each backend
 * file exports (its URI schemes, its name, how to open it and its
 * operations), and the head of every store, which points back to it.
 * store.c keeps the descriptors in one table and picks a backend by the
 * URI's scheme, as redis picks a connection type.
 */
#ifndef AW_STORE_INTERNAL_H
#define AW_STORE_INTERNAL_H

#include "store/store.h"

typedef struct aw_store_backend {
    /* "sqlite": what aw_store_backend() says, in logs and metrics. */
    const char *name;
    /* The URI prefixes it serves ("sqlite:"), NULL-terminated. */
    const char *const *schemes;
    /* The keys of the aw_store_param_t it reads, NULL-terminated; NULL for
     * none. aw_store_open refuses a param of this backend with another key
     * before `open` is called. */
    const char *const *keys;
    /* Opens `uri`, which starts with one of `schemes`. `options` is never
     * NULL, its timeout_ms never 0, and its params of this backend have known
     * keys (aw_store__param reads them). Returns 0 and sets `*store`, or a
     * negative AW_E... code (aw_store_open lists them). */
    int (*open)(aw_store_t **store, const char *uri, const aw_store_options_t *options);
    /* The operations behind aw_store_append, aw_store_read and
     * aw_store_close, with the same contracts; append is never called with
     * n == 0, and read finds `*more` already 0. */
    int (*append)(aw_store_t *store, const aw_record_t *records, size_t n);
    int (*read)(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq, int64_t before_sub,
                size_t limit, aw_store_record_cb cb, void *data, int *more);
    /* The operations behind aw_store_latest and aw_store_latest_of, with
     * their contracts. */
    int (*latest)(aw_store_t *store, int flag, aw_store_record_cb cb, void *data);
    int (*latest_of)(aw_store_t *store, const char *user, size_t user_len, int flag, aw_store_record_cb cb,
                     void *data);
    void (*close)(aw_store_t *store);
} aw_store_backend_t;

/* The head of every backend's store. */
struct aw_store {
    const aw_store_backend_t *backend;
};

/* The backends, one per file (store/sqlite.c, store/mongo.c), in the table
 * of store.c. */
extern const aw_store_backend_t aw_store__sqlite;
extern const aw_store_backend_t aw_store__mongodb;

/* The value of `backend`'s param `key` in `options` (the last one given), or
 * NULL when there is none. The string is the caller's of aw_store_open:
 * valid during `open` only. */
const char *aw_store__param(const aw_store_options_t *options, const aw_store_backend_t *backend,
                            const char *key);

#endif
