/*
 * anywhere-load: the bundled load tool. It speaks the chat protocol over real
 * websockets (libuv, with its own client framing) to a server on loopback,
 * and measures what a user would see:
 *
 *   echo  N connections each say hello, then send messages and time each
 *         answer. Closed loop (one message in flight per connection) by
 *         default; with --rate, open loop at a fixed total rate, each message
 *         timed from when it was due, so a stalled server cannot hide its
 *         latency (no coordinated omission). Every message carries its due
 *         time in its text, which an echo bot sends back. With --pid, the
 *         server's CPU time per message over the measured window too, and
 *         the tool's own: on a machine the two share, messages/s is bounded
 *         by both, while CPU per message is the server's alone.
 *   idle  opens N sessions as fast as the server takes them (hello, then
 *         quiet; pings are answered), holds them, and reports the connect
 *         rate and the server's resident memory per session (VmRSS of
 *         --pid, before and after).
 *
 * Connections are shared over --procs worker processes (a process may hold
 * at most the open-file limit) and over --source addresses 127.0.0.x (each
 * address has about 28k ports to one server port). Workers send their
 * counts and histograms to the parent through a pipe; the parent prints one
 * summary line, and JSON with --json. Only 127.0.0.0/8 is ever a target or
 * a source, and every run ends by itself: a worker is killed by an alarm if
 * it overstays its time by 30 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "bench/hist.h"

#define MAX_SOURCES 64
#define MAX_PROCS 64
#define MAX_PENDING 256     /* handshakes in flight at once per worker */
#define MAX_PER_TICK 100000 /* open loop: sends per 1 ms tick at most */
#define CONNECT_WAIT 30     /* seconds to wait for every session before measuring anyway */

enum mode { MODE_ECHO, MODE_IDLE };
enum state { ST_CONNECTING, ST_UPGRADING, ST_HELLO, ST_READY, ST_CLOSED };

typedef struct options {
    enum mode mode;
    unsigned int conns, procs, n_sources, size;
    double duration, warmup, rate;
    struct sockaddr_in target, sources[MAX_SOURCES];
    char host[64], path[256];
    int server_pid;
    int run_id; /* the parent's pid: user ids are unique to a run */
    const char *json;
} options_t;

/* What a worker sends its parent at the end. */
typedef struct result {
    uint64_t sent, received, errors, connected, failed, closed;
    uint64_t t_first, t_ready; /* idle: first connect started, last session ready (µs) */
    uint64_t t_begin, t_end;   /* echo: the measured window (µs) */
    uint64_t cpu_server;       /* echo: --pid's CPU time over that window (µs), or 0 */
    uint64_t cpu_self;         /* echo: this worker's own CPU time over it (µs) */
    aw_hist_t lat;             /* echo: message latency; idle: session setup time (µs) */
} result_t;

typedef struct worker worker_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    worker_t *w;
    enum state state;
    unsigned int index;
    uint64_t t_start;
    char *in; /* a partial frame or response kept between reads */
    size_t in_len, in_cap;
} conn_t;

struct worker {
    const options_t *o;
    unsigned int id, n, next_connect, pending, ready;
    unsigned int settled; /* sessions up, or failed before they were */
    conn_t *conns;
    uv_loop_t loop;
    uv_timer_t tick, stop;
    int measuring, stopping, notify_fd;
    uint64_t t0, t_load, sent_sched; /* started; traffic began; open loop: sent so far */
    char rbuf[65536];
    char *msg, *tail; /* a message being built; what follows its due time */
    size_t tail_len;
    result_t *r;
};

static uint64_t process_cpu_us(int pid);
static uint64_t self_cpu_us(void);

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* --- writing --- */

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req_t;

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

/* Writes `len` bytes, copying only what the socket does not take at once. */
static void conn_write(conn_t *c, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len)
        return;
    if (n < 0 && n != UV_EAGAIN)
        return; /* the read side sees the error */
    size_t done = n > 0 ? (size_t)n : 0;
    write_req_t *wr = malloc(sizeof(*wr) + len - done);
    if (wr == NULL)
        abort();
    memcpy(wr->data, data + done, len - done);
    b = uv_buf_init(wr->data, (unsigned int)(len - done));
    uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

