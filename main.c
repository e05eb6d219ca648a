/*
 * anywhere: a chat server for bots that speaks the Botkit Anywhere protocol.
 * This file parses flags and environment, wires the runtime, the registry and
 * the transport together, and turns SIGINT / SIGTERM into a graceful stop:
 * stop accepting, finish the turns in flight, close websockets with 1001,
 * exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "actors/bot.h"
#include <curl/curl.h>
#include "actors/bridge.h"
#include "actors/desk.h"
#include "actors/history.h"
#include "actors/identity.h"
#include "actors/operators.h"
#include "actors/registry.h"
#include "actors/script.h"
#include "cluster/cluster.h"
#include "runtime/log.h"
#include "runtime/actor.h"
#include "runtime/error.h"
#include "transport/server.h"

typedef struct options {
    const char *host;
    int port;
    unsigned int io_threads;
    unsigned int workers;
    const char *bot;
    size_t max_message;
    unsigned int webhook_timeout_ms;
    const char *secret;
    const char *data_dir;
    int history_auth;
    int durable_delivery;
    unsigned int session_idle_ms;
    const char *store;
    const char *write_concern;
    unsigned int history_batch;
    unsigned int history_flush_ms;
    unsigned int history_queue;
    size_t history_queue_bytes;
    unsigned int recent;
    const char *script;
    const char *bot_url;
    unsigned int bot_timeout_ms;
    unsigned int bot_max_in_flight;
    const char *bot_fallback;
    const char *api_key;
    double rate, burst;
    unsigned int max_connections, max_connections_per_ip, ping_interval_ms, http_timeout_ms;
    size_t max_outbox;
    const char *origins[32];
    size_t n_origins;
    const char *tls_cert, *tls_key;
    char admin_host[256]; /* "": no admin listener */
    int admin_port;
    int log_level, log_json;
    unsigned int store_timeout_ms;
    const char *nats;                           /* --nats or $NATS_URL: NULL runs alone */
    const char *cluster;                        /* --cluster */
    const char *node_id;                        /* --node-id */
    const char *nats_creds;                     /* --nats-creds */
    const char *nats_ca;                        /* --nats-ca */
    int reuse_port;                             /* --reuse-port */
    const char *operators;                      /* --operators FILE */
    const char *handoff_joined, *handoff_ended; /* what the user is told */
    unsigned int handoff_grace_ms;
} options_t;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: anywhere [options]\n"
        "\n"
        "Serving:\n"
        "  --host ADDR                 address to listen on (default 127.0.0.1)\n"
        "  --port N                    port (default 3000, or $PORT; 0 picks a free one)\n"
        "  --io-threads N              HTTP/websocket threads (default: number of cores)\n"
        "  --workers N                 threads that run sessions and bots (default: number of cores)\n"
        "  --tls-cert FILE             PEM certificate: HTTPS and wss:// on the same port\n"
        "  --tls-key FILE              its PEM private key\n"
        "  --allowed-origin URL        a page origin allowed besides the server's own (repeatable; * any)\n"
        "  --admin-listen ADDR:PORT    also serve GET /healthz and /metrics there, in plain HTTP, outside\n"
        "                              the connection caps (64 connections of its own; port 0: a free one)\n"
        "\n"
        "The bot:\n"
        "  --bot NAME                  built-in bot: demo (default) or echo\n"
        "  --script FILE.json          a bot declared in a script file (instead of --bot)\n"
        "  --bot-url URL               a bot anywhere else: each message is POSTed there\n"
        "  --bot-timeout MS            how long that bot may take (default 10000)\n"
        "  --bot-max-in-flight N       requests to that bot at once; more wait their turn (default 256)\n"
        "  --bot-fallback TEXT         said when that bot fails (default: an apology; \"\" says nothing)\n"
        "  --api-key KEY               enables POST /api/send with this bearer key ($ANYWHERE_API_KEY)\n"
        "  --webhook-timeout MS        webhook turns longer than this answer 504 (default 30000)\n"
        "\n"
        "Identity and history:\n"
        "  --secret S                  identity secret (default $ANYWHERE_SECRET, else kept in DATA-DIR)\n"
        "  --data-dir DIR              where the server keeps its files (default .)\n"
        "  --history-auth on|off       require identity tokens (default on; off is for old clients)\n"
        "  --store URI                 sqlite:PATH or mongodb://... (default $MONGO_URI, else\n"
        "                              sqlite:DATA-DIR/anywhere.db)\n"
        "  --write-concern W           MongoDB write concern: majority (default), 1, ...\n"
        "  --durable-delivery          send acks and bot messages only once they are durable in the\n"
        "                              store (default: at once; a crash may lose the last flush)\n"
        "  --store-timeout MS          how long one store call may wait for the store (default 5000)\n"
        "  --history-batch N           records per store write (default 512)\n"
        "  --history-flush-ms MS       longest wait before a partial batch is written (default 5)\n"
        "  --history-queue N           records held at most while the store is slow or down (1000000)\n"
        "  --history-queue-bytes N     and bytes held at most (default 268435456: 256 MiB)\n"
        "  --recent N                  bot messages per user kept in memory for reconnects (default 64)\n"
        "  --session-idle MS           free a session this long after its last socket (default 60000)\n"
        "\n"
        "Limits:\n"
        "  --max-message BYTES         largest message, frame or body (default 65536)\n"
        "  --rate N                    messages a user may send per second on average (default 20; 0: none)\n"
        "  --burst N                   and at once (default 40)\n"
        "  --max-connections N         open connections at most (default: the file limit less 100)\n"
        "  --max-connections-per-ip N  from one client address (default 0: no cap)\n"
        "  --ping-interval MS          websocket ping period; silent for two: closed (default 30000)\n"
        "  --max-outbox BYTES          queued behind a stuck write; past it: closed, 1008 (default 1048576)\n"
        "  --http-timeout MS           idle HTTP connections, slow request headers and websocket\n"
        "                              messages left unfinished (default 10000)\n"
        "\n"
        "Cluster (docs/cluster.md):\n"
        "  --nats URL[,URL...]         join a cluster over these NATS servers ($NATS_URL); every node\n"
        "                              needs the same --secret (or $ANYWHERE_SECRET) and store\n"
        "  --cluster NAME              the cluster to join (default anywhere)\n"
        "  --node-id ID                this node's name (default: host name and pid)\n"
        "  --nats-creds FILE           a NATS credentials file (user and password may be in the URL)\n"
        "  --nats-ca FILE              CA certificates for tls:// NATS servers\n"
        "  --reuse-port                let the nodes of one machine share --port (needs --nats)\n"
        "Handing over to a person:\n"
        "  --operators FILE            who may sign in to the operator console at /console (written by\n"
        "                              `anywhere operator add NAME --operators FILE`); without it, no "
        "console\n"
        "  --handoff-notice TEXT       told the user when an operator joins (default: \"You are now talking\n"
        "                              with a person.\"; \"\" says nothing)\n"
        "  --handoff-end-notice TEXT   told the user when the bot is back (default: \"You are back with the\n"
        "                              bot.\"; \"\" says nothing)\n"
        "  --handoff-grace MS          how long an operator may be away before their conversations wait\n"
        "                              again (default 60000)\n"
        "\n"
        "Logs:\n"
        "  --log-level L               error, warn, info (default) or debug\n"
        "  --log-format F              text (default) or json, one line per event\n"
        "\n"
        "  --help, --version\n"
        "\n"
        "usage: anywhere operator add NAME --operators FILE\n"
        "  adds operator NAME to FILE (or gives them a new password), reading the password from the\n"
        "  standard input\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *s == '\0' || *end != '\0' || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

