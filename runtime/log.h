/*
 * Logging: one line per notable event on stderr, as text or as JSON (one
 * object per line, for log collectors). A line is written with one write(2),
 * so lines from different threads never interleave. Chat message text is
 * never logged.
 */
#ifndef AW_RUNTIME_LOG_H
#define AW_RUNTIME_LOG_H

/* AW_LOG_NOTICE is written at every level (shown as info): where the server
 * listens, which tools and tests wait for. */
enum { AW_LOG_NOTICE = -1, AW_LOG_ERROR, AW_LOG_WARN, AW_LOG_INFO, AW_LOG_DEBUG };

/* Sets the level (lines above it are dropped) and the format (json: 1).
 * Main thread, before other threads start. */
void aw_log_setup(int level, int json);

/* Parses "error", "warn", "info" or "debug"; -1 for anything else. */
int aw_log_level_from_name(const char *name);

/* Whether lines of `level` are written. Any thread. */
int aw_log_enabled(int level);

/* Writes one line: `event` is a short stable name ("store_down"), the rest a
 * sentence for a person. Any thread. */
void aw_log(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
