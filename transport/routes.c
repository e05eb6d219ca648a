/*
 * The route seam (internal.h): every HTTP request of either address goes
 * through dispatch, which applies the checks its row states, in the order
 * internal.h gives, and hands what passes to the row's handlers. A handler
 * thus sees only requests its row allows, and answers only what is its own.
 * Everything here runs on the request's loop thread.
 */
#include <string.h>
#include "transport/internal.h"
#include <h2o/websocket.h>
#include <openssl/crypto.h>
#include "actors/identity.h"
#include "actors/metrics.h"
#include "actors/protocol.h"
#include "runtime/error.h"

/* What h2o calls: its handler, with the server and the row it serves. Set
 * before the loops start and never written again, so every loop thread may
 * read it. */
struct route_handler {
    h2o_handler_t super;
    aw_server_t *srv;
    const aw_route_t *route;
};

static const char json_type[] = "application/json; charset=utf-8";

void aw_route__send_json(h2o_req_t *req, int status, const char *body, size_t len)
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

void aw_route__send_error(h2o_req_t *req, int shape, int err)
{
    aw_protocol_error_t e = aw_protocol_error(err);
    if (shape == AW_ROUTE_ERRORS_HISTORY) {
        char body[256];
        int len = snprintf(body, sizeof(body), "{\"success\":false,\"error\":\"%s\",\"code\":\"%s\"}",
                           e.message, e.code);
        aw_route__send_json(req, e.status, body, (size_t)len);
        return;
    }
    aw_buf_t *b = aw_frame_error(err);
    aw_route__send_json(req, e.status, b->data, b->len);
    aw_buf_release(b);
}

void aw_route__error(aw_route_call_t *c, int err, int refused)
{
    if (refused)
        aw_metrics_count_error(err);
    aw_route__send_error(c->req, c->route->errors, err);
}

static void not_found(h2o_req_t *req)
{
    h2o_send_error_generic(req, 404, "Not Found", "not found\n", 0);
}

static void forbidden(h2o_req_t *req)
{
    h2o_send_error_generic(req, 403, "Forbidden", "this origin may not use this server\n", 0);
}

h2o_iovec_t aw_route__bearer(h2o_req_t *req)
{
    ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (at != -1) {
        h2o_iovec_t v = req->headers.entries[at].value;
        if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
            return h2o_iovec_init(v.base + 7, v.len - 7);
    }
    return h2o_iovec_init(NULL, 0);
}

static const aw_asset_t *find_asset(h2o_iovec_t path)
{
    size_t len = path.len;
    const char *q = memchr(path.base, '?', len);
    if (q != NULL)
        len = (size_t)(q - path.base);
    if (len == 1 && path.base[0] == '/')
        return find_asset(h2o_iovec_init(H2O_STRLIT("/index.html")));
    if (len >= 8 && memcmp(path.base, "/console", 8) == 0)
        return NULL; /* the console's files are its own routes' (console.c), for operators only */
    for (size_t i = 0; i < aw_assets_count; i++)
        if (strlen(aw_assets[i].path) == len && memcmp(aw_assets[i].path, path.base, len) == 0)
            return &aw_assets[i];
    return NULL;
}

/* Whether the row takes the path, and is on at all. */
static int found(aw_route_call_t *c)
{
    const aw_route_t *r = c->route;
    h2o_iovec_t path = c->req->path_normalized;
    if (r->serve == NULL || (r->auth == AW_ROUTE_API_KEY && c->srv->cfg.api_key == NULL))
        return 0;
    if (r->match == AW_ROUTE_EXACT)
        return h2o_memis(path.base, path.len, r->path, strlen(r->path));
    if (r->match == AW_ROUTE_FILES)
        return (c->file = find_asset(path)) != NULL;
    return 1;
}

static unsigned int method_of(h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return AW_ROUTE_GET;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return AW_ROUTE_HEAD;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return AW_ROUTE_POST;
    return 0;
}

/* The methods of the row, as a preflight lists them: "POST, OPTIONS". */
static h2o_iovec_t allowed_methods(h2o_req_t *req, unsigned int methods)
{
    static const char *const names[] = {"GET", "HEAD", "POST"};
    char list[64] = "";
    for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (methods & (1u << i))
            strcat(strcat(list, names[i]), ", ");
    strcat(list, "OPTIONS");
    return h2o_strdup(&req->pool, list, strlen(list));
}

/* A browser route: refuses pages from origins not allowed (403), lets
 * allowed origins read the answer, and answers CORS preflights (204).
 * Returns 1 when the request goes on. */
static int cors(aw_route_call_t *c)
{
    h2o_req_t *req = c->req;
    if (!aw_server__origin_allowed(c->srv, req)) {
        forbidden(req);
        return 0;
    }
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (at != -1) {
        h2o_iovec_t origin = req->headers.entries[at].value;
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0,
                              NULL, origin.base, origin.len);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")))
        return 1;
    h2o_iovec_t methods = allowed_methods(req, c->route->methods);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          methods.base, methods.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT("content-type, authorization"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL,
                          H2O_STRLIT("600"));
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_send_inline(req, "", 0);
    return 0;
}

