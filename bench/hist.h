/*
 * A latency histogram in the manner of HdrHistogram: values (microseconds)
 * fall into buckets whose width grows with the value, so that every recorded
 * value is kept to about three significant digits (0.1 %) from 1 µs to hours,
 * in a fixed array that is cheap to record into, merge and send through a
 * pipe. Used by the load tool; not thread-safe (one per worker process).
 */
#ifndef AW_BENCH_HIST_H
#define AW_BENCH_HIST_H

#include <stdint.h>

#define AW_HIST_SUB_BITS 10 /* 1024 sub-buckets per power of two */
#define AW_HIST_MAX_EXP 26  /* values clamp at 2^37 µs */
#define AW_HIST_BUCKETS ((AW_HIST_MAX_EXP + 2) << AW_HIST_SUB_BITS)

typedef struct aw_hist {
    uint64_t total; /* values recorded */
    uint64_t max;   /* largest value recorded, exactly */
    uint64_t counts[AW_HIST_BUCKETS];
} aw_hist_t;

/* Records one value. */
void aw_hist_record(aw_hist_t *h, uint64_t value);

/* Adds every count of `src` into `dst`. */
void aw_hist_merge(aw_hist_t *dst, const aw_hist_t *src);

/* The value below which `pct` percent (0–100) of the recorded values fall,
 * as the highest value of its bucket (as HdrHistogram reports it); 0 when
 * nothing was recorded. */
uint64_t aw_hist_percentile(const aw_hist_t *h, double pct);

#endif
