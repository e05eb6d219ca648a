/*
 * The bridge to a bot written in any language (--bot-url): each message a
 * user sends is POSTed as JSON to the bot's URL, signed with an HMAC of the
 * body under the server's secret, and the bot answers with a JSON array of
 * messages. The bridge runs its own thread with a libuv loop driving libcurl's
 * multi interface, so no worker or I/O thread ever waits on the bot. It
 * bounds the requests in flight (the rest wait their turn, in order); the
 * session actor keeps each user's requests in order by sending the next only
 * once the previous is answered. A bot that is down, slow or answers garbage
 * gets the configured fallback text (or nothing), and the failure is counted
 * and logged.
 */
#ifndef AW_ACTORS_BRIDGE_H
#define AW_ACTORS_BRIDGE_H

#include <stddef.h>
#include <stdint.h>
#include "actors/message.h"
#include "actors/reply.h"

typedef struct aw_bridge aw_bridge_t;

typedef struct aw_bridge_config {
    const char *url;             /* http:// or https:// */
    unsigned int timeout_ms;     /* per request; 0 means 10000 */
    unsigned int max_in_flight;  /* 0 means 256 */
    const unsigned char *secret; /* signs each body: X-Anywhere-Signature: sha256=HEX */
    size_t secret_len;
    const char *fallback; /* said when the bot fails; NULL or "" says nothing */
} aw_bridge_config_t;

typedef struct aw_bridge_stats {
    uint64_t requests, failures, in_flight, waiting;
} aw_bridge_stats_t;

/* Receives the replies of one request (the callee owns the array and the
 * replies), with err 0, or the fallback (or nothing) with err < 0. Runs on the
 * bridge thread: hand the result on, never block. */
typedef void (*aw_bridge_cb)(int err, aw_reply_t **replies, size_t n, void *data);

/* Starts the bridge thread, and returns 0 with the bridge in `*bridge`; or
 * AW_EINVAL with a message on stderr when the URL is not http(s), having
 * started nothing. Main thread. */
int aw_bridge_start(aw_bridge_t **bridge, const aw_bridge_config_t *config);

/* Queues a POST of `body` (retained). `cb` is called exactly once, unless
 * this returns AW_ESTOPPED. Any thread. */
int aw_bridge_post(aw_bridge_t *bridge, aw_buf_t *body, aw_bridge_cb cb, void *data);

void aw_bridge_get_stats(aw_bridge_t *bridge, aw_bridge_stats_t *stats);

/* Answers what is still pending with AW_ESTOPPED, then stops the thread.
 * Main thread. */
void aw_bridge_stop(aw_bridge_t *bridge);

/* Parses a bot's answer: a JSON array of message objects (an empty array is
 * fine). Each object may carry text, quick_replies, files, open_link,
 * link_title, goto_link, disable_input, typing (ms) and any other field,
 * which is sent on as it is. Returns 0, AW_EBADJSON or AW_EBADMSG. */
int aw_replies_parse(const char *json, size_t len, aw_reply_t ***replies, size_t *n);

#endif
