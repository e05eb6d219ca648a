/*
 * The bridge (bridge.h): one thread, one uv loop, one libcurl multi handle.
 * Other threads push requests to the loop's inbox (aw_inbox_t), which wakes
 * it; the loop starts them while fewer than `max_in_flight` are running and
 * keeps the rest in a FIFO. libcurl tells the loop which sockets to watch
 * (uv_poll) and when to call it back (uv_timer), the usual way of driving
 * curl from libuv. Everything below on_post runs on that thread.
 */
#include "actors/bridge.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "runtime/log.h"
#include "runtime/actor.h"
#include "runtime/bytes.h"
#include "runtime/error.h"
#include "runtime/inbox.h"

#define MAX_ANSWER (1u << 20) /* bytes of a bot's answer */

typedef struct request {
    aw_inbox_entry_t entry;
    struct request *next, *prev; /* the waiting FIFO, then the running list */
    aw_buf_t *body;
    aw_bridge_cb cb;
    void *data;
    CURL *easy;
    struct curl_slist *headers;
    aw_bytes_t answer;
    int too_big;
} request_t;

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
} sock_ctx_t;

struct aw_bridge {
    aw_bridge_config_t cfg;
    char *url, *fallback;
    uv_loop_t loop;
    aw_inbox_t inbox; /* requests from any thread; wakes the loop (on_post) */
    uv_timer_t timer;
    uv_thread_t thread;
    CURLM *multi;
    request_t *wait_head, *wait_tail;
    request_t *running;                              /* started, not finished */
    int stopping;                                    /* atomic */
    uint64_t last_log;                               /* failures are logged at most once a second */
    uint64_t requests, failures, in_flight, waiting; /* atomic */
};

static void finish(aw_bridge_t *b, request_t *r, int err)
{
    aw_reply_t **replies = NULL;
    size_t n = 0;
    const char *answer = r->answer.buf != NULL ? r->answer.buf->data : "";
    if (err == 0 && (err = aw_replies_parse(answer, r->answer.len, &replies, &n)) != 0)
        err = AW_EBADJSON;
    if (err != 0) {
        __atomic_add_fetch(&b->failures, 1, __ATOMIC_RELAXED);
        uint64_t now = aw_now_ms();
        if (now - b->last_log >= 1000) {
            b->last_log = now;
            aw_log(AW_LOG_WARN, "bot_failed", "the bot at --bot-url failed: %s (%llu failure(s) so far)",
                   aw_strerror(err), (unsigned long long)__atomic_load_n(&b->failures, __ATOMIC_RELAXED));
        }
        if (b->fallback != NULL && err != AW_ESTOPPED) {
            replies = aw_alloc(sizeof(*replies));
            replies[0] = aw_reply_new(b->fallback);
            n = 1;
        }
    }
    r->cb(err, replies, n, r->data);
    if (r->easy != NULL) {
        curl_multi_remove_handle(b->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    aw_buf_release(r->body);
    aw_bytes_dispose(&r->answer);
    free(r);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *data)
{
    request_t *r = data;
    size_t n = size * nmemb;
    if (r->answer.len + n > MAX_ANSWER) {
        r->too_big = 1;
        return 0; /* makes curl fail the transfer */
    }
    aw_bytes_append(&r->answer, ptr, n);
    return n;
}

static struct curl_slist *sign(aw_bridge_t *b, const aw_buf_t *body)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char header[64 + 2 * EVP_MAX_MD_SIZE] = "X-Anywhere-Signature: sha256=";
    size_t at = strlen(header);
    HMAC(EVP_sha256(), b->cfg.secret, (int)b->cfg.secret_len, (const unsigned char *)body->data, body->len,
         mac, &mac_len);
    for (unsigned int i = 0; i < mac_len; i++) {
        header[at++] = hex[mac[i] >> 4];
        header[at++] = hex[mac[i] & 15];
    }
    header[at] = '\0';
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    return curl_slist_append(h, header);
}

static void start(aw_bridge_t *b, request_t *r)
{
    r->easy = curl_easy_init();
    r->headers = sign(b, r->body);
    curl_easy_setopt(r->easy, CURLOPT_URL, b->url);
    curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, (const char *)r->body->data);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)r->body->len);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)b->cfg.timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    __atomic_add_fetch(&b->in_flight, 1, __ATOMIC_RELAXED);
    r->prev = NULL;
    r->next = b->running;
    if (b->running != NULL)
        b->running->prev = r;
    b->running = r;
    curl_multi_add_handle(b->multi, r->easy);
}

static void start_waiting(aw_bridge_t *b)
{
    while (b->wait_head != NULL && __atomic_load_n(&b->in_flight, __ATOMIC_RELAXED) < b->cfg.max_in_flight) {
        request_t *r = b->wait_head;
        b->wait_head = r->next;
        if (b->wait_head == NULL)
            b->wait_tail = NULL;
        __atomic_sub_fetch(&b->waiting, 1, __ATOMIC_RELAXED);
        start(b, r);
    }
}

static void unlink_running(aw_bridge_t *b, request_t *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        b->running = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    __atomic_sub_fetch(&b->in_flight, 1, __ATOMIC_RELAXED);
}

