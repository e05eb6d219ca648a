/*
 * Fuzz target for the history journal parser (actors/journal.c), which reads
 * a file of the data folder at start: whatever the bytes, parsing must not
 * crash, leak or hang; a refused image reports no record; an accepted one
 * reports exactly its count of records, each within the image and within the
 * bounds a record has, and a second parse agrees with the first.
 */
#include <stdint.h>
#include <stdlib.h>
#include "actors/journal.h"
#include "runtime/error.h"

typedef struct seen {
    const char *lo, *hi;
    size_t n;
} seen_t;

static void on_record(const aw_record_t *r, void *data)
{
    seen_t *s = data;
    s->n++;
    if (r->user_len == 0 || r->user_len > 256 || r->json_len == 0 || r->seq < 0 || r->sub < 0 ||
        (r->direction != AW_RECORD_IN && r->direction != AW_RECORD_OUT))
        abort();
    if (r->user < s->lo || r->json + r->json_len > s->hi || r->user + r->user_len != r->json)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    seen_t s = {p, p + size, 0};
    size_t count = 0, again = 0;
    int err = aw_journal_parse(p, size, on_record, &s, &count);
    if (err != 0 && (s.n != 0 || count != 0 || err != AW_EBADMSG))
        abort();
    if (err == 0 && (s.n != count || aw_journal_parse(p, size, NULL, NULL, &again) != 0 || again != count))
        abort();
    return 0;
}
