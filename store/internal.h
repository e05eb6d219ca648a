/*
 * What the store backends share: the table of operations each fills in, and
 * their constructors. store.c picks a backend by the URI's scheme.
 */
#ifndef AW_STORE_INTERNAL_H
#define AW_STORE_INTERNAL_H

#include "store/store.h"

typedef struct aw_store_ops {
    const char *name;
    int (*append)(aw_store_t *store, const aw_record_t *records, size_t n);
    int (*read)(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq, int64_t before_sub,
                size_t limit, aw_store_record_cb cb, void *data, int *more);
    void (*close)(aw_store_t *store);
} aw_store_ops_t;

/* The head of every backend's store. */
struct aw_store {
    const aw_store_ops_t *ops;
};

/* Opens "sqlite:PATH" (the part after the colon is given). */
int aw_store__sqlite_open(aw_store_t **store, const char *path, const aw_store_options_t *options);

/* Opens a "mongodb://" or "mongodb+srv://" URI. */
int aw_store__mongo_open(aw_store_t **store, const char *uri, const aw_store_options_t *options);

#endif
