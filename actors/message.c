/*
 * Parsing and writing of chat messages (see message.h). Input is bounded
 * before yajl sees it: size by the transport, nesting depth here, because
 * yajl's tree parser and its free are recursive and have no depth limit of
 * their own.
 */
#include "actors/message.h"

#include <string.h>
#include "runtime/error.h"

/* Returns non-zero when arrays and objects nest deeper than `max`. It must
 * see the structure yajl's tree parser will see: brackets inside strings do
 * not count, and neither do brackets inside comments, which that parser
 * accepts (it turns yajl_allow_comments on, with no way to turn it off).
 * Counting a "]" of a comment let a comment of closing brackets buy any
 * depth past the limit. */
int aw_json_too_deep(const char *s, size_t len, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
            const char *end = memmem(s + i + 2, len - i - 2, "*/", 2);
            if (end == NULL)
                return 0; /* unterminated: yajl refuses it */
            i = (size_t)(end - s) + 1;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '/') {
            const char *end = memchr(s + i + 2, '\n', len - i - 2);
            if (end == NULL)
                return 0;
            i = (size_t)(end - s);
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* The string field `key` of the object, NULL when absent or null, and
 * *bad = 1 when present with another type. */
static const char *get_str(yajl_val obj, const char *key, int *bad)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    if (v == NULL || YAJL_IS_NULL(v))
        return NULL;
    if (!YAJL_IS_STRING(v)) {
        *bad = 1;
        return NULL;
    }
    return YAJL_GET_STRING(v);
}

static int64_t get_last_seq(yajl_val obj, int *bad)
{
    const char *path[] = {"last_seq", NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    if (v == NULL || YAJL_IS_NULL(v))
        return -1;
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        *bad = 1;
        return -1;
    }
    return YAJL_GET_INTEGER(v);
}

int aw_message_parse(aw_message_t *msg, const char *json, size_t len)
{
    char errbuf[128];
    int bad = 0;

    memset(msg, 0, sizeof(*msg));
    if (len == 0 || memchr(json, '\0', len) != NULL || aw_json_too_deep(json, len, AW_MAX_DEPTH))
        return AW_EBADJSON;
    char *copy = aw_strndup(json, len);
    yajl_val root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (root == NULL)
        return AW_EBADJSON;
    if (!YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return AW_EBADJSON;
    }
    msg->root = root;
    msg->type = get_str(root, "type", &bad);
    msg->user = get_str(root, "user", &bad);
    msg->text = get_str(root, "text", &bad);
    msg->channel = get_str(root, "channel", &bad);
    msg->token = get_str(root, "token", &bad);
    msg->last_seq = get_last_seq(root, &bad);
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
    if (msg->root != NULL)
        yajl_tree_free(msg->root);
    memset(msg, 0, sizeof(*msg));
}

yajl_gen aw_json_gen(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        fprintf(stderr, "anywhere: out of memory (yajl_gen)\n");
        abort();
    }
    return g;
}

aw_buf_t *aw_json_finish(yajl_gen g)
{
    const unsigned char *out;
    size_t len;
    yajl_gen_get_buf(g, &out, &len);
    aw_buf_t *b = aw_buf_new(out, len);
    yajl_gen_free(g);
    return b;
}

void aw_json_write_str(yajl_gen g, const char *s)
{
    if (s == NULL)
        yajl_gen_null(g);
    else
        yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void write_key(yajl_gen g, const char *k)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

void aw_json_write_value(yajl_gen g, yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        aw_json_write_str(g, v->u.string);
        break;
    case yajl_t_number:
        /* The number's own text: big or precise numbers pass through exactly. */
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            write_key(g, v->u.object.keys[i]);
            aw_json_write_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            aw_json_write_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
        break;
    case yajl_t_true:
        yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        yajl_gen_bool(g, 0);
        break;
    default:
        yajl_gen_null(g);
        break;
    }
}

/* Writes the fields of `obj` except the listed keys. */
static void write_fields_except(yajl_gen g, yajl_val obj, const char *const *skip)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];
        int skipped = 0;
        for (const char *const *s = skip; *s != NULL; s++)
            if (strcmp(*s, k) == 0)
                skipped = 1;
        if (skipped)
            continue;
        write_key(g, k);
        aw_json_write_value(g, obj->u.object.values[i]);
    }
}

