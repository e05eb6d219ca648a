/*
 * What the files of transport/ share: the per-thread loop, the cross-thread
 * post queue into it, the entry points of the websocket and HTTP parts, and
 * the route seam between h2o and the HTTP handlers. Everything here belongs
 * to one I/O thread unless it says otherwise.
 */
#ifndef AW_TRANSPORT_INTERNAL_H
#define AW_TRANSPORT_INTERNAL_H

#include <uv.h>
#include <h2o.h>
#include "actors/conn.h"
#include "actors/message.h"
#include "actors/reply.h"
#include "runtime/inbox.h"
#include "transport/history_query.h"
#include "transport/server.h"

typedef struct aw_loop aw_loop_t;
typedef struct aw_ws aw_ws_t;

/* One I/O thread. */
struct aw_loop {
    uv_loop_t uv;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listening;
    h2o_accept_ctx_t admin_accept_ctx; /* the first loop only, with an admin listener */
    uv_tcp_t admin;
    int admin_listening;
    aw_inbox_t inbox; /* posts from any thread; wakes the loop (drain) */
    uv_timer_t tick;  /* once a second: close deadlines */
    uv_thread_t thread;
    aw_server_t *srv;
    h2o_linklist_t websockets; /* every open aw_ws_t of this loop */
    aw_ws_t *dirty;            /* websockets with frames to write after this drain */
    int stopping;
    uint64_t stop_deadline;
};

struct aw_server {
    aw_server_config_t cfg;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;       /* the routes of the main address */
    h2o_hostconf_t *hosts[2];       /* the same, as the NULL-ended list h2o_accept wants */
    h2o_hostconf_t *admin_hosts[2]; /* /healthz and /metrics only, for the admin listener */
    aw_loop_t *loops;
    unsigned int n_loops;
    int port;
    size_t websockets;        /* atomic */
    uint64_t next_conn_id;    /* atomic */
    size_t connections;       /* atomic: open TCP connections on the main address */
    size_t admin_connections; /* atomic: open connections on the admin listener */
    int admin_port;           /* 0: no admin listener */
    uv_mutex_t ip_lock;       /* guards the per-address counts */
    struct ip_count *ips;     /* open connections per client address */
    size_t ips_cap;
    SSL_CTX *ssl_ctx; /* NULL without --tls-cert */
};

/* Whether the request may go on: no Origin header (not a browser page), the
 * server's own origin, or one of --allowed-origin (server.c). */
int aw_server__origin_allowed(aw_server_t *srv, h2o_req_t *req);

/* Whether the request has no Origin or the server's own: --allowed-origin
 * does not count (server.c). The console's routes take nothing else. */
int aw_server__own_origin(aw_server_t *srv, h2o_req_t *req);

/* What other threads post to a loop. */
enum { AW_POST_FRAME, AW_POST_CLOSE, AW_POST_ANSWER, AW_POST_ACCEPT_OFF, AW_POST_SHUTDOWN };

typedef struct aw_post {
    aw_inbox_entry_t entry;
    int kind;
    aw_conn_t *conn;   /* FRAME, CLOSE: a reference */
    aw_buf_t *frame;   /* FRAME: a reference */
    int code;          /* CLOSE, SHUTDOWN: websocket close code; ANSWER: error */
    aw_sink_t *sink;   /* ANSWER: a reference */
    aw_buf_t **frames; /* ANSWER: references */
    size_t n_frames;
} aw_post_t;

/* Queues `post` for `loop` and wakes it. Any thread. */
void aw_loop__post(aw_loop_t *loop, aw_post_t *post);

/* Registers the routes of the main address on srv->hostconf, in the order
 * of http.c's table (the order matters: see the route seam below). */
void aw_http__register(aw_server_t *srv);

/* Registers the admin listener's routes on `hostconf`: GET /healthz and GET
 * /metrics, and 404 for every other path (http.c). */
void aw_http__register_admin(aw_server_t *srv, h2o_hostconf_t *hostconf);

/* Starts a websocket on a request that asked for one (ws.c). */
int aw_ws__upgrade(aw_server_t *srv, h2o_req_t *req, const char *client_key);

/* A websocket whose text messages are not the chat's: the console's. All
 * run on the socket's loop thread: `on_open` once the handshake is done
 * (frames sent before are dropped), `on_text` for each message, `on_close`
 * once, when it has closed or the handshake failed, the last the hooks hear
 * of it (the connection may live on while referenced). */
