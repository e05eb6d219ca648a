/*
 * The operator console's routes (docs/protocol.md, "The operator console"):
 * its page and files, sign-in and sign-out, its websocket, and POST
 * /api/handoff for a site's backend. Who an operator is comes from the
 * console's cookie alone (operators.h), and every route takes requests of
 * the server's own pages only: a cross-site request is 403 before anything
 * else, one without a sign-in 401. What a console asks of a conversation
 * goes to the user's session through the registry, which decides and
 * answers the console (actors/session.h); the transport only reads the
 * histories a console opens. Everything here runs on the request's or the
 * socket's loop thread, except history_answered (the history thread),
 * which only sends.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include "transport/internal.h"
#include "actors/desk.h"
#include "actors/history.h"
#include "actors/json.h"
#include "actors/registry.h"
#include "cluster/cluster.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "transport/console_command.h"

#define COOKIE "aw_operator"
#define PAGE_RECORDS 50 /* history records a console is sent at a time */

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                          "img-src 'self' https: http: data:; base-uri 'none'; form-action 'self'; "
                          "frame-ancestors 'none'";

static int console_on(aw_server_t *srv)
{
    return srv->cfg.operators != NULL && srv->cfg.chat != NULL && srv->cfg.chat->desk != NULL;
}

/* A request a page of another site made: its Origin is not the server's
 * own (--allowed-origin does not count here), or the browser says so. */
static int cross_site(aw_server_t *srv, h2o_req_t *req)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-fetch-site"), -1);
    if (at != -1) {
        h2o_iovec_t v = req->headers.entries[at].value;
        if (!h2o_memis(v.base, v.len, H2O_STRLIT("same-origin")) &&
            !h2o_memis(v.base, v.len, H2O_STRLIT("none")))
            return 1;
    }
    return !aw_server__own_origin(srv, req);
}

/* The value of the console's cookie, or an empty iovec. */
static h2o_iovec_t cookie(h2o_req_t *req)
{
    for (ssize_t at = -1; (at = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, at)) != -1;) {
        h2o_iovec_t v = req->headers.entries[at].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi != NULL ? semi : end;
            size_t n = sizeof(COOKIE) - 1;
            if ((size_t)(stop - p) > n && memcmp(p, COOKIE "=", n + 1) == 0)
                return h2o_iovec_init(p + n + 1, (size_t)(stop - p) - n - 1);
            p = stop;
        }
    }
    return h2o_iovec_init(NULL, 0);
}

static int signed_in(aw_server_t *srv, h2o_req_t *req, char name[AW_OPERATOR_NAME_MAX + 1])
{
    h2o_iovec_t id = cookie(req);
    return id.len != 0 && aw_operators_session(srv->cfg.operators, id.base, id.len, aw_wall_ms(), name);
}

static void send_status(h2o_req_t *req, int status, const char *code, const char *message)
{
    char body[256];
    int len = snprintf(body, sizeof(body), "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\"}", code,
                       message);
    aw_route__send_json(req, status, body, (size_t)len);
}

static void forbidden(h2o_req_t *req)
{
    h2o_send_error_generic(req, 403, "Forbidden", "the console takes requests of its own pages only\n", 0);
}

/* The checks of every console route: on (else 404), same site (else 403).
 * Returns 1 when the request goes on; otherwise it has been answered. */
static int on_and_same_site(aw_route_call_t *c, int found)
{
    if (!console_on(c->srv) || !found) {
        h2o_send_error_generic(c->req, 404, "Not Found", "not found\n", 0);
        return 0;
    }
    if (cross_site(c->srv, c->req)) {
        forbidden(c->req);
        return 0;
    }
    return 1;
}

/* Those, and an operator signed in (else 401), whose name it gives. A node
 * joining its cluster checks no sign-in yet (503): it has not heard who
 * signed out. */
static int guard(aw_route_call_t *c, char name[AW_OPERATOR_NAME_MAX + 1])
{
    if (!on_and_same_site(c, 1))
        return 0;
    if (c->srv->cfg.cluster != NULL && !aw_cluster_ready(c->srv->cfg.cluster)) {
        send_status(c->req, 503, "unavailable", "this node is joining its cluster: try again in a moment");
        return 0;
    }
    if (!signed_in(c->srv, c->req, name)) {
        send_status(c->req, 401, "unauthorized", "sign in as an operator");
        return 0;
    }
    return 1;
}

static void peer(h2o_req_t *req, char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    const void *addr = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                                : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (len == 0 || inet_ntop(ss.ss_family, addr, out, (socklen_t)size) == NULL)
        snprintf(out, size, "unknown");
}

