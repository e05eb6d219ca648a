/*
 * The load tool's latency histogram (hist.h). Bucket i < 2^(SUB_BITS+1)
 * holds exactly the value i; above, a value v with e = floor(log2 v) −
 * SUB_BITS lands in bucket (e << SUB_BITS) + (v >> e), so each power of two
 * is cut into 2^SUB_BITS equal buckets.
 */
#include "bench/hist.h"

#define SUB_COUNT (1u << (AW_HIST_SUB_BITS + 1))

static unsigned int bucket_of(uint64_t v)
{
    if (v < SUB_COUNT)
        return (unsigned int)v;
    unsigned int e = 63 - (unsigned int)__builtin_clzll(v) - AW_HIST_SUB_BITS;
    if (e > AW_HIST_MAX_EXP)
        return AW_HIST_BUCKETS - 1;
    return (e << AW_HIST_SUB_BITS) + (unsigned int)(v >> e);
}

static uint64_t highest_of(unsigned int i)
{
    if (i < SUB_COUNT)
        return i;
    unsigned int e = (i >> AW_HIST_SUB_BITS) - 1;
    uint64_t sub = i - ((uint64_t)e << AW_HIST_SUB_BITS);
    return (sub << e) + ((uint64_t)1 << e) - 1;
}

void aw_hist_record(aw_hist_t *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->total++;
    if (value > h->max)
        h->max = value;
}

void aw_hist_merge(aw_hist_t *dst, const aw_hist_t *src)
{
    for (unsigned int i = 0; i < AW_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t aw_hist_percentile(const aw_hist_t *h, double pct)
{
    if (h->total == 0)
        return 0;
    uint64_t want = (uint64_t)((pct / 100.0) * (double)h->total + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned int i = 0; i < AW_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            uint64_t v = highest_of(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
