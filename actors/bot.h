/*
 * The skills API: how a bot written in C hears messages and events and
 * answers, in the spirit of Botkit's controller.hears() / controller.on().
 * A bot is built once at start (single thread), then only read: its handlers
 * run inside the user's session actor on a worker thread, one turn of a user
 * at a time, so a handler needs no lock for per-user state kept through the
 * turn functions below.
 *
 *     static void on_hi(aw_turn_t *turn, const aw_message_t *msg, void *data)
 *     {
 *         aw_reply_t *r = aw_turn_say(turn, "Hello! What can I do?");
 *         aw_reply_add_quick_reply(r, "Help", "help");
 *     }
 *     aw_bot_hears(bot, AW_HEAR_KEYWORD, "hi", on_hi, NULL);
 */
#ifndef AW_ACTORS_BOT_H
#define AW_ACTORS_BOT_H

#include <stddef.h>
#include "actors/message.h"
#include "actors/reply.h"

typedef struct aw_bot aw_bot_t;
typedef struct aw_turn aw_turn_t;

/* Handles one message or event of one user. Runs on a worker thread. */
typedef void (*aw_skill_cb)(aw_turn_t *turn, const aw_message_t *msg, void *data);

enum {
    AW_HEAR_EXACT,   /* the whole text, ignoring case and surrounding space */
    AW_HEAR_KEYWORD, /* a whole word or phrase anywhere in the text, ignoring case */
    AW_HEAR_REGEX,   /* a POSIX extended regular expression, ignoring case */
};

/* A new bot with no skills. */
aw_bot_t *aw_bot_new(const char *name);
void aw_bot_free(aw_bot_t *bot);
const char *aw_bot_name(const aw_bot_t *bot);

/* Calls `cb` for a `message` whose text matches; skills are tried in the order
 * added and the first match wins. Returns AW_EINVAL for a bad regex. */
int aw_bot_hears(aw_bot_t *bot, int kind, const char *pattern, aw_skill_cb cb, void *data);

/* Calls `cb` for the event `type`: "hello", "welcome_back", "reconnect", any
 * custom type a client sends, or "message" for a message no skill heard. */
void aw_bot_on(aw_bot_t *bot, const char *type, aw_skill_cb cb, void *data);

/* Calls `cb(data)` when the bot is freed: for a bot that owns data its skills
 * point to (script bots). */
void aw_bot_on_free(aw_bot_t *bot, void (*cb)(void *data), void *data);

/* Runs the bot on one message: the first matching skill, or nothing. */
void aw_bot_dispatch(const aw_bot_t *bot, aw_turn_t *turn, const aw_message_t *msg);

/* A bot whose every turn is answered by a bot elsewhere, through `bridge`
 * (bridge.h; it must outlive the bot). */
struct aw_bridge;
aw_bot_t *aw_bot_remote(struct aw_bridge *bridge);

/* The bridge of a remote bot, or NULL for a bot of skills. */
struct aw_bridge *aw_bot_bridge(const aw_bot_t *bot);

/* The built-in bots, chosen by --bot. */
aw_bot_t *aw_bot_demo(void);
aw_bot_t *aw_bot_echo(void);

/* --- inside a handler --- */

/* Appends a message to the turn's replies; the reply is sent once the handler
 * returns, after those before it. The turn owns the reply; the handler may add
 * quick replies, files and links to it (reply.h) before it returns; those
 * functions refuse what a bot's JSON may not carry either. */
aw_reply_t *aw_turn_say(aw_turn_t *turn, const char *text);

/* As aw_turn_say, shown after a `typing` frame and a pause of `ms`, at most
 * AW_REPLY_MAX_TYPING_MS as from any bot (a longer pause is refused, with a
 * warning in the log, and the message goes without one). */
aw_reply_t *aw_turn_say_typing(aw_turn_t *turn, const char *text, unsigned int ms);

/* Says `question`; the user's next message goes to `on_answer` instead of the
 * bot's skills (one answer, then skills again unless on_answer asks again). */
aw_reply_t *aw_turn_ask(aw_turn_t *turn, const char *question, aw_skill_cb on_answer, void *data);

/* Sends `text` to the user `delay_ms` from now, outside this turn: the user
 * may go on chatting meanwhile, and gets it on return if away. */
aw_reply_t *aw_turn_later(aw_turn_t *turn, const char *text, unsigned int delay_ms);

/* Asks for a person, for `reason` (may be NULL; shown to the operators):
 * once the replies said before it in this turn have gone, the conversation
 * waits in the operators' console, and the bot hears nothing more of the
 * user until an operator hands it back (the event "handoff_end"). Nothing
 * happens when a person was asked for already, or for a guest (session.h). */
void aw_turn_handoff(aw_turn_t *turn, const char *reason);

/* The user this turn is for; not NUL-terminated beyond *len. */
const char *aw_turn_user(const aw_turn_t *turn, size_t *len);

/* Per-user variables kept by the session for as long as it lives. The value is
 * copied; get returns NULL when unset, valid until the variable changes. */
void aw_turn_set_var(aw_turn_t *turn, const char *name, const char *value);
const char *aw_turn_get_var(const aw_turn_t *turn, const char *name);

#endif
