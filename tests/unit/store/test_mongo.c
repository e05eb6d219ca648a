/*
 * What only the MongoDB backend does, at the wire level, against MongoDB's
 * own mock server (mongo_mock.py scripted starts it and runs this program
 * with its URI; conformance.c holds the backend to the contract every
 * backend keeps): the mock checks the index, the documents, the queries and
 * the write concern the store sends, and scripts the answers, the server's
 * failures included; this side checks what the store makes of them. Both
 * must pass.
 */
#include <string.h>
#include "runtime/error.h"
#include "store/store.h"
#include "tests/check.h"

static void count(const aw_record_t *r, void *data)
{
    (*(int *)data)++;
}

static aw_record_t rec(int64_t seq, int64_t sub, const char *json)
{
    return (aw_record_t){.user = "u\"1",
                         .user_len = 3,
                         .seq = seq,
                         .sub = sub,
                         .ts_ms = 1700000000123,
                         .direction = sub == 0 ? AW_RECORD_OUT : AW_RECORD_IN,
                         .json = json,
                         .json_len = strlen(json)};
}

int main(int argc, char **argv)
{
    aw_store_t *s;
    if (argc < 2)
        return 2;
    aw_store_options_t opts = {.timeout_ms = 3000}; /* the write concern by default: majority */
    CHECK(aw_store_open(&s, argv[1], &opts) == 0);  /* createIndexes */
    if (check_failures != 0)
        return 1;
    CHECK(strcmp(aw_store_backend(s), "mongodb") == 0);
    aw_record_t batch[3] = {rec(1, 0, "{\"type\":\"message\",\"text\":\"hi\",\"seq\":1}"),
                            rec(1, 1, "{\"type\":\"message_received\",\"text\":\"yo\",\"n\":12345678901}"),
                            rec(2, 0, "{\"type\":\"message\",\"text\":\"bye\",\"seq\":2}")};
    batch[1].flags = AW_RECORD_PROTECTED;     /* a field of its document; the others have none */
    CHECK(aw_store_append(s, batch, 3) == 0); /* one insert of three documents */

    int n = 0, more = -1;
    CHECK(aw_store_read(s, "u\"1", 3, INT64_MAX, INT64_MAX, 2, count, &n, &more) == 0);
    CHECK(n == 2 && more == 1); /* the mock answers three for limit 2 + 1 */

    CHECK(aw_store_append(s, batch, 1) == AW_EUNAVAILABLE); /* the mock: shutting down */
    CHECK(aw_store_append(s, batch, 1) == 0);               /* the retry */
    CHECK(aw_store_append(s, batch, 2) == 0);               /* the mock: all duplicates */
    CHECK(aw_store_append(s, batch, 2) == AW_ESTORE);       /* the mock: a real write error */
    aw_store_close(s);

    /* --write-concern 1, as main.c passes it: a param for this backend; one
     * for another backend is not this one's business */
    aw_store_param_t params[] = {{"mongodb", "w", "1"}, {"sqlite", "w", "whatever"}};
    opts.params = params;
    opts.n_params = 2;
    CHECK(aw_store_open(&s, argv[1], &opts) == 0);
    CHECK(aw_store_append(s, batch, 1) == 0); /* the mock: writeConcern {w: 1} */
    aw_store_close(s);
    /* a key it does not know is refused before anything is sent */
    aw_store_param_t typo = {"mongodb", "write_concern", "1"};
    opts.params = &typo;
    opts.n_params = 1;
    CHECK(aw_store_open(&s, argv[1], &opts) == AW_EINVAL);
    return check_exit("test_mongo");
}
