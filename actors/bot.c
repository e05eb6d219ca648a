/*
 * The skills API (bot.h): matching a message to a skill, and the turn
 * functions a skill calls to answer. Matching runs on worker threads against a
 * bot that is read-only after start; compiled regular expressions are shared,
 * which glibc's regexec allows.
 */
#include "actors/bot.h"

#include <ctype.h>
#include <regex.h>
#include <string.h>
#include <strings.h>
#include "actors/internal.h"
#include "runtime/error.h"
#include "runtime/log.h"

typedef struct skill {
    int is_event;
    int kind;
    char *pattern; /* lower-cased for EXACT and KEYWORD; the event type for events */
    regex_t re;
    aw_skill_cb cb;
    void *data;
} skill_t;

struct aw_bot {
    char *name;
    skill_t *skills;
    size_t n;
    void (*on_free)(void *data);
    void *on_free_data;
    struct aw_bridge *bridge;
};

aw_bot_t *aw_bot_new(const char *name)
{
    aw_bot_t *bot = aw_calloc(1, sizeof(*bot));
    bot->name = aw_strndup(name, strlen(name));
    return bot;
}

aw_bot_t *aw_bot_remote(struct aw_bridge *bridge)
{
    aw_bot_t *bot = aw_bot_new("bridge");
    bot->bridge = bridge;
    return bot;
}

struct aw_bridge *aw_bot_bridge(const aw_bot_t *bot)
{
    return bot->bridge;
}

void aw_bot_on_free(aw_bot_t *bot, void (*cb)(void *data), void *data)
{
    bot->on_free = cb;
    bot->on_free_data = data;
}

void aw_bot_free(aw_bot_t *bot)
{
    if (bot == NULL)
        return;
    if (bot->on_free != NULL)
        bot->on_free(bot->on_free_data);
    for (size_t i = 0; i < bot->n; i++) {
        if (!bot->skills[i].is_event && bot->skills[i].kind == AW_HEAR_REGEX)
            regfree(&bot->skills[i].re);
        free(bot->skills[i].pattern);
    }
    free(bot->skills);
    free(bot->name);
    free(bot);
}

const char *aw_bot_name(const aw_bot_t *bot)
{
    return bot->name;
}

static skill_t *add_skill(aw_bot_t *bot)
{
    bot->skills = aw_realloc(bot->skills, (bot->n + 1) * sizeof(*bot->skills));
    skill_t *s = &bot->skills[bot->n++];
    memset(s, 0, sizeof(*s));
    return s;
}

char *aw_text__lower_trim(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    char *out = aw_strndup(s, len);
    for (size_t i = 0; i < len; i++)
        out[i] = tolower((unsigned char)out[i]);
    return out;
}

/* Reads a {n,m} count at `p` (after the brace) and multiplies `*product` by
 * its largest number; returns the closing brace, or NULL when a number is
 * over 255 or the braces are malformed. */
static const char *count_end(const char *p, long *product)
{
    for (int part = 0; part < 2; part++) {
        int n = 0, digits = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (++digits > 3 || n > 255)
                return NULL;
        }
        if (digits != 0)
            *product *= n > 1 ? n : 1;
        if (*p == '}')
            return p;
        if (*p != ',' || part == 1)
            return NULL;
        p++;
    }
    return NULL;
}

int aw_regex__compile(regex_t *re, const char *pattern)
{
    if (strlen(pattern) > 512)
        return AW_EINVAL;
    int after_quantifier = 0;
    long product = 1; /* counted repetitions may nest: bound what they expand to */
    for (const char *p = pattern; *p != '\0'; p++) {
        int quantifier = *p == '*' || *p == '+' || *p == '?' || *p == '{';
        if (*p == '\\' && p[1] != '\0') {
            p++;
        } else if (*p == '[') {
            /* a bracket expression: skip to its end, ']' first is literal */
            const char *q = p + 1 + (p[1] == '^') + (p[1 + (p[1] == '^')] == ']');
            while (*q != '\0' && *q != ']')
                q++;
            if (*q == '\0')
                return AW_EINVAL;
            p = q;
        } else if (quantifier && after_quantifier) {
            return AW_EINVAL;
        } else if (*p == '{' && ((p = count_end(p + 1, &product)) == NULL || product > 10000)) {
            return AW_EINVAL;
        }
        after_quantifier = quantifier;
    }
    return regcomp(re, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0 ? 0 : AW_EINVAL;
}

int aw_bot_hears(aw_bot_t *bot, int kind, const char *pattern, aw_skill_cb cb, void *data)
{
    regex_t re;
    if (kind == AW_HEAR_REGEX && aw_regex__compile(&re, pattern) != 0)
        return AW_EINVAL;
    if (kind != AW_HEAR_EXACT && kind != AW_HEAR_KEYWORD && kind != AW_HEAR_REGEX)
        return AW_EINVAL;
    skill_t *s = add_skill(bot);
    s->kind = kind;
    s->pattern = kind == AW_HEAR_REGEX ? aw_strndup(pattern, strlen(pattern)) : aw_text__lower_trim(pattern);
    if (kind == AW_HEAR_REGEX)
        s->re = re;
    s->cb = cb;
    s->data = data;
    return 0;
}

void aw_bot_on(aw_bot_t *bot, const char *type, aw_skill_cb cb, void *data)
{
    skill_t *s = add_skill(bot);
    s->is_event = 1;
    s->pattern = aw_strndup(type, strlen(type));
    s->cb = cb;
    s->data = data;
}

static int is_word_char(char c)
{
    return isalnum((unsigned char)c) || (c & 0x80) != 0;
}

int aw_text__has_keyword(const char *hay, const char *needle)
{
    size_t nlen = strlen(needle);
    if (nlen == 0)
        return 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        int before_ok = p == hay || !is_word_char(p[-1]);
        int after_ok = !is_word_char(p[nlen]);
        if (before_ok && after_ok)
            return 1;
    }
    return 0;
}

