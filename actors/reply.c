/*
 * Bot messages (reply.h): building them, with the limits every bot is held
 * to; reading them from JSON, a bot's, an API client's or a script's; and
 * writing them, and the protocol's small frames, with the JSON writer of
 * internal.h straight into the buffer every socket of the user gets.
 */
#include "actors/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "actors/internal.h"
#include "actors/protocol.h"
#include "runtime/bytes.h"
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

aw_reply_t *aw_reply_new_handoff(const char *reason)
{
    aw_reply_t *r = aw_reply_new(reason);
    r->type = aw_strndup("handoff", 7);
    return r;
}

int aw_reply_is_handoff(const aw_reply_t *r)
{
    return r->type != NULL && strcmp(r->type, "handoff") == 0;
}

void aw_reply_set_operator(aw_reply_t *r, const char *name, const char *event)
{
    free(r->operator_name);
    free(r->handoff);
    r->operator_name = dup_or_null(name);
    r->handoff = dup_or_null(event);
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
    free(r->operator_name);
    free(r->handoff);
    free(r->type);
    free(r->text);
    free(r->open_link);
    free(r->link_title);
    free(r->goto_link);
    if (r->extra != NULL)
        yajl_tree_free(r->extra);
    free(r);
}

int aw_reply_add_quick_reply(aw_reply_t *r, const char *title, const char *payload)
{
    if (title == NULL)
        return AW_EINVAL;
    r->quick_replies = aw_realloc(r->quick_replies, (r->n_quick_replies + 1) * sizeof(*r->quick_replies));
    r->quick_replies[r->n_quick_replies].title = dup_or_null(title);
    r->quick_replies[r->n_quick_replies].payload = dup_or_null(payload != NULL ? payload : title);
    r->n_quick_replies++;
    return 0;
}

int aw_reply_add_file(aw_reply_t *r, const char *url, int image)
{
    if (url == NULL)
        return AW_EINVAL;
    r->files = aw_realloc(r->files, (r->n_files + 1) * sizeof(*r->files));
    r->files[r->n_files].url = dup_or_null(url);
    r->files[r->n_files].image = image;
    r->n_files++;
    return 0;
}

void aw_reply_set_link(aw_reply_t *r, const char *url, const char *title)
{
    free(r->open_link);
    free(r->link_title);
    r->open_link = dup_or_null(url);
    r->link_title = dup_or_null(title);
}

