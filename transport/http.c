/*
 * The HTTP routes: the webhook channel (POST /botkit/receive answers one
 * message object, POST /api/messages an array), GET /healthz and /metrics
 * (also on the admin listener, alone), and "/" which either upgrades to a
 * websocket or serves the embedded chat page. A webhook request waits for its
 * session's turn through an aw_sink_t: the session completes it on a worker,
 * the answer hops back here, and a timer answers 504 if the turn takes too
 * long. The request may vanish first (the client hung up); h2o then disposes
 * its pool, which tells the sink to answer no one.
 */
#include <string.h>
#include "transport/internal.h"
#include <h2o/websocket.h>
#include <openssl/crypto.h>
#include "actors/bridge.h"
#include "actors/identity.h"
#include "actors/metrics.h"
#include "actors/registry.h"
#include "runtime/error.h"

typedef struct pending {
    aw_sink_t super;
    aw_loop_t *loop;
    h2o_req_t *req; /* NULL once answered or gone; loop thread only */
    uv_timer_t timer;
} pending_t;

static const char json_type[] = "application/json; charset=utf-8";

static int status_of(int err)
{
    switch (err) {
    case AW_EBADJSON:
    case AW_EBADMSG:
        return 400;
    case AW_EUNAUTHORIZED:
        return 401;
    case AW_ETOOLARGE:
        return 413;
    case AW_ERATELIMITED:
        return 429;
    case AW_ETIMEDOUT:
        return 504;
    default:
        return 503;
    }
}

static void send_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : status == 202 ? "Accepted" : "Error";
    req->res.content_length = buf.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT(json_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

/* The history routes answer failures in the shape Botkit's client expects. */
static void send_history_error(h2o_req_t *req, int err)
{
    char body[256];
    int len = snprintf(body, sizeof(body), "{\"success\":false,\"error\":\"%s\",\"code\":\"%s\"}",
                       aw_strerror(err), aw_err_code(err));
    send_json(req, status_of(err), body, (size_t)len);
}

static void send_error(h2o_req_t *req, int err)
{
    aw_buf_t *b = aw_frame_error(err);
    send_json(req, status_of(err), b->data, b->len);
    aw_buf_release(b);
}

/* --- the webhook sink --- */

static void sink_complete(aw_sink_t *sink, aw_buf_t *const *frames, size_t n, int err)
{
    pending_t *p = (pending_t *)sink;
    aw_post_t *post = aw_calloc(1, sizeof(*post));
    post->kind = AW_POST_ANSWER;
    post->sink = aw_sink_retain(sink);
    post->code = err;
    if (n != 0) {
        post->frames = aw_alloc(n * sizeof(*post->frames));
        for (size_t i = 0; i < n; i++)
            post->frames[i] = aw_buf_retain(frames[i]);
    }
    post->n_frames = n;
    aw_loop__post(p->loop, post);
}

static void sink_dispose(aw_sink_t *sink)
{
    free(sink);
}

static void on_timer_closed(uv_handle_t *h)
{
    pending_t *p = h->data;
    aw_sink_release(&p->super); /* the loop's reference */
}

/* The request's pool is going away: answered, or the client left. */
static void on_req_gone(void *slot)
{
    pending_t *p = *(pending_t **)slot;
    p->req = NULL;
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
    pending_t *p = t->data;
    if (p->req != NULL) {
        h2o_req_t *req = p->req;
        p->req = NULL;
        if (p->super.mode == AW_SINK_BODY)
            send_history_error(req, AW_EUNAVAILABLE);
        else
            send_error(req, AW_ETIMEDOUT);
    }
}

/* Builds the answer: the first reply or {} for receive, all of them for the
 * Botkit 4 route. */
static void answer(h2o_req_t *req, pending_t *p, aw_buf_t **frames, size_t n)
{
    /* A new user's greeting issued a token: it goes in a header, so that both
     * answer shapes stay exactly what Botkit's clients expect. */
    if (p->super.token[0] != '\0') {
        h2o_iovec_t token = h2o_strdup(&req->pool, p->super.token, strlen(p->super.token));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-anywhere-token"), 0, NULL,
                              token.base, token.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0,
                              NULL, H2O_STRLIT("x-anywhere-token"));
    }
    if (p->super.mode == AW_SINK_FIRST) {
        if (n == 0)
            send_json(req, 200, "{}", 2);
        else
            send_json(req, 200, frames[0]->data, frames[0]->len);
        return;
    }
    size_t len = 2;
    for (size_t i = 0; i < n; i++)
        len += frames[i]->len + 1;
    char *body = h2o_mem_alloc_pool(&req->pool, len);
    size_t at = 0;
    body[at++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i != 0)
            body[at++] = ',';
        memcpy(body + at, frames[i]->data, frames[i]->len);
        at += frames[i]->len;
    }
    body[at++] = ']';
    send_json(req, 200, body, at);
}

