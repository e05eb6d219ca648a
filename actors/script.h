/*
 * Script bots: a bot declared in a JSON file (--script FILE) instead of C.
 * The file is read and checked completely at start, and compiled into
 * ordinary skills (bot.h), so a script bot behaves exactly like a C one on
 * every channel. The format is described in the README; examples/ has
 * complete scripts.
 */
#ifndef AW_ACTORS_SCRIPT_H
#define AW_ACTORS_SCRIPT_H

#include <stddef.h>
#include "actors/bot.h"

/* Compiles the script in `json` (`len` bytes) into a new bot in `*bot` (the
 * caller frees it with aw_bot_free), and returns 0. `name` is used in
 * messages. On error returns AW_EINVAL, leaves `*bot` alone and writes one
 * line to `err`: "NAME: at PLACE: what is wrong", where PLACE is "line L,
 * column C" for malformed JSON or a path like "triggers[2].regex" for a wrong
 * field. Main thread, at start. */
int aw_script_compile(aw_bot_t **bot, const char *name, const char *json, size_t len, char *err,
                      size_t err_len);

/* Reads `path` (at most 4 MiB) and compiles it; returns as above, or AW_EIO
 * when the file cannot be read and AW_ETOOLARGE when it is over 4 MiB, with
 * the line in `err` naming the file. */
int aw_script_load(aw_bot_t **bot, const char *path, char *err, size_t err_len);

#endif
