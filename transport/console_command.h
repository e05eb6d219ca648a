/*
 * What an operator's console sends on its websocket, and the body of POST
 * /api/handoff, parsed and checked into one command (docs/protocol.md, "The
 * operator console"). The session does what the command asks (handoff.h);
 * the transport reads histories for the console itself. Pure functions:
 * any thread.
 */
#ifndef AW_TRANSPORT_CONSOLE_COMMAND_H
#define AW_TRANSPORT_CONSOLE_COMMAND_H

#include <stddef.h>
#include <stdint.h>
#include "actors/message.h"
#include "actors/session.h"

#define AW_CONSOLE_TEXT_MAX 4096 /* bytes of an operator's message */

/* Commands besides the session's AW_HANDOFF_OP_...: the console's own. */
enum {
    AW_CONSOLE_OPEN = 100, /* watch the user, and read the newest page of their history */
    AW_CONSOLE_HISTORY,    /* read the page before `before` */
};

typedef struct aw_console_command {
    int op; /* AW_HANDOFF_OP_TAKE, SEND, TYPING, RELEASE, UNWATCH, REQUEST; AW_CONSOLE_OPEN, HISTORY */
    char user[AW_MAX_USER_LEN + 1];
    size_t user_len;
    char text[AW_CONSOLE_TEXT_MAX + 1]; /* SEND: the message; REQUEST: the reason ("" for none) */
    int64_t before;                     /* HISTORY: the bot message the page ends before */
} aw_console_command_t;

/* Parses a console frame: {"type": "take" | "send" | "typing" | "release" |
 * "open" | "close" | "history", "user": "...", "text": "..." (send),
 * "before": N (history)}. Returns 0, AW_EBADJSON, or AW_EBADMSG for an
 * unknown type, a missing or over-long user, an empty or over-long text,
 * or a field of the wrong type. */
int aw_console_command_parse(aw_console_command_t *cmd, const char *json, size_t len);

/* Parses the body of POST /api/handoff: {"user": "...", "action": "request"
 * | "release", "reason": "..."} (action "request" when absent). Same returns
 * as above; the op is AW_HANDOFF_OP_REQUEST or AW_HANDOFF_OP_RELEASE. */
int aw_console_command_parse_api(aw_console_command_t *cmd, const char *json, size_t len);

#endif
