/*
 * Script bots (script.h). The JSON is parsed twice: once by yajl's event
 * parser, only to locate a syntax error by line and column, then into a tree
 * that is checked field by field (unknown fields are errors, so a typo is
 * caught at start rather than ignored) and compiled into plain structs; its
 * messages are read by reply.c, the one check of every bot's messages. At
 * run time the compiled script is read-only and shared by every session, as
 * a C bot is; per-user state lives in the session's variables and its pending
 * ask, through the turn API.
 */
#include "actors/script.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#include "actors/internal.h"
#include "runtime/bytes.h"
#include "actors/json.h"
#include "actors/reply.h"
#include "runtime/buf.h"
#include "runtime/error.h"

#define MAX_SCRIPT_BYTES (4u << 20)

/* Messages as the script gives them, read by reply.c like any bot's; their
 * strings are templates ({{user}}, {{text}}, {{vars.NAME}}), filled in at
 * each turn. */
typedef struct says {
    aw_reply_t **r;
    size_t n;
} says_t;

enum { GO_NEXT, GO_END, GO_REPEAT, GO_STEP, GO_CONV };

typedef struct conv conv_t;

typedef struct branch {
    int kind; /* AW_HEAR_* */
    char *pattern;
    regex_t re;
    int has_re;
    says_t say;
    int go;
    char *go_name; /* a step id, or a conversation for "conversation:NAME" */
    size_t go_step;
    conv_t *go_conv;
    int handoff;          /* "handoff": a person is asked for once `say` is said */
    char *handoff_reason; /* its reason, or NULL */
} branch_t;

typedef struct step {
    char *id;
    says_t say;
    int is_ask;
    aw_reply_t *question; /* NULL unless is_ask */
    char *var;
    branch_t *branches;
    size_t n_branches;
    branch_t otherwise; /* go = GO_REPEAT with no say when absent */
    conv_t *conv;
    size_t index;
} step_t;

struct conv {
    char *name;
    step_t *steps;
    size_t n;
};

typedef struct trigger {
    says_t say;
    char *conv_name;
    conv_t *conv;
    int handoff; /* as a branch's */
    char *handoff_reason;
} trigger_t;

typedef struct script {
    trigger_t *triggers;
    size_t n_triggers;
    conv_t *convs;
    size_t n_convs;
    trigger_t person; /* the built-in trigger on "human", "agent", ... unless "handoff": false */
} script_t;

/* The words that ask for a person unless a script says otherwise. */
static const char *const person_phrases[] = {"human", "agent", "person", "operator"};

typedef struct ctx {
    const char *name;
    char *err;
    size_t err_len;
    int failed;
} ctx_t;

static int fail(ctx_t *c, const char *path, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->err_len, "%s: at %s: %s", c->name, path[0] != '\0' ? path : "the top level", what);
    c->failed = 1;
    return -1;
}

static char *dup(const char *s)
{
    return s != NULL ? aw_strndup(s, strlen(s)) : NULL;
}

/* path + ".key" or path + "[i]", into `out` of `len` >= 4 bytes. A path only
 * ever names a place in an error line, but it holds names from the file (a
 * conversation's), so it can outgrow `out`: then its end shows "..." rather
 * than stopping silently mid-name. */
