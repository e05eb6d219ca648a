/*
 * Bot messages (reply.h): building them, reading them from a bot's or an API
 * client's JSON, and writing them, and the protocol's small frames, with the
 * JSON writer of internal.h straight into the buffer every socket of the
 * user gets.
 */
#include "actors/reply.h"

#include <string.h>
#include "actors/internal.h"
#include "actors/protocol.h"
#include "runtime/error.h"

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

static void write_opt_str_lit(jw_t *w, const char *quoted, size_t n, const char *value)
{
    if (value == NULL)
        return;
    jw_key_lit(w, quoted, n);
    jw_cstr(w, value);
}
/* Writes "key":"value" when value is not NULL; `k` is a literal. */
#define write_opt_str(w, k, value) write_opt_str_lit((w), "\"" k "\":", sizeof(k) + 2, (value))

static void write_reply_lists(jw_t *w, const aw_reply_t *r)
{
    if (r->n_quick_replies != 0) {
        JW_KEY(w, "quick_replies");
        jw_char(w, '[');
        for (size_t i = 0; i < r->n_quick_replies; i++) {
            jw_raw(w, i != 0 ? ",{" : "{", i != 0 ? 2 : 1);
            write_opt_str(w, "title", r->quick_replies[i].title);
            write_opt_str(w, "payload", r->quick_replies[i].payload);
            jw_char(w, '}');
        }
        jw_char(w, ']');
    }
    if (r->n_files != 0) {
        JW_KEY(w, "files");
        jw_char(w, '[');
        for (size_t i = 0; i < r->n_files; i++) {
            jw_raw(w, i != 0 ? ",{" : "{", i != 0 ? 2 : 1);
            write_opt_str(w, "url", r->files[i].url);
            JW_KEY(w, "image");
            jw_bool(w, r->files[i].image);
            jw_char(w, '}');
        }
        jw_char(w, ']');
    }
}

aw_buf_t *aw_reply_write(const aw_reply_t *r, const char *user, size_t user_len, const char *channel,
                         int64_t seq, int64_t ts_ms)
{
    /* Every field written from `r` is skipped in `extra`, or the frame
     * would carry it twice. So are `token` and `last_seq`: they belong to
     * the client's side of the protocol (its identity and what it has
     * shown), and a bot that sets them must not put them in a user's frame,
     * where a client would take them for its own. */
    static const char *const skip[] = {"type",  "text",          "user",       "channel",   "seq",
                                       "ts",    "open_link",     "link_title", "goto_link", "quick_replies",
                                       "files", "disable_input", "token",      "last_seq",  NULL};
    jw_t w;
    jw_init(&w, 256);
    jw_char(&w, '{');
    write_opt_str(&w, "type", r->type != NULL ? r->type : "message");
    write_opt_str(&w, "text", r->text);
    write_reply_lists(&w, r);
    write_opt_str(&w, "open_link", r->open_link);
    write_opt_str(&w, "link_title", r->link_title);
    write_opt_str(&w, "goto_link", r->goto_link);
    if (r->disable_input) {
        JW_KEY(&w, "disable_input");
        jw_bool(&w, 1);
    }
    if (r->extra != NULL && YAJL_IS_OBJECT(r->extra))
        jw_fields_except(&w, r->extra, skip);
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    write_opt_str(&w, "channel", channel);
    if (seq >= 0) {
        JW_KEY(&w, "seq");
        jw_int(&w, seq);
    }
    if (ts_ms >= 0) {
        JW_KEY(&w, "ts");
        jw_int(&w, ts_ms);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_typing(const char *user, size_t user_len)
{
    jw_t w;
    jw_init(&w, 64 + user_len);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "typing");
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_session(const char *user, size_t user_len, const char *token, int64_t seq)
{
    jw_t w;
    jw_init(&w, 160 + user_len);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "session");
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    write_opt_str(&w, "token", token);
    JW_KEY(&w, "seq");
    jw_int(&w, seq);
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_error(int err)
{
    aw_protocol_error_t e = aw_protocol_error(err);
    jw_t w;
    jw_init(&w, 128);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "error");
    write_opt_str(&w, "code", e.code);
    write_opt_str(&w, "message", e.message);
    jw_char(&w, '}');
    return jw_finish(&w);
}

static int opt_reply_str(yajl_val obj, const char *key, char **out)
{
    int bad = 0;
    const char *v = aw_json_get_string(obj, key, &bad);
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
        const char *title = YAJL_IS_OBJECT(e) ? aw_json_get_string(e, "title", &bad) : NULL;
        const char *payload = YAJL_IS_OBJECT(e) ? aw_json_get_string(e, "payload", &bad) : NULL;
        if (title == NULL || bad)
            return AW_EBADMSG;
        aw_reply_add_quick_reply(r, title, payload);
    }
    for (size_t i = 0; f != NULL && i < f->u.array.len; i++) {
        yajl_val e = f->u.array.values[i];
        int bad = 0;
        const char *url = YAJL_IS_OBJECT(e) ? aw_json_get_string(e, "url", &bad) : NULL;
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
    const char *type = aw_json_get_string(obj, "type", &bad);
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
    yajl_val root = aw_json_parse_tree(json, len);
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