void aw_http__answer(aw_loop_t *loop, aw_post_t *post)
{
    pending_t *p = (pending_t *)post->sink;
    if (p->req != NULL) {
        h2o_req_t *req = p->req;
        p->req = NULL;
        uv_timer_stop(&p->timer);
        if (p->super.mode == AW_SINK_BODY && post->code != 0)
            send_history_error(req, post->code);
        else if (p->super.mode == AW_SINK_BODY || p->super.mode == AW_SINK_PUSH)
            send_json(req, p->super.mode == AW_SINK_PUSH ? 202 : 200, post->frames[0]->data,
                      post->frames[0]->len);
        else if (post->code != 0)
            send_error(req, post->code);
        else
            answer(req, p, post->frames, post->n_frames);
    }
    for (size_t i = 0; i < post->n_frames; i++)
        aw_buf_release(post->frames[i]);
    free(post->frames);
}

/* --- handlers --- */

static aw_server_t *server_of(h2o_handler_t *self)
{
    return *(aw_server_t **)(self + 1);
}

static aw_loop_t *loop_of(h2o_req_t *req)
{
    return (aw_loop_t *)((char *)req->conn->ctx - offsetof(aw_loop_t, ctx));
}

/* Answers 405 unless the request uses `method`; returns 1 when it does. */
static int want_method(h2o_req_t *req, const char *method)
{
    if (h2o_memis(req->method.base, req->method.len, method, strlen(method)))
        return 1;
    h2o_send_error_generic(req, 405, "Method Not Allowed", "method not allowed\n", 0);
    return 0;
}

/* The browser-facing routes: refuses pages from origins not allowed (403),
 * answers CORS preflights, and lets allowed origins read the answer. Returns 1
 * when the handler should go on. */
static int browser_route(aw_server_t *srv, h2o_req_t *req, const char *method)
{
    char methods[32];
    snprintf(methods, sizeof(methods), "%s, OPTIONS", method);
    if (!aw_server__origin_allowed(srv, req)) {
        h2o_send_error_generic(req, 403, "Forbidden", "this origin may not use this server\n", 0);
        return 0;
    }
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (at != -1) {
        h2o_iovec_t origin = req->headers.entries[at].value;
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0,
                              NULL, origin.base, origin.len);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0,
                              NULL, methods, strlen(methods));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0,
                              NULL, H2O_STRLIT("content-type, authorization"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL,
                              H2O_STRLIT("600"));
        req->res.status = 204;
        req->res.reason = "No Content";
        h2o_send_inline(req, "", 0);
        return 0;
    }
    return want_method(req, method);
}

/* A request waiting for another thread's answer, with two references: the
 * loop's (dropped when its timer handle closes) and the caller's. */
static pending_t *new_pending(aw_server_t *srv, h2o_req_t *req, int mode)
{
    pending_t *p = aw_calloc(1, sizeof(*p));
    p->super.refcnt = 2;
    p->super.mode = mode;
    p->super.complete = sink_complete;
    p->super.dispose = sink_dispose;
    p->loop = loop_of(req);
    p->req = req;
    uv_timer_init(&p->loop->uv, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_timeout, srv->cfg.webhook_timeout_ms, 0);
    *(pending_t **)h2o_mem_alloc_shared(&req->pool, sizeof(pending_t *), on_req_gone) = p;
    return p;
}

/* The bearer token of the request, or an empty iovec. */
static h2o_iovec_t bearer(h2o_req_t *req)
{
    ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (at != -1) {
        h2o_iovec_t v = req->headers.entries[at].value;
        if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
            return h2o_iovec_init(v.base + 7, v.len - 7);
    }
    return h2o_iovec_init(NULL, 0);
}

/* History thread: hands the page to the request's loop. */
static void on_history_body(int err, aw_buf_t *body, void *data)
{
    aw_sink_t *sink = data;
    sink->complete(sink, &body, body != NULL ? 1 : 0, err);
    aw_buf_release(body);
    aw_sink_release(sink);
}

static int history_allowed(aw_server_t *srv, const aw_history_query_t *q)
{
    const aw_chat_config_t *chat = srv->cfg.chat;
    if (!chat->history_auth)
        return 1;
    return aw_identity_verify(chat->secret, chat->secret_len, q->user, q->user_len, q->token);
}