/* Sends one masked client frame of `opcode`. */
static void send_frame(conn_t *c, int opcode, const char *payload, size_t len)
{
    char buf[16 + 65536];
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    if (len > 65535)
        return;
    buf[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        buf[h++] = (char)(0x80 | len);
    } else {
        buf[h++] = (char)(0x80 | 126);
        buf[h++] = (char)(len >> 8);
        buf[h++] = (char)len;
    }
    memcpy(buf + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = (char)(payload[i] ^ mask[i & 3]);
    conn_write(c, buf, h + len);
}

static void send_hello(conn_t *c)
{
    char json[160];
    int n = snprintf(json, sizeof(json),
                     "{\"type\":\"hello\",\"user\":\"load-%d-%u-%u\",\"channel\":\"websocket\","
                     "\"user_profile\":null}",
                     c->w->o->run_id, c->w->id, c->index);
    send_frame(c, 0x1, json, (size_t)n);
    c->state = ST_HELLO;
}

/* Sends one echo message whose text starts with its due time. */
static void send_message(conn_t *c, uint64_t due)
{
    worker_t *w = c->w;
    int n = snprintf(w->msg, 128,
                     "{\"type\":\"message\",\"user\":\"load-%d-%u-%u\",\"channel\":\"websocket\","
                     "\"text\":\"#%020" PRIu64,
                     w->o->run_id, w->id, c->index, due);
    /* the padding and the closing were laid down once */
    memcpy(w->msg + n, w->tail, w->tail_len);
    send_frame(c, 0x1, w->msg, (size_t)n + w->tail_len);
    if (w->measuring)
        w->r->sent++;
}

/* --- reading --- */

static void conn_close(conn_t *c, int failed);
static void on_ready(conn_t *c);

/* A text frame from the server: an echo carries its due time back. */
static void on_text(conn_t *c, const char *p, size_t len)
{
    worker_t *w = c->w;
    if (c->state == ST_HELLO) {
        on_ready(c);
        return;
    }
    const char *t = memmem(p, len, "\"text\":\"#", 9);
    if (t == NULL || (size_t)(p + len - t) < 9 + 20)
        return; /* a typing or session frame */
    uint64_t due = strtoull(t + 9, NULL, 10), now = now_us();
    if (w->measuring && due >= w->r->t_begin) {
        w->r->received++;
        aw_hist_record(&w->r->lat, now > due ? now - due : 0);
    }
    if (w->o->mode == MODE_ECHO && w->o->rate == 0 && !w->stopping)
        send_message(c, now);
}

/* Parses whole frames from `p`; returns how many bytes were used. */
static size_t parse_frames(conn_t *c, const char *p, size_t len)
{
    size_t used = 0;
    while (c->state != ST_CLOSED && len - used >= 2) {
        const uint8_t *f = (const uint8_t *)p + used;
        size_t avail = len - used, h = 2;
        uint64_t plen = f[1] & 0x7f;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((uint64_t)f[2] << 8) | f[3];
            h = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | f[2 + i];
            h = 10;
        }
        if (plen > (1u << 24)) {
            conn_close(c, 1);
            break;
        }
        if (avail < h + plen)
            break;
        int op = f[0] & 0x0f;
        if (op == 0x1)
            on_text(c, (const char *)f + h, (size_t)plen);
        else if (op == 0x9)
            send_frame(c, 0xA, (const char *)f + h, (size_t)plen); /* pong */
        else if (op == 0x8)
            conn_close(c, 0);
        used += h + (size_t)plen;
    }
    return used;
}

/* Waits for "HTTP/1.1 101"; returns bytes used, 0 for more, -1 if refused. */
static ssize_t parse_upgrade(conn_t *c, const char *p, size_t len)
{
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    if (len < 12 || memcmp(p + 9, "101", 3) != 0)
        return -1;
    send_hello(c);
    return end + 4 - p;
}

static size_t consume(conn_t *c, const char *p, size_t len)
{
    size_t used = 0;
    if (c->state == ST_UPGRADING) {
        ssize_t n = parse_upgrade(c, p, len);
        if (n < 0) {
            conn_close(c, 1);
            return len;
        }
        if (n == 0)
            return 0;
        used = (size_t)n;
    }
    return used + parse_frames(c, p + used, len - used);
}