int aw_reply_set_typing(aw_reply_t *r, int64_t ms)
{
    if (ms < 0 || ms > AW_REPLY_MAX_TYPING_MS)
        return AW_EINVAL;
    r->typing_ms = (unsigned int)ms;
    return 0;
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

static yajl_val member(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(obj, path, yajl_t_any);
}

aw_buf_t *aw_push_write(const aw_reply_t *r, const char *user, size_t user_len)
{
    aw_buf_t *frame = aw_reply_write(r, user, user_len, NULL, -1, -1);
    /* a reply read from JSON carries its "typing" on among its other fields */
    if (r->typing_ms == 0 || (r->extra != NULL && member(r->extra, "typing") != NULL))
        return frame;
    /* the frame's fields, then the pause the frame itself does not carry */
    aw_bytes_t out;
    aw_bytes_init(&out, frame->len + 32);
    aw_bytes_append(&out, frame->data, frame->len - 1);
    aw_bytes_appendf(&out, ",\"typing\":%u}", r->typing_ms);
    aw_buf_release(frame);
    return aw_bytes_finish(&out);
}

aw_buf_t *aw_reply_write(const aw_reply_t *r, const char *user, size_t user_len, const char *channel,
                         int64_t seq, int64_t ts_ms)
{
    /* Every field written from `r` is skipped in `extra`, or the frame
     * would carry it twice. So are `token` and `last_seq`: they belong to
     * the client's side of the protocol (its identity and what it has
     * shown), and a bot that sets them must not put them in a user's frame,
     * where a client would take them for its own. */
    static const char *const skip[] = {
        "type",      "text",       "user",      "channel",       "seq",   "ts",
        "open_link", "link_title", "goto_link", "quick_replies", "files", "disable_input",
        "token",     "last_seq",   "operator",  "handoff",       NULL};
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
    /* only the server sets these: a bot's own "operator" is skipped above */
    write_opt_str(&w, "operator", r->operator_name);
    write_opt_str(&w, "handoff", r->handoff);
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
    return aw_frame_error_mid(err, NULL, 0);
}

aw_buf_t *aw_frame_error_mid(int err, const char *mid, size_t mid_len)
{
    aw_protocol_error_t e = aw_protocol_error(err);
    jw_t w;
    jw_init(&w, 128 + mid_len);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "error");
    write_opt_str(&w, "code", e.code);
    write_opt_str(&w, "message", e.message);
    if (mid != NULL) {
        JW_KEY(&w, "mid");
        jw_str(&w, mid, mid_len);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_ack(const char *user, size_t user_len, const char *mid, size_t mid_len, int duplicate)
{
    jw_t w;
    jw_init(&w, 48 + user_len + mid_len);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "ack");
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    JW_KEY(&w, "mid");
    jw_str(&w, mid, mid_len);
    if (duplicate) {
        JW_KEY(&w, "duplicate");
        jw_bool(&w, 1);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

/*
 * The one validator of bot messages: a bot's answer (the bridge), a push
 * (POST /api/send) and a script's messages are all read here, and every
 * limit is the setters' above, so a C skill's replies are held to the same.
 * A script's reading is stricter (see reply.h) and says where and why it
 * refuses, for the script's error line; a bot's is told AW_EBADMSG.
 */
typedef struct check {
    int strict; /* AW_REPLY_FROM_SCRIPT */
    aw_reply_error_t *why;
} check_t;

__attribute__((format(printf, 3, 4))) static int refuse(check_t *c, const char *where, const char *fmt, ...)
{
    if (c->why != NULL) {
        va_list ap;
        snprintf(c->why->where, sizeof(c->why->where), "%s", where);
        va_start(ap, fmt);
        vsnprintf(c->why->what, sizeof(c->why->what), fmt, ap);
        va_end(ap);
    }
    return AW_EBADMSG;
}

/* A script names only fields it knows; a bot's other fields go on. */
static int only_keys(check_t *c, yajl_val obj, const char *where, const char *const *allowed)
{
    const char *k = c->strict ? aw_json_unknown_key(obj, allowed) : NULL;
    return k != NULL ? refuse(c, where, "unknown field \"%s\"", k) : 0;
}

/* The string member `key` into *out: NULL when absent, or null from a bot. */
static int get_string(check_t *c, yajl_val obj, const char *key, const char *where, const char **out)
{
    yajl_val v = member(obj, key);
    *out = NULL;
    if (v == NULL || (YAJL_IS_NULL(v) && !c->strict))
        return 0;
    if (!YAJL_IS_STRING(v))
        return refuse(c, where, "expected a string");
    *out = YAJL_GET_STRING(v);
    return 0;
}

static int read_strings(check_t *c, yajl_val obj, aw_reply_t *r)
{
    const char *text, *open_link, *link_title, *goto_link = NULL;
    int err = get_string(c, obj, "text", "text", &text);
    if (err == 0)
        err = get_string(c, obj, "open_link", "open_link", &open_link);
    if (err == 0)
        err = get_string(c, obj, "link_title", "link_title", &link_title);
    if (err == 0 && !c->strict)
        err = get_string(c, obj, "goto_link", "goto_link", &goto_link);
    if (err != 0)
        return err;
    r->text = dup_or_null(text);
    r->open_link = dup_or_null(open_link);
    r->link_title = dup_or_null(link_title);
    r->goto_link = dup_or_null(goto_link);
    return 0;
}

static int read_quick_reply(check_t *c, yajl_val e, const char *where, aw_reply_t *r)
{
    static const char *const keys[] = {"title", "payload", NULL};
    const char *title = NULL, *payload = NULL;
    char at[96];
    int err = only_keys(c, e, where, keys);
    snprintf(at, sizeof(at), "%s.title", where);
    if (err == 0)
        err = get_string(c, e, "title", at, &title);
    snprintf(at, sizeof(at), "%s.payload", where);
    if (err == 0)
        err = get_string(c, e, "payload", at, &payload);
    if (err == 0 && aw_reply_add_quick_reply(r, title, payload) != 0)
        err = refuse(c, where, "a quick reply needs a \"title\"");
    return err;
}

static int read_file(check_t *c, yajl_val e, const char *where, aw_reply_t *r)
{
    static const char *const keys[] = {"url", "image", NULL};
    const char *url = NULL;
    char at[96];
    yajl_val img = member(e, "image");
    int image_ok = img == NULL || YAJL_IS_TRUE(img) || YAJL_IS_FALSE(img);
    int err = only_keys(c, e, where, keys);
    snprintf(at, sizeof(at), "%s.url", where);
    if (err == 0)
        err = get_string(c, e, "url", at, &url);
    if (err == 0 && aw_reply_add_file(r, url, img != NULL && YAJL_IS_TRUE(img)) != 0)
        err = refuse(c, where, "a file needs a \"url\"");
    if (err == 0 && !image_ok)
        err = refuse(c, where, "\"image\" must be true or false");
    return err;
}

/* Reads the array member `key` of objects shaped `shape`, each with `one`. */
static int read_list(check_t *c, yajl_val obj, const char *key, const char *shape, aw_reply_t *r,
                     int (*one)(check_t *c, yajl_val e, const char *where, aw_reply_t *r))
{
    yajl_val list = member(obj, key);
    char where[64];
    if (list == NULL)
        return 0;
    if (!YAJL_IS_ARRAY(list))
        return refuse(c, key, "expected an array of %s", shape);
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val e = list->u.array.values[i];
        snprintf(where, sizeof(where), "%s[%zu]", key, i);
        int err = YAJL_IS_OBJECT(e) ? one(c, e, where, r) : refuse(c, where, "expected %s", shape);
        if (err != 0)
            return err;
    }
    return 0;
}

/* "typing", and a bot's "disable_input". */
static int read_flags(check_t *c, yajl_val obj, aw_reply_t *r)
{
    yajl_val typing = member(obj, "typing"), dis = c->strict ? NULL : member(obj, "disable_input");
    if (typing != NULL && (!YAJL_IS_INTEGER(typing) || aw_reply_set_typing(r, YAJL_GET_INTEGER(typing)) != 0))
        return refuse(c, "typing", "\"typing\" must be milliseconds from 0 to %d", AW_REPLY_MAX_TYPING_MS);
    if (dis != NULL && !YAJL_IS_TRUE(dis) && !YAJL_IS_FALSE(dis))
        return refuse(c, "disable_input", "\"disable_input\" must be true or false");
    r->disable_input = dis != NULL && YAJL_IS_TRUE(dis);
    return 0;
}

/* A bot may say what it sends, and it must be a message (a request for a
 * person is read before, in read_handoff). */
static int read_type(check_t *c, yajl_val obj)
{
    const char *type;
    int err = get_string(c, obj, "type", "type", &type);
    if (err == 0 && type != NULL && strcmp(type, "message") != 0)
        err = refuse(c, "type", "\"type\" must be \"message\" or \"handoff\"");
    return err;
}

/* {"type": "handoff", "reason": "..."}: the bot asks for a person. Returns
 * 1 with `*out` set when `obj` is one, 0 when it is not, or an error. */
static int read_handoff(check_t *c, yajl_val obj, aw_reply_t **out)
{
    const char *type = NULL, *reason = NULL;
    if (get_string(c, obj, "type", "type", &type) != 0 || type == NULL || strcmp(type, "handoff") != 0)
        return 0;
    int err = get_string(c, obj, "reason", "reason", &reason);
    if (err != 0)
        return err;
    *out = aw_reply_new_handoff(reason);
    return 1;
}

static int read_reply(check_t *c, yajl_val obj, aw_reply_t *r)
{
    static const char *const script_keys[] = {"text",       "quick_replies", "files", "open_link",
                                              "link_title", "typing",        NULL};
    int err = c->strict ? only_keys(c, obj, "", script_keys) : read_type(c, obj);
    if (err == 0)
        err = read_strings(c, obj, r);
    if (err == 0)
        err = read_list(c, obj, "quick_replies", "{\"title\", \"payload\"}", r, read_quick_reply);
    if (err == 0)
        err = read_list(c, obj, "files", "{\"url\", \"image\"}", r, read_file);
    if (err == 0)
        err = read_flags(c, obj, r);
    if (err == 0 && c->strict && r->text == NULL && r->n_files == 0)
        err = refuse(c, "", "a message needs \"text\" or \"files\"");
    return err;
}

int aw_reply_from_object(yajl_val obj, int from, aw_reply_t **out, aw_reply_error_t *why)
{
    check_t c = {.strict = from == AW_REPLY_FROM_SCRIPT, .why = why};
    *out = NULL;
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return refuse(&c, "", "expected an object");
    int handoff = c.strict ? 0 : read_handoff(&c, obj, out);
    if (handoff == 1)
        (*out)->extra = obj; /* taken over, as by any reply of a bot */
    if (handoff != 0)
        return handoff == 1 ? 0 : handoff;
    aw_reply_t *r = aw_reply_new(NULL);
    int err = read_reply(&c, obj, r);
    if (err != 0) {
        aw_reply_free(r);
        return err;
    }
    r->extra = c.strict ? NULL : obj;
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
    if (n == 0 || n > AW_MAX_USER_LEN || aw_reply_from_object(root, AW_REPLY_FROM_BOT, reply, NULL) != 0) {
        yajl_tree_free(root);
        return AW_EBADMSG;
    }
    if (aw_reply_is_handoff(*reply)) { /* POST /api/handoff asks for a person */
        aw_reply_free(*reply);
        *reply = NULL;
        return AW_EBADMSG;
    }
    memcpy(user, name, n); /* `root` now belongs to the reply, which keeps `name` alive */
    *user_len = n;
    return 0;
}