static void serve_history(aw_server_t *srv, h2o_req_t *req, const aw_history_query_t *q, int botkit)
{
    if (!history_allowed(srv, q)) {
        aw_metrics_count_error(AW_EUNAUTHORIZED);
        send_history_error(req, AW_EUNAUTHORIZED);
        return;
    }
    if (srv->cfg.chat->history == NULL) {
        send_history_error(req, AW_EUNAVAILABLE);
        return;
    }
    pending_t *p = new_pending(srv, req, AW_SINK_BODY);
    int err = aw_history_page(srv->cfg.chat->history, q->user, q->user_len, q->before, (size_t)q->limit,
                              botkit, on_history_body, &p->super);
    if (err != 0) {
        p->req = NULL;
        aw_sink_release(&p->super);
        send_history_error(req, AW_EUNAVAILABLE);
    }
}

/* POST /botkit/history: {"user", "token", "limit"}. */
static int on_botkit_history(h2o_handler_t *self, h2o_req_t *req)
{
    aw_server_t *srv = server_of(self);
    aw_history_query_t q;
    if (!browser_route(srv, req, "POST"))
        return 0;
    if (req->entity.len > srv->cfg.max_message) {
        send_history_error(req, AW_ETOOLARGE);
        return 0;
    }
    int err =
        aw_history_query_from_json(&q, req->entity.base != NULL ? req->entity.base : "", req->entity.len);
    if (err != 0)
        send_history_error(req, err);
    else
        serve_history(srv, req, &q, 1);
    return 0;
}

/* GET /api/history?user=&before=&limit= with Authorization: Bearer TOKEN. */
static int on_api_history(h2o_handler_t *self, h2o_req_t *req)
{
    aw_server_t *srv = server_of(self);
    aw_history_query_t q;
    if (!browser_route(srv, req, "GET"))
        return 0;
    const char *qs = "";
    size_t qs_len = 0;
    if (req->query_at != SIZE_MAX) {
        qs = req->path.base + req->query_at + 1;
        qs_len = req->path.len - req->query_at - 1;
    }
    int err = aw_history_query_from_url(&q, qs, qs_len);
    if (err != 0) {
        send_history_error(req, err);
        return 0;
    }
    h2o_iovec_t token = bearer(req);
    if (token.len != 0 && token.len <= AW_MAX_USER_LEN) {
        memcpy(q.token, token.base, token.len);
        q.token[token.len] = '\0';
    }
    serve_history(srv, req, &q, 0);
    return 0;
}

static int on_webhook(h2o_handler_t *self, h2o_req_t *req, int mode)
{
    aw_server_t *srv = server_of(self);
    aw_message_t msg;
    if (!browser_route(srv, req, "POST"))
        return 0;
    if (req->entity.len > srv->cfg.max_message) {
        aw_metrics_count_error(AW_ETOOLARGE);
        send_error(req, AW_ETOOLARGE);
        return 0;
    }
    int err = aw_message_parse(&msg, req->entity.base != NULL ? req->entity.base : "", req->entity.len);
    if (err != 0) {
        aw_metrics_count_error(err);
        send_error(req, err);
        return 0;
    }
    AW_METRIC_INC(messages_in[AW_CHANNEL_WEBHOOK]);
    pending_t *p = new_pending(srv, req, mode);
    aw_inbound_t *in = aw_inbound_new(&msg, NULL, &p->super, "webhook");
    aw_sink_release(&p->super); /* aw_inbound_new took its own */
    if ((err = aw_registry_send(srv->cfg.registry, in->msg.user, in->msg.user_len, &in->super, 1)) != 0) {
        aw_msg_release(&in->super);
        p->req = NULL;
        send_error(req, err == AW_ESTOPPED ? AW_EUNAVAILABLE : err);
    }
    return 0;
}

static int on_receive(h2o_handler_t *self, h2o_req_t *req)
{
    return on_webhook(self, req, AW_SINK_FIRST);
}

static int on_messages(h2o_handler_t *self, h2o_req_t *req)
{
    return on_webhook(self, req, AW_SINK_ALL);
}

/* Whether the store answered its last write or read. */
static int store_ok(aw_server_t *srv)
{
    aw_history_stats_t hs;
    if (srv->cfg.chat == NULL || srv->cfg.chat->history == NULL)
        return 1;
    aw_history_get_stats(srv->cfg.chat->history, &hs);
    return !hs.store_down;
}

