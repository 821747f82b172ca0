/* raftkit's leveled logger: one line per event with time, level, group, peer.
 *
 *   2026-11-22T13:50:01.123Z INFO  [counter 127.0.0.1:8081] became leader at term 3
 *
 * The level starts from the RAFTKIT_LOG environment variable (trace, debug,
 * info, warn, error, off; default info) and can be changed at any time with
 * rk_log_set_level(). Lines go to stderr unless a sink is installed. All
 * functions are thread-safe; a line is handed to the sink whole.
 */
#ifndef RAFTKIT_LOG_H
#define RAFTKIT_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef enum rk_log_level {
    RK_LOG_TRACE = 0,
    RK_LOG_DEBUG,
    RK_LOG_INFO,
    RK_LOG_WARN,
    RK_LOG_ERROR,
    RK_LOG_OFF
} rk_log_level_t;

/* Current level; the first call reads RAFTKIT_LOG. */
rk_log_level_t rk_log_get_level(void);
void rk_log_set_level(rk_log_level_t level);

/* "trace".."off" (case-insensitive) -> level. Returns 0 or RK_EINVAL. */
int rk_log_level_parse(const char *s, rk_log_level_t *out);
const char *rk_log_level_name(rk_log_level_t level);

/* A sink receives each formatted line (without the trailing newline). It is
 * called with an internal lock held, so lines never interleave; it must not
 * log itself. fn == NULL restores the stderr sink. */
typedef void (*rk_log_sink_fn)(void *arg, rk_log_level_t level, const char *line);
void rk_log_set_sink(rk_log_sink_fn fn, void *arg);

/* Formats and emits one line when level >= the current level. group and peer
 * may be NULL (printed as "-"). Prefer the RK_LOG* macros. */
void rk_log_write(rk_log_level_t level, const char *group, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define RK_LOG(level, group, peer, ...)                          \
    do {                                                         \
        if ((level) >= rk_log_get_level())                       \
            rk_log_write((level), (group), (peer), __VA_ARGS__); \
    } while (0)

#define RK_TRACE(g, p, ...) RK_LOG(RK_LOG_TRACE, g, p, __VA_ARGS__)
#define RK_DEBUG(g, p, ...) RK_LOG(RK_LOG_DEBUG, g, p, __VA_ARGS__)
#define RK_INFO(g, p, ...)  RK_LOG(RK_LOG_INFO, g, p, __VA_ARGS__)
#define RK_WARN(g, p, ...)  RK_LOG(RK_LOG_WARN, g, p, __VA_ARGS__)
#define RK_ERROR(g, p, ...) RK_LOG(RK_LOG_ERROR, g, p, __VA_ARGS__)

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_LOG_H */
