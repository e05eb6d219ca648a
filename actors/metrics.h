/*
 * Counters for GET /metrics: plain 64-bit counters bumped with relaxed atomics
 * from any thread (a scrape is a snapshot, not a consistent cut). Gauges that
 * belong to a component (open sockets, sessions, history queue) are read from
 * that component when the page is written.
 */
#ifndef AW_ACTORS_METRICS_H
#define AW_ACTORS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "actors/conn.h"
#include "runtime/bytes.h"

/* Why a websocket was closed with 1008 for what its client sent (the label
 * `reason` of anywhere_sockets_closed_abuse_total). */
enum {
    AW_ABUSE_CONTROL,   /* its control answers (pongs) went unread past --max-outbox */
    AW_ABUSE_FRAGMENTS, /* a message in more frames than the transport allows */
    AW_ABUSE_STALLED,   /* a message or frame left unfinished for --http-timeout */
    AW_ABUSE_N
};

typedef struct aw_metrics {
    uint64_t messages_in[AW_CHANNEL_N];  /* client messages accepted, by aw_channel_t */
    uint64_t messages_out[AW_CHANNEL_N]; /* bot messages sent, by aw_channel_out of the turn's */
    uint64_t frames_out;                 /* frames handed to sockets (a message to 3 tabs counts 3) */
    uint64_t duplicates; /* client messages whose `mid` was taken before: acknowledged, not run */
    uint64_t errors[32]; /* refused input and failed requests, by AW_E... code */
    uint64_t connections_accepted;
    uint64_t connections_refused;       /* over --max-connections or --max-connections-per-ip */
    uint64_t admin_connections_refused; /* over the admin listener's own cap */
    uint64_t sockets_closed_slow;       /* closed for an outbox over --max-outbox */
    uint64_t sockets_closed_idle;       /* closed for not answering pings */
    uint64_t
        sockets_closed_abuse[AW_ABUSE_N]; /* closed with 1008 for what the client sent, by AW_ABUSE_... */
    uint64_t store_write_ms[8]; /* histogram of store batch write times: <=1,2,5,10,50,100,1000,+Inf */
    uint64_t store_write_ms_sum;
    uint64_t batch_records_sum;  /* records written in all batches */
    uint64_t handoffs_requested; /* conversations the bot (or a backend) handed over to a person */
    uint64_t handoffs_taken;     /* taken over by an operator */
    uint64_t handoffs_released;  /* handed back to the bot */
    uint64_t first_answer_s[8];  /* histogram of the wait for an operator's first message, in seconds:
                                  * <=5,15,30,60,120,300,900,+Inf */
    uint64_t first_answer_ms_sum;
} aw_metrics_t;

extern aw_metrics_t aw_metrics;

#define AW_METRIC_ADD(field, n) __atomic_add_fetch(&aw_metrics.field, (n), __ATOMIC_RELAXED)
#define AW_METRIC_INC(field) AW_METRIC_ADD(field, 1)

/* Counts refused input by its AW_E... code. Any thread. */
void aw_metrics_count_error(int err);

/* Records one store write that took `ms` for `records` records. */
void aw_metrics_store_write(uint64_t ms, uint64_t records);

/* Records how long a user waited, from asking for a person to an
 * operator's first message. Any thread. */
void aw_metrics_first_answer(uint64_t ms);

/* Appends the counters in Prometheus' text format to `out`. */
void aw_metrics_write(aw_bytes_t *out);

/* Appends one line "name value\n" with a HELP and TYPE header. */
void aw_metrics_line(aw_bytes_t *out, const char *name, const char *type, const char *help, uint64_t value);

#endif
