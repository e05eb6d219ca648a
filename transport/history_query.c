/*
 * The parsers of the history routes' requests (history_query.h). The body is
 * read with json.h's depth-checked tree parser; the query string is read in
 * place, each value percent-decoded into a bounded buffer.
 */
#include "transport/history_query.h"

#include <string.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>
#include "actors/json.h"
#include "runtime/error.h"

static int set_user(aw_history_query_t *q, const char *user, size_t len)
{
    if (len == 0 || len > AW_MAX_USER_LEN || memchr(user, '\0', len) != NULL)
        return AW_EBADMSG;
    memcpy(q->user, user, len);
    q->user[len] = '\0';
    q->user_len = len;
    return 0;
}

static int set_token(aw_history_query_t *q, const char *token, size_t len)
{
    if (len > AW_MAX_USER_LEN)
        return AW_EBADMSG;
    memcpy(q->token, token, len);
    q->token[len] = '\0';
    return 0;
}

static void query_init(aw_history_query_t *q)
{
    memset(q, 0, sizeof(*q));
    q->before = INT64_MAX;
    q->limit = 10;
}

int aw_history_query_from_json(aw_history_query_t *q, const char *json, size_t len)
{
    int bad = 0;
    query_init(q);
    yajl_val root = aw_json_parse_tree(json, len);
    if (root == NULL)
        return AW_EBADJSON;
    int err = YAJL_IS_OBJECT(root) ? 0 : AW_EBADJSON;
    const char *user = err == 0 ? aw_json_get_string(root, "user", &bad) : NULL;
    const char *token = err == 0 ? aw_json_get_string(root, "token", &bad) : NULL;
    const char *path[] = {"limit", NULL};
    yajl_val limit = err == 0 ? yajl_tree_get(root, path, yajl_t_any) : NULL;
    if (err == 0 && (bad || user == NULL || set_user(q, user, strlen(user)) != 0 ||
                     (token != NULL && set_token(q, token, strlen(token)) != 0)))
        err = AW_EBADMSG;
    if (err == 0 && limit != NULL && !YAJL_IS_NULL(limit)) {
        if (!YAJL_IS_INTEGER(limit) || YAJL_GET_INTEGER(limit) < 1 || YAJL_GET_INTEGER(limit) > 100)
            err = AW_EBADMSG;
        else
            q->limit = (int)YAJL_GET_INTEGER(limit);
    }
    yajl_tree_free(root);
    return err;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes into `out` (room for `cap` bytes); returns the length or -1. */
static ssize_t url_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n == cap)
            return -1;
        out[n++] = c;
    }
    return (ssize_t)n;
}

static int parse_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int query_pair(aw_history_query_t *q, const char *key, size_t klen, const char *val, size_t vlen)
{
    char buf[AW_MAX_USER_LEN * 3 + 1];
    ssize_t n = url_decode(val, vlen, buf, sizeof(buf));
    int64_t v;
    if (n < 0)
        return AW_EBADMSG;
    if (klen == 4 && memcmp(key, "user", 4) == 0)
        return set_user(q, buf, (size_t)n);
    if (klen == 6 && memcmp(key, "before", 6) == 0) {
        if (parse_int(buf, (size_t)n, 0, INT64_MAX / 2, &v) != 0)
            return AW_EBADMSG;
        q->before = v;
    } else if (klen == 5 && memcmp(key, "limit", 5) == 0) {
        if (parse_int(buf, (size_t)n, 1, 100, &v) != 0)
            return AW_EBADMSG;
        q->limit = (int)v;
    }
    return 0;
}

int aw_history_query_from_url(aw_history_query_t *q, const char *query, size_t len)
{
    query_init(q);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        const char *eq = memchr(query + i, '=', end - i);
        size_t klen = eq != NULL ? (size_t)(eq - (query + i)) : end - i;
        const char *val = eq != NULL ? eq + 1 : query + end;
        int err = query_pair(q, query + i, klen, val, (size_t)(query + end - val));
        if (err != 0)
            return err;
        i = end + 1;
    }
    return q->user_len == 0 ? AW_EBADMSG : 0;
}
