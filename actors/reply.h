/*
 * Bot messages: what a bot says to a user before it is numbered and sent,
 * however the bot was written (a C skill, a script, a bot behind the bridge,
 * or POST /api/send), and the frames the server sends besides them. A reply
 * is written once into a shared buffer that every socket of the user gets.
 * Pure functions: any thread.
 */
#ifndef AW_ACTORS_REPLY_H
#define AW_ACTORS_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>
#include "actors/message.h"
#include "runtime/buf.h"

/* The longest `typing` pause a bot may ask for before a message, in ms. */
#define AW_REPLY_MAX_TYPING_MS 60000

/* A file attached to a bot message. */
typedef struct aw_reply_file {
    char *url;
    int image; /* shown inline as an image */
} aw_reply_file_t;

typedef struct aw_quick_reply {
    char *title;
    char *payload;
} aw_quick_reply_t;

/* A bot message before it is numbered and sent, built by a C skill
 * (actors/bot.h and the functions below) or read from JSON. Anyone may read
 * it; only the functions below set it, so that every reply, whoever builds
 * it, keeps the same limits. Every string is owned by the reply. */
typedef struct aw_reply {
    char *type; /* "message" unless set */
    char *text;
    aw_quick_reply_t *quick_replies;
    size_t n_quick_replies;
    aw_reply_file_t *files;
    size_t n_files;
    char *open_link; /* with link_title: a button that opens a page */
    char *link_title;
    char *goto_link; /* the page should navigate there */
    int disable_input;
    yajl_val extra;         /* more fields to send as they are (an object), or NULL; owned */
    unsigned int typing_ms; /* show `typing` this long before the message */
    char *operator_name;    /* a person's message (handoff.h): written as "operator"; never from a bot */
    char *handoff;          /* a notice of a handoff, "joined" or "ended": written as "handoff" */
} aw_reply_t;

/* Whether the reply is the bot's request for a person (type "handoff",
 * its reason in `text`), which the session acts on and never sends. */
int aw_reply_is_handoff(const aw_reply_t *reply);

/* A request for a person, for `reason` (may be NULL; copied). */
aw_reply_t *aw_reply_new_handoff(const char *reason);

/* Marks the reply as operator `name`'s (copied), and as the notice `event`
 * ("joined", "ended") when that is not NULL. */
void aw_reply_set_operator(aw_reply_t *reply, const char *name, const char *event);

/* A new, empty bot message with `text` (may be NULL; copied). */
aw_reply_t *aw_reply_new(const char *text);

/* Frees a reply and all it owns; NULL is fine. */
void aw_reply_free(aw_reply_t *reply);

/* Adds a button showing `title` that sends `payload` (the title when NULL);
 * both copied. Returns 0, or AW_EINVAL without a title, adding nothing. */
int aw_reply_add_quick_reply(aw_reply_t *reply, const char *title, const char *payload);

/* Attaches the file at `url` (copied), shown inline as an image when `image`
 * is set. Returns 0, or AW_EINVAL without a url, adding nothing. */
int aw_reply_add_file(aw_reply_t *reply, const char *url, int image);

/* Sets a button that opens `url`, titled `title` (either may be NULL;
 * copied), in place of any set before. */
void aw_reply_set_link(aw_reply_t *reply, const char *url, const char *title);

/* Shows `typing` for `ms` before the message. Returns 0, or AW_EINVAL,
 * leaving the reply as it was, unless 0 <= ms <= AW_REPLY_MAX_TYPING_MS. */
int aw_reply_set_typing(aw_reply_t *reply, int64_t ms);

/* Where aw_reply_from_object reads its object from. */
enum {
    /* A bot behind the bridge, or an API client's push (POST /api/send):
     * optional "type" ("message", or "handoff" with an optional string
     * "reason" and nothing else: a request for a person, which a push may
     * not make), "text", "quick_replies" [{title,
     * payload}], "files" [{url, image}], "open_link", "link_title",
     * "goto_link", "disable_input", "typing" (ms), and any other field, sent
     * on as it is (`extra`: the reply takes the object over). A null string
     * counts as absent. */
    AW_REPLY_FROM_BOT,
    /* A script (script.h): only "text", "quick_replies", "files",
     * "open_link", "link_title" and "typing", each of its type (null is
     * not a string), and "text" or "files" at least. The object stays the
     * caller's. */
    AW_REPLY_FROM_SCRIPT,
};

/* Why an object is not a bot message, for a script's error line. */
typedef struct aw_reply_error {
    char where[64]; /* the field, below the object: "typing", "quick_replies[0].title"; "" for the object */
    char what[256]; /* what is wrong with it: "expected a string" */
} aw_reply_error_t;

/* Builds a bot message from a JSON object, read as `from` (AW_REPLY_FROM_...)
 * says, with the limits of the setters above: the one check of every bot's
 * messages. Returns 0 with the reply in `*reply`, or AW_EBADMSG with `*reply`
 * NULL and, when `why` is not NULL, where and what is wrong. */
int aw_reply_from_object(yajl_val obj, int from, aw_reply_t **reply, aw_reply_error_t *why);

/* Parses the body of POST /api/send: {"user": "...", ...reply fields}. On
 * success copies the user id (1..AW_MAX_USER_LEN bytes, not NUL-terminated)
 * into `user` and builds `*reply` as aw_reply_from_object does from a bot
 * (the caller frees it). Returns 0, AW_EBADJSON or AW_EBADMSG; on error nothing is left
 * to free. Any thread. */
int aw_push_parse(const char *json, size_t len, char user[AW_MAX_USER_LEN], size_t *user_len,
                  aw_reply_t **reply);

/* Writes `reply` back as the body of POST /api/send for `user`, which
 * aw_push_parse reads as the same reply: how a push travels to the node
 * that holds the user's session (cluster/). */
aw_buf_t *aw_push_write(const aw_reply_t *reply, const char *user, size_t user_len);

/* Writes the message frame: type, text, the optional fields, `extra`, then
 * `user`, `channel` and `seq` (when >= 0) and `ts` (when >= 0). */
aw_buf_t *aw_reply_write(const aw_reply_t *reply, const char *user, size_t user_len, const char *channel,
                         int64_t seq, int64_t ts_ms);

/* Small frames of the protocol's additions and of errors. */
aw_buf_t *aw_frame_typing(const char *user, size_t user_len);
aw_buf_t *aw_frame_session(const char *user, size_t user_len, const char *token, int64_t seq);
/* {"type":"error","code":...,"message":...} for a negative AW_E... code. */
aw_buf_t *aw_frame_error(int err);
/* The same for a refused client message, with its `mid` when it had one
 * (mid NULL: none). */
aw_buf_t *aw_frame_error_mid(int err, const char *mid, size_t mid_len);
/* {"type":"ack","user":...,"mid":...}: the client message `mid` was taken
 * (docs/protocol.md, Delivery); `duplicate` when it had been before. */
aw_buf_t *aw_frame_ack(const char *user, size_t user_len, const char *mid, size_t mid_len, int duplicate);

#endif
