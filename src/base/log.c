/* The leveled logger behind include/raftkit/log.h. The level is an atomic so
 * the RK_LOG macros can test it without a lock; emitting a line takes one
 * mutex so lines from different threads never interleave. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "raftkit/log.h"
#include "raftkit/status.h"

#define LEVEL_UNSET (-1)

static atomic_int current_level = LEVEL_UNSET;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static rk_log_sink_fn sink_fn;
static void *sink_arg;

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "off"};

const char *rk_log_level_name(rk_log_level_t level)
{
    if ((unsigned)level > RK_LOG_OFF)
        return "?";
    return level_names[level];
}

int rk_log_level_parse(const char *s, rk_log_level_t *out)
{
    if (s == NULL)
        return RK_EINVAL;
    for (int i = 0; i <= RK_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (rk_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = RK_LOG_WARN;
        return 0;
    }
    return RK_EINVAL;
}

rk_log_level_t rk_log_get_level(void)
{
    int lvl = atomic_load_explicit(&current_level, memory_order_relaxed);
    if (lvl != LEVEL_UNSET)
        return (rk_log_level_t)lvl;
    rk_log_level_t parsed = RK_LOG_INFO;
    const char *env = getenv("RAFTKIT_LOG");
    if (env != NULL && rk_log_level_parse(env, &parsed) != 0) {
        fprintf(stderr, "raftkit: ignoring RAFTKIT_LOG=%s (want trace|debug|info|warn|error|off)\n",
                env);
        parsed = RK_LOG_INFO;
    }
    /* Only the first caller's result sticks; a racing set_level wins. */
    int expected = LEVEL_UNSET;
    atomic_compare_exchange_strong(&current_level, &expected, (int)parsed);
    return (rk_log_level_t)atomic_load(&current_level);
}

void rk_log_set_level(rk_log_level_t level)
{
    if ((unsigned)level > RK_LOG_OFF)
        return;
    atomic_store(&current_level, (int)level);
}

void rk_log_set_sink(rk_log_sink_fn fn, void *arg)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_arg = arg;
    pthread_mutex_unlock(&sink_lock);
}

void rk_log_write(rk_log_level_t level, const char *group, const char *peer, const char *fmt, ...)
{
    static const char *const tags[] = {"TRACE", "DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if ((unsigned)level >= RK_LOG_OFF || level < rk_log_get_level())
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s %s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level], group ? group : "-", peer ? peer : "-");
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&sink_lock);
    if (sink_fn != NULL)
        sink_fn(sink_arg, level, line);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&sink_lock);
}