/* ADDR:PORT, or [IPv6]:PORT: the address, without brackets, into `host`. */
static int parse_host_port(const char *arg, char *host, size_t size, int *port)
{
    const char *colon = strrchr(arg, ':');
    unsigned long v;
    if (colon == NULL || parse_uint(colon + 1, 65535, &v) != 0)
        return -1;
    const char *h = arg;
    size_t n = (size_t)(colon - arg);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    } else if (memchr(h, ':', n) != NULL) {
        return -1; /* an IPv6 address takes brackets */
    }
    if (n == 0 || n >= size)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)v;
    return 0;
}

static int parse_option(options_t *o, int c, const char *arg)
{
    unsigned long v;
    switch (c) {
    case 'h':
        o->host = arg;
        return 0;
    case 'p':
        if (parse_uint(arg, 65535, &v) != 0)
            return -1;
        o->port = (int)v;
        return 0;
    case 'i':
    case 'w':
        if (parse_uint(arg, 256, &v) != 0 || v == 0)
            return -1;
        *(c == 'i' ? &o->io_threads : &o->workers) = (unsigned int)v;
        return 0;
    case 'b':
        o->bot = arg;
        return strcmp(arg, "demo") == 0 || strcmp(arg, "echo") == 0 ? 0 : -1;
    case 'm':
        if (parse_uint(arg, 16u << 20, &v) != 0 || v < 256)
            return -1;
        o->max_message = v;
        return 0;
    case 't':
    case 'I':
        if (parse_uint(arg, 24u * 3600 * 1000, &v) != 0 || v == 0)
            return -1;
        *(c == 't' ? &o->webhook_timeout_ms : &o->session_idle_ms) = (unsigned int)v;
        return 0;
    case 's':
        o->secret = arg;
        return 0;
    case 'S':
        o->store = arg;
        return 0;
    case 'X':
        o->script = arg;
        return 0;
    case 'U':
        o->bot_url = arg;
        return 0;
    case 'T':
    case 'N':
        if (parse_uint(arg, 3600 * 1000, &v) != 0 || v == 0)
            return -1;
        *(c == 'T' ? &o->bot_timeout_ms : &o->bot_max_in_flight) = (unsigned int)v;
        return 0;
    case 'f':
        o->bot_fallback = arg;
        return 0;
    case 'K':
        o->api_key = arg;
        return 0;
    case 'r':
    case 'u': {
        char *end;
        double d = strtod(arg, &end);
        if (*arg == '\0' || *end != '\0' || !(d >= 0 && d <= 1e6))
            return -1;
        *(c == 'r' ? &o->rate : &o->burst) = d;
        return 0;
    }
    case 'C':
    case 'c':
    case 'P':
    case 'H' + 256:
        if (parse_uint(arg, 100000000, &v) != 0)
            return -1;
        *(c == 'C'   ? &o->max_connections
          : c == 'c' ? &o->max_connections_per_ip
          : c == 'P' ? &o->ping_interval_ms
                     : &o->http_timeout_ms) = (unsigned int)v;
        return 0;
    case 'O':
        if (parse_uint(arg, 1ul << 30, &v) != 0 || v < 1024)
            return -1;
        o->max_outbox = v;
        return 0;
    case 'o':
        if (o->n_origins == sizeof(o->origins) / sizeof(o->origins[0]))
            return -1;
        o->origins[o->n_origins++] = arg;
        return 0;
    case 'L':
        o->tls_cert = arg;
        return 0;
    case 'A':
        return parse_host_port(arg, o->admin_host, sizeof(o->admin_host), &o->admin_port);
    case 'k':
        o->tls_key = arg;
        return 0;
    case 'l':
        return (o->log_level = aw_log_level_from_name(arg)) < 0 ? -1 : 0;
    case 'Y':
        if (parse_uint(arg, 600000, &v) != 0 || v == 0)
            return -1;
        o->store_timeout_ms = (unsigned int)v;
        return 0;
    case 'j':
        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0)
            return -1;
        o->log_json = strcmp(arg, "json") == 0;
        return 0;
    case 'W':
        o->write_concern = arg;
        return 0;
    case 'R':
        if (parse_uint(arg, 100000, &v) != 0 || v == 0)
            return -1;
        o->recent = (unsigned int)v;
        return 0;
    case 'B':
    case 'F':
    case 'Q':
        if (parse_uint(arg, 100000000, &v) != 0 || v == 0)
            return -1;
        *(c == 'B'   ? &o->history_batch
          : c == 'F' ? &o->history_flush_ms
                     : &o->history_queue) = (unsigned int)v;
        return 0;
    case 'Q' + 256:
        if (parse_uint(arg, 1ul << 40, &v) != 0 || v < (1ul << 20))
            return -1;
        o->history_queue_bytes = v;
        return 0;
    case 'd':
        o->data_dir = arg;
        return 0;
    case 'n' + 256:
        o->nats = arg;
        return 0;
    case 'c' + 256:
        o->cluster = arg;
        return 0;
    case 'i' + 256:
        o->node_id = arg;
        return 0;
    case 'C' + 256:
        o->nats_creds = arg;
        return 0;
    case 'a' + 256:
        o->nats_ca = arg;
        return 0;
    case 'a':
        if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
            return -1;
        o->history_auth = strcmp(arg, "on") == 0;
        return 0;
    case 'o' + 256:
        o->operators = arg;
        return 0;
    case 'h' + 256:
        o->handoff_joined = arg;
        return 0;
    case 'e' + 256:
        o->handoff_ended = arg;
        return 0;
    case 'g' + 256:
        if (parse_uint(arg, 24u * 3600 * 1000, &v) != 0 || v == 0)
            return -1;
        o->handoff_grace_ms = (unsigned int)v;
        return 0;
    }
    return -1;
}

