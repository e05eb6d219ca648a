/*
 * The store interface (store.h): choosing a backend by URI and forwarding to
 * its operations.
 */
#include <string.h>
#include "runtime/error.h"
#include "store/internal.h"

int aw_store_open(aw_store_t **store, const char *uri, const aw_store_options_t *options)
{
    static const aw_store_options_t defaults = {0};
    if (options == NULL)
        options = &defaults;
    if (strncmp(uri, "sqlite:", 7) == 0)
        return uri[7] != '\0' ? aw_store__sqlite_open(store, uri + 7, options) : AW_EINVAL;
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)
        return aw_store__mongo_open(store, uri, options);
    return AW_EINVAL;
}

int aw_store_append(aw_store_t *store, const aw_record_t *records, size_t n)
{
    return n == 0 ? 0 : store->ops->append(store, records, n);
}

int aw_store_read(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq,
                  int64_t before_sub, size_t limit, aw_store_record_cb cb, void *data, int *more)
{
    *more = 0;
    return store->ops->read(store, user, user_len, before_seq, before_sub, limit, cb, data, more);
}

const char *aw_store_backend(aw_store_t *store)
{
    return store->ops->name;
}

void aw_store_close(aw_store_t *store)
{
    if (store != NULL)
        store->ops->close(store);
}
