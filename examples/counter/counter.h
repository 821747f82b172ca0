/* The counter example's wire format (JRaft's counter): one application
 * method, fixed-size little-endian messages, no protobuf, to show the raw
 * bytes path of rpc.h.
 *
 *   request   u8 op (1 = incrementAndGet, 2 = get), i64 delta
 *   response  i32 code (0 or RK_E*), i64 value, then the leader's peer id
 *             (text, may be empty) when code is RK_ENOTLEADER
 */
#ifndef EXAMPLES_COUNTER_H
#define EXAMPLES_COUNTER_H

#include <stdint.h>
#include <string.h>

#include "raftkit/rpc.h"

#define COUNTER_METHOD   (RK_RPC_APP_FIRST + 2)
#define COUNTER_OP_INCR  1
#define COUNTER_OP_GET   2
#define COUNTER_REQ_LEN  9
#define COUNTER_RESP_MIN 12

static inline void counter_put64(uint8_t *p, int64_t v)
{
    memcpy(p, &v, 8);
}

static inline int64_t counter_get64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

#endif /* EXAMPLES_COUNTER_H */