static void sub_path(char *out, size_t len, const char *path, const char *key, size_t index)
{
    int n;
    if (key != NULL)
        n = snprintf(out, len, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
    else
        n = snprintf(out, len, "%s[%zu]", path, index);
    if (n < 0 || (size_t)n >= len)
        memcpy(out + len - 4, "...", 4);
}

static yajl_val field(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* Fails on a key not in `allowed` (NULL-terminated). */
static int only_keys(ctx_t *c, yajl_val obj, const char *path, const char *const *allowed)
{
    const char *k = aw_json_unknown_key(obj, allowed);
    return k != NULL ? fail(c, path, "unknown field \"%s\"", k) : 0;
}

static int want_string(ctx_t *c, yajl_val v, const char *path, char **out)
{
    /* *out is set on every path: a caller then never holds an indeterminate
     * pointer, whether or not it checks the result first. */
    *out = NULL;
    if (v == NULL || !YAJL_IS_STRING(v))
        return fail(c, path, "expected a string");
    *out = dup(YAJL_GET_STRING(v));
    return 0;
}

static int opt_string(ctx_t *c, yajl_val obj, const char *key, const char *path, char **out)
{
    char p[512];
    yajl_val v = field(obj, key);
    *out = NULL;
    if (v == NULL)
        return 0;
    sub_path(p, sizeof(p), path, key, 0);
    return want_string(c, v, p, out);
}

/* --- replies --- */

static void free_says(says_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        aw_reply_free(s->r[i]);
    free(s->r);
    memset(s, 0, sizeof(*s));
}

/* A message: a string (its text), or an object that reply.c reads as it
 * reads every bot's, and whose error this names at its place in the file. */
static int parse_reply(ctx_t *c, yajl_val v, const char *path, aw_reply_t **r)
{
    aw_reply_error_t why;
    char p[512];
    *r = NULL;
    if (v != NULL && YAJL_IS_STRING(v)) {
        *r = aw_reply_new(YAJL_GET_STRING(v));
        return 0;
    }
    if (v == NULL || !YAJL_IS_OBJECT(v))
        return fail(c, path, "expected a message: a string, or an object with \"text\"");
    if (aw_reply_from_object(v, AW_REPLY_FROM_SCRIPT, r, &why) == 0)
        return 0;
    if (why.where[0] != '\0') {
        sub_path(p, sizeof(p), path, why.where, 0);
        path = p;
    }
    return fail(c, path, "%s", why.what);
}

/* "say": one message or an array of them. */
static int parse_says(ctx_t *c, yajl_val v, const char *path, says_t *s)
{
    char p[512];
    memset(s, 0, sizeof(*s));
    if (v == NULL)
        return 0;
    if (!YAJL_IS_ARRAY(v)) {
        s->r = aw_calloc(1, sizeof(*s->r));
        s->n = 1;
        return parse_reply(c, v, path, &s->r[0]);
    }
    s->r = aw_calloc(v->u.array.len + 1, sizeof(*s->r));
    for (size_t i = 0; i < v->u.array.len; i++) {
        sub_path(p, sizeof(p), path, NULL, i);
        s->n++;
        if (parse_reply(c, v->u.array.values[i], p, &s->r[i]) != 0)
            return -1;
    }
    return 0;
}

/* --- matching --- */

/* Reads one of "exact", "keyword", "regex" from `obj` into `b`; returns 1 if
 * one was there, 0 if none, -1 on error. */
static int parse_match(ctx_t *c, yajl_val obj, const char *path, branch_t *b)
{
    static const char *const kinds[] = {"exact", "keyword", "regex"};
    char p[512];
    int found = 0;
    for (int k = 0; k < 3; k++) {
        yajl_val v = field(obj, kinds[k]);
        if (v == NULL)
            continue;
        sub_path(p, sizeof(p), path, kinds[k], 0);
        if (found++)
            return fail(c, path, "give only one of \"exact\", \"keyword\", \"regex\"");
        char *s;
        if (want_string(c, v, p, &s) != 0)
            return -1;
        b->kind = k == 0 ? AW_HEAR_EXACT : k == 1 ? AW_HEAR_KEYWORD : AW_HEAR_REGEX;
        if (b->kind == AW_HEAR_REGEX) {
            b->pattern = s;
            if (aw_regex__compile(&b->re, s) != 0)
                return fail(c, p, "not a valid regular expression, or one too costly to run: %.100s", s);
            b->has_re = 1;
        } else {
            b->pattern = aw_text__lower_trim(s);
            free(s);
        }
    }
    return found;
}

static int branch_matches(const branch_t *b, const char *text)
{
    if (b->kind == AW_HEAR_REGEX)
        return regexec(&b->re, text, 0, NULL, 0) == 0;
    char *low = aw_text__lower_trim(text);
    int hit = b->kind == AW_HEAR_EXACT ? strcmp(low, b->pattern) == 0 : aw_text__has_keyword(low, b->pattern);
    free(low);
    return hit;
}

/* --- conversations --- */

static void free_branch(branch_t *b)
{
    if (b->has_re)
        regfree(&b->re);
    free(b->pattern);
    free(b->go_name);
    free(b->handoff_reason);
    free_says(&b->say);
}

/* "handoff": true, or a reason (a string): asks for a person (bot.h,
 * aw_turn_handoff) after what is said. Returns 1 when present, 0 when not,
 * -1 on error. */
static int parse_handoff(ctx_t *c, yajl_val obj, const char *path, char **reason)
{
    char p[512];
    yajl_val v = field(obj, "handoff");
    *reason = NULL;
    if (v == NULL || YAJL_IS_FALSE(v))
        return 0;
    if (YAJL_IS_TRUE(v))
        return 1;
    sub_path(p, sizeof(p), path, "handoff", 0);
    if (!YAJL_IS_STRING(v))
        return fail(c, p, "expected true or a reason (a string)");
    *reason = dup(YAJL_GET_STRING(v));
    return 1;
}

static int parse_goto(ctx_t *c, yajl_val obj, const char *path, branch_t *b, int deflt)
{
    char p[512];
    char *go = NULL;
    b->go = deflt;
    if (opt_string(c, obj, "goto", path, &go) != 0)
        return -1;
    if (go == NULL)
        return 0;
    sub_path(p, sizeof(p), path, "goto", 0);
    if (strcmp(go, "next") == 0)
        b->go = GO_NEXT;
    else if (strcmp(go, "end") == 0)
        b->go = GO_END;
    else if (strcmp(go, "repeat") == 0)
        b->go = GO_REPEAT;
    else if (strncmp(go, "conversation:", 13) == 0) {
        b->go = GO_CONV;
        b->go_name = dup(go + 13);
    } else {
        b->go = GO_STEP;
        b->go_name = dup(go);
    }
    free(go);
    return 0;
}

static int parse_branch(ctx_t *c, yajl_val v, const char *path, branch_t *b, int needs_match)
{
    static const char *const keys[] = {"exact", "keyword", "regex", "say", "goto", "handoff", NULL};
    char p[512];
    if (!YAJL_IS_OBJECT(v))
        return fail(c, path, "expected an object");
    if (only_keys(c, v, path, keys) != 0)
        return -1;
    int m = parse_match(c, v, path, b);
    if (m < 0)
        return -1;
    if (needs_match && m == 0)
        return fail(c, path, "a branch needs \"exact\", \"keyword\" or \"regex\"");
    if (!needs_match && m != 0)
        return fail(c, path, "\"else\" takes no pattern");
    sub_path(p, sizeof(p), path, "say", 0);
    if (parse_says(c, field(v, "say"), p, &b->say) != 0)
        return -1;
    if ((b->handoff = parse_handoff(c, v, path, &b->handoff_reason)) < 0)
        return -1;
    /* a person takes over: the conversation ends here unless it says where it goes */
    return parse_goto(c, v, path, b, b->handoff ? GO_END : needs_match ? GO_NEXT : GO_REPEAT);
}

static int parse_step(ctx_t *c, yajl_val v, const char *path, step_t *s)
{
    static const char *const keys[] = {"id", "say", "ask", "var", "branches", "else", NULL};
    char p[512];
    if (!YAJL_IS_OBJECT(v))
        return fail(c, path, "expected a step: {\"say\": ...} or {\"ask\": ...}");
    if (only_keys(c, v, path, keys) != 0 || opt_string(c, v, "id", path, &s->id) != 0 ||
        opt_string(c, v, "var", path, &s->var) != 0)
        return -1;
    sub_path(p, sizeof(p), path, "say", 0);
    if (parse_says(c, field(v, "say"), p, &s->say) != 0)
        return -1;
    yajl_val ask = field(v, "ask"), br = field(v, "branches"), el = field(v, "else");
    s->otherwise.go = GO_NEXT;
    if (ask == NULL) {
        if (br != NULL || el != NULL || s->var != NULL)
            return fail(c, path, "\"branches\", \"else\" and \"var\" belong to an \"ask\" step");
        return s->say.n == 0 ? fail(c, path, "a step needs \"say\" or \"ask\"") : 0;
    }
    s->is_ask = 1;
    sub_path(p, sizeof(p), path, "ask", 0);
    if (parse_reply(c, ask, p, &s->question) != 0)
        return -1;
    if (br != NULL) {
        sub_path(p, sizeof(p), path, "branches", 0);
        if (!YAJL_IS_ARRAY(br))
            return fail(c, p, "expected an array of branches");
        s->branches = aw_calloc(br->u.array.len + 1, sizeof(*s->branches));
        for (size_t i = 0; i < br->u.array.len; i++) {
            char bp[512];
            sub_path(bp, sizeof(bp), p, NULL, i);
            s->n_branches++;
            if (parse_branch(c, br->u.array.values[i], bp, &s->branches[i], 1) != 0)
                return -1;
        }
    }
    /* Without branches any answer goes on; with branches and no else, an
     * answer that matches none asks again. */
    s->otherwise.go = s->n_branches == 0 ? GO_NEXT : GO_REPEAT;
    sub_path(p, sizeof(p), path, "else", 0);
    return el != NULL ? parse_branch(c, el, p, &s->otherwise, 0) : 0;
}

static void free_conv(conv_t *cv)
{
    for (size_t i = 0; i < cv->n; i++) {
        step_t *s = &cv->steps[i];
        free(s->id);
        free(s->var);
        free_says(&s->say);
        aw_reply_free(s->question);
        for (size_t b = 0; b < s->n_branches; b++)
            free_branch(&s->branches[b]);
        free(s->branches);
        free_branch(&s->otherwise);
    }
    free(cv->steps);
    free(cv->name);
}

static int parse_conversations(ctx_t *c, yajl_val v, script_t *sc)
{
    char p[512], sp[512];
    if (v == NULL)
        return 0;
    if (!YAJL_IS_OBJECT(v))
        return fail(c, "conversations", "expected an object of named conversations");
    sc->convs = aw_calloc(v->u.object.len + 1, sizeof(*sc->convs));
    for (size_t i = 0; i < v->u.object.len; i++) {
        conv_t *cv = &sc->convs[sc->n_convs++];
        yajl_val steps = v->u.object.values[i];
        cv->name = dup(v->u.object.keys[i]);
        sub_path(p, sizeof(p), "conversations", cv->name, 0);
        if (!YAJL_IS_ARRAY(steps) || steps->u.array.len == 0)
            return fail(c, p, "expected a non-empty array of steps");
        cv->steps = aw_calloc(steps->u.array.len, sizeof(*cv->steps));
        for (size_t k = 0; k < steps->u.array.len; k++) {
            sub_path(sp, sizeof(sp), p, NULL, k);
            cv->steps[k].conv = cv;
            cv->steps[k].index = k;
            cv->n++;
            if (parse_step(c, steps->u.array.values[k], sp, &cv->steps[k]) != 0)
                return -1;
        }
    }
    return 0;
}

static conv_t *find_conv(script_t *sc, const char *name)
{
    for (size_t i = 0; i < sc->n_convs; i++)
        if (strcmp(sc->convs[i].name, name) == 0)
            return &sc->convs[i];
    return NULL;
}

/* Resolves a branch's goto against its conversation. */
static int resolve_goto(ctx_t *c, script_t *sc, conv_t *cv, branch_t *b, const char *path)
{
    if (b->go == GO_CONV && (b->go_conv = find_conv(sc, b->go_name)) == NULL)
        return fail(c, path, "no conversation named \"%s\"", b->go_name);
    if (b->go != GO_STEP)
        return 0;
    for (size_t i = 0; i < cv->n; i++) {
        if (cv->steps[i].id != NULL && strcmp(cv->steps[i].id, b->go_name) == 0) {
            b->go_step = i;
            return 0;
        }
    }
    return fail(c, path,
                "goto \"%s\": no step with that id here (or use next, end, repeat, conversation:NAME)",
                b->go_name);
}

static int resolve_all(ctx_t *c, script_t *sc)
{
    char p[512];
    for (size_t i = 0; i < sc->n_convs; i++) {
        conv_t *cv = &sc->convs[i];
        for (size_t k = 0; k < cv->n; k++) {
            step_t *s = &cv->steps[k];
            snprintf(p, sizeof(p), "conversations.%s[%zu]", cv->name, k);
            for (size_t b = 0; b < s->n_branches; b++)
                if (resolve_goto(c, sc, cv, &s->branches[b], p) != 0)
                    return -1;
            if (resolve_goto(c, sc, cv, &s->otherwise, p) != 0)
                return -1;
        }
    }
    return 0;
}

/* --- running --- */

/* Expands {{user}}, {{text}} and {{vars.NAME}} (unset: empty). */
static aw_buf_t *render(aw_turn_t *turn, const aw_message_t *msg, const char *tpl)
{
    aw_bytes_t out;
    aw_bytes_init(&out, strlen(tpl) + 64);
    for (const char *p = tpl; *p != '\0';) {
        const char *val = NULL, *end;
        size_t vlen = 0;
        char name[128];
        if (p[0] == '{' && p[1] == '{' && (end = strstr(p + 2, "}}")) != NULL &&
            end - p - 2 < (long)sizeof(name)) {
            memcpy(name, p + 2, (size_t)(end - p - 2));
            name[end - p - 2] = '\0';
            if (strcmp(name, "user") == 0)
                val = aw_turn_user(turn, &vlen);
            else if (strcmp(name, "text") == 0)
                val = msg != NULL && msg->text != NULL ? msg->text : "";
            else if (strncmp(name, "vars.", 5) == 0)
                val = aw_turn_get_var(turn, name + 5);
            if (val == NULL)
                val = "";
            if (vlen == 0)
                vlen = strlen(val);
            p = end + 2;
        } else {
            val = p++;
            vlen = 1;
        }
        aw_bytes_append(&out, val, vlen);
    }
    return aw_bytes_finish(&out);
}

/* Fills `r` from the script's message `t`, its templates expanded. */
static void fill(aw_turn_t *turn, const aw_message_t *msg, const aw_reply_t *t, aw_reply_t *r)
{
    aw_reply_set_typing(r, t->typing_ms);
    for (size_t i = 0; i < t->n_quick_replies; i++) {
        aw_buf_t *title = render(turn, msg, t->quick_replies[i].title);
        aw_buf_t *payload = render(turn, msg, t->quick_replies[i].payload);
        aw_reply_add_quick_reply(r, title->data, payload->data);
        aw_buf_release(title);
        aw_buf_release(payload);
    }
    for (size_t i = 0; i < t->n_files; i++) {
        aw_buf_t *url = render(turn, msg, t->files[i].url);
        aw_reply_add_file(r, url->data, t->files[i].image);
        aw_buf_release(url);
    }
    if (t->open_link != NULL) {
        aw_buf_t *url = render(turn, msg, t->open_link);
        aw_buf_t *title = t->link_title != NULL ? render(turn, msg, t->link_title) : NULL;
        aw_reply_set_link(r, url->data, title != NULL ? title->data : NULL);
        aw_buf_release(url);
        aw_buf_release(title);
    }
}

static void say_one(aw_turn_t *turn, const aw_message_t *msg, const aw_reply_t *t)
{
    aw_buf_t *text = t->text != NULL ? render(turn, msg, t->text) : NULL;
    fill(turn, msg, t, aw_turn_say(turn, text != NULL ? text->data : NULL));
    aw_buf_release(text);
}

static void say_all(aw_turn_t *turn, const aw_message_t *msg, const says_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        say_one(turn, msg, s->r[i]);
}

static void on_answer(aw_turn_t *turn, const aw_message_t *msg, void *data);

/* Runs a conversation from step `i` until it asks something or ends. */
static void run_from(aw_turn_t *turn, const aw_message_t *msg, conv_t *cv, size_t i)
{
    for (; i < cv->n; i++) {
        step_t *s = &cv->steps[i];
        say_all(turn, msg, &s->say);
        if (s->is_ask) {
            aw_buf_t *q = s->question->text != NULL ? render(turn, msg, s->question->text) : NULL;
            fill(turn, msg, s->question, aw_turn_ask(turn, q != NULL ? q->data : NULL, on_answer, s));
            aw_buf_release(q);
            return;
        }
    }
}

static void follow(aw_turn_t *turn, const aw_message_t *msg, step_t *s, const branch_t *b)
{
    say_all(turn, msg, &b->say);
    if (b->handoff)
        aw_turn_handoff(turn, b->handoff_reason);
    switch (b->go) {
    case GO_NEXT:
        run_from(turn, msg, s->conv, s->index + 1);
        break;
    case GO_REPEAT:
        run_from(turn, msg, s->conv, s->index);
        break;
    case GO_STEP:
        run_from(turn, msg, s->conv, b->go_step);
        break;
    case GO_CONV:
        run_from(turn, msg, b->go_conv, 0);
        break;
    default:
        break;
    }
}

static void on_answer(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    step_t *s = data;
    const char *text = msg->text != NULL ? msg->text : "";
    for (size_t i = 0; i < s->n_branches; i++) {
        if (branch_matches(&s->branches[i], text)) {
            if (s->var != NULL)
                aw_turn_set_var(turn, s->var, text);
            follow(turn, msg, s, &s->branches[i]);
            return;
        }
    }
    if (s->var != NULL && s->otherwise.go != GO_REPEAT)
        aw_turn_set_var(turn, s->var, text);
    follow(turn, msg, s, &s->otherwise);
}

static void on_trigger(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    trigger_t *t = data;
    say_all(turn, msg, &t->say);
    if (t->handoff)
        aw_turn_handoff(turn, t->handoff_reason);
    if (t->conv != NULL)
        run_from(turn, msg, t->conv, 0);
}

/* --- triggers --- */

static int parse_trigger(ctx_t *c, aw_bot_t *bot, script_t *sc, yajl_val v, const char *path, trigger_t *t)
{
    static const char *const keys[] = {"exact", "keyword",      "regex",   "event",
                                       "say",   "conversation", "handoff", NULL};
    char p[512];
    if (!YAJL_IS_OBJECT(v))
        return fail(c, path, "expected a trigger object");
    if (only_keys(c, v, path, keys) != 0)
        return -1;
    sub_path(p, sizeof(p), path, "say", 0);
    if (parse_says(c, field(v, "say"), p, &t->say) != 0 ||
        opt_string(c, v, "conversation", path, &t->conv_name) != 0 ||
        (t->handoff = parse_handoff(c, v, path, &t->handoff_reason)) < 0)
        return -1;
    if (t->conv_name != NULL && (t->conv = find_conv(sc, t->conv_name)) == NULL)
        return fail(c, path, "no conversation named \"%s\"", t->conv_name);
    if (t->handoff && t->conv != NULL)
        return fail(c, path, "a trigger hands over to a person or starts a conversation, not both");
    if (t->say.n == 0 && t->conv == NULL && !t->handoff)
        return fail(c, path, "a trigger needs \"say\", \"conversation\" or \"handoff\"");
    branch_t b = {0};
    int m = parse_match(c, v, path, &b);
    char *event = NULL;
    if (m < 0 || opt_string(c, v, "event", path, &event) != 0) {
        free_branch(&b);
        return -1;
    }
    int err = 0;
    if ((m != 0) == (event != NULL))
        err = fail(c, path, "a trigger needs exactly one of \"exact\", \"keyword\", \"regex\", \"event\"");
    else if (event != NULL)
        aw_bot_on(bot, event, on_trigger, t);
    else if (b.kind == AW_HEAR_REGEX)
        err =
            aw_bot_hears(bot, AW_HEAR_REGEX, b.pattern, on_trigger, t) == 0 ? 0 : fail(c, path, "bad regex");
    else
        aw_bot_hears(bot, b.kind, b.pattern, on_trigger, t);
    free(event);
    free_branch(&b);
    return err;
}

static void free_script(void *data)
{
    script_t *sc = data;
    for (size_t i = 0; i < sc->n_triggers; i++) {
        free_says(&sc->triggers[i].say);
        free(sc->triggers[i].conv_name);
        free(sc->triggers[i].handoff_reason);
    }
    free_says(&sc->person.say);
    free(sc->person.handoff_reason);
    for (size_t i = 0; i < sc->n_convs; i++)
        free_conv(&sc->convs[i]);
    free(sc->triggers);
    free(sc->convs);
    free(sc);
}

/* Finds where malformed JSON goes wrong, as a line and a column. */
static void syntax_error(ctx_t *c, const char *json, size_t len)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    size_t at = yajl_get_bytes_consumed(h);
    unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < len; i++, col++)
        if (json[i] == '\n') {
            line++;
            col = 0;
        }
    char where[64];
    snprintf(where, sizeof(where), "line %zu, column %zu", line, col);
    fail(c, where, "not valid JSON (%s)", msg != NULL ? (const char *)msg : "parse error");
    if (msg != NULL)
        yajl_free_error(h, msg);
    yajl_free(h);
}

