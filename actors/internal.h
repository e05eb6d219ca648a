/*
 * What the files of actors/ share and nobody else uses: the turn, as built by
 * the session actor and filled by the bot's skills.
 */
#ifndef AW_ACTORS_INTERNAL_H
#define AW_ACTORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "actors/bot.h"
#include "runtime/actor.h"

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

#endif
