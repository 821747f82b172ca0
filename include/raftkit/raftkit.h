/* raftkit: everything an application includes. */
#ifndef RAFTKIT_H
#define RAFTKIT_H

#include "raftkit/log.h"
#include "raftkit/peer.h"
#include "raftkit/status.h"

#endif /* RAFTKIT_H */
