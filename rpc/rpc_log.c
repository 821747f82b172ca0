/* The rate limiter for RPC log lines that remotes can trigger repeatedly. */
#include "rpc/rpc_log.h"

int rpc_ratelimit_allow(rpc_ratelimit_t *rl, uint64_t now_ms, uint64_t *suppressed)
{
    uint32_t period = rl->period_ms != 0 ? rl->period_ms : 1000;

    if (rl->last_ms != 0 && now_ms - rl->last_ms < period) {
        rl->suppressed++;
        return 0;
    }
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    rl->last_ms = now_ms != 0 ? now_ms : 1;
    return 1;
}