static int skill_matches(const skill_t *s, const char *text, const char *lowered)
{
    switch (s->kind) {
    case AW_HEAR_EXACT:
        return strcmp(lowered, s->pattern) == 0;
    case AW_HEAR_KEYWORD:
        return aw_text__has_keyword(lowered, s->pattern);
    default:
        return regexec(&s->re, text, 0, NULL, 0) == 0;
    }
}

static const skill_t *find_event(const aw_bot_t *bot, const char *type)
{
    for (size_t i = 0; i < bot->n; i++)
        if (bot->skills[i].is_event && strcmp(bot->skills[i].pattern, type) == 0)
            return &bot->skills[i];
    return NULL;
}

void aw_bot_dispatch(const aw_bot_t *bot, aw_turn_t *turn, const aw_message_t *msg)
{
    const skill_t *hit = NULL;
    if (strcmp(msg->type, "message") == 0) {
        const char *text = msg->text != NULL ? msg->text : "";
        char *lowered = aw_text__lower_trim(text);
        for (size_t i = 0; i < bot->n && hit == NULL; i++)
            if (!bot->skills[i].is_event && skill_matches(&bot->skills[i], text, lowered))
                hit = &bot->skills[i];
        free(lowered);
    }
    if (hit == NULL)
        hit = find_event(bot, msg->type);
    if (hit != NULL)
        hit->cb(turn, msg, hit->data);
}

aw_reply_t *aw_turn_say(aw_turn_t *turn, const char *text)
{
    aw_reply_t *r = aw_reply_new(text);
    turn->replies = aw_realloc(turn->replies, (turn->n_replies + 1) * sizeof(*turn->replies));
    turn->replies[turn->n_replies++] = r;
    return r;
}

void aw_turn_handoff(aw_turn_t *turn, const char *reason)
{
    aw_reply_t *r = aw_reply_new_handoff(reason);
    turn->replies = aw_realloc(turn->replies, (turn->n_replies + 1) * sizeof(*turn->replies));
    turn->replies[turn->n_replies++] = r;
}

aw_reply_t *aw_turn_say_typing(aw_turn_t *turn, const char *text, unsigned int ms)
{
    aw_reply_t *r = aw_turn_say(turn, text);
    if (aw_reply_set_typing(r, ms) != 0)
        aw_log(
            AW_LOG_WARN, "bot_typing_refused",
            "a skill asked for a typing pause of %u ms, over the %d ms any bot may ask for: its message goes "
            "without one",
            ms, AW_REPLY_MAX_TYPING_MS);
    return r;
}

aw_reply_t *aw_turn_ask(aw_turn_t *turn, const char *question, aw_skill_cb on_answer, void *data)
{
    turn->ask->cb = on_answer;
    turn->ask->data = data;
    return aw_turn_say(turn, question);
}

aw_reply_t *aw_turn_later(aw_turn_t *turn, const char *text, unsigned int delay_ms)
{
    aw_reply_t *r = aw_reply_new(text);
    turn->later = aw_realloc(turn->later, (turn->n_later + 1) * sizeof(*turn->later));
    turn->later[turn->n_later].reply = r;
    turn->later[turn->n_later].delay_ms = delay_ms;
    turn->n_later++;
    return r;
}

const char *aw_turn_user(const aw_turn_t *turn, size_t *len)
{
    if (len != NULL)
        *len = turn->user_len;
    return turn->user;
}

void aw_turn_set_var(aw_turn_t *turn, const char *name, const char *value)
{
    aw_vars_t *v = turn->vars;
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->names[i], name) == 0) {
            free(v->values[i]);
            v->values[i] = aw_strndup(value, strlen(value));
            return;
        }
    }
    v->names = aw_realloc(v->names, (v->n + 1) * sizeof(*v->names));
    v->values = aw_realloc(v->values, (v->n + 1) * sizeof(*v->values));
    v->names[v->n] = aw_strndup(name, strlen(name));
    v->values[v->n] = aw_strndup(value, strlen(value));
    v->n++;
}

const char *aw_turn_get_var(const aw_turn_t *turn, const char *name)
{
    const aw_vars_t *v = turn->vars;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->names[i], name) == 0)
            return v->values[i];
    return NULL;
}

void aw_turn__clear(aw_turn_t *turn)
{
    for (size_t i = 0; i < turn->n_replies; i++)
        aw_reply_free(turn->replies[i]);
    for (size_t i = 0; i < turn->n_later; i++)
        aw_reply_free(turn->later[i].reply);
    free(turn->replies);
    free(turn->later);
    turn->replies = NULL;
    turn->later = NULL;
    turn->n_replies = turn->n_later = 0;
}

void aw_vars__clear(aw_vars_t *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->names[i]);
        free(v->values[i]);
    }
    free(v->names);
    free(v->values);
    memset(v, 0, sizeof(*v));
}