static void keep(conn_t *c, const char *p, size_t len)
{
    if (c->in_len + len > c->in_cap) {
        c->in_cap = (c->in_len + len) * 2;
        if ((c->in = realloc(c->in, c->in_cap)) == NULL)
            abort();
    }
    memmove(c->in + c->in_len, p, len);
    c->in_len += len;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn_t *c = h->data;
    *buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c, c->state != ST_READY);
        return;
    }
    if (c->in_len == 0) {
        size_t used = consume(c, buf->base, (size_t)nread);
        if (c->state != ST_CLOSED && used < (size_t)nread)
            keep(c, buf->base + used, (size_t)nread - used);
        return;
    }
    keep(c, buf->base, (size_t)nread);
    size_t used = consume(c, c->in, c->in_len);
    if (c->state == ST_CLOSED)
        return;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
}

/* --- connecting --- */

static void connect_next(worker_t *w);

static void on_ready(conn_t *c)
{
    worker_t *w = c->w;
    c->state = ST_READY;
    w->ready++;
    w->settled++;
    w->r->connected++;
    w->pending--;
    if (w->o->mode == MODE_IDLE) {
        uint64_t now = now_us();
        aw_hist_record(&w->r->lat, now - c->t_start);
        w->r->t_ready = now;
    } else if (w->o->rate == 0 && w->t_load != 0 && !w->stopping) {
        send_message(c, now_us()); /* a latecomer joins the load */
    }
    connect_next(w);
}

static void on_connected(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status != 0) {
        conn_close(c, 1);
        return;
    }
    char rq[512];
    const options_t *o = c->w->o;
    int n = snprintf(rq, sizeof(rq),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     o->path, o->host, ntohs(o->target.sin_port));
    c->state = ST_UPGRADING;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_write(c, rq, (size_t)n);
}

static void on_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    free(c->in);
    c->in = NULL;
}

static void conn_close(conn_t *c, int failed)
{
    worker_t *w = c->w;
    if (c->state == ST_CLOSED)
        return;
    if (c->state == ST_READY) {
        w->ready--;
    } else {
        w->settled++;
        w->pending--;
    }
    c->state = ST_CLOSED;
    if (!w->stopping) {
        if (failed)
            w->r->failed++;
        else
            w->r->closed++;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (!w->stopping)
        connect_next(w);
}

/* Opens the socket itself to bind its source address without taking a port
 * (IP_BIND_ADDRESS_NO_PORT): the port is chosen at connect, per target. */
static int start_connect(worker_t *w, conn_t *c)
{
    const options_t *o = w->o;
    unsigned int global = c->index * o->procs + w->id;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const struct sockaddr_in *src = &o->sources[global % o->n_sources];
    if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0) {
        close(fd);
        return -1;
    }
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    c->w = w;
    c->state = ST_CONNECTING;
    c->t_start = now_us();
    if (uv_tcp_open(&c->tcp, fd) != 0 ||
        uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&o->target, on_connected) != 0) {
        conn_close(c, 1);
        return -1;
    }
    return 0;
}

/* Starts connections until all are started, at most MAX_PENDING in their
 * handshake at once: the connect rate is then the server's, not a burst of
 * SYNs overflowing its listen backlog. */
static void connect_next(worker_t *w)
{
    unsigned int limit = MAX_PENDING;
    while (w->next_connect < w->n && w->pending < limit && !w->stopping) {
        conn_t *c = &w->conns[w->next_connect];
        c->index = w->next_connect++;
        if (w->r->t_first == 0)
            w->r->t_first = now_us();
        w->pending++;
        if (start_connect(w, c) != 0 && c->state != ST_CLOSED) {
            w->pending--;
            w->settled++;
            w->r->failed++;
            c->state = ST_CLOSED;
        }
    }
    if (w->o->mode == MODE_IDLE && w->notify_fd >= 0 && w->next_connect == w->n && w->pending == 0) {
        /* every session is up or failed: the parent may measure memory now */
        if (write(w->notify_fd, "c", 1) < 0)
            perror("anywhere-load: notify");
        close(w->notify_fd);
        w->notify_fd = -1;
        w->r->t_ready = w->r->t_ready != 0 ? w->r->t_ready : now_us();
    }
}

