/*
 * Parsing and writing of client messages (message.h), and the parsers of
 * history requests. The JSON itself is read and written by json.c: a message
 * with its arena reader, a history request with its depth-checked tree
 * parser, history records and bot bodies with its writer, straight into the
 * buffer that carries them.
 */
#include "actors/message.h"

#include <string.h>
#include "actors/internal.h"
#include "runtime/error.h"

static const char *str_value(yajl_val v, int *bad)
{
    if (v == NULL || YAJL_IS_NULL(v))
        return NULL;
    if (!YAJL_IS_STRING(v)) {
        *bad = 1;
        return NULL;
    }
    return YAJL_GET_STRING(v);
}

static int64_t last_seq_value(yajl_val v, int *bad)
{
    if (v == NULL || YAJL_IS_NULL(v))
        return -1;
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        *bad = 1;
        return -1;
    }
    return YAJL_GET_INTEGER(v);
}

/* The known fields of a client message, in one pass over the members. A key
 * given twice counts where it first appears, as yajl_tree_get finds it. */
static void read_known_fields(aw_message_t *msg, yajl_val root, int *bad)
{
    static const char *const names[] = {"type", "user", "text", "channel", "token", "last_seq"};
    yajl_val found[6] = {NULL};
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        for (size_t n = 0; n < 6; n++) {
            if (found[n] == NULL && k[0] == names[n][0] && strcmp(k, names[n]) == 0) {
                found[n] = root->u.object.values[i];
                break;
            }
        }
    }
    msg->type = str_value(found[0], bad);
    msg->user = str_value(found[1], bad);
    msg->text = str_value(found[2], bad);
    msg->channel = str_value(found[3], bad);
    msg->token = str_value(found[4], bad);
    msg->last_seq = last_seq_value(found[5], bad);
}

int aw_message_parse(aw_message_t *msg, const char *json, size_t len)
{
    aw_json_arena_t *arena = NULL;
    int bad = 0;

    memset(msg, 0, sizeof(*msg));
    yajl_val root = aw_json_parse_arena(json, len, &arena);
    if (root == NULL)
        return AW_EBADJSON;
    msg->root = root;
    msg->arena = arena;
    if (!YAJL_IS_OBJECT(root)) {
        aw_message_dispose(msg);
        return AW_EBADJSON;
    }
    read_known_fields(msg, root, &bad);
    if (msg->user != NULL)
        msg->user_len = strlen(msg->user);
    if (bad || msg->type == NULL || msg->type[0] == '\0' || msg->user_len == 0 ||
        msg->user_len > AW_MAX_USER_LEN) {
        aw_message_dispose(msg);
        return AW_EBADMSG;
    }
    return 0;
}

void aw_message_dispose(aw_message_t *msg)
{
    aw_json_arena_free(msg->arena);
    memset(msg, 0, sizeof(*msg));
}

/* Opens a message object: its type and the client's fields but `skip`. */
static void open_message(jw_t *w, const aw_message_t *msg, const char *type, const char *const *skip)
{
    jw_init(w, 256);
    jw_char(w, '{');
    JW_KEY(w, "type");
    jw_cstr(w, type != NULL ? type : msg->type);
    jw_fields_except(w, msg->root, skip);
}

aw_buf_t *aw_message_write(const aw_message_t *msg, const char *type, int64_t ts_ms, int64_t seq)
{
    static const char *const skip[] = {"type", "token", "ts", "seq", NULL};
    jw_t w;
    open_message(&w, msg, type, skip);
    if (ts_ms >= 0) {
        JW_KEY(&w, "ts");
        jw_int(&w, ts_ms);
    }
    if (seq >= 0) {
        JW_KEY(&w, "seq");
        jw_int(&w, seq);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_message_write_for_bot(const aw_message_t *msg, int64_t ts_ms, int guest)
{
    /* `guest` is the server's word, never the client's. */
    static const char *const skip[] = {"type", "token", "ts", "seq", "guest", NULL};
    jw_t w;
    open_message(&w, msg, NULL, skip);
    JW_KEY(&w, "ts");
    jw_int(&w, ts_ms);
    if (guest) {
        JW_KEY(&w, "guest");
        jw_bool(&w, 1);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

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
    aw_message_t m;
    int bad = 0;
    query_init(q);
    m.root = aw_json_parse_tree(json, len);
    if (m.root == NULL)
        return AW_EBADJSON;
    int err = YAJL_IS_OBJECT(m.root) ? 0 : AW_EBADJSON;
    const char *user = err == 0 ? aw_json_get_string(m.root, "user", &bad) : NULL;
    const char *token = err == 0 ? aw_json_get_string(m.root, "token", &bad) : NULL;
    const char *path[] = {"limit", NULL};
    yajl_val limit = err == 0 ? yajl_tree_get(m.root, path, yajl_t_any) : NULL;
    if (err == 0 && (bad || user == NULL || set_user(q, user, strlen(user)) != 0 ||
                     (token != NULL && set_token(q, token, strlen(token)) != 0)))
        err = AW_EBADMSG;
    if (err == 0 && limit != NULL && !YAJL_IS_NULL(limit)) {
        if (!YAJL_IS_INTEGER(limit) || YAJL_GET_INTEGER(limit) < 1 || YAJL_GET_INTEGER(limit) > 100)
            err = AW_EBADMSG;
        else
            q->limit = (int)YAJL_GET_INTEGER(limit);
    }
    yajl_tree_free(m.root);
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