/* 200 while the store answers, 503 while it does not (chat still works). */
static void send_healthz(aw_server_t *srv, h2o_req_t *req)
{
    char body[200];
    int ok = store_ok(srv);
    int len = snprintf(body, sizeof(body),
                       "{\"status\":\"%s\",\"store\":\"%s\",\"sessions\":%zu,\"websockets\":%zu}",
                       ok ? "ok" : "degraded", ok ? "ok" : "unreachable",
                       aw_registry_count(srv->cfg.registry), aw_server_websockets(srv));
    send_json(req, ok ? 200 : 503, body, (size_t)len);
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    send_healthz(server_of(self), req);
    return 0;
}

static void send_metrics(aw_server_t *srv, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    aw_bytes_t out;
    aw_bytes_init(&out, 8192);
    aw_metrics_line(&out, "anywhere_websockets", "gauge", "Open websockets.", aw_server_websockets(srv));
    aw_metrics_line(&out, "anywhere_connections", "gauge",
                    "Open TCP connections on the main address (what --max-connections counts).",
                    __atomic_load_n(&srv->connections, __ATOMIC_RELAXED));
    aw_metrics_line(&out, "anywhere_admin_connections", "gauge",
                    "Open connections on the --admin-listen address.",
                    __atomic_load_n(&srv->admin_connections, __ATOMIC_RELAXED));
    aw_metrics_line(&out, "anywhere_sessions", "gauge", "Users with a session in memory.",
                    aw_registry_count(srv->cfg.registry));
    const aw_chat_config_t *chat = srv->cfg.chat;
    if (chat != NULL && chat->history != NULL) {
        aw_history_stats_t hs;
        aw_history_get_stats(chat->history, &hs);
        aw_metrics_line(&out, "anywhere_history_queue", "gauge", "History records held, not yet written.",
                        hs.queued);
        aw_metrics_line(&out, "anywhere_history_queue_bytes", "gauge",
                        "Bytes of the history records held (bounded by --history-queue-bytes).",
                        hs.held_bytes);
        aw_metrics_line(&out, "anywhere_history_written_total", "counter", "History records written.",
                        hs.written);
        aw_metrics_line(&out, "anywhere_history_refused_total", "counter",
                        "History records refused because the queue was at a bound (records or bytes).",
                        hs.refused);
        aw_metrics_line(&out, "anywhere_history_batches_total", "counter", "History batch writes.",
                        hs.batches);
        aw_metrics_line(&out, "anywhere_store_errors_total", "counter", "Failed store writes (retried).",
                        hs.failures);
        aw_metrics_line(&out, "anywhere_store_up", "gauge", "1 while the store answers.", !hs.store_down);
    }
    struct aw_bridge *bridge = chat != NULL ? aw_bot_bridge(chat->bot) : NULL;
    if (bridge != NULL) {
        aw_bridge_stats_t bs;
        aw_bridge_get_stats(bridge, &bs);
        aw_metrics_line(&out, "anywhere_bridge_requests_total", "counter", "Requests to --bot-url.",
                        bs.requests);
        aw_metrics_line(&out, "anywhere_bridge_failures_total", "counter",
                        "Requests to --bot-url that failed.", bs.failures);
        aw_metrics_line(&out, "anywhere_bridge_in_flight", "gauge", "Requests to --bot-url under way.",
                        bs.in_flight);
    }
    aw_metrics_write(&out);
    h2o_iovec_t body = h2o_strdup(&req->pool, out.buf->data, out.len);
    aw_bytes_dispose(&out);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    send_metrics(server_of(self), req);
    return 0;
}

/* The admin listener's one handler. The paths must match exactly (h2o would
 * also hand "/healthz/x" to a "/healthz" route) and only GET is served: the
 * port shows nothing else of the server. */
static int on_admin(h2o_handler_t *self, h2o_req_t *req)
{
    aw_server_t *srv = server_of(self);
    h2o_iovec_t path = req->path_normalized;
    int healthz = h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"));
    if (!healthz && !h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        h2o_send_error_generic(req, 404, "Not Found", "not found\n", 0);
        return 0;
    }
    if (!want_method(req, "GET"))
        return 0;
    if (healthz)
        send_healthz(srv, req);
    else
        send_metrics(srv, req);
    return 0;
}

static const aw_asset_t *find_asset(h2o_iovec_t path)
{
    size_t len = path.len;
    const char *q = memchr(path.base, '?', len);
    if (q != NULL)
        len = (size_t)(q - path.base);
    if (len == 1 && path.base[0] == '/')
        return find_asset(h2o_iovec_init(H2O_STRLIT("/index.html")));
    for (size_t i = 0; i < aw_assets_count; i++)
        if (strlen(aw_assets[i].path) == len && memcmp(aw_assets[i].path, path.base, len) == 0)
            return &aw_assets[i];
    return NULL;
}