typedef struct aw_ws_hooks {
    void (*on_open)(aw_conn_t *conn, void *data);
    void (*on_text)(aw_conn_t *conn, const char *text, size_t len, void *data);
    void (*on_close)(aw_conn_t *conn, void *data);
} aw_ws_hooks_t;

/* Starts such a websocket; `data` goes to the hooks. */
int aw_ws__upgrade_hooked(aw_server_t *srv, h2o_req_t *req, const char *client_key,
                          const aw_ws_hooks_t *hooks, void *data);

/* Applies a FRAME or CLOSE post to its websocket (ws.c). Loop thread. */
void aw_ws__apply(aw_loop_t *loop, aw_post_t *post);

/* Writes what the websockets marked dirty have queued (ws.c). Loop thread. */
void aw_ws__flush_dirty(aw_loop_t *loop);

/* Starts closing every websocket of the loop with `code`; closes the ones
 * whose close handshake is past `deadline` (ms of aw_now_ms) (ws.c). */
void aw_ws__close_all(aw_loop_t *loop, int code);
void aw_ws__sweep(aw_loop_t *loop, uint64_t now);

/* Frees the calling thread's spare websocket parsers: they are thread-local,
 * so they would be lost (leaked) when the thread ends. Loop thread, once its
 * loop is done (ws.c). */
void aw_ws__free_spares(void);

/* Answers a webhook request from a session's replies, and releases the
 * post, which is part of its sink (http.c). Loop thread. */
void aw_http__answer(aw_loop_t *loop, aw_post_t *post);

/* The embedded files of the chat page (generated at build time). */
typedef struct aw_asset {
    const char *path; /* "/index.html" */
    const char *type; /* MIME type */
    const unsigned char *data;
    size_t len;
} aw_asset_t;
extern const aw_asset_t aw_assets[];
extern const size_t aw_assets_count;

/*
 * The route seam (routes.c). Each route is one row of a table (http.c holds
 * the tables of both addresses): its path and what may use it. The seam
 * runs a row's checks in this order, and answers what fails them itself:
 *
 *   1. websocket: a handshake upgrades (once its Origin passes, else 403);
 *   2. the path (match), and whether the row is on at all: else 404;
 *   3. cors: the Origin (403), the preflight (204), readable answers;
 *   4. methods: else 405;
 *   5. auth AW_ROUTE_API_KEY: else 401;
 *   6. body: else 413;
 *   7. parse: its error (400, ...);
 *   8. auth AW_ROUTE_USER_TOKEN, on the user parse found: else 401;
 *   9. serve.
 *
 * 403, 404 and 405 are plain text; the rest is JSON in the row's `errors`
 * shape with the protocol's status (actors/protocol.h), and counted in
 * /metrics. So a handler sees only requests its row allows.
 *
 * h2o 2.2 gives a request to the first row, in registration order, whose
 * path is the request's path (its query aside) or a prefix of it followed by
 * "/": "/healthz" takes "/healthz/x" too, never "/healthzx", and "/" takes
 * everything left. So a row must come before every row whose path is a
 * prefix of its own, and "/" comes last; aw_route__register checks it.
 */
typedef struct aw_route aw_route_t;
typedef struct aw_route_call aw_route_call_t;

/* Methods of a route (a mask). HEAD is served only where it is listed. */
enum { AW_ROUTE_GET = 1, AW_ROUTE_HEAD = 2, AW_ROUTE_POST = 4, AW_ROUTE_ANY = ~0 };

/* How much of the path a row takes, beyond h2o's prefix match. */
enum {
    AW_ROUTE_PREFIX, /* whatever h2o gives it */
    AW_ROUTE_EXACT,  /* its own path only (a query aside); anything longer is 404 */
    AW_ROUTE_FILES,  /* an embedded file of the chat page ("/" is /index.html), in c->file; else 404 */
};

/* Who may use a route. */
enum {
    AW_ROUTE_OPEN,       /* anyone */
    AW_ROUTE_USER_TOKEN, /* the user the request names (parse sets c->user), with that user's token when
                          * --history-auth is on; 401 otherwise */
    AW_ROUTE_API_KEY,    /* Authorization: Bearer <--api-key>, else 401; without a key the route does not
                          * exist (404) */
};

