/*
 * The history journal: the records the store did not take before the server
 * stopped (it was down or refused writes past the stop's deadline), kept in
 * one file of the data folder and written to the store at the next start
 * (history.c). The same format keeps the seq reservations made while the
 * store was down (history.c, "local reservations"). The file is replaced whole: written beside, synced,
 * renamed over, and the folder synced, so a reader finds the previous journal or the new one, never part of
 * one. Pure functions and file I/O: any thread.
 *
 * The format, integers little-endian:
 *   "AWJ1", u32 count, then `count` records of
 *   u16 user_len, u32 json_len, i64 seq, i64 sub, i64 ts_ms, u8 direction,
 *   u8 flags, the user id, the JSON;
 *   and "END1" last.
 */
#ifndef AW_ACTORS_JOURNAL_H
#define AW_ACTORS_JOURNAL_H

#include <stddef.h>
#include "store/store.h"

#define AW_JOURNAL_MAX_JSON (64u << 20) /* bytes of one record's JSON at most */

/* Receives one record of a journal; pointers are valid during the call only. */
typedef void (*aw_journal_record_cb)(const aw_record_t *record, void *data);

/* Checks a whole journal image first, then calls `cb` for each record in
 * order; a journal that is not sound in every part (a bad magic, count or
 * end mark, a length past the end, a user id of 0 or over 256 bytes, an
 * unknown direction or flag, a negative key but a reservation's sub of -1)
 * calls nothing and returns AW_EBADMSG.
 * Returns 0 or AW_EBADMSG; `*count` gets the number of records. */
int aw_journal_parse(const char *buf, size_t len, aw_journal_record_cb cb, void *data, size_t *count);

/* Writes `n` records to `path`, replacing it whole (see above). Returns 0,
 * or AW_EIO with the reason logged; `path` is then as it was. */
int aw_journal_write(const char *path, const aw_record_t *records, size_t n);

/* Reads the whole file at `path` into `*buf` (malloc'd; the caller frees
 * it). Returns 0, AW_ENOTFOUND when there is no such file, or AW_EIO. */
int aw_journal_load(const char *path, char **buf, size_t *len);

#endif