/* The API key, compared in constant time. */
static int key_ok(aw_route_call_t *c)
{
    const char *key = c->srv->cfg.api_key;
    h2o_iovec_t given = aw_route__bearer(c->req);
    return given.len == strlen(key) && CRYPTO_memcmp(given.base, key, given.len) == 0;
}

/* The user's token, when the server asks for one. */
static int user_ok(aw_route_call_t *c)
{
    const aw_chat_config_t *chat = c->srv->cfg.chat;
    return !chat->history_auth ||
           aw_identity_verify(chat->secret, chat->secret_len, c->user, c->user_len, c->token);
}

/* The checks up to the body; returns 1 when the request goes on to parse. */
static int admit(aw_route_call_t *c)
{
    const aw_route_t *r = c->route;
    h2o_req_t *req = c->req;
    if (!found(c)) {
        not_found(req);
        return 0;
    }
    if (r->cors && !cors(c))
        return 0;
    if (r->methods != (unsigned int)AW_ROUTE_ANY && (method_of(req) & r->methods) == 0) {
        h2o_send_error_generic(req, 405, "Method Not Allowed", "method not allowed\n", 0);
        return 0;
    }
    if (r->auth == AW_ROUTE_API_KEY && !key_ok(c)) {
        aw_route__error(c, AW_EUNAUTHORIZED, 1);
        return 0;
    }
    if (r->body == AW_ROUTE_BODY_MESSAGE && req->entity.len > c->srv->cfg.max_message) {
        aw_route__error(c, AW_ETOOLARGE, 1);
        return 0;
    }
    return 1;
}

/* Whether a websocket handshake asks for version 13, the only one RFC 6455
 * defines (h2o's handshake check does not look). */
static int websocket_version_13(h2o_req_t *req)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-version"), -1);
    return at != -1 && h2o_memis(req->headers.entries[at].value.base, req->headers.entries[at].value.len,
                                 H2O_STRLIT("13"));
}

static int dispatch(h2o_handler_t *self, h2o_req_t *req)
{
    struct route_handler *h = (struct route_handler *)self;
    aw_route_call_t c = {.srv = h->srv, .route = h->route, .req = req, .token = ""};
    const char *client_key;
    if (h->route->websocket && h2o_is_websocket_handshake(req, &client_key) == 0 && client_key != NULL) {
        /* a row that upgrades itself checks the Origin its own way */
        if (h->route->upgrade == NULL && !aw_server__origin_allowed(h->srv, req)) {
            forbidden(req);
            return 0;
        }
        if (!websocket_version_13(req)) {
            /* RFC 6455 4.2.2: the versions the server speaks, with 426 */
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-version"), 0, NULL,
                                  H2O_STRLIT("13"));
            h2o_send_error_generic(req, 426, "Upgrade Required", "this server speaks websocket version 13\n",
                                   H2O_SEND_ERROR_KEEP_HEADERS);
            return 0;
        }
        return h->route->upgrade != NULL ? h->route->upgrade(&c, client_key)
                                         : aw_ws__upgrade(h->srv, req, client_key);
    }
    if (!admit(&c))
        return 0;
    c.body = req->entity.base != NULL ? req->entity : h2o_iovec_init(H2O_STRLIT(""));
    int err = h->route->parse != NULL ? h->route->parse(&c) : 0;
    if (err == 0 && h->route->auth == AW_ROUTE_USER_TOKEN && !user_ok(&c))
        err = AW_EUNAUTHORIZED;
    if (err != 0)
        aw_route__error(&c, err, 1);
    else
        h->route->serve(&c);
    aw_message_dispose(&c.msg);
    aw_reply_free(c.push.reply);
    free(c.handoff);
    return 0;
}

/* Whether a request for `later` would reach the row of `earlier` instead. */
static int shadows(const char *earlier, const char *later)
{
    size_t n = strlen(earlier);
    return strcmp(earlier, "/") == 0 || strcmp(earlier, later) == 0 ||
           (strncmp(earlier, later, n) == 0 && later[n] == '/');
}

void aw_route__register(aw_server_t *srv, h2o_hostconf_t *hostconf, const aw_route_t *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (shadows(table[j].path, table[i].path)) {
                fprintf(stderr, "route %s comes after %s, which takes its requests\n", table[i].path,
                        table[j].path);
                abort();
            }
        h2o_pathconf_t *pc = h2o_config_register_path(hostconf, table[i].path, 0);
        struct route_handler *h = (struct route_handler *)h2o_create_handler(pc, sizeof(*h));
        h->super.on_req = dispatch;
        h->srv = srv;
        h->route = &table[i];
    }
}