/* Opens a message object: its type and the client's fields but `skip`. */
static yajl_gen open_message(const aw_message_t *msg, const char *type, const char *const *skip)
{
    yajl_gen g = aw_json_gen();
    yajl_gen_map_open(g);
    write_key(g, "type");
    aw_json_write_str(g, type != NULL ? type : msg->type);
    write_fields_except(g, msg->root, skip);
    return g;
}

aw_buf_t *aw_message_write(const aw_message_t *msg, const char *type, int64_t ts_ms, int64_t seq)
{
    static const char *const skip[] = {"type", "token", "ts", "seq", NULL};
    yajl_gen g = open_message(msg, type, skip);
    if (ts_ms >= 0) {
        write_key(g, "ts");
        yajl_gen_integer(g, ts_ms);
    }
    if (seq >= 0) {
        write_key(g, "seq");
        yajl_gen_integer(g, seq);
    }
    yajl_gen_map_close(g);
    return aw_json_finish(g);
}

aw_buf_t *aw_message_write_for_bot(const aw_message_t *msg, int64_t ts_ms, int guest)
{
    /* `guest` is the server's word, never the client's. */
    static const char *const skip[] = {"type", "token", "ts", "seq", "guest", NULL};
    yajl_gen g = open_message(msg, NULL, skip);
    write_key(g, "ts");
    yajl_gen_integer(g, ts_ms);
    if (guest) {
        write_key(g, "guest");
        yajl_gen_bool(g, 1);
    }
    yajl_gen_map_close(g);
    return aw_json_finish(g);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? aw_strndup(s, strlen(s)) : NULL;
}

aw_reply_t *aw_reply_new(const char *text)
{
    aw_reply_t *r = aw_calloc(1, sizeof(*r));
    r->text = dup_or_null(text);
    return r;
}

void aw_reply_free(aw_reply_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_quick_replies; i++) {
        free(r->quick_replies[i].title);
        free(r->quick_replies[i].payload);
    }
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i].url);
    free(r->quick_replies);
    free(r->files);
    free(r->type);
    free(r->text);
    free(r->open_link);
    free(r->link_title);
    free(r->goto_link);
    if (r->extra != NULL)
        yajl_tree_free(r->extra);
    free(r);
}

void aw_reply_add_quick_reply(aw_reply_t *r, const char *title, const char *payload)
{
    r->quick_replies = aw_realloc(r->quick_replies, (r->n_quick_replies + 1) * sizeof(*r->quick_replies));
    r->quick_replies[r->n_quick_replies].title = dup_or_null(title);
    r->quick_replies[r->n_quick_replies].payload = dup_or_null(payload != NULL ? payload : title);
    r->n_quick_replies++;
}

void aw_reply_add_file(aw_reply_t *r, const char *url, int image)
{
    r->files = aw_realloc(r->files, (r->n_files + 1) * sizeof(*r->files));
    r->files[r->n_files].url = dup_or_null(url);
    r->files[r->n_files].image = image;
    r->n_files++;
}

void aw_reply_set_link(aw_reply_t *r, const char *url, const char *title)
{
    free(r->open_link);
    free(r->link_title);
    r->open_link = dup_or_null(url);
    r->link_title = dup_or_null(title);
}

static void write_opt_str(yajl_gen g, const char *key, const char *value)
{
    if (value == NULL)
        return;
    write_key(g, key);
    aw_json_write_str(g, value);
}

