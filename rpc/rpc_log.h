/* Logging inside the RPC module: lines go through the library logger
 * (raftkit/log.h) with the remote address as the peer field; events a remote
 * can trigger in a loop go through a rate limiter first.
 */
#ifndef RPC_LOG_H
#define RPC_LOG_H

#include <stdint.h>

#include "raftkit/log.h"

#define RPC_LOG(level, peer, ...) RK_LOG((level), NULL, (peer), "rpc: " __VA_ARGS__)

/* At most one line per period for a class of events; the next allowed line
 * reports how many were suppressed. Loop thread of the owner only. */
typedef struct rpc_ratelimit {
    uint64_t last_ms;
    uint64_t suppressed;
    uint32_t period_ms; /* 0: 1000 */
} rpc_ratelimit_t;

/* Returns 1 when a line may be written now (*suppressed: lines dropped since
 * the last allowed one), else 0. */
int rpc_ratelimit_allow(rpc_ratelimit_t *rl, uint64_t now_ms, uint64_t *suppressed);

#endif /* RPC_LOG_H */
