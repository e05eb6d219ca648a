/*
 * The MongoDB backend (MONGO_URI or --store mongodb://...), through
 * mongo-c-driver. A client pool serves the one thread that calls the store
 * (the history actor); a client is popped and pushed back per call, as the
 * driver requires. Each record is one document whose _id is {u, s, k}
 * (user, seq, sub), so a retried batch cannot insert a record twice: the
 * duplicate-key errors of an unordered insert_many mean "already stored".
 * The message itself is kept as a subdocument, with user, seq, sub, ts (a
 * date), dir, type and text beside it for people querying the collection,
 * and `flags` when a record has any. An identity claim (AW_RECORD_CLAIM) or
 * a seq reservation (AW_RECORD_RESERVE) is kept as its JSON text instead, so
 * that it reads back byte for byte.
 *
 * Its one option (aw_store_param_t of backend "mongodb"; main.c's
 * --write-concern): "w", the write concern of every batch, "majority" (the
 * default, waiting 10 s at most) or a number of members (anything else
 * counts as 1). It goes with each insert, so it takes precedence over a w=
 * in the URI.
 */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "runtime/log.h"
#include "runtime/buf.h"
#include "runtime/error.h"
#include "store/internal.h"

typedef struct mongo_store {
    aw_store_t super;
    mongoc_uri_t *uri;
    mongoc_client_pool_t *pool;
    char *db;
    mongoc_write_concern_t *wc;
} mongo_store_t;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_driver(void)
{
    mongoc_init();
}

/* Network, server selection, a stepped-down primary, a write concern not
 * met: the caller retries later. Anything else the server refused. */
static int map_error(const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_STREAM || e->domain == MONGOC_ERROR_SERVER_SELECTION ||
        e->domain == MONGOC_ERROR_WRITE_CONCERN || e->domain == MONGOC_ERROR_CLIENT)
        return AW_EUNAVAILABLE;
    switch (e->code) {
    case 6:
    case 7:
    case 89:
    case 91:
    case 189:
    case 262:
    case 9001: /* host unreachable, shutdown, timeouts */
    case 10107:
    case 11600:
    case 11602:
    case 13435:
    case 13436: /* not primary, interrupted */
        return AW_EUNAVAILABLE;
    default:
        return AW_ESTORE;
    }
}

static void append_record(bson_t *doc, const aw_record_t *r)
{
    bson_t id, msg;
    bson_error_t err;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "_id", &id);
    bson_append_utf8(&id, "u", 1, r->user, (int)r->user_len);
    BSON_APPEND_INT64(&id, "s", r->seq);
    BSON_APPEND_INT64(&id, "k", r->sub);
    bson_append_document_end(doc, &id);
    bson_append_utf8(doc, "user", 4, r->user, (int)r->user_len);
    BSON_APPEND_INT64(doc, "seq", r->seq);
    BSON_APPEND_INT64(doc, "sub", r->sub);
    BSON_APPEND_DATE_TIME(doc, "ts", r->ts_ms);
    BSON_APPEND_INT32(doc, "dir", r->direction);
    if (r->flags != 0)
        BSON_APPEND_INT32(doc, "flags", r->flags); /* absent reads as 0 */
    BSON_APPEND_UTF8(doc, "type", r->direction == AW_RECORD_OUT ? "message" : "message_received");
    /* A claim, reservation or handoff is kept as its text: the history actor compares
     * the one it reads back with its own byte for byte, and a subdocument
     * comes back in the driver's spacing. Nobody queries them as messages. */
    if (!(r->flags & (AW_RECORD_CLAIM | AW_RECORD_RESERVE | AW_RECORD_HANDOFF)) &&
        bson_init_from_json(&msg, r->json, (ssize_t)r->json_len, &err)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &msg, "text") && BSON_ITER_HOLDS_UTF8(&it))
            BSON_APPEND_UTF8(doc, "text", bson_iter_utf8(&it, NULL));
        BSON_APPEND_DOCUMENT(doc, "message", &msg);
        bson_destroy(&msg);
    } else {
        /* not JSON BSON can hold (a key with a NUL...): keep the text itself */
        bson_append_utf8(doc, "json", 4, r->json, (int)r->json_len);
    }
}

