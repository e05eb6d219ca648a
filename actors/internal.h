/*
 * What the files of actors/ share and nobody else uses: the turn, as built by
 * the session actor and filled by the bot's skills, and the JSON writer's
 * primitives, with which message.c and reply.c write frames and records.
 */
#ifndef AW_ACTORS_INTERNAL_H
#define AW_ACTORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "actors/bot.h"
#include "actors/json.h"
#include "runtime/bytes.h"
#include "runtime/actor.h"
#include "runtime/buf.h"

/* Per-user variables, owned by the session. */
typedef struct aw_vars {
    char **names;
    char **values;
    size_t n;
} aw_vars_t;

/* A pending ask: the skill the user's next message goes to. */
typedef struct aw_ask {
    aw_skill_cb cb;
    void *data;
} aw_ask_t;

/* A message sent outside the turn after a delay. */
typedef struct aw_later {
    aw_reply_t *reply;
    unsigned int delay_ms;
} aw_later_t;

/* One turn: the replies a bot produces for one incoming message. Lives on the
 * session's worker while the bot runs; the session then takes the replies. */
struct aw_turn {
    const char *user;
    size_t user_len;
    aw_vars_t *vars; /* the session's */
    aw_ask_t *ask;   /* the session's; set by aw_turn_ask */
    aw_reply_t **replies;
    size_t n_replies;
    aw_later_t *later;
    size_t n_later;
};

/* The session actor's state (session.c); the registry reads the first
 * fields, under its shard lock. */
typedef struct aw_session {
    aw_actor_t super;
    struct aw_session *next_in_bucket; /* registry: guarded by the shard lock */
    unsigned int inflight;             /* atomic: routed by the registry, not yet handled */
    int reaped;                        /* registry: guarded by the shard lock */
    int departing; /* registry, under the shard lock: moved to another node, no longer routed to */
    uint64_t hash;
    char *user;
    size_t user_len;
    struct aw_registry *reg;
    const struct aw_chat_config *cfg;
    struct aw_session_state *st; /* everything else: session.c */
} aw_session_t;

/* Makes a session for `user` (one reference, the registry's). */
aw_session_t *aw_session__new(struct aw_registry *reg, aw_runtime_t *rt, const struct aw_chat_config *cfg,
                              const char *user, size_t user_len, uint64_t hash);

/* Frees what the turn still owns (replies and later messages not taken). */
void aw_turn__clear(aw_turn_t *turn);

/* Compiles a skill's regular expression (extended, ignoring case, no
 * submatches) after refusing the shapes that make glibc's compiler take
 * unbounded memory or time: stacked quantifiers ("a++", "a*{9}"), counts over
 * 255, and patterns over 512 bytes. Returns 0 or AW_EINVAL. */
#include <regex.h>
int aw_regex__compile(regex_t *re, const char *pattern);

/* A copy of `s`, lower-cased (ASCII) and without surrounding space: how
 * EXACT and KEYWORD patterns and texts are compared. The caller frees it. */
char *aw_text__lower_trim(const char *s);

/* Whether `needle` stands in `hay` as whole words; both lower-cased. */
int aw_text__has_keyword(const char *hay, const char *needle);

/* Frees every variable. */
void aw_vars__clear(aw_vars_t *vars);

/*
 * The JSON writer. Frames, history records and bot bodies are written straight
 * into the bytes of the aw_buf_t that carries them: no generator to allocate,
 * no copy at the end, one allocation per frame in the common case. The
 * output is byte for byte what yajl_gen (no beautify, no solidus escaping)
 * wrote before: `"`, `\` and the control characters escaped, \b \f \n \r \t
 * by name and the others as \u00XX (upper-case hex), every other byte as it is. Strings reach
 * the writer as valid UTF-8 (yajl's parser checks what clients send, and the
 * server's own strings are ASCII), so it has none to check.
 *
 * The buffer and the primitives that run once per byte or member are inline
 * here; the rest is in json.c. The writer's short jw_ names are its own, and
 * declared here only: nothing outside actors/ writes JSON this way (json.h
 * has what others need).
 */
typedef aw_bytes_t jw_t;

static inline void jw_init(jw_t *w, size_t cap)
{
    aw_bytes_init(w, cap);
}

/* Makes room for `n` more bytes and the final NUL. */
static inline char *jw_room(jw_t *w, size_t n)
{
    return aw_bytes_reserve(w, n);
}

static inline void jw_raw(jw_t *w, const char *s, size_t n)
{
    aw_bytes_append(w, s, n);
}

static inline void jw_char(jw_t *w, char c)
{
    aw_bytes_appendc(w, c);
}

static inline aw_buf_t *jw_finish(jw_t *w)
{
    return aw_bytes_finish(w);
}

/* Writes `n` bytes of valid UTF-8 as a JSON string, quotes included. */
void jw_str(jw_t *w, const char *s, size_t n);

/* Writes a C string as jw_str does, or null for NULL. */
static inline void jw_cstr(jw_t *w, const char *s)
{
    if (s == NULL)
        jw_raw(w, "null", 4);
    else
        jw_str(w, s, strlen(s));
}

/* Starts a member of an object: the comma unless it is the first. */
void jw_key(jw_t *w, const char *k);

/* The same for a key of the server's own, known to need no escaping:
 * JW_KEY(w, "ts") writes ,"ts": without looking at its bytes. */
static inline void jw_key_lit(jw_t *w, const char *quoted, size_t n)
{
    if (w->buf->data[w->len - 1] != '{')
        jw_char(w, ',');
    jw_raw(w, quoted, n);
}
#define JW_KEY(w, k) jw_key_lit((w), "\"" k "\":", sizeof(k) + 2)

static inline void jw_int(jw_t *w, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    jw_raw(w, p, (size_t)(e - p));
}

static inline void jw_bool(jw_t *w, int v)
{
    if (v)
        jw_raw(w, "true", 4);
    else
        jw_raw(w, "false", 5);
}

/* Writes any tree value. Depth is bounded by the readers' limit. */
void jw_value(jw_t *w, yajl_val v);

/* Writes the members of the object `obj` except those whose key is in `skip`
 * (NULL-terminated), each as "key":value after a comma where one is due. */
void jw_fields_except(jw_t *w, yajl_val obj, const char *const *skip);

#endif
