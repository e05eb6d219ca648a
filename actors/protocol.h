/*
 * What the chat protocol tells a client about an error: the wire `code` of an
 * `error` frame or body, the HTTP status of a refused request, and the
 * sentence for a person (docs/protocol.md, "Errors"). The AW_E... codes
 * themselves belong to the runtime (runtime/error.h), which knows nothing of
 * chat; this is the one table that maps them onto the wire, used by the frame
 * writer (reply.h), the HTTP routes and /metrics. Pure: any thread.
 */
#ifndef AW_ACTORS_PROTOCOL_H
#define AW_ACTORS_PROTOCOL_H

#include "runtime/error.h"

/* XX(AW_E... name, wire code, HTTP status, sentence). Every other code is
 * "internal", 503, with its runtime sentence (aw_strerror). */
#define AW_PROTOCOL_ERROR_MAP(XX)                                                                            \
    XX(BADJSON, "bad_json", 400, "the frame is not a JSON object in valid UTF-8")                            \
    XX(BADMSG, "bad_message", 400, "the message lacks a field or has a field of the wrong type")             \
    XX(TOOLARGE, "too_large", 413, "the message is over the size limit")                                     \
    XX(RATELIMITED, "rate_limited", 429, "too many messages: slow down")                                     \
    XX(UNAUTHORIZED, "unauthorized", 401, "a valid token for this user is required")                         \
    XX(UNAVAILABLE, "unavailable", 503,                                                                      \
       "the server is stopping or the history store is unreachable; try again later")                        \
    XX(TIMEDOUT, "timeout", 504, "the bot did not answer in time")

/* How one error looks on the wire. The strings are static. */
typedef struct aw_protocol_error {
    const char *code;    /* "bad_json", ..., or "internal" */
    int status;          /* the HTTP status that answers it */
    const char *message; /* the sentence for a person */
} aw_protocol_error_t;

/* The wire form of `err` (a negative AW_E... code). */
aw_protocol_error_t aw_protocol_error(int err);

#endif