/* True when every write error of the reply is a duplicate key: the batch was
 * already stored. */
static int only_duplicates(const bson_t *reply)
{
    bson_iter_t it, errs;
    int any = 0;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &errs))
        return 0;
    while (bson_iter_next(&errs)) {
        bson_iter_t code;
        if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &code) ||
            !bson_iter_find(&code, "code") || bson_iter_as_int64(&code) != 11000)
            return 0;
        any = 1;
    }
    bson_iter_t wce;
    return any && !bson_iter_init_find(&wce, reply, "writeConcernErrors");
}

static int mg_append(aw_store_t *store, const aw_record_t *r, size_t n)
{
    mongo_store_t *s = (mongo_store_t *)store;
    bson_t **docs = aw_alloc(n * sizeof(*docs));
    for (size_t i = 0; i < n; i++) {
        docs[i] = bson_new();
        append_record(docs[i], &r[i]);
    }
    bson_t opts = BSON_INITIALIZER, reply;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    mongoc_write_concern_append(s->wc, &opts);
    bson_error_t error;
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, "history");
    bool ok = mongoc_collection_insert_many(coll, (const bson_t **)docs, n, &opts, &reply, &error);
    int err = ok || only_duplicates(&reply) ? 0 : map_error(&error);
    bson_destroy(&reply);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, c);
    bson_destroy(&opts);
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
    free(docs);
    return err;
}

/* Runs a find and hands each document to `each`; returns 0 or an error. */
static int find(mongo_store_t *s, const bson_t *filter, const bson_t *opts,
                void (*each)(const bson_t *doc, void *data), void *data)
{
    bson_error_t error;
    const bson_t *doc;
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, "history");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc))
        each(doc, data);
    int err = mongoc_cursor_error(cur, &error) ? map_error(&error) : 0;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, c);
    return err;
}

typedef struct page {
    aw_record_t *recs;
    size_t n, cap;
} page_t;

static int64_t get_int(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key))
        return 0;
    return BSON_ITER_HOLDS_DATE_TIME(&it) ? bson_iter_date_time(&it) : bson_iter_as_int64(&it);
}

static void collect(const bson_t *doc, void *data)
{
    page_t *p = data;
    bson_iter_t it;
    if (p->n == p->cap)
        return;
    aw_record_t *r = &p->recs[p->n++];
    r->seq = get_int(doc, "seq");
    r->sub = get_int(doc, "sub");
    r->ts_ms = get_int(doc, "ts");
    r->direction = (int)get_int(doc, "dir");
    r->flags = (int)get_int(doc, "flags");
    char *json = NULL;
    if (bson_iter_init_find(&it, doc, "message") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *raw;
        uint32_t len;
        bson_t sub;
        bson_iter_document(&it, &len, &raw);
        if (bson_init_static(&sub, raw, len)) {
            size_t jl;
            char *j = bson_as_relaxed_extended_json(&sub, &jl);
            json = aw_strndup(j, jl);
            bson_free(j);
        }
    } else if (bson_iter_init_find(&it, doc, "json") && BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t len;
        const char *j = bson_iter_utf8(&it, &len);
        json = aw_strndup(j, len);
    }
    r->json = json != NULL ? json : aw_strndup("{}", 2);
    r->json_len = strlen(r->json);
}

