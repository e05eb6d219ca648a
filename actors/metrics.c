/*
 * The counters of metrics.h and their Prometheus text form.
 */
#include "actors/metrics.h"

#include <stdio.h>
#include <string.h>
#include "actors/protocol.h"
#include "runtime/buf.h"
#include "runtime/error.h"

aw_metrics_t aw_metrics;

static const uint64_t bounds_ms[] = {1, 2, 5, 10, 50, 100, 1000};

void aw_metrics_count_error(int err)
{
    int i = err - AW_E__BASE - 1;
    if (i >= 0 && i < (int)(sizeof(aw_metrics.errors) / sizeof(aw_metrics.errors[0])))
        __atomic_add_fetch(&aw_metrics.errors[i], 1, __ATOMIC_RELAXED);
}

void aw_metrics_store_write(uint64_t ms, uint64_t records)
{
    size_t b = 0;
    while (b < sizeof(bounds_ms) / sizeof(bounds_ms[0]) && ms > bounds_ms[b])
        b++;
    AW_METRIC_INC(store_write_ms[b]);
    AW_METRIC_ADD(store_write_ms_sum, ms);
    AW_METRIC_ADD(batch_records_sum, records);
}

static uint64_t get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void aw_metrics_line(aw_bytes_t *out, const char *name, const char *type, const char *help, uint64_t value)
{
    aw_bytes_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                     (unsigned long long)value);
}

static void channels(aw_bytes_t *out, const char *name, const char *help, const uint64_t *v)
{
    static const char *const names[] = {"websocket", "webhook", "api"}; /* by aw_channel_t */
    _Static_assert(sizeof(names) / sizeof(names[0]) == AW_CHANNEL_N, "a name for every channel");
    aw_bytes_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < AW_CHANNEL_N; i++)
        aw_bytes_appendf(out, "%s{channel=\"%s\"} %llu\n", name, names[i], (unsigned long long)get(&v[i]));
}

static const uint64_t first_answer_bounds_s[7] = {5, 15, 30, 60, 120, 300, 900};

/* The header and the 8 cumulative buckets of histogram `name` (7 bounds and
 * +Inf); returns the count. */
static uint64_t buckets(aw_bytes_t *out, const char *name, const char *help, const uint64_t bounds[7],
                        const uint64_t counts[8])
{
    aw_bytes_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t b = 0; b < 8; b++) {
        cum += get(&counts[b]);
        if (b < 7)
            aw_bytes_appendf(out, "%s_bucket{le=\"%llu\"} %llu\n", name, (unsigned long long)bounds[b],
                             (unsigned long long)cum);
        else
            aw_bytes_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    return cum;
}

void aw_metrics_first_answer(uint64_t ms)
{
    size_t b = 0;
    while (b < 7 && ms > first_answer_bounds_s[b] * 1000)
        b++;
    AW_METRIC_INC(first_answer_s[b]);
    AW_METRIC_ADD(first_answer_ms_sum, ms);
}

/* The handoff counters and the wait for an operator (the gauges of waiting
 * and owned conversations are the desk's: transport/http.c). */
static void write_handoffs(aw_bytes_t *out)
{
    aw_metrics_line(out, "anywhere_handoffs_requested_total", "counter",
                    "Conversations handed over to a person (by the bot or POST /api/handoff).",
                    get(&aw_metrics.handoffs_requested));
    aw_metrics_line(out, "anywhere_handoffs_taken_total", "counter",
                    "Conversations taken over by an operator.", get(&aw_metrics.handoffs_taken));
    aw_metrics_line(out, "anywhere_handoffs_released_total", "counter",
                    "Conversations handed back to the bot.", get(&aw_metrics.handoffs_released));
    uint64_t cum = buckets(out, "anywhere_handoff_first_answer_seconds",
                           "How long a user waited, from asking for a person to an operator's first message.",
                           first_answer_bounds_s, aw_metrics.first_answer_s);
    uint64_t sum_ms = get(&aw_metrics.first_answer_ms_sum);
    aw_bytes_appendf(out,
                     "anywhere_handoff_first_answer_seconds_sum %llu.%03llu\n"
                     "anywhere_handoff_first_answer_seconds_count %llu\n",
                     (unsigned long long)(sum_ms / 1000), (unsigned long long)(sum_ms % 1000),
                     (unsigned long long)cum);
}