/* What a body may hold. */
enum {
    AW_ROUTE_BODY_ANY,     /* only h2o's bound (4 x --max-message) */
    AW_ROUTE_BODY_MESSAGE, /* one message: at most --max-message, else 413 */
};

/* The JSON shape of an error answer: the protocol's `error` object, or the
 * {"success": false, ...} that Botkit's history client reads. */
enum { AW_ROUTE_ERRORS_FRAME, AW_ROUTE_ERRORS_HISTORY };

/* One row. Every field left out (0) takes the first value of its list. */
struct aw_route {
    const char *path;     /* as h2o matches it (above) */
    unsigned int methods; /* AW_ROUTE_GET | ..., or AW_ROUTE_ANY */
    int match;            /* AW_ROUTE_PREFIX, EXACT or FILES */
    int cors;             /* 1: a browser route: Origin checked, preflight answered, answer readable */
    int websocket;        /* 1: a websocket handshake here upgrades */
    int auth;             /* AW_ROUTE_OPEN, USER_TOKEN or API_KEY */
    int body;             /* AW_ROUTE_BODY_ANY or MESSAGE */
    int errors;           /* AW_ROUTE_ERRORS_FRAME or HISTORY */
    /* Reads the request into `c` (and c->user for AW_ROUTE_USER_TOKEN);
     * returns 0 or the AW_E... code to refuse it with. NULL: nothing to read. */
    int (*parse)(aw_route_call_t *c);
    /* Answers the request, now or later. NULL: 404 (a host's catch-all). */
    void (*serve)(aw_route_call_t *c);
    /* With `websocket`: does the handshake itself, checks included, in place
     * of the chat's (aw_ws__upgrade after the Origin check). */
    int (*upgrade)(aw_route_call_t *c, const char *client_key);
};

/* One request on its way through its route, on the loop thread's stack. */
struct aw_route_call {
    aw_server_t *srv;
    const aw_route_t *route;
    h2o_req_t *req;
    h2o_iovec_t body;       /* the request's body; "" when it has none */
    const aw_asset_t *file; /* AW_ROUTE_FILES: the file the path names */
    /* Filled by parse; what serve leaves in msg and push.reply is freed after it. */
    aw_message_t msg;         /* a client message */
    aw_history_query_t query; /* a history request */
    struct {
        char user[AW_MAX_USER_LEN];
        size_t user_len;
        aw_reply_t *reply;
    } push;           /* a message for a user from the bot's backend */
    const char *user; /* AW_ROUTE_USER_TOKEN: whom the request speaks for, */
    size_t user_len;
    const char *token;                  /* and the token it shows ("" for none) */
    struct aw_console_command *handoff; /* POST /api/handoff: the command (console.c) */
};

/* Registers the `n` rows of `table` (which must outlive the server) on
 * `hostconf`, in order. Main thread, before the loops start. */
void aw_route__register(aw_server_t *srv, h2o_hostconf_t *hostconf, const aw_route_t *table, size_t n);

/* Answers `err` in the shape of c's route, and counts it in /metrics as a
 * refused request when `refused`. Loop thread. */
void aw_route__error(aw_route_call_t *c, int err, int refused);

/* The token of an Authorization: Bearer header, or an empty iovec. */
h2o_iovec_t aw_route__bearer(h2o_req_t *req);

/* The console (console.c): its page, sign-in and out, the operator's name,
 * its websocket, and POST /api/handoff. Loop thread. */
void aw_console__page(aw_route_call_t *c);
void aw_console__sign_in(aw_route_call_t *c);
void aw_console__sign_out(aw_route_call_t *c);
void aw_console__me(aw_route_call_t *c);
void aw_console__socket_plain(aw_route_call_t *c);
int aw_console__upgrade(aw_route_call_t *c, const char *client_key);
int aw_console__parse_handoff(aw_route_call_t *c);
void aw_console__serve_handoff(aw_route_call_t *c);

/* Answers with a JSON body (copied), no-store. Loop thread. */
void aw_route__send_json(h2o_req_t *req, int status, const char *body, size_t len);

/* Answers `err` as a JSON object of shape AW_ROUTE_ERRORS_FRAME or
 * AW_ROUTE_ERRORS_HISTORY, with the protocol's status. Loop thread. */
void aw_route__send_error(h2o_req_t *req, int shape, int err);

#endif