static int mg_read(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq,
                   int64_t before_sub, size_t limit, aw_store_record_cb cb, void *data, int *more)
{
    mongo_store_t *s = (mongo_store_t *)store;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, or, a, b, lt, cond, sort;
    bson_append_utf8(&filter, "user", 4, user, (int)user_len);
    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &a);
    BSON_APPEND_DOCUMENT_BEGIN(&a, "seq", &lt);
    BSON_APPEND_INT64(&lt, "$lt", before_seq);
    bson_append_document_end(&a, &lt);
    bson_append_document_end(& or, &a);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &b);
    BSON_APPEND_INT64(&b, "seq", before_seq);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "sub", &cond);
    BSON_APPEND_INT64(&cond, "$lt", before_sub);
    bson_append_document_end(&b, &cond);
    bson_append_document_end(& or, &b);
    bson_append_array_end(&filter, & or);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "seq", -1);
    BSON_APPEND_INT32(&sort, "sub", -1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", (int64_t)limit + 1);
    page_t p = {.recs = aw_calloc(limit + 1, sizeof(aw_record_t)), .cap = limit + 1};
    int err = find(s, &filter, &opts, collect, &p);
    *more = p.n > limit;
    size_t n = p.n > limit ? limit : p.n;
    for (size_t i = n; i-- > 0;) {
        p.recs[i].user = user;
        p.recs[i].user_len = user_len;
        if (err == 0)
            cb(&p.recs[i], data);
    }
    for (size_t i = 0; i < p.n; i++)
        free((char *)p.recs[i].json);
    free(p.recs);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return err;
}

typedef struct latest {
    aw_store_record_cb cb;
    void *data;
    char *last_user; /* the user whose newest record went to cb last */
    size_t last_len;
} latest_t;

/* The documents come by user, newest first: the first of each user goes. */
static void latest_one(const bson_t *doc, void *data)
{
    latest_t *l = data;
    bson_iter_t it;
    uint32_t len = 0;
    const char *user = NULL;
    if (bson_iter_init_find(&it, doc, "user") && BSON_ITER_HOLDS_UTF8(&it))
        user = bson_iter_utf8(&it, &len);
    if (user == NULL || (l->last_user != NULL && l->last_len == len && memcmp(l->last_user, user, len) == 0))
        return;
    free(l->last_user);
    l->last_user = aw_strndup(user, len);
    l->last_len = len;
    aw_record_t r = {0};
    page_t p = {.recs = &r, .cap = 1};
    collect(doc, &p);
    r.user = l->last_user;
    r.user_len = len;
    l->cb(&r, l->data);
    free((char *)r.json);
}

static int mg_latest(aw_store_t *store, int flag, aw_store_record_cb cb, void *data)
{
    mongo_store_t *s = (mongo_store_t *)store;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, bits, sort;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "flags", &bits);
    BSON_APPEND_INT32(&bits, "$bitsAllSet", flag);
    bson_append_document_end(&filter, &bits);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "user", 1);
    BSON_APPEND_INT32(&sort, "seq", -1);
    BSON_APPEND_INT32(&sort, "sub", -1);
    bson_append_document_end(&opts, &sort);
    latest_t l = {.cb = cb, .data = data};
    int err = find(s, &filter, &opts, latest_one, &l);
    free(l.last_user);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return err;
}

static int mg_latest_of(aw_store_t *store, const char *user, size_t user_len, int flag, aw_store_record_cb cb,
                        void *data)
{
    mongo_store_t *s = (mongo_store_t *)store;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, bits, sort;
    bson_append_utf8(&filter, "user", 4, user, (int)user_len);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "flags", &bits);
    BSON_APPEND_INT32(&bits, "$bitsAllSet", flag);
    bson_append_document_end(&filter, &bits);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "seq", -1);
    BSON_APPEND_INT32(&sort, "sub", -1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", 1);
    aw_record_t r = {0};
    page_t p = {.recs = &r, .cap = 1};
    int err = find(s, &filter, &opts, collect, &p);
    if (err == 0 && p.n == 1) {
        r.user = user;
        r.user_len = user_len;
        cb(&r, data);
    }
    free((char *)r.json);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return err;
}

