/*
 * The client message: parsing and validating what a client sends (one JSON
 * object, docs/protocol.md), and writing it on into history and to a bot.
 * Incoming objects are kept whole as a yajl tree, so fields the server does
 * not know travel on to the bot and into history untouched. What the server
 * sends back, bot messages and the protocol's frames, is in reply.h. Pure
 * functions: any thread.
 */
#ifndef AW_ACTORS_MESSAGE_H
#define AW_ACTORS_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>
#include "actors/json.h"
#include "runtime/buf.h"

#define AW_MAX_USER_LEN 256 /* bytes of a user id */
#define AW_MAX_MID_LEN 64   /* bytes of a client's message id, printable ASCII */

/* A parsed client message. Strings point into `root` and live as long as it;
 * the tree is yajl's yajl_val, read it with yajl_tree.h but never free it. */
typedef struct aw_message {
    yajl_val root;          /* the whole object, in `arena`: never yajl_tree_free it */
    aw_json_arena_t *arena; /* where the tree lives; owned, freed by aw_message_dispose */
    const char *type;       /* "hello", "message", ...; never NULL after a parse */
    const char *user;       /* 1..AW_MAX_USER_LEN bytes */
    size_t user_len;
    const char *text;    /* NULL when absent */
    const char *channel; /* NULL when absent */
    const char *token;   /* identity token, NULL when absent */
    int64_t last_seq;    /* -1 when absent */
    const char *mid;     /* the client's id of the message (docs/protocol.md, Delivery), NULL when absent */
    size_t mid_len;      /* 1..AW_MAX_MID_LEN when present */
} aw_message_t;

/* Parses one client message from `len` bytes. Returns 0; AW_EBADJSON when the
 * bytes are not one JSON object in valid UTF-8 (or nest deeper than
 * AW_MAX_DEPTH); AW_EBADMSG when `type` or `user` is missing, empty or not a
 * string, `user` is too long, a known field has the wrong type, or `mid` is not
 * 1..AW_MAX_MID_LEN printable ASCII characters. On error
 * `msg` holds nothing to free. */
int aw_message_parse(aw_message_t *msg, const char *json, size_t len);

/* Frees what a successful parse allocated. */
void aw_message_dispose(aw_message_t *msg);

/* Writes the message as a JSON object, with `type` replaced by `type` (or kept
 * when NULL) and the fields `ts` (when ts_ms >= 0) and `seq` (when seq >= 0)
 * set; `token` is never written (a secret must not reach history or a bot). */
aw_buf_t *aw_message_write(const aw_message_t *msg, const char *type, int64_t ts_ms, int64_t seq);

/* Writes `msg` as a remote bot receives it (the bridge): the client's fields
 * without its token, `ts`, and `"guest": true` when the speaker named a
 * protected user without proving it (see docs/protocol.md). The caller releases the
 * buffer. Any thread. */
aw_buf_t *aw_message_write_for_bot(const aw_message_t *msg, int64_t ts_ms, int guest);

#endif
