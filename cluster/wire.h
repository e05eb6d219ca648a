/*
 * What nodes of a cluster say to each other over NATS, one message at a time
 * (docs/cluster.md, The wire). Every message is signed, so that a message on
 * the cluster's subjects that does not come from a node holding the
 * cluster's secret is dropped whatever it says:
 *
 *   32 bytes  HMAC-SHA256(HMAC-SHA256(key, subject), everything after the MAC)
 *   a line    "<kind> <node> <incarnation> <a> <b> <c> <user-length>\n"
 *   the user  user-length bytes (0..AW_MAX_USER_LEN)
 *   the body  the rest: a message, a frame, a page of history, as `kind` says
 *
 * `kind` is one of the words below; `node` the sender's id (1..64 of
 * [A-Za-z0-9_-]); `incarnation` tells two runs of one node id apart; a, b, c
 * are signed decimal numbers whose meaning is the kind's. Pure functions: any
 * thread.
 */
#ifndef AW_CLUSTER_WIRE_H
#define AW_CLUSTER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "runtime/bytes.h"

#define AW_WIRE_MAC_LEN 32
#define AW_WIRE_MAX_NODE 64
#define AW_WIRE_KEY_LEN 32

/* The kinds, and what a, b, c and the body mean for each. */
#define AW_WIRE_HEARTBEAT                                                                                    \
    "hb" /* a: state (AW_WIRE_UP, _LEAVING, _GONE); body: "host store", then "\n" and the operators with     \
          * a console open on the node, each followed by "\n" */
#define AW_WIRE_INBOUND                                                                                      \
    "in"                       /* a: socket id or 0; b: request id or 0; c: channel | sink mode << 4;        \
                                * body: the client's message, or a push's body (channel push) */
#define AW_WIRE_DETACH "det"   /* a: socket id: it has closed; c: 1 for a console (with its user) */
#define AW_WIRE_FRAME "fr"     /* a: socket id; c: 1 for a console (with the user); body: one frame */
#define AW_WIRE_CLOSE "cl"     /* a: socket id; b: the close code */
#define AW_WIRE_DONE "done"    /* a: request id; b: error (< 0) or 0; c: frames; body: see aw_wire_done */
#define AW_WIRE_PAGE "page"    /* a: request id; b: before; c: limit | cut << 32: a history read */
#define AW_WIRE_PAGE_DONE "pg" /* a: request id; b: error or 0; c: more | before << 1; body: records */
#define AW_WIRE_HANDOFF                                                                                      \
    "ho" /* a: the handoff op (actors/session.h); b: the console's socket id or 0; body: items operator,     \
          * 0|1, text */
#define AW_WIRE_RELEASE "rel"   /* a: request id: let go of the user (the sender is its home now) */
#define AW_WIRE_RELEASED "reld" /* a: request id: nothing of the user is left here */
#define AW_WIRE_DESK "dk"       /* on <name>.desk, to every node: body: the user's handoff record */
#define AW_WIRE_DESK_RELOAD                                                                                  \
    "dkr" /* on <name>.desk: read the handoff records again (the sender was cut                              \
           * off, and has written what it changed meanwhile) */

enum { AW_WIRE_UP = 1, AW_WIRE_LEAVING = 2, AW_WIRE_GONE = 3 };

typedef struct aw_wire_msg {
    char kind[8];
    char node[AW_WIRE_MAX_NODE + 1];
    uint64_t incarnation;
    int64_t a, b, c;
    const char *user; /* into the message's bytes */
    size_t user_len;
    const char *body; /* into the message's bytes */
    size_t body_len;
} aw_wire_msg_t;

/* Whether `id` may name a node: 1..64 of [A-Za-z0-9_-]. */
int aw_wire_node_ok(const char *id, size_t len);

/* Appends a signed message for `subject` to `out` (which should be empty). */
void aw_wire_build(aw_bytes_t *out, const unsigned char key[AW_WIRE_KEY_LEN], const char *subject,
                   const char *kind, const char *node, uint64_t incarnation, int64_t a, int64_t b, int64_t c,
                   const char *user, size_t user_len, const void *body, size_t body_len);

/* Reads a message received on `subject`. Returns 0 with `out` pointing into
 * `data`; AW_EUNAUTHORIZED when the MAC is wrong (not from the cluster);
 * AW_EBADMSG when the signed bytes do not have the shape above. */
int aw_wire_parse(const unsigned char key[AW_WIRE_KEY_LEN], const char *subject, const char *data, size_t len,
                  aw_wire_msg_t *out);

/* A list of byte strings in a body: each is "<length>\n" then its bytes. */
void aw_wire_put_item(aw_bytes_t *out, const void *p, size_t len);

/* Takes the next item of a list from `*p` (`*left` bytes left), moving on;
 * returns 0, or AW_EBADMSG when what is left is not an item. */
int aw_wire_next_item(const char **p, size_t *left, const char **item, size_t *item_len);

#endif