/* --- the worker's clock --- */

static void on_stop(uv_timer_t *t)
{
    worker_t *w = t->data;
    w->stopping = 1;
    w->r->t_end = now_us();
    w->r->cpu_server = process_cpu_us(w->o->server_pid) - w->r->cpu_server;
    w->r->cpu_self = self_cpu_us() - w->r->cpu_self;
    uv_stop(&w->loop);
}

/* Closed loop: every session sends its first message at once. */
static void kick(worker_t *w)
{
    for (unsigned int i = 0; i < w->n && w->o->mode == MODE_ECHO && w->o->rate == 0; i++)
        if (w->conns[i].state == ST_READY)
            send_message(&w->conns[i], now_us());
}

/* Phases: every session connects (up to CONNECT_WAIT), then traffic flows
 * for --warmup unmeasured, then for --duration measured. Traffic waits for
 * the last session: a server slow to accept under load must not be measured
 * on fewer connections than asked for. */
static void on_tick(uv_timer_t *t)
{
    worker_t *w = t->data;
    uint64_t now = now_us();
    if (w->t_load == 0 && (w->settled == w->n || now >= w->t0 + CONNECT_WAIT * 1000000ull)) {
        w->t_load = now;
        w->sent_sched = 0;
        kick(w);
    }
    if (w->t_load != 0 && !w->measuring && now >= w->t_load + (uint64_t)(w->o->warmup * 1e6)) {
        w->measuring = 1;
        w->r->t_begin = now;
        w->r->cpu_server = process_cpu_us(w->o->server_pid);
        w->r->cpu_self = self_cpu_us();
        uv_timer_start(&w->stop, on_stop, (uint64_t)(w->o->duration * 1000), 0);
    }
    if (w->o->rate == 0 || w->t_load == 0 || w->ready == 0)
        return;
    /* open loop: the k-th message is due at t_load + k / rate, whatever
     * became of the ones before it */
    double per_us = w->o->rate / w->o->procs / 1e6;
    uint64_t due_count = (uint64_t)((double)(now - w->t_load) * per_us);
    for (unsigned int i = 0; w->sent_sched < due_count && i < MAX_PER_TICK; i++) {
        conn_t *c = &w->conns[w->sent_sched % w->n];
        uint64_t due = w->t_load + (uint64_t)((double)w->sent_sched / per_us);
        w->sent_sched++;
        if (c->state == ST_READY)
            send_message(c, due);
        else
            w->r->errors++; /* not connected: counted, not hidden */
    }
}

static void build_message(worker_t *w)
{
    /* the text is "#" and 20 digits of due time, then padding to --size */
    size_t pad = w->o->size > 21 ? w->o->size - 21 : 0;
    w->tail_len = pad + 2;
    w->tail = malloc(w->tail_len);
    w->msg = malloc(128 + w->tail_len);
    if (w->tail == NULL || w->msg == NULL)
        abort();
    memset(w->tail, ' ', pad);
    memcpy(w->tail + pad, "\"}", 2);
}

static void run_worker(const options_t *o, unsigned int id, int result_fd, int notify_fd)
{
    static worker_t w;
    result_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    w.o = o;
    w.id = id;
    w.r = r;
    w.notify_fd = notify_fd;
    w.n = o->conns / o->procs + (id < o->conns % o->procs);
    w.conns = calloc(w.n ? w.n : 1, sizeof(conn_t));
    build_message(&w);
    alarm((unsigned int)(o->warmup + o->duration) + CONNECT_WAIT + 30);
    uv_loop_init(&w.loop);
    w.t0 = now_us();
    uv_timer_init(&w.loop, &w.tick);
    w.tick.data = &w;
    uv_timer_start(&w.tick, on_tick, 1, 1);
    uv_timer_init(&w.loop, &w.stop);
    w.stop.data = &w;
    connect_next(&w);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (w.notify_fd >= 0)
        close(w.notify_fd);
    const char *p = (const char *)r;
    for (size_t off = 0; off < sizeof(*r);) {
        ssize_t n = write(result_fd, p + off, sizeof(*r) - off);
        if (n <= 0)
            _exit(1);
        off += (size_t)n;
    }
    _exit(0); /* the kernel closes every socket at once */
}