void aw_metrics_write(aw_bytes_t *out)
{
    channels(out, "anywhere_messages_in_total", "Client messages accepted.", aw_metrics.messages_in);
    channels(out, "anywhere_messages_out_total", "Bot messages sent.", aw_metrics.messages_out);
    aw_metrics_line(out, "anywhere_frames_out_total", "counter", "Frames handed to sockets.",
                    get(&aw_metrics.frames_out));
    aw_metrics_line(out, "anywhere_duplicates_total", "counter",
                    "Client messages whose mid was taken before: acknowledged again, not run twice.",
                    get(&aw_metrics.duplicates));
    aw_bytes_appendf(out, "# HELP anywhere_errors_total Refused input and failed requests, by code.\n"
                          "# TYPE anywhere_errors_total counter\n");
    static const int codes[] = {
#define AW__METRICS_CODE(name, code, status, message) AW_E##name,
        AW_PROTOCOL_ERROR_MAP(AW__METRICS_CODE)
#undef AW__METRICS_CODE
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        aw_bytes_appendf(out, "anywhere_errors_total{code=\"%s\"} %llu\n", aw_protocol_error(codes[i]).code,
                         (unsigned long long)get(&aw_metrics.errors[codes[i] - AW_E__BASE - 1]));
    aw_metrics_line(out, "anywhere_rate_limited_total", "counter", "Messages dropped by the rate limit.",
                    get(&aw_metrics.errors[AW_ERATELIMITED - AW_E__BASE - 1]));
    aw_metrics_line(out, "anywhere_connections_accepted_total", "counter",
                    "TCP connections accepted on the main address.", get(&aw_metrics.connections_accepted));
    aw_metrics_line(out, "anywhere_connections_refused_total", "counter",
                    "Connections to the main address refused by the connection caps.",
                    get(&aw_metrics.connections_refused));
    aw_metrics_line(out, "anywhere_admin_connections_refused_total", "counter",
                    "Connections refused by the admin listener's own cap.",
                    get(&aw_metrics.admin_connections_refused));
    aw_metrics_line(out, "anywhere_sockets_closed_slow_total", "counter",
                    "Websockets closed for a full outbox (slow readers).",
                    get(&aw_metrics.sockets_closed_slow));
    aw_metrics_line(out, "anywhere_sockets_closed_idle_total", "counter",
                    "Websockets closed for not answering pings.", get(&aw_metrics.sockets_closed_idle));
    static const char *const reasons[AW_ABUSE_N] = {"unread_control", "fragments", "stalled"};
    aw_bytes_appendf(
        out, "# HELP anywhere_sockets_closed_abuse_total Websockets closed with 1008 for what their client "
             "sent, by reason.\n"
             "# TYPE anywhere_sockets_closed_abuse_total counter\n");
    for (int i = 0; i < AW_ABUSE_N; i++)
        aw_bytes_appendf(out, "anywhere_sockets_closed_abuse_total{reason=\"%s\"} %llu\n", reasons[i],
                         (unsigned long long)get(&aw_metrics.sockets_closed_abuse[i]));
    uint64_t cum = buckets(out, "anywhere_store_write_ms", "Time of one history batch write.", bounds_ms,
                           aw_metrics.store_write_ms);
    aw_bytes_appendf(out, "anywhere_store_write_ms_sum %llu\nanywhere_store_write_ms_count %llu\n",
                     (unsigned long long)get(&aw_metrics.store_write_ms_sum), (unsigned long long)cum);
    aw_metrics_line(out, "anywhere_history_batch_records_total", "counter",
                    "Records written in history batches (divide by the write count for the mean batch size).",
                    get(&aw_metrics.batch_records_sum));
    write_handoffs(out);
}
