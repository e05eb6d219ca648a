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
#include "runtime/bytes.h"

enum { AW_CHANNEL_WEBSOCKET, AW_CHANNEL_WEBHOOK, AW_CHANNEL_API, AW_CHANNEL_N };

typedef struct aw_metrics {
    uint64_t messages_in[AW_CHANNEL_N];  /* client messages accepted */
    uint64_t messages_out[AW_CHANNEL_N]; /* bot messages sent, by the channel of the turn */
    uint64_t frames_out;                 /* frames handed to sockets (a message to 3 tabs counts 3) */
    uint64_t errors[32];                 /* refused input and failed requests, by AW_E... code */
    uint64_t connections_accepted;
    uint64_t connections_refused;       /* over --max-connections or --max-connections-per-ip */
    uint64_t admin_connections_refused; /* over the admin listener's own cap */
    uint64_t sockets_closed_slow;       /* closed for an outbox over --max-outbox */
    uint64_t sockets_closed_idle;       /* closed for not answering pings */
    uint64_t store_write_ms[8]; /* histogram of store batch write times: <=1,2,5,10,50,100,1000,+Inf */
    uint64_t store_write_ms_sum;
    uint64_t batch_records_sum; /* records written in all batches */
} aw_metrics_t;

extern aw_metrics_t aw_metrics;

#define AW_METRIC_ADD(field, n) __atomic_add_fetch(&aw_metrics.field, (n), __ATOMIC_RELAXED)
#define AW_METRIC_INC(field) AW_METRIC_ADD(field, 1)

/* Counts refused input by its AW_E... code. Any thread. */
void aw_metrics_count_error(int err);

/* Records one store write that took `ms` for `records` records. */
void aw_metrics_store_write(uint64_t ms, uint64_t records);

/* Appends the counters in Prometheus' text format to `out`. */
void aw_metrics_write(aw_bytes_t *out);

/* Appends one line "name value\n" with a HELP and TYPE header. */
void aw_metrics_line(aw_bytes_t *out, const char *name, const char *type, const char *help, uint64_t value);

#endif