static int on_root(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    const char *client_key;
    if (h2o_is_websocket_handshake(req, &client_key) == 0 && client_key != NULL) {
        if (!aw_server__origin_allowed(server_of(self), req)) {
            h2o_send_error_generic(req, 403, "Forbidden", "this origin may not use this server\n", 0);
            return 0;
        }
        return aw_ws__upgrade(server_of(self), req, client_key);
    }
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    const aw_asset_t *a = find_asset(req->path_normalized);
    if (a == NULL || !(is_get || is_head)) {
        h2o_send_error_generic(req, a == NULL ? 404 : 405, a == NULL ? "Not Found" : "Method Not Allowed",
                               a == NULL ? "not found\n" : "use GET\n", 0);
        return 0;
    }
    h2o_iovec_t body = h2o_iovec_init(a->data, a->len);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = a->len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, a->type, strlen(a->type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    if (strncmp(a->type, "text/html", 9) == 0) {
        /* The page runs only its own scripts and talks only to this server: a
         * bot or a person who slipped markup past the renderer still could not
         * run or load anything. Images may come from anywhere (bots send them). */
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                              H2O_STRLIT("default-src 'self'; script-src 'self'; style-src 'self'; "
                                         "img-src 'self' https: http: data:; connect-src 'self'; "
                                         "object-src 'none'; base-uri 'none'; form-action 'self'"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                              H2O_STRLIT("strict-origin-when-cross-origin"));
    }
    h2o_start_response(req, &generator);
    h2o_send(req, &body, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 0;
}

/* POST /api/send with Authorization: Bearer API_KEY: a message from the bot
 * to a user, at any time. */
static int on_send(h2o_handler_t *self, h2o_req_t *req)
{
    aw_server_t *srv = server_of(self);
    const char *key = srv->cfg.api_key;
    char user[AW_MAX_USER_LEN];
    size_t user_len;
    aw_reply_t *reply;
    if (key == NULL) {
        h2o_send_error_generic(req, 404, "Not Found", "not found\n", 0);
        return 0;
    }
    if (!want_method(req, "POST"))
        return 0;
    h2o_iovec_t given = bearer(req);
    if (given.len != strlen(key) || CRYPTO_memcmp(given.base, key, given.len) != 0) {
        send_error(req, AW_EUNAUTHORIZED);
        return 0;
    }
    if (req->entity.len > srv->cfg.max_message) {
        send_error(req, AW_ETOOLARGE);
        return 0;
    }
    int err = aw_push_parse(req->entity.base, req->entity.len, user, &user_len, &reply);
    if (err != 0) {
        aw_metrics_count_error(err);
        send_error(req, err);
        return 0;
    }
    AW_METRIC_INC(messages_in[AW_CHANNEL_API]);
    pending_t *p = new_pending(srv, req, AW_SINK_PUSH);
    aw_inbound_t *in = aw_push_new(reply, &p->super);
    aw_sink_release(&p->super); /* the inbound took its own */
    if ((err = aw_registry_send(srv->cfg.registry, user, user_len, &in->super, 1)) != 0) {
        aw_msg_release(&in->super);
        p->req = NULL;
        send_error(req, AW_EUNAVAILABLE);
    }
    return 0;
}

static void route(aw_server_t *srv, h2o_hostconf_t *host, const char *path,
                  int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h) + sizeof(aw_server_t *));
    h->on_req = on_req;
    *(aw_server_t **)(h + 1) = srv;
}

void aw_http__register(aw_server_t *srv)
{
    /* h2o matches by prefix in registration order: specific paths first. */
    route(srv, srv->hostconf, "/botkit/receive", on_receive);
    route(srv, srv->hostconf, "/api/messages", on_messages);
    route(srv, srv->hostconf, "/botkit/history", on_botkit_history);
    route(srv, srv->hostconf, "/api/history", on_api_history);
    route(srv, srv->hostconf, "/api/send", on_send);
    route(srv, srv->hostconf, "/healthz", on_healthz);
    route(srv, srv->hostconf, "/metrics", on_metrics);
    route(srv, srv->hostconf, "/", on_root);
}

void aw_http__register_admin(aw_server_t *srv, h2o_hostconf_t *hostconf)
{
    route(srv, hostconf, "/", on_admin);
}
