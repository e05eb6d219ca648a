/*
 * The store interface (store.h): the table of backends, looked up by the
 * URI's scheme, and forwarding to the backend's operations.
 */
#include <string.h>
#include "runtime/error.h"
#include "runtime/log.h"
#include "store/internal.h"

#define DEFAULT_TIMEOUT_MS 5000

/* Every backend the server knows. A new one is a file that defines its
 * descriptor (store/internal.h) and one row here. */
static const aw_store_backend_t *const backends[] = {
    &aw_store__sqlite,
    &aw_store__mongodb,
};

static const aw_store_backend_t *find_backend(const char *uri)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        for (const char *const *scheme = backends[i]->schemes; *scheme != NULL; scheme++)
            if (strncmp(uri, *scheme, strlen(*scheme)) == 0)
                return backends[i];
    return NULL;
}

static int has_key(const aw_store_backend_t *backend, const char *key)
{
    for (const char *const *k = backend->keys; k != NULL && *k != NULL; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    return 0;
}

/* A misspelt key would otherwise be ignored without a word. */
static int check_params(const aw_store_backend_t *backend, const aw_store_options_t *options)
{
    for (size_t i = 0; i < options->n_params; i++) {
        const aw_store_param_t *p = &options->params[i];
        if (strcmp(p->backend, backend->name) == 0 && !has_key(backend, p->key)) {
            aw_log(AW_LOG_ERROR, "store", "the %s store has no option \"%s\"", backend->name, p->key);
            return AW_EINVAL;
        }
    }
    return 0;
}

const char *aw_store__param(const aw_store_options_t *options, const aw_store_backend_t *backend,
                            const char *key)
{
    const char *value = NULL;
    for (size_t i = 0; i < options->n_params; i++) {
        const aw_store_param_t *p = &options->params[i];
        if (strcmp(p->backend, backend->name) == 0 && strcmp(p->key, key) == 0)
            value = p->value;
    }
    return value;
}

int aw_store_open(aw_store_t **store, const char *uri, const aw_store_options_t *options)
{
    aw_store_options_t o = options != NULL ? *options : (aw_store_options_t){0};
    if (o.timeout_ms == 0)
        o.timeout_ms = DEFAULT_TIMEOUT_MS;
    const aw_store_backend_t *backend = find_backend(uri);
    if (backend == NULL)
        return AW_EINVAL;
    int err = check_params(backend, &o);
    return err != 0 ? err : backend->open(store, uri, &o);
}

int aw_store_append(aw_store_t *store, const aw_record_t *records, size_t n)
{
    return n == 0 ? 0 : store->backend->append(store, records, n);
}

int aw_store_read(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq,
                  int64_t before_sub, size_t limit, aw_store_record_cb cb, void *data, int *more)
{
    *more = 0;
    return store->backend->read(store, user, user_len, before_seq, before_sub, limit, cb, data, more);
}

int aw_store_latest(aw_store_t *store, int flag, aw_store_record_cb cb, void *data)
{
    if (flag == 0 || store->backend->latest == NULL)
        return AW_EINVAL;
    return store->backend->latest(store, flag, cb, data);
}

int aw_store_latest_of(aw_store_t *store, const char *user, size_t user_len, int flag, aw_store_record_cb cb,
                       void *data)
{
    if (flag == 0 || store->backend->latest_of == NULL)
        return AW_EINVAL;
    return store->backend->latest_of(store, user, user_len, flag, cb, data);
}

const char *aw_store_backend(aw_store_t *store)
{
    return store->backend->name;
}

void aw_store_close(aw_store_t *store)
{
    if (store != NULL)
        store->backend->close(store);
}