/* --- the parent --- */

/* The CPU time (user and system, every thread) of process `pid` so far, in
 * µs of the kernel's clock ticks; 0 without a pid or when it is gone. */
static uint64_t process_cpu_us(int pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    if (pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the fields after the command name, which may hold spaces and ')' */
    const char *p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (uint64_t)(ut + st) * 1000000u / (uint64_t)sysconf(_SC_CLK_TCK);
}

static uint64_t self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long server_rss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int read_all(int fd, void *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = read(fd, (char *)buf + off, len - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Waits until every worker says its sessions are up (idle mode). */
static void wait_connected(int *notify, unsigned int procs, double timeout_s)
{
    uint64_t deadline = now_us() + (uint64_t)(timeout_s * 1e6);
    for (unsigned int i = 0; i < procs; i++) {
        struct pollfd p = {.fd = notify[i], .events = POLLIN};
        uint64_t now = now_us();
        char ch;
        if (now < deadline && poll(&p, 1, (int)((deadline - now) / 1000)) == 1 && read(notify[i], &ch, 1) < 0)
            perror("anywhere-load: wait");
    }
}

static void print_result(const options_t *o, const result_t *r, long rss0, long rss1)
{
    const aw_hist_t *h = &r->lat;
    double p50 = aw_hist_percentile(h, 50) / 1e3, p90 = aw_hist_percentile(h, 90) / 1e3,
           p99 = aw_hist_percentile(h, 99) / 1e3, p999 = aw_hist_percentile(h, 99.9) / 1e3,
           max = h->max / 1e3;
    FILE *j = NULL;
    if (o->json != NULL)
        j = strcmp(o->json, "-") == 0 ? stdout : fopen(o->json, "w");
    if (o->mode == MODE_ECHO) {
        double secs = (r->t_end - r->t_begin) / 1e6, rate = secs > 0 ? r->received / secs : 0;
        double srv_us = r->cpu_server > 0 && r->received > 0 ? (double)r->cpu_server / r->received : -1;
        double self_us = r->received > 0 ? (double)r->cpu_self / r->received : -1;
        printf("echo %s c=%u procs=%u size=%u %.0fs: %.0f msg/s, latency ms p50 %.3f p90 %.3f p99 %.3f "
               "p99.9 %.3f max %.3f; connected %" PRIu64 ", failed %" PRIu64 ", closed %" PRIu64
               ", unsent %" PRIu64 "; CPU us/msg server %.2f, load tool %.2f\n",
               o->rate > 0 ? "open" : "closed", o->conns, o->procs, o->size, o->duration, rate, p50, p90, p99,
               p999, max, r->connected, r->failed, r->closed, r->errors, srv_us, self_us);
        if (j != NULL)
            fprintf(j,
                    "{\"mode\":\"echo\",\"loop\":\"%s\",\"connections\":%u,\"rate\":%.0f,\"size\":%u,"
                    "\"seconds\":%.3f,\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"msgs_per_s\":%.1f,"
                    "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
                    "\"connected\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"closed\":%" PRIu64
                    ",\"unsent\":%" PRIu64 ",\"server_cpu_us_per_msg\":%.2f,\"load_cpu_us_per_msg\":%.2f}\n",
                    o->rate > 0 ? "open" : "closed", o->conns, o->rate, o->size, secs, r->sent, r->received,
                    rate, p50, p90, p99, p999, max, r->connected, r->failed, r->closed, r->errors, srv_us,
                    self_us);
    } else {
        double secs = (r->t_ready - r->t_first) / 1e6, rate = secs > 0 ? r->connected / secs : 0;
        double per = rss0 >= 0 && rss1 >= 0 && r->connected > 0 ? (rss1 - rss0) * 1024.0 / r->connected : -1;
        printf("idle c=%u procs=%u: %" PRIu64 " sessions in %.3fs (%.0f sessions/s), setup ms p50 %.3f p99 "
               "%.3f max %.3f; server rss %ld -> %ld KiB, %.0f bytes/session; failed %" PRIu64
               ", closed %" PRIu64 "\n",
               o->conns, o->procs, r->connected, secs, rate, p50, p99, max, rss0, rss1, per, r->failed,
               r->closed);
        if (j != NULL)
            fprintf(j,
                    "{\"mode\":\"idle\",\"connections\":%u,\"connected\":%" PRIu64 ",\"seconds\":%.3f,"
                    "\"sessions_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
                    "\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"bytes_per_session\":%.1f,"
                    "\"failed\":%" PRIu64 ",\"closed\":%" PRIu64 "}\n",
                    o->conns, r->connected, secs, rate, p50, p99, max, rss0, rss1, per, r->failed, r->closed);
    }
    if (j != NULL && j != stdout)
        fclose(j);
}

static void merge(result_t *all, const result_t *r)
{
    all->sent += r->sent;
    all->received += r->received;
    all->errors += r->errors;
    all->connected += r->connected;
    all->failed += r->failed;
    all->closed += r->closed;
    if (r->t_first != 0 && (all->t_first == 0 || r->t_first < all->t_first))
        all->t_first = r->t_first;
    if (r->t_ready > all->t_ready)
        all->t_ready = r->t_ready;
    if (r->t_begin != 0 && (all->t_begin == 0 || r->t_begin < all->t_begin))
        all->t_begin = r->t_begin;
    if (r->t_end > all->t_end)
        all->t_end = r->t_end;
    /* the server's time is measured by every worker over nearly the same
     * window: keep the widest, not the sum */
    if (r->cpu_server > all->cpu_server)
        all->cpu_server = r->cpu_server;
    all->cpu_self += r->cpu_self;
    aw_hist_merge(&all->lat, &r->lat);
}

static int run(const options_t *o)
{
    int res[MAX_PROCS], notify[MAX_PROCS];
    pid_t pids[MAX_PROCS];
    long rss0 = o->server_pid > 0 ? server_rss_kib(o->server_pid) : -1, rss1 = -1;
    for (unsigned int i = 0; i < o->procs; i++) {
        int rp[2], np[2];
        if (pipe(rp) != 0 || pipe(np) != 0) {
            perror("anywhere-load: pipe");
            return 1;
        }
        fflush(NULL);
        if ((pids[i] = fork()) == 0) {
            close(rp[0]);
            close(np[0]);
            run_worker(o, i, rp[1], o->mode == MODE_IDLE ? np[1] : -1);
        }
        close(rp[1]);
        close(np[1]);
        res[i] = rp[0];
        notify[i] = np[0];
    }
    if (o->mode == MODE_IDLE) {
        wait_connected(notify, o->procs, o->warmup + CONNECT_WAIT + 5);
        /* measured near the end of the hold, when the sessions are idle, not
         * just opened */
        double settle = o->duration > 1 ? o->duration - 0.5 : 0.5;
        usleep((useconds_t)(settle * 1e6));
        rss1 = o->server_pid > 0 ? server_rss_kib(o->server_pid) : -1;
    }
    result_t *all = calloc(1, sizeof(*all)), *r = malloc(sizeof(*r));
    int bad = 0;
    for (unsigned int i = 0; i < o->procs; i++) {
        if (read_all(res[i], r, sizeof(*r)) == 0)
            merge(all, r);
        else
            bad = 1;
        int st;
        waitpid(pids[i], &st, 0);
        close(res[i]);
        close(notify[i]);
    }
    print_result(o, all, rss0, rss1);
    if (bad)
        fprintf(stderr, "anywhere-load: a worker ended without its result\n");
    int failed = bad || all->connected == 0;
    free(all);
    free(r);
    return failed;
}

/* --- flags --- */

static int loopback_addr(const char *s, struct sockaddr_in *a, int port)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(s, "localhost") == 0)
        s = "127.0.0.1";
    if (inet_pton(AF_INET, s, &a->sin_addr) != 1)
        return -1;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127 ? 0 : -1; /* loopback only */
}

/* ws://HOST:PORT/PATH, HOST in 127.0.0.0/8. */
static int parse_url(options_t *o, const char *url)
{
    int port = 80;
    if (strncmp(url, "ws://", 5) != 0)
        return -1;
    const char *h = url + 5, *slash = strchr(h, '/'), *end = slash != NULL ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hl = (size_t)((colon != NULL ? colon : end) - h);
    if (hl == 0 || hl >= sizeof(o->host))
        return -1;
    memcpy(o->host, h, hl);
    o->host[hl] = '\0';
    if (colon != NULL && (port = atoi(colon + 1)) <= 0)
        return -1;
    snprintf(o->path, sizeof(o->path), "%s", slash != NULL ? slash : "/");
    return loopback_addr(o->host, &o->target, port);
}

static int parse_sources(options_t *o, char *list)
{
    o->n_sources = 0;
    for (char *s = strtok(list, ","); s != NULL; s = strtok(NULL, ",")) {
        if (o->n_sources == MAX_SOURCES || loopback_addr(s, &o->sources[o->n_sources], 0) != 0)
            return -1;
        o->n_sources++;
    }
    return o->n_sources > 0 ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: anywhere-load [echo|idle] [options]\n"
        "  -c, --connections N   websockets (default 100)\n"
        "  -d, --duration S      seconds measured (echo) or held (idle) (default 10)\n"
        "  -W, --warmup S        echo: seconds of load before measuring, once all are connected (default 1)\n"
        "  -r, --rate N          echo: open loop at N messages/s in total (default: closed loop)\n"
        "  -s, --size N          bytes of text per message (default 32)\n"
        "  -u, --url URL         ws://127.0.0.x:PORT/ (default ws://127.0.0.1:3000/)\n"
        "  -S, --source LIST     source addresses, comma-separated 127.0.0.x (default 127.0.0.1)\n"
        "  -p, --procs N         worker processes (default 1; each holds at most the file limit)\n"
        "  -P, --pid PID         the server's pid: its resident memory (idle), its CPU per message (echo)\n"
        "  -j, --json FILE       also write the result as JSON (- for stdout)\n");
}