/* The built-in trigger on the words that ask for a person, after the
 * script's own (which win): "handoff": false turns it off; {"phrases":
 * [...], "say": ..., "reason": "..."} changes what it hears, says and tells
 * the operators. */
static int add_person_trigger(ctx_t *c, aw_bot_t *bot, script_t *sc, yajl_val v)
{
    static const char *const keys[] = {"phrases", "say", "reason", NULL};
    trigger_t *t = &sc->person;
    if (v != NULL && YAJL_IS_FALSE(v))
        return 0;
    if (v != NULL && !YAJL_IS_OBJECT(v))
        return fail(c, "handoff", "expected false, or an object of \"phrases\", \"say\", \"reason\"");
    if (v != NULL && only_keys(c, v, "handoff", keys) != 0)
        return -1;
    yajl_val say = v != NULL ? field(v, "say") : NULL, phrases = v != NULL ? field(v, "phrases") : NULL;
    if (say != NULL && parse_says(c, say, "handoff.say", &t->say) != 0)
        return -1;
    if (say == NULL) {
        t->say.r = aw_alloc(sizeof(*t->say.r));
        t->say.r[0] = aw_reply_new("I will get a person for you. Someone will be with you shortly.");
        t->say.n = 1;
    }
    if (v != NULL && opt_string(c, v, "reason", "handoff", &t->handoff_reason) != 0)
        return -1;
    if (t->handoff_reason == NULL)
        t->handoff_reason = dup("asked for a person");
    t->handoff = 1;
    if (phrases == NULL) {
        for (size_t i = 0; i < sizeof(person_phrases) / sizeof(person_phrases[0]); i++)
            aw_bot_hears(bot, AW_HEAR_KEYWORD, person_phrases[i], on_trigger, t);
        return 0;
    }
    if (!YAJL_IS_ARRAY(phrases) || phrases->u.array.len == 0 || phrases->u.array.len > 32)
        return fail(c, "handoff.phrases", "expected an array of 1 to 32 words or phrases");
    for (size_t i = 0; i < phrases->u.array.len; i++) {
        yajl_val w = phrases->u.array.values[i];
        if (!YAJL_IS_STRING(w) || YAJL_GET_STRING(w)[0] == '\0')
            return fail(c, "handoff.phrases", "expected an array of 1 to 32 words or phrases");
        aw_bot_hears(bot, AW_HEAR_KEYWORD, YAJL_GET_STRING(w), on_trigger, t);
    }
    return 0;
}

