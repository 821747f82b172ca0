/* raftkit: everything an application includes, in one header. Each header
 * below can also be included on its own. */
#ifndef RAFTKIT_H
#define RAFTKIT_H

#include "raftkit/client.h"
#include "raftkit/closure.h"
#include "raftkit/log.h"
#include "raftkit/metrics.h"
#include "raftkit/node.h"
#include "raftkit/peer.h"
#include "raftkit/rpc.h"
#include "raftkit/state_machine.h"
#include "raftkit/status.h"

#endif /* RAFTKIT_H */