static int parse_args(options_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"io-threads", required_argument, NULL, 'i'},
                                             {"workers", required_argument, NULL, 'w'},
                                             {"bot", required_argument, NULL, 'b'},
                                             {"max-message", required_argument, NULL, 'm'},
                                             {"webhook-timeout", required_argument, NULL, 't'},
                                             {"secret", required_argument, NULL, 's'},
                                             {"data-dir", required_argument, NULL, 'd'},
                                             {"history-auth", required_argument, NULL, 'a'},
                                             {"session-idle", required_argument, NULL, 'I'},
                                             {"store", required_argument, NULL, 'S'},
                                             {"write-concern", required_argument, NULL, 'W'},
                                             {"history-batch", required_argument, NULL, 'B'},
                                             {"history-flush-ms", required_argument, NULL, 'F'},
                                             {"history-queue", required_argument, NULL, 'Q'},
                                             {"history-queue-bytes", required_argument, NULL, 'Q' + 256},
                                             {"recent", required_argument, NULL, 'R'},
                                             {"script", required_argument, NULL, 'X'},
                                             {"bot-url", required_argument, NULL, 'U'},
                                             {"bot-timeout", required_argument, NULL, 'T'},
                                             {"bot-max-in-flight", required_argument, NULL, 'N'},
                                             {"bot-fallback", required_argument, NULL, 'f'},
                                             {"api-key", required_argument, NULL, 'K'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"burst", required_argument, NULL, 'u'},
                                             {"max-connections", required_argument, NULL, 'C'},
                                             {"max-connections-per-ip", required_argument, NULL, 'c'},
                                             {"ping-interval", required_argument, NULL, 'P'},
                                             {"http-timeout", required_argument, NULL, 'H' + 256},
                                             {"max-outbox", required_argument, NULL, 'O'},
                                             {"allowed-origin", required_argument, NULL, 'o'},
                                             {"tls-cert", required_argument, NULL, 'L'},
                                             {"tls-key", required_argument, NULL, 'k'},
                                             {"admin-listen", required_argument, NULL, 'A'},
                                             {"log-level", required_argument, NULL, 'l'},
                                             {"log-format", required_argument, NULL, 'j'},
                                             {"store-timeout", required_argument, NULL, 'Y'},
                                             {"durable-delivery", no_argument, NULL, 'D' + 256},
                                             {"nats", required_argument, NULL, 'n' + 256},
                                             {"cluster", required_argument, NULL, 'c' + 256},
                                             {"node-id", required_argument, NULL, 'i' + 256},
                                             {"nats-creds", required_argument, NULL, 'C' + 256},
                                             {"nats-ca", required_argument, NULL, 'a' + 256},
                                             {"reuse-port", no_argument, NULL, 'r' + 256},
                                             {"operators", required_argument, NULL, 'o' + 256},
                                             {"handoff-notice", required_argument, NULL, 'h' + 256},
                                             {"handoff-end-notice", required_argument, NULL, 'e' + 256},
                                             {"handoff-grace", required_argument, NULL, 'g' + 256},
                                             {"help", no_argument, NULL, 'H'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (c == 'H') {
            usage(stdout);
            exit(0);
        }
        if (c == 'V') {
            printf("anywhere %s\n", AW_VERSION);
            exit(0);
        }
        if (c == 'D' + 256 || c == 'r' + 256) {
            *(c == 'D' + 256 ? &o->durable_delivery : &o->reuse_port) = 1;
            continue;
        }
        if (c == '?' || parse_option(o, c, optarg) != 0) {
            if (c != '?')
                fprintf(stderr, "anywhere: invalid value for --%s: %s\n", longopts[idx].name, optarg);
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "anywhere: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int load_secret(const options_t *o, unsigned char *secret, size_t *len)
{
    const char *s = o->secret != NULL ? o->secret : getenv("ANYWHERE_SECRET");
    if (s != NULL && s[0] != '\0') {
        *len = strlen(s);
        if (*len > AW_SECRET_MAX) {
            aw_log(AW_LOG_ERROR, "secret", "the secret is longer than %d bytes", AW_SECRET_MAX);
            return -1;
        }
        memcpy(secret, s, *len);
        return 0;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/anywhere.secret", o->data_dir);
    return aw_identity_load_secret(path, secret, len) == 0 ? 0 : -1;
}

/* Gives the bot's answers in flight a moment, then stops the bridge; what is
 * still waiting is answered as stopped, which ends those turns. */
static void stop_bridge(aw_bridge_t *bridge)
{
    aw_bridge_stats_t st;
    for (int i = 0; i < 300; i++) {
        aw_bridge_get_stats(bridge, &st);
        if (st.in_flight + st.waiting == 0)
            break;
        usleep(10000);
    }
    aw_bridge_stop(bridge);
}

/* Waits, at most `deadline_ms`, until no turn is left in flight. A turn that
 * waits for the history (a user's last seq, a replay of missed messages) or
 * for the bot is in no mailbox and on no worker meanwhile, so draining the
 * runtime alone would stop it half way: a message accepted but never
 * answered nor stored, a webhook left without its answer. So: nothing queued
 * or running, no history read and no bot request outstanding, and no message
 * handled between two looks. */
static void finish_turns(aw_runtime_t *rt, aw_history_t *history, aw_bridge_t *bridge,
                         unsigned int deadline_ms)
{
    uint64_t until = aw_now_ms() + deadline_ms, handled = UINT64_MAX;
    for (int quiet = 0; quiet < 2 && aw_now_ms() < until;) {
        aw_runtime_stats_t rs;
        aw_history_stats_t hs;
        aw_bridge_stats_t bs = {0};
        aw_runtime_get_stats(rt, &rs);
        int busy = !aw_runtime_idle(rt);
        aw_history_get_stats(history, &hs);
        if (bridge != NULL)
            aw_bridge_get_stats(bridge, &bs);
        busy |= hs.reads != 0 || bs.in_flight + bs.waiting != 0 || rs.handled != handled;
        handled = rs.handled;
        quiet = busy ? 0 : quiet + 1;
        usleep(5000);
    }
}

/* The password for `anywhere operator add`: the first line of the
 * standard input, asked for without echo on a terminal. */
static int read_password(char *buf, size_t size)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "password: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    int ok = fgets(buf, (int)size, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] != '\0' ? 0 : -1;
}

/* anywhere operator add NAME --operators FILE */
static int operator_command(int argc, char **argv)
{
    const char *file = NULL;
    if (argc >= 4 && strcmp(argv[1], "add") == 0) {
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--operators") == 0 && i + 1 < argc)
                file = argv[++i];
            else if (strncmp(argv[i], "--operators=", 12) == 0)
                file = argv[i] + 12;
            else
                file = NULL, i = argc;
        }
    }
    if (file == NULL) {
        fprintf(stderr,
                "usage: anywhere operator add NAME --operators FILE (the password on standard input)\n");
        return 2;
    }
    char password[AW_OPERATOR_PASSWORD_MAX + 2], err[512];
    if (read_password(password, sizeof(password)) != 0 || strlen(password) > AW_OPERATOR_PASSWORD_MAX) {
        fprintf(stderr, "anywhere: no password given (one line on standard input, at most %d bytes)\n",
                AW_OPERATOR_PASSWORD_MAX);
        return 2;
    }
    int rc = aw_operators_add(file, argv[2], password, err, sizeof(err));
    memset(password, 0, sizeof(password));
    if (rc != 0) {
        fprintf(stderr, "anywhere: %s\n",
                rc == AW_EINVAL && !aw_operator_name_valid(argv[2], strlen(argv[2]))
                    ? "a name is 1 to 64 of A-Z a-z 0-9 . _ -"
                    : err);
        return 1;
    }
    printf("operator %s written to %s\n", argv[2], file);
    return 0;
}

static aw_history_t *open_history(const options_t *o, const char **backend)
{
    char uri[PATH_MAX + 16];
    if (o->store != NULL)
        snprintf(uri, sizeof(uri), "%s", o->store);
    else if (getenv("MONGO_URI") != NULL && getenv("MONGO_URI")[0] != '\0')
        snprintf(uri, sizeof(uri), "%s", getenv("MONGO_URI"));
    else
        snprintf(uri, sizeof(uri), "sqlite:%s/anywhere.db", o->data_dir);
    /* --write-concern is MongoDB's: the other backends ignore it */
    aw_store_param_t wc = {"mongodb", "w", o->write_concern};
    aw_store_options_t so = {
        .timeout_ms = (int)o->store_timeout_ms, .params = &wc, .n_params = o->write_concern != NULL ? 1 : 0};
    aw_store_t *store;
    int err = aw_store_open(&store, uri, &so);
    if (err != 0) {
        /* never print a URI: it may carry a password */
        aw_log(AW_LOG_ERROR, "store_open", "cannot open the history store: %s", aw_strerror(err));
        return NULL;
    }
    *backend = aw_store_backend(store);
    aw_log(AW_LOG_INFO, "store", "history in %s%s", aw_store_backend(store),
           strncmp(uri, "sqlite:", 7) == 0 ? uri + 6 : "");
    static char journal[PATH_MAX];
    snprintf(journal, sizeof(journal), "%s/history.journal", o->data_dir);
    static char reservations[PATH_MAX];
    snprintf(reservations, sizeof(reservations), "%s/seq.reservations", o->data_dir);
    aw_history_config_t hc = {.batch = o->history_batch,
                              .flush_ms = o->history_flush_ms,
                              .max_queue = o->history_queue,
                              .max_bytes = o->history_queue_bytes,
                              .journal = journal,
                              .reservations = reservations};
    return aw_history_start(store, &hc);
}

int main(int argc, char **argv)
{
    options_t o = {.host = "127.0.0.1",
                   .port = 3000,
                   .bot = "demo",
                   .max_message = 64 * 1024,
                   .webhook_timeout_ms = 30000,
                   .bot_fallback = "Sorry, I cannot answer right now. Please try again in a moment.",
                   .rate = 20,
                   .burst = 40,
                   .ping_interval_ms = 30000,
                   .http_timeout_ms = 10000,
                   .max_outbox = 1 << 20,
                   .log_level = AW_LOG_INFO,
                   .data_dir = ".",
                   .history_auth = 1,
                   .session_idle_ms = 60000,
                   .handoff_joined = "You are now talking with a person.",
                   .handoff_ended = "You are back with the bot."};
    if (argc >= 2 && strcmp(argv[1], "operator") == 0)
        return operator_command(argc - 1, argv + 1);
    unsigned long env_port;
    if (getenv("PORT") != NULL && parse_uint(getenv("PORT"), 65535, &env_port) == 0)
        o.port = (int)env_port;
    if (parse_args(&o, argc, argv) != 0)
        return 2;
    aw_log_setup(o.log_level, o.log_json);
    if (o.nats == NULL && getenv("NATS_URL") != NULL && getenv("NATS_URL")[0] != '\0')
        o.nats = getenv("NATS_URL");
    if (o.nats == NULL && (o.reuse_port || o.cluster != NULL || o.node_id != NULL)) {
        fprintf(stderr, "anywhere: --reuse-port, --cluster and --node-id need --nats (or $NATS_URL)\n");
        return 2;
    }
    if (o.nats != NULL && o.secret == NULL &&
        (getenv("ANYWHERE_SECRET") == NULL || !*getenv("ANYWHERE_SECRET"))) {
        /* a token issued by one node must hold on every other */
        fprintf(stderr, "anywhere: with --nats every node needs the same identity secret: give --secret or "
                        "$ANYWHERE_SECRET\n");
        return 2;
    }
    unsigned int cores = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
    struct rlimit nofile;
    /* every socket is a file: take all the process may have */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    /* Refuse cleanly before running out of fds; the admin listener's own
     * connections come out of the same budget. */
    rlim_t spare = 100 + (o.admin_host[0] != '\0' ? AW_SERVER_ADMIN_MAX_CONNECTIONS : 0);
    if (o.max_connections == 0 && getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > 2 * spare &&
        nofile.rlim_cur != RLIM_INFINITY)
        o.max_connections = (unsigned int)(nofile.rlim_cur - spare);
    if (o.io_threads == 0)
        o.io_threads = cores;
    if (o.workers == 0)
        o.workers = cores;

    unsigned char secret[AW_SECRET_MAX];
    size_t secret_len = 0;
    if (mkdir(o.data_dir, 0700) != 0 && errno != EEXIST) {
        aw_log(AW_LOG_ERROR, "data_dir", "cannot create the data folder %s: %s", o.data_dir, strerror(errno));
        return 1;
    }
    if (load_secret(&o, secret, &secret_len) != 0)
        return 1;
    if (!o.history_auth)
        aw_log(AW_LOG_WARN, "history_auth_off",
               "--history-auth=off: any client that knows a user id can read that user's history and "
               "messages. Use it only for old clients that send no token.");

    /* Signals are taken by sigwait below, never by the worker or I/O threads. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    aw_bot_t *bot;
    aw_bridge_t *bridge = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (o.bot_url != NULL) {
        aw_bridge_config_t bc = {.url = o.bot_url,
                                 .timeout_ms = o.bot_timeout_ms,
                                 .max_in_flight = o.bot_max_in_flight,
                                 .secret = secret,
                                 .secret_len = secret_len,
                                 .fallback = o.bot_fallback};
        if (aw_bridge_start(&bridge, &bc) != 0)
            return 2;
        bot = aw_bot_remote(bridge);
    } else if (o.script != NULL) {
        char err[600];
        /* a wrong script stops the server now, never at the first message */
        if (aw_script_load(&bot, o.script, err, sizeof(err)) != 0) {
            aw_log(AW_LOG_ERROR, "script", "%s", err);
            return 2;
        }
    } else {
        bot = strcmp(o.bot, "echo") == 0 ? aw_bot_echo() : aw_bot_demo();
    }
    aw_operators_t *operators = NULL;
    if (o.operators != NULL) {
        char err[600];
        if (aw_operators_load(o.operators, &operators, err, sizeof(err)) != 0) {
            aw_log(AW_LOG_ERROR, "operators", "the operators file: %s", err);
            return 2;
        }
        aw_log(AW_LOG_INFO, "operators", "%zu operator(s) may sign in to the console at /console",
               aw_operators_count(operators));
        /* Sign-ins hold on every node with the secret. A start signs
         * everybody out (a sign-out before it is not remembered); in a
         * cluster, the first node's start does (cluster.c). */
        aw_operators_set_key(operators, secret, secret_len);
        if (o.nats == NULL)
            aw_operators_set_epoch(operators, aw_wall_ms());
    }
    const char *backend = "";
    aw_history_t *history = open_history(&o, &backend);
    if (history == NULL)
        return 1;
    /* who waits for a person, and who has them, before anyone chats */
    aw_desk_t *desk = aw_desk_create();
    aw_desk_load(desk, history);
    aw_runtime_t *rt;
    aw_runtime_config_t rc = {.workers = o.workers};
    if (aw_runtime_create(&rt, &rc) != 0) {
        aw_log(AW_LOG_ERROR, "workers", "cannot start the worker threads");
        return 1;
    }
    aw_chat_config_t chat = {.bot = bot,
                             .secret = secret,
                             .secret_len = secret_len,
                             .history_auth = o.history_auth,
                             .idle_ms = o.session_idle_ms,
                             .recent = o.recent,
                             .history = history,
                             .rate = o.rate,
                             .burst = o.burst < 1 ? 1 : o.burst,
                             .claim_ms = o.store_timeout_ms,
                             .durable = o.durable_delivery,
                             .desk = desk,
                             .handoff_joined = o.handoff_joined,
                             .handoff_ended = o.handoff_ended,
                             .handoff_grace_ms = o.handoff_grace_ms};
    aw_registry_t *reg = aw_registry_create(rt, &chat);
    /* No console is open yet: the owners' grace periods start now. In a
     * cluster, the owners may have consoles on other nodes, and most users
     * live elsewhere: each node does it for its own users once it takes
     * them, for owners with no console anywhere (cluster.c). */
    char **owned = o.nats == NULL ? aw_desk_owned_by(desk, NULL, NULL) : NULL;
    for (size_t i = 0; owned != NULL && owned[i] != NULL; i++) {
        aw_handoff_msg_t *m = aw_handoff_msg_new(AW_HANDOFF_OP_GONE, NULL, NULL, NULL);
        if (aw_registry_send(reg, owned[i], strlen(owned[i]), &m->super, 1) != 0)
            aw_msg_release(&m->super);
    }
    aw_desk_free_list(owned);
    const char *api_key = o.api_key != NULL ? o.api_key : getenv("ANYWHERE_API_KEY");
    if (api_key != NULL && api_key[0] == '\0')
        api_key = NULL;
    aw_server_config_t sc = {.host = o.host,
                             .port = o.port,
                             .io_threads = o.io_threads,
                             .max_message = o.max_message,
                             .webhook_timeout_ms = o.webhook_timeout_ms,
                             .registry = reg,
                             .chat = &chat,
                             .api_key = api_key,
                             .max_connections = o.max_connections,
                             .max_connections_per_ip = o.max_connections_per_ip,
                             .ping_interval_ms = o.ping_interval_ms,
                             .max_outbox = o.max_outbox,
                             .http_timeout_ms = o.http_timeout_ms,
                             .origins = o.origins,
                             .n_origins = o.n_origins,
                             .tls_cert = o.tls_cert,
                             .tls_key = o.tls_key,
                             .admin_host = o.admin_host[0] != '\0' ? o.admin_host : NULL,
                             .admin_port = o.admin_port,
                             .operators = operators};
    aw_cluster_t *cluster = NULL;
    if (o.nats != NULL) {
        aw_cluster_config_t cc = {.urls = o.nats,
                                  .name = o.cluster != NULL ? o.cluster : "anywhere",
                                  .node_id = o.node_id,
                                  .creds_file = o.nats_creds,
                                  .ca_file = o.nats_ca,
                                  .secret = secret,
                                  .secret_len = secret_len,
                                  .registry = reg,
                                  .history = history,
                                  .desk = desk,
                                  .operators = operators,
                                  .store_kind = backend,
                                  .request_ms = o.webhook_timeout_ms + 5000};
        if (aw_cluster_start(&cluster, &cc) != 0)
            return 2;
        sc.cluster = cluster;
        sc.reuse_port = o.reuse_port;
        /* before any session (none exists until the server listens), but
         * after the workers started: published with a release store */
        chat.fence_data = cluster;
        __atomic_store_n(&chat.fence, aw_cluster_fence, __ATOMIC_RELEASE);
    }
    aw_server_t *srv;
    if (aw_server_start(&srv, &sc) != 0)
        return 1;
    aw_log(AW_LOG_NOTICE, "listening",
           "anywhere %s listening on %s://%s:%d/ (bot %s, workers %u, io-threads %u)", AW_VERSION,
           o.tls_cert != NULL ? "https" : "http", o.host, aw_server_port(srv), aw_bot_name(bot), o.workers,
           o.io_threads);
    if (sc.admin_host != NULL) {
        /* after the line above, which tools read the main port from */
        int v6 = strchr(o.admin_host, ':') != NULL;
        aw_log(AW_LOG_NOTICE, "admin_listening",
               "admin listening on http://%s%s%s:%d/ (GET /healthz and /metrics only)", v6 ? "[" : "",
               o.admin_host, v6 ? "]" : "", aw_server_admin_port(srv));
    }

    int sig;
    sigwait(&stop, &sig);
    aw_log(AW_LOG_INFO, "stopping", "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    aw_server_stop_accepting(srv);
    if (cluster != NULL)
        aw_cluster_leave(cluster); /* the others stop sending this node users */
    aw_registry_shutdown(reg);     /* turns in flight finish without their pauses */
    finish_turns(rt, history, bridge, 5000);
    if (bridge != NULL)
        stop_bridge(bridge);
    aw_runtime_stop(rt, 1);
    aw_server_shutdown(srv, 3000);
    /* every record of the turns above: what the store does not take in twice
     * its timeout goes to the journal */
    unsigned int store_ms = o.store_timeout_ms != 0 ? o.store_timeout_ms : 5000;
    size_t lost = aw_history_stop(history, store_ms < 500 ? 1000 : 2 * store_ms);
    if (cluster != NULL)
        aw_cluster_stop(cluster); /* after the history: it may still answer another node's read */
    aw_registry_destroy(reg);
    aw_runtime_destroy(rt);
    aw_server_destroy(srv);
    aw_desk_destroy(desk);
    aw_operators_free(operators);
    aw_bot_free(bot);
    aw_log(AW_LOG_INFO, "stopped", "stopped");
    return lost == 0 ? 0 : 1;
}
