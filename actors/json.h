/*
 * JSON for the chat, on yajl: two readers of outside JSON and a writer. The
 * arena reader builds yajl's own tree (yajl_val) in one arena per document,
 * for the hot path: every client message. aw_json_parse_tree is yajl's tree
 * parser behind a depth check, for the other bodies (a bot's answer, a push,
 * a history request, a script). Both are bounded in depth, because yajl's
 * tree parser and its free recurse once per level with no limit of their
 * own. The writer writes frames and records straight into the aw_buf_t that
 * carries them, byte for byte what yajl_gen would; its primitives are shared
 * by the files of actors/ through actors/internal.h, and what other folders
 * need of it is below. Pure functions: any thread.
 */
#ifndef AW_ACTORS_JSON_H
#define AW_ACTORS_JSON_H

#include <stddef.h>
#include <yajl/yajl_tree.h>
#include "runtime/buf.h"

#define AW_MAX_DEPTH 32 /* nesting of arrays and objects the readers accept */

/* Where the arena reader's tree lives. */
typedef struct aw_json_arena aw_json_arena_t;

/* Parses `len` bytes into a yajl tree in a new arena (`*arena`, freed with
 * aw_json_arena_free; never yajl_tree_free the tree), accepting exactly what
 * yajl_tree_parse accepts: comments allowed, UTF-8 checked, escapes decoded,
 * nothing after the value. Returns the root, or NULL with nothing to free for
 * an empty input, a NUL byte, nesting deeper than AW_MAX_DEPTH, or anything
 * yajl refuses. yajl's own bookkeeping uses a per-thread scratch area. */
yajl_val aw_json_parse_arena(const char *json, size_t len, aw_json_arena_t **arena);

/* Frees an arena and the tree in it; NULL is fine. */
void aw_json_arena_free(aw_json_arena_t *arena);

/* Parses a body of outside JSON into a yajl tree (the caller frees it with
 * yajl_tree_free), or returns NULL for an empty body, a NUL byte, nesting
 * deeper than AW_MAX_DEPTH, or anything yajl refuses. */
yajl_val aw_json_parse_tree(const char *json, size_t len);

/* Returns non-zero when arrays and objects in `s` nest deeper than `max`
 * (strings and comments skipped). Check before handing outside JSON to
 * yajl's tree parser, which recurses without a limit. */
int aw_json_too_deep(const char *s, size_t len, int max);

/* The string member `key` of the object `obj` (the first, if given twice), or
 * NULL when absent or null; sets *bad to 1 when it has another type. */
const char *aw_json_get_string(yajl_val obj, const char *key, int *bad);

/* The first key of the object `obj` that is not in `known` (NULL-terminated),
 * or NULL when it has none. */
const char *aw_json_unknown_key(yajl_val obj, const char *const *known);

/* Writes any yajl value as JSON into a new buffer (the caller releases it),
 * exactly as yajl_gen would without beautifying. Depth is bounded by the
 * readers' limit. */
aw_buf_t *aw_json_write(yajl_val v);

/* Writes `len` bytes of valid UTF-8 as a JSON string, quotes included. */
aw_buf_t *aw_json_string(const char *s, size_t len);

#endif