static const aw_asset_t *asset(const char *path)
{
    for (size_t i = 0; i < aw_assets_count; i++)
        if (strcmp(aw_assets[i].path, path) == 0)
            return &aw_assets[i];
    return NULL;
}

static void send_asset(h2o_req_t *req, const aw_asset_t *a, int status)
{
    static h2o_generator_t generator = {NULL, NULL};
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    h2o_iovec_t body = h2o_iovec_init(a->data, a->len);
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Unauthorized";
    req->res.content_length = a->len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, a->type, strlen(a->type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL,
                          H2O_STRLIT("DENY"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL, csp,
                          sizeof(csp) - 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                          H2O_STRLIT("same-origin"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* GET /console: the page, 200 for a signed-in operator, else 401 with the
 * same page, which then shows its sign-in form. Its script and style are
 * code, not data: anyone of the same site may load them. */
void aw_console__page(aw_route_call_t *c)
{
    h2o_req_t *req = c->req;
    h2o_iovec_t path = req->path_normalized;
    const char *q = memchr(path.base, '?', path.len);
    size_t len = q != NULL ? (size_t)(q - path.base) : path.len;
    const char *file = h2o_memis(path.base, len, H2O_STRLIT("/console"))             ? "/console.html"
                       : h2o_memis(path.base, len, H2O_STRLIT("/console/app.js"))    ? "/console.js"
                       : h2o_memis(path.base, len, H2O_STRLIT("/console/style.css")) ? "/console.css"
                                                                                     : NULL;
    const aw_asset_t *a = file != NULL ? asset(file) : NULL;
    if (!on_and_same_site(c, a != NULL))
        return;
    char name[AW_OPERATOR_NAME_MAX + 1];
    int html = strcmp(file, "/console.html") == 0;
    send_asset(req, a, !html || signed_in(c->srv, req, name) ? 200 : 401);
}

static void set_cookie(aw_route_call_t *c, const char *id, int max_age)
{
    char v[384];
    int n = snprintf(v, sizeof(v), COOKIE "=%s; Path=/console; HttpOnly; SameSite=Strict; Max-Age=%d%s", id,
                     max_age, c->srv->ssl_ctx != NULL ? "; Secure" : "");
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
                   h2o_strdup(&c->req->pool, v, (size_t)n).base, (size_t)n);
}

/* POST /console/login {"name": "...", "password": "..."}. */
void aw_console__sign_in(aw_route_call_t *c)
{
    h2o_req_t *req = c->req;
    aw_operators_t *ops = c->srv->cfg.operators;
    if (!on_and_same_site(c, 1))
        return;
    char addr[INET6_ADDRSTRLEN + 1];
    peer(req, addr, sizeof(addr));
    uint64_t now = aw_now_ms();
    if (!aw_operators_may_try(ops, addr, now)) {
        aw_log(AW_LOG_WARN, "console_sign_in_throttled",
               "a sign-in from %s was refused: too many failed ones", addr);
        send_status(req, 429, "rate_limited", "too many failed sign-ins: wait a minute");
        return;
    }
    yajl_val root = aw_json_parse_tree(c->body.base, c->body.len);
    int bad = root == NULL || !YAJL_IS_OBJECT(root);
    const char *name = bad ? NULL : aw_json_get_string(root, "name", &bad);
    const char *password = bad ? NULL : aw_json_get_string(root, "password", &bad);
    if (bad || name == NULL || password == NULL) {
        yajl_tree_free(root);
        send_status(req, 400, "bad_message", "expected {\\\"name\\\": ..., \\\"password\\\": ...}");
        return;
    }
    int valid = aw_operator_name_valid(name, strlen(name));
    if (!valid || !aw_operators_check(ops, name, password)) {
        aw_operators_failed(ops, addr, now);
        aw_log(AW_LOG_WARN, "console_sign_in_failed", "a failed operator sign-in as %s from %s",
               valid ? name : "(not a name)", addr);
        yajl_tree_free(root);
        send_status(req, 401, "unauthorized", "wrong name or password");
        return;
    }
    char id[AW_OPERATOR_SESSION_MAX + 1], body[128];
    if (aw_operators_sign_in(ops, name, aw_wall_ms(), id) != 0) {
        yajl_tree_free(root);
        send_status(req, 503, "unavailable", "no randomness for a sign-in");
        return;
    }
    aw_log(AW_LOG_NOTICE, "audit", "operator %s signed in from %s", name, addr);
    int len = snprintf(body, sizeof(body), "{\"operator\":\"%s\"}", name); /* a name needs no escaping */
    yajl_tree_free(root);
    set_cookie(c, id, (int)(AW_OPERATOR_SESSION_MS / 1000));
    aw_route__send_json(req, 200, body, (size_t)len);
}

/* POST /console/logout. */
void aw_console__sign_out(aw_route_call_t *c)
{
    char name[AW_OPERATOR_NAME_MAX + 1];
    if (!guard(c, name))
        return;
    h2o_iovec_t id = cookie(c->req);
    aw_operators_sign_out(c->srv->cfg.operators, id.base, id.len, aw_wall_ms(), name);
    if (c->srv->cfg.cluster != NULL)
        aw_cluster_operators_changed(c->srv->cfg.cluster); /* every node, at once */
    aw_log(AW_LOG_NOTICE, "audit", "operator %s signed out (every sign-in of theirs)", name);
    set_cookie(c, "", 0);
    aw_route__send_json(c->req, 200, "{}", 2);
}

/* GET /console/me: who is signed in. */
void aw_console__me(aw_route_call_t *c)
{
    char name[AW_OPERATOR_NAME_MAX + 1], body[128];
    if (!guard(c, name))
        return;
    int len = snprintf(body, sizeof(body), "{\"operator\":\"%s\"}", name);
    aw_route__send_json(c->req, 200, body, (size_t)len);
}

/* GET /console/ws that is not a websocket handshake. */
void aw_console__socket_plain(aw_route_call_t *c)
{
    char name[AW_OPERATOR_NAME_MAX + 1];
    if (guard(c, name))
        h2o_send_error_generic(c->req, 400, "Bad Request", "a websocket handshake is expected here\n", 0);
}

/* --- the console's websocket --- */

typedef struct console {
    aw_server_t *srv;
    char op[AW_OPERATOR_NAME_MAX + 1];
    char **watched; /* the users whose sessions show this console their messages */
    size_t n_watched;
} console_t;

static void send_frame(aw_conn_t *conn, const char *text)
{
    aw_buf_t *b = aw_buf_new(text, strlen(text));
    conn->send(conn, b);
    aw_buf_release(b);
}

static void tell_error(aw_conn_t *conn, const char *code)
{
    char f[128];
    snprintf(f, sizeof(f), "{\"type\":\"error\",\"code\":\"%s\"}", code);
    send_frame(conn, f);
}

static void note_watched(console_t *k, const aw_console_command_t *cmd, int on)
{
    for (size_t i = 0; i < k->n_watched; i++) {
        if (strlen(k->watched[i]) == cmd->user_len && memcmp(k->watched[i], cmd->user, cmd->user_len) == 0) {
            if (!on) {
                free(k->watched[i]);
                k->watched[i] = k->watched[--k->n_watched];
            }
            return;
        }
    }
    if (on) {
        k->watched = aw_realloc(k->watched, (k->n_watched + 1) * sizeof(*k->watched));
        k->watched[k->n_watched++] = aw_strndup(cmd->user, cmd->user_len);
    }
}

static void read_page(console_t *k, aw_conn_t *conn, const aw_console_command_t *cmd)
{
    aw_history_t *history = k->srv->cfg.chat->history;
    if (history == NULL ||
        aw_handoff_send_page(history, cmd->user, cmd->user_len, cmd->before, PAGE_RECORDS, conn) != 0)
        tell_error(conn, "unavailable");
}

/* Hands a command to the user's session, wherever in the cluster it lives
 * (the cluster sends it on, and the session's answers back); `create`: make
 * it if it is not in memory (what changes the conversation, or watches it). */
static int to_session(console_t *k, aw_conn_t *conn, const aw_console_command_t *cmd, int op, int create)
{
    aw_handoff_msg_t *m = aw_handoff_msg_new(op, k->op, conn, op == AW_HANDOFF_OP_SEND ? cmd->text : NULL);
    int err = aw_registry_send(k->srv->cfg.registry, cmd->user, cmd->user_len, &m->super, create);
    if (err != 0)
        aw_msg_release(&m->super);
    if (err != 0 && create)
        tell_error(conn, "unavailable");
    return err;
}

static void console_text(aw_conn_t *conn, const char *text, size_t len, void *data)
{
    console_t *k = data;
    aw_console_command_t cmd;
    int err = aw_console_command_parse(&cmd, text, len);
    if (err != 0) {
        tell_error(conn, err == AW_EBADJSON ? "bad_json" : "bad_message");
        return;
    }
    switch (cmd.op) {
    case AW_CONSOLE_OPEN:
        aw_log(AW_LOG_NOTICE, "audit", "operator %s opened the conversation (user %.*s)", k->op,
               (int)cmd.user_len, cmd.user);
        /* the session sends the newest page, then what comes live */
        if (to_session(k, conn, &cmd, AW_HANDOFF_OP_WATCH, 1) == 0)
            note_watched(k, &cmd, 1);
        break;
    case AW_CONSOLE_HISTORY:
        read_page(k, conn, &cmd);
        break;
    case AW_HANDOFF_OP_UNWATCH:
        to_session(k, conn, &cmd, cmd.op, 0);
        note_watched(k, &cmd, 0);
        break;
    case AW_HANDOFF_OP_TAKE:
        if (to_session(k, conn, &cmd, cmd.op, 1) == 0)
            note_watched(k, &cmd, 1); /* the session watches for the one who takes it */
        break;
    default: /* send, typing, release */
        to_session(k, conn, &cmd, cmd.op, 1);
        break;
    }
}

static void console_open(aw_conn_t *conn, void *data)
{
    console_t *k = data;
    char hello[128];
    snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"operator\":\"%s\"}", k->op);
    send_frame(conn, hello);
    aw_desk_join(k->srv->cfg.chat->desk, conn, k->op);
    /* back within the grace period: the sessions see it when it ends (desk online) */
}

static void console_close(aw_conn_t *conn, void *data)
{
    console_t *k = data;
    aw_registry_t *reg = k->srv->cfg.registry;
    int last = 0;
    char **owned = aw_desk_leave(k->srv->cfg.chat->desk, conn, &last);
    for (size_t i = 0; owned != NULL && owned[i] != NULL; i++) {
        aw_handoff_msg_t *m = aw_handoff_msg_new(AW_HANDOFF_OP_GONE, k->op, NULL, NULL);
        if (aw_registry_send(reg, owned[i], strlen(owned[i]), &m->super, 1) != 0)
            aw_msg_release(&m->super);
    }
    aw_desk_free_list(owned);
    for (size_t i = 0; i < k->n_watched; i++) {
        aw_handoff_msg_t *m = aw_handoff_msg_new(AW_HANDOFF_OP_UNWATCH, k->op, conn, NULL);
        if (aw_registry_send(reg, k->watched[i], strlen(k->watched[i]), &m->super, 0) != 0)
            aw_msg_release(&m->super);
        free(k->watched[i]);
    }
    free(k->watched);
    if (k->srv->cfg.cluster != NULL)
        aw_cluster_console_closed(k->srv->cfg.cluster, conn);
    free(k);
}

static const aw_ws_hooks_t console_hooks = {console_open, console_text, console_close};

/* The console's websocket: only from the server's own pages (a foreign
 * Origin is 403, whatever --allowed-origin says), only signed in (401). */
int aw_console__upgrade(aw_route_call_t *c, const char *client_key)
{
    char name[AW_OPERATOR_NAME_MAX + 1];
    if (!guard(c, name))
        return 0;
    console_t *k = aw_calloc(1, sizeof(*k));
    k->srv = c->srv;
    memcpy(k->op, name, sizeof(k->op));
    aw_log(AW_LOG_NOTICE, "audit", "operator %s opened the console", name);
    return aw_ws__upgrade_hooked(c->srv, c->req, client_key, &console_hooks, k);
}

/* --- POST /api/handoff --- */

int aw_console__parse_handoff(aw_route_call_t *c)
{
    c->handoff = aw_alloc(sizeof(*c->handoff));
    return aw_console_command_parse_api(c->handoff, c->body.base, c->body.len);
}

void aw_console__serve_handoff(aw_route_call_t *c)
{
    const aw_console_command_t *cmd = c->handoff;
    if (c->srv->cfg.chat == NULL || c->srv->cfg.chat->desk == NULL) {
        h2o_send_error_generic(c->req, 404, "Not Found", "not found\n", 0);
        return;
    }
    aw_handoff_msg_t *m = aw_handoff_msg_new(cmd->op, NULL, NULL, cmd->text[0] != '\0' ? cmd->text : NULL);
    int err = aw_registry_send(c->srv->cfg.registry, cmd->user, cmd->user_len, &m->super, 1);
    if (err != 0) {
        aw_msg_release(&m->super);
        aw_route__error(c, AW_EUNAVAILABLE, 1);
        return;
    }
    const char *body =
        cmd->op == AW_HANDOFF_OP_REQUEST ? "{\"action\":\"request\"}" : "{\"action\":\"release\"}";
    aw_route__send_json(c->req, 202, body, strlen(body));
}
