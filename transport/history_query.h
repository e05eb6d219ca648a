/*
 * What the history routes read: POST /botkit/history's JSON body and GET
 * /api/history's query string, parsed and checked into one request. HTTP
 * belongs to the transport; the history actor gets only the user, the bound
 * and the limit (actors/history.h). Pure functions: any thread.
 */
#ifndef AW_TRANSPORT_HISTORY_QUERY_H
#define AW_TRANSPORT_HISTORY_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include "actors/message.h"

/* A history request: POST /botkit/history's body or GET /api/history's query
 * string, after validation. */
typedef struct aw_history_query {
    char user[AW_MAX_USER_LEN + 1];
    size_t user_len;
    char token[AW_MAX_USER_LEN + 1]; /* "" when absent */
    int64_t before;                  /* INT64_MAX when absent */
    int limit;                       /* 1..100; 10 when absent */
} aw_history_query_t;

/* Parses {"user": "...", "token": "...", "limit": N} (other fields ignored).
 * Returns 0, AW_EBADJSON, or AW_EBADMSG for a missing user or a field of the
 * wrong type or range. */
int aw_history_query_from_json(aw_history_query_t *q, const char *json, size_t len);

/* Parses a query string "user=...&before=N&limit=N" (percent-encoded, any
 * order; unknown keys ignored). Same returns as above. */
int aw_history_query_from_url(aw_history_query_t *q, const char *query, size_t len);

#endif