static int parse_options(options_t *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"connections", 1, NULL, 'c'}, {"duration", 1, NULL, 'd'}, {"warmup", 1, NULL, 'W'},
        {"rate", 1, NULL, 'r'},        {"size", 1, NULL, 's'},     {"url", 1, NULL, 'u'},
        {"source", 1, NULL, 'S'},      {"procs", 1, NULL, 'p'},    {"pid", 1, NULL, 'P'},
        {"json", 1, NULL, 'j'},        {"help", 0, NULL, 'h'},     {NULL, 0, NULL, 0}};
    *o = (options_t){.mode = MODE_ECHO, .conns = 100, .procs = 1, .size = 32, .duration = 10, .warmup = 1};
    if (parse_url(o, "ws://127.0.0.1:3000/") != 0 || loopback_addr("127.0.0.1", &o->sources[0], 0) != 0)
        return -1;
    o->n_sources = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:d:W:r:s:u:S:p:P:j:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->conns = (unsigned int)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'W':
            o->warmup = atof(optarg);
            break;
        case 'r':
            o->rate = atof(optarg);
            break;
        case 's':
            o->size = (unsigned int)strtoul(optarg, NULL, 10);
            break;
        case 'u':
            if (parse_url(o, optarg) != 0)
                return -1;
            break;
        case 'S':
            if (parse_sources(o, optarg) != 0)
                return -1;
            break;
        case 'p':
            o->procs = (unsigned int)strtoul(optarg, NULL, 10);
            break;
        case 'P':
            o->server_pid = atoi(optarg);
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind < argc) {
        if (strcmp(argv[optind], "idle") == 0)
            o->mode = MODE_IDLE;
        else if (strcmp(argv[optind], "echo") != 0)
            return -1;
    }
    if (o->mode == MODE_IDLE)
        o->warmup = 0;
    if (o->conns == 0 || o->procs == 0 || o->procs > MAX_PROCS || o->procs > o->conns || o->size > 60000 ||
        o->duration <= 0 || o->duration > 3600 || o->warmup < 0 || o->warmup > 600 || o->rate < 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_options(&o, argc, argv) != 0) {
        fprintf(stderr, "anywhere-load: bad arguments (targets and sources must be in 127.0.0.0/8; --size at "
                        "most 60000)\n");
        usage(stderr);
        return 2;
    }
    o.run_id = (int)getpid();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run(&o);
}