static int command(mongo_store_t *s, const char *db, const bson_t *cmd)
{
    bson_error_t error;
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    bool ok = mongoc_client_command_simple(c, db, cmd, NULL, NULL, &error);
    mongoc_client_pool_push(s->pool, c);
    return ok ? 0 : map_error(&error);
}

static void mg_close(aw_store_t *store)
{
    mongo_store_t *s = (mongo_store_t *)store;
    if (s->pool != NULL)
        mongoc_client_pool_destroy(s->pool);
    if (s->uri != NULL)
        mongoc_uri_destroy(s->uri);
    if (s->wc != NULL)
        mongoc_write_concern_destroy(s->wc);
    free(s->db);
    free(s);
}

/* The unique index that serves every read and keeps records single. */
static int create_indexes(mongo_store_t *s)
{
    bson_t cmd = BSON_INITIALIZER, list, index, key;
    BSON_APPEND_UTF8(&cmd, "createIndexes", "history");
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &list);
    BSON_APPEND_DOCUMENT_BEGIN(&list, "0", &index);
    BSON_APPEND_DOCUMENT_BEGIN(&index, "key", &key);
    BSON_APPEND_INT32(&key, "user", 1);
    BSON_APPEND_INT32(&key, "seq", -1);
    BSON_APPEND_INT32(&key, "sub", -1);
    bson_append_document_end(&index, &key);
    BSON_APPEND_UTF8(&index, "name", "user_seq_sub");
    BSON_APPEND_BOOL(&index, "unique", true);
    bson_append_document_end(&list, &index);
    bson_append_array_end(&cmd, &list);
    int err = command(s, s->db, &cmd);
    bson_destroy(&cmd);
    return err;
}

/* The "w" option, NULL when not given. */
static mongoc_write_concern_t *write_concern(const char *w)
{
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    if (w == NULL || strcmp(w, "majority") == 0)
        mongoc_write_concern_set_wmajority(wc, 10000);
    else
        mongoc_write_concern_set_w(wc, atoi(w) > 0 ? atoi(w) : 1);
    return wc;
}

/* "mongodb://..." or "mongodb+srv://...", a URI as the driver takes it. */
static int mg_open(aw_store_t **out, const char *uri, const aw_store_options_t *options)
{
    bson_error_t error;
    pthread_once(&init_once, init_driver);
    mongo_store_t *s = aw_calloc(1, sizeof(*s));
    s->super.backend = &aw_store__mongodb;
    if ((s->uri = mongoc_uri_new_with_error(uri, &error)) == NULL) {
        aw_log(AW_LOG_ERROR, "store", "the MongoDB URI is not valid: %s", error.message);
        mg_close(&s->super);
        return AW_EINVAL;
    }
    int timeout = options->timeout_ms;
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout);
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, timeout);
    const char *db = mongoc_uri_get_database(s->uri);
    s->db = aw_strndup(db != NULL ? db : "anywhere", strlen(db != NULL ? db : "anywhere"));
    s->wc = write_concern(aw_store__param(options, &aw_store__mongodb, "w"));
    s->pool = mongoc_client_pool_new(s->uri);
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(s->pool, "anywhere");
    int err = create_indexes(s);
    if (err != 0) {
        aw_log(AW_LOG_ERROR, "store", "MongoDB: cannot create the history index (%s)", aw_strerror(err));
        mg_close(&s->super);
        return err;
    }
    *out = &s->super;
    return 0;
}

static const char *const schemes[] = {"mongodb://", "mongodb+srv://", NULL};
static const char *const keys[] = {"w", NULL};

const aw_store_backend_t aw_store__mongodb = {
    .name = "mongodb",
    .schemes = schemes,
    .keys = keys,
    .open = mg_open,
    .append = mg_append,
    .read = mg_read,
    .latest = mg_latest,
    .latest_of = mg_latest_of,
    .close = mg_close,
};