static void write_reply_lists(yajl_gen g, const aw_reply_t *r)
{
    if (r->n_quick_replies != 0) {
        write_key(g, "quick_replies");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < r->n_quick_replies; i++) {
            yajl_gen_map_open(g);
            write_opt_str(g, "title", r->quick_replies[i].title);
            write_opt_str(g, "payload", r->quick_replies[i].payload);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
    if (r->n_files != 0) {
        write_key(g, "files");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < r->n_files; i++) {
            yajl_gen_map_open(g);
            write_opt_str(g, "url", r->files[i].url);
            write_key(g, "image");
            yajl_gen_bool(g, r->files[i].image);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
}

aw_buf_t *aw_reply_write(const aw_reply_t *r, const char *user, size_t user_len, const char *channel,
                         int64_t seq, int64_t ts_ms)
{
    /* Every field written from `r` is skipped in `extra`, or the frame
     * would carry it twice. */
    static const char *const skip[] = {"type",  "text",          "user",       "channel",   "seq",
                                       "ts",    "open_link",     "link_title", "goto_link", "quick_replies",
                                       "files", "disable_input", NULL};
    yajl_gen g = aw_json_gen();
    yajl_gen_map_open(g);
    write_opt_str(g, "type", r->type != NULL ? r->type : "message");
    write_opt_str(g, "text", r->text);
    write_reply_lists(g, r);
    write_opt_str(g, "open_link", r->open_link);
    write_opt_str(g, "link_title", r->link_title);
    write_opt_str(g, "goto_link", r->goto_link);
    if (r->disable_input) {
        write_key(g, "disable_input");
        yajl_gen_bool(g, 1);
    }
    if (r->extra != NULL && YAJL_IS_OBJECT(r->extra))
        write_fields_except(g, r->extra, skip);
    write_key(g, "user");
    yajl_gen_string(g, (const unsigned char *)user, user_len);
    write_opt_str(g, "channel", channel);
    if (seq >= 0) {
        write_key(g, "seq");
        yajl_gen_integer(g, seq);
    }
    if (ts_ms >= 0) {
        write_key(g, "ts");
        yajl_gen_integer(g, ts_ms);
    }
    yajl_gen_map_close(g);
    return aw_json_finish(g);
}

aw_buf_t *aw_frame_typing(const char *user, size_t user_len)
{
    yajl_gen g = aw_json_gen();
    yajl_gen_map_open(g);
    write_opt_str(g, "type", "typing");
    write_key(g, "user");
    yajl_gen_string(g, (const unsigned char *)user, user_len);
    yajl_gen_map_close(g);
    return aw_json_finish(g);
}

aw_buf_t *aw_frame_session(const char *user, size_t user_len, const char *token, int64_t seq)
{
    yajl_gen g = aw_json_gen();
    yajl_gen_map_open(g);
    write_opt_str(g, "type", "session");
    write_key(g, "user");
    yajl_gen_string(g, (const unsigned char *)user, user_len);
    write_opt_str(g, "token", token);
    write_key(g, "seq");
    yajl_gen_integer(g, seq);
    yajl_gen_map_close(g);
    return aw_json_finish(g);
}

aw_buf_t *aw_frame_error(int err)
{
    yajl_gen g = aw_json_gen();
    yajl_gen_map_open(g);
    write_opt_str(g, "type", "error");
    write_opt_str(g, "code", aw_err_code(err));
    write_opt_str(g, "message", aw_strerror(err));
    yajl_gen_map_close(g);
    return aw_json_finish(g);
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
    char errbuf[64];
    int bad = 0;
    query_init(q);
    if (len == 0 || memchr(json, '\0', len) != NULL || aw_json_too_deep(json, len, AW_MAX_DEPTH))
        return AW_EBADJSON;
    char *copy = aw_strndup(json, len);
    m.root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (m.root == NULL)
        return AW_EBADJSON;
    int err = YAJL_IS_OBJECT(m.root) ? 0 : AW_EBADJSON;
    const char *user = err == 0 ? get_str(m.root, "user", &bad) : NULL;
    const char *token = err == 0 ? get_str(m.root, "token", &bad) : NULL;
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

static int opt_reply_str(yajl_val obj, const char *key, char **out)
{
    int bad = 0;
    const char *v = get_str(obj, key, &bad);
    if (bad)
        return AW_EBADMSG;
    *out = v != NULL ? aw_strndup(v, strlen(v)) : NULL;
    return 0;
}

static int reply_lists(yajl_val obj, aw_reply_t *r)
{
    const char *qpath[] = {"quick_replies", NULL}, *fpath[] = {"files", NULL};
    yajl_val q = yajl_tree_get(obj, qpath, yajl_t_any), f = yajl_tree_get(obj, fpath, yajl_t_any);
    if ((q != NULL && !YAJL_IS_ARRAY(q)) || (f != NULL && !YAJL_IS_ARRAY(f)))
        return AW_EBADMSG;
    for (size_t i = 0; q != NULL && i < q->u.array.len; i++) {
        yajl_val e = q->u.array.values[i];
        int bad = 0;
        const char *title = YAJL_IS_OBJECT(e) ? get_str(e, "title", &bad) : NULL;
        const char *payload = YAJL_IS_OBJECT(e) ? get_str(e, "payload", &bad) : NULL;
        if (title == NULL || bad)
            return AW_EBADMSG;
        aw_reply_add_quick_reply(r, title, payload);
    }
    for (size_t i = 0; f != NULL && i < f->u.array.len; i++) {
        yajl_val e = f->u.array.values[i];
        int bad = 0;
        const char *url = YAJL_IS_OBJECT(e) ? get_str(e, "url", &bad) : NULL;
        const char *ipath[] = {"image", NULL};
        yajl_val img = YAJL_IS_OBJECT(e) ? yajl_tree_get(e, ipath, yajl_t_any) : NULL;
        if (url == NULL || bad || (img != NULL && !YAJL_IS_TRUE(img) && !YAJL_IS_FALSE(img)))
            return AW_EBADMSG;
        aw_reply_add_file(r, url, img != NULL && YAJL_IS_TRUE(img));
    }
    return 0;
}

int aw_reply_from_object(yajl_val obj, aw_reply_t **out)
{
    int bad = 0;
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return AW_EBADMSG;
    const char *type = get_str(obj, "type", &bad);
    if (bad || (type != NULL && strcmp(type, "message") != 0))
        return AW_EBADMSG;
    aw_reply_t *r = aw_reply_new(NULL);
    const char *tpath[] = {"typing", NULL}, *dpath[] = {"disable_input", NULL};
    yajl_val typing = yajl_tree_get(obj, tpath, yajl_t_any), dis = yajl_tree_get(obj, dpath, yajl_t_any);
    int err = opt_reply_str(obj, "text", &r->text);
    if (err == 0)
        err = opt_reply_str(obj, "open_link", &r->open_link);
    if (err == 0)
        err = opt_reply_str(obj, "link_title", &r->link_title);
    if (err == 0)
        err = opt_reply_str(obj, "goto_link", &r->goto_link);
    if (err == 0)
        err = reply_lists(obj, r);
    if (err == 0 && typing != NULL &&
        (!YAJL_IS_INTEGER(typing) || YAJL_GET_INTEGER(typing) < 0 || YAJL_GET_INTEGER(typing) > 60000))
        err = AW_EBADMSG;
    if (err == 0 && dis != NULL && !YAJL_IS_TRUE(dis) && !YAJL_IS_FALSE(dis))
        err = AW_EBADMSG;
    if (err != 0) {
        aw_reply_free(r);
        return err;
    }
    r->typing_ms = typing != NULL ? (unsigned int)YAJL_GET_INTEGER(typing) : 0;
    r->disable_input = dis != NULL && YAJL_IS_TRUE(dis);
    r->extra = obj;
    *out = r;
    return 0;
}

int aw_push_parse(const char *json, size_t len, char user[AW_MAX_USER_LEN], size_t *user_len,
                  aw_reply_t **reply)
{
    char errbuf[64];
    if (len == 0 || memchr(json, '\0', len) != NULL || aw_json_too_deep(json, len, AW_MAX_DEPTH))
        return AW_EBADJSON;
    char *copy = aw_strndup(json, len);
    yajl_val root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        if (root != NULL)
            yajl_tree_free(root);
        return AW_EBADJSON;
    }
    const char *path[] = {"user", NULL};
    yajl_val u = yajl_tree_get(root, path, yajl_t_string);
    const char *name = u != NULL ? YAJL_GET_STRING(u) : NULL;
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > AW_MAX_USER_LEN || aw_reply_from_object(root, reply) != 0) {
        yajl_tree_free(root);
        return AW_EBADMSG;
    }
    memcpy(user, name, n); /* `root` now belongs to the reply, which keeps `name` alive */
    *user_len = n;
    return 0;
}
