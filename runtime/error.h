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

/* XX(name, sentence). What a client is told of an error, and in which words,
 * is up to the layer that speaks to clients, not this table. */
#define AW_ERRNO_MAP(XX)                                                                                     \
    XX(INVAL, "invalid argument")                                                                            \
    XX(BADJSON, "not valid JSON")                                                                            \
    XX(BADMSG, "a field is missing or has the wrong type")                                                   \
    XX(TOOLARGE, "over the size limit")                                                                      \
    XX(RATELIMITED, "over the rate limit")                                                                   \
    XX(UNAUTHORIZED, "not authorized")                                                                       \
    XX(UNAVAILABLE, "unavailable for now; try again later")                                                  \
    XX(NOTFOUND, "no such thing")                                                                            \
    XX(STOPPED, "the server is stopping")                                                                    \
    XX(FULL, "a queue is full")                                                                              \
    XX(EXIST, "it exists already")                                                                           \
    XX(IO, "an input/output operation failed")                                                               \
    XX(TIMEDOUT, "timed out")                                                                                \
    XX(STORE, "the history store refused the operation")

enum {
    AW_E__BASE = -1000,
#define AW__ERR_ENUM(name, msg) AW_E##name,
    AW_ERRNO_MAP(AW__ERR_ENUM)
#undef AW__ERR_ENUM
        AW_E__END
};

/* The short name of an error code ("BADJSON"), or "UNKNOWN". Any thread. */
const char *aw_err_name(int err);
/* The sentence for a person ("not valid JSON"), for logs. Any thread. */
const char *aw_strerror(int err);

#endif