static void check_done(aw_bridge_t *b)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(b->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        request_t *r;
        long status = 0;
        CURLcode res = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        int err = 0;
        if (res == CURLE_OPERATION_TIMEDOUT)
            err = AW_ETIMEDOUT;
        else if (res != CURLE_OK || r->too_big || status < 200 || status > 299)
            err = AW_EUNAVAILABLE;
        unlink_running(b, r);
        finish(b, r, err);
    }
    start_waiting(b);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx_t *s = p->data;
    aw_bridge_t *b = p->loop->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0, running;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(b->multi, s->fd, flags, &running);
    check_done(b);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    aw_bridge_t *b = userp;
    sock_ctx_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, (uv_close_cb)free);
            curl_multi_assign(b->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = aw_calloc(1, sizeof(*s));
        s->fd = fd;
        uv_poll_init_socket(&b->loop, &s->poll, fd);
        s->poll.data = s;
        curl_multi_assign(b->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    aw_bridge_t *b = t->data;
    int running;
    curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(b);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    aw_bridge_t *b = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&b->timer);
    else
        uv_timer_start(&b->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_post(aw_inbox_t *inbox, void *data)
{
    aw_bridge_t *b = data;
    aw_inbox_entry_t *fifo = aw_inbox_take(inbox);
    while (fifo != NULL) {
        request_t *r = (request_t *)fifo;
        fifo = fifo->next;
        r->next = NULL;
        if (b->wait_tail != NULL)
            b->wait_tail->next = r;
        else
            b->wait_head = r;
        b->wait_tail = r;
    }
    if (__atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE)) {
        uv_stop(&b->loop);
        return;
    }
    start_waiting(b);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run(void *arg)
{
    aw_bridge_t *b = arg;
    uv_run(&b->loop, UV_RUN_DEFAULT);
    /* Stopping: answer everything still waiting or running, then close. */
    while (b->wait_head != NULL) {
        request_t *r = b->wait_head;
        b->wait_head = r->next;
        finish(b, r, AW_ESTOPPED);
    }
    while (b->running != NULL) {
        request_t *r = b->running;
        unlink_running(b, r);
        finish(b, r, AW_ESTOPPED);
    }
    uv_walk(&b->loop, close_any, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
}

int aw_bridge_start(aw_bridge_t **out, const aw_bridge_config_t *cfg)
{
    if (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0) {
        aw_log(AW_LOG_ERROR, "bot_url", "--bot-url must start with http:// or https://");
        return AW_EINVAL;
    }
    aw_bridge_t *b = aw_calloc(1, sizeof(*b));
    b->cfg = *cfg;
    b->url = aw_strndup(cfg->url, strlen(cfg->url));
    b->fallback = cfg->fallback != NULL && cfg->fallback[0] != '\0'
                      ? aw_strndup(cfg->fallback, strlen(cfg->fallback))
                      : NULL;
    if (b->cfg.timeout_ms == 0)
        b->cfg.timeout_ms = 10000;
    if (b->cfg.max_in_flight == 0)
        b->cfg.max_in_flight = 256;
    uv_loop_init(&b->loop);
    b->loop.data = b;
    aw_inbox_init_async(&b->inbox, &b->loop, on_post, b);
    uv_timer_init(&b->loop, &b->timer);
    b->timer.data = b;
    b->multi = curl_multi_init();
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
    uv_thread_create(&b->thread, run, b);
    *out = b;
    return 0;
}

int aw_bridge_post(aw_bridge_t *b, aw_buf_t *body, aw_bridge_cb cb, void *data)
{
    if (__atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE))
        return AW_ESTOPPED;
    request_t *r = aw_calloc(1, sizeof(*r));
    r->body = aw_buf_retain(body);
    r->cb = cb;
    r->data = data;
    __atomic_add_fetch(&b->requests, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&b->waiting, 1, __ATOMIC_RELAXED);
    aw_inbox_push(&b->inbox, &r->entry);
    return 0;
}

void aw_bridge_get_stats(aw_bridge_t *b, aw_bridge_stats_t *s)
{
    s->requests = __atomic_load_n(&b->requests, __ATOMIC_RELAXED);
    s->failures = __atomic_load_n(&b->failures, __ATOMIC_RELAXED);
    s->in_flight = __atomic_load_n(&b->in_flight, __ATOMIC_RELAXED);
    s->waiting = __atomic_load_n(&b->waiting, __ATOMIC_RELAXED);
}

void aw_bridge_stop(aw_bridge_t *b)
{
    __atomic_store_n(&b->stopping, 1, __ATOMIC_RELEASE);
    aw_inbox_wake(&b->inbox); /* on_post sees `stopping` */
    uv_thread_join(&b->thread);
    curl_multi_cleanup(b->multi);
    uv_loop_close(&b->loop);
    free(b->url);
    free(b->fallback);
    free(b);
}

int aw_replies_parse(const char *json, size_t len, aw_reply_t ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    yajl_val root = aw_json_parse_tree(json, len);
    if (root == NULL || !YAJL_IS_ARRAY(root)) {
        if (root != NULL)
            yajl_tree_free(root);
        return AW_EBADJSON;
    }
    size_t n = root->u.array.len;
    aw_reply_t **replies = aw_calloc(n + 1, sizeof(*replies));
    int err = 0;
    for (size_t i = 0; i < n && err == 0; i++) {
        /* each reply takes its object over: detach it from the array */
        if ((err = aw_reply_from_object(root->u.array.values[i], AW_REPLY_FROM_BOT, &replies[i], NULL)) == 0)
            root->u.array.values[i] = NULL;
    }
    yajl_tree_free(root);
    if (err != 0) {
        for (size_t i = 0; i < n; i++)
            aw_reply_free(replies[i]);
        free(replies);
        return err;
    }
    *out = replies;
    *n_out = n;
    return 0;
}