static int compile(ctx_t *c, aw_bot_t *bot, script_t *sc, yajl_val root)
{
    static const char *const keys[] = {"name", "triggers", "conversations", "handoff", NULL};
    char p[64];
    if (!YAJL_IS_OBJECT(root))
        return fail(c, "", "a script is an object with \"triggers\"");
    if (only_keys(c, root, "", keys) != 0 || parse_conversations(c, field(root, "conversations"), sc) != 0 ||
        resolve_all(c, sc) != 0)
        return -1;
    yajl_val tr = field(root, "triggers");
    if (tr == NULL || !YAJL_IS_ARRAY(tr) || tr->u.array.len == 0)
        return fail(c, "triggers", "expected a non-empty array of triggers");
    sc->triggers = aw_calloc(tr->u.array.len, sizeof(*sc->triggers));
    for (size_t i = 0; i < tr->u.array.len; i++) {
        sub_path(p, sizeof(p), "triggers", NULL, i);
        sc->n_triggers++;
        if (parse_trigger(c, bot, sc, tr->u.array.values[i], p, &sc->triggers[i]) != 0)
            return -1;
    }
    return add_person_trigger(c, bot, sc, field(root, "handoff"));
}

int aw_script_compile(aw_bot_t **out, const char *name, const char *json, size_t len, char *err,
                      size_t err_len)
{
    ctx_t c = {.name = name, .err = err, .err_len = err_len};
    char errbuf[256];
    if (len == 0 || memchr(json, '\0', len) != NULL) {
        fail(&c, "line 1, column 1", "the file is empty or not text");
        return AW_EINVAL;
    }
    /* yajl's tree parser and its free recurse once per level, with no limit:
     * a file of a million "[" would overflow the stack. */
    if (aw_json_too_deep(json, len, AW_MAX_DEPTH)) {
        fail(&c, "", "arrays and objects nest deeper than %d", AW_MAX_DEPTH);
        return AW_EINVAL;
    }
    char *copy = aw_strndup(json, len);
    yajl_val root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (root == NULL) {
        syntax_error(&c, json, len);
        return AW_EINVAL;
    }
    aw_bot_t *bot = aw_bot_new(name);
    script_t *sc = aw_calloc(1, sizeof(*sc));
    aw_bot_on_free(bot, free_script, sc);
    int r = compile(&c, bot, sc, root);
    yajl_tree_free(root);
    if (r != 0) {
        aw_bot_free(bot);
        return AW_EINVAL;
    }
    *out = bot;
    return 0;
}

int aw_script_load(aw_bot_t **bot, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return AW_EIO;
    }
    char *buf = aw_alloc(MAX_SCRIPT_BYTES + 1);
    size_t n = fread(buf, 1, MAX_SCRIPT_BYTES + 1, f);
    fclose(f);
    int r = AW_ETOOLARGE;
    if (n > MAX_SCRIPT_BYTES)
        snprintf(err, err_len, "%s: larger than %u bytes", path, MAX_SCRIPT_BYTES);
    else
        r = aw_script_compile(bot, path, buf, n, err, err_len);
    free(buf);
    return r;
}
