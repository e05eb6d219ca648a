/*
 * Error codes of anywhere: one table that gives every code its name and a
 * sentence for a person, in the manner of libuv's UV_ERRNO_MAP. Functions
 * return 0 on success or a negative AW_E... code; library errors (yajl,
 * sqlite, mongoc, OpenSSL) are translated into these at the edge of the module
 * that calls the library. This header is the bottom layer: every folder may
 * include it.
 */
#ifndef AW_ERROR_H
#define AW_ERROR_H

/* XX(name, protocol code, sentence). The protocol code is the `code` field of
 * an `error` frame or body (PROTOCOL.md); internal codes use "internal". */
#define AW_ERRNO_MAP(XX)                                                                                     \
    XX(NOMEM, "internal", "out of memory")                                                                   \
    XX(INVAL, "internal", "invalid argument")                                                                \
    XX(BADJSON, "bad_json", "the frame is not a JSON object in valid UTF-8")                                 \
    XX(BADMSG, "bad_message", "the message lacks a field or has a field of the wrong type")                  \
    XX(TOOLARGE, "too_large", "the message is over the size limit")                                          \
    XX(RATELIMITED, "rate_limited", "too many messages: slow down")                                          \
    XX(UNAUTHORIZED, "unauthorized", "a valid token for this user is required")                              \
    XX(UNAVAILABLE, "unavailable",                                                                           \
       "the server is stopping or the history store is unreachable; try again later")                        \
    XX(NOTFOUND, "not_found", "no such thing")                                                               \
    XX(NOTHERE, "internal", "that user is served by another node")                                           \
    XX(STOPPED, "internal", "the server is stopping")                                                        \
    XX(FULL, "internal", "a queue is full")                                                                  \
    XX(IO, "internal", "an input/output operation failed")                                                   \
    XX(TIMEDOUT, "timeout", "the bot did not answer in time")                                                \
    XX(CONFIG, "internal", "invalid configuration")                                                          \
    XX(STORE, "internal", "the history store refused the operation")

enum {
    AW_E__BASE = -1000,
#define AW__ERR_ENUM(name, code, msg) AW_E##name,
    AW_ERRNO_MAP(AW__ERR_ENUM)
#undef AW__ERR_ENUM
        AW_E__END
};

/* The short name of an error code ("BADJSON"), or "UNKNOWN". Any thread. */
const char *aw_err_name(int err);
/* The protocol code of an error ("bad_json"), for error frames. Any thread. */
const char *aw_err_code(int err);
/* The sentence for a person ("the frame is not ..."). Any thread. */
const char *aw_strerror(int err);

#endif
