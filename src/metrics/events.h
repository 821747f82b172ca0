/* The listener thread of a node: a FIFO of state-change events delivered to
 * registered rk_node_listener_t's, one at a time, off the raft loop. */
#ifndef RAFTKIT_METRICS_EVENTS_H
#define RAFTKIT_METRICS_EVENTS_H

#include <stddef.h>

#include "raftkit/metrics.h"

typedef struct metrics_events metrics_events_t;

/* Creates the queue and starts its thread; a listener registered before
 * any post starts from st (its RK_EVENT_CURRENT). NULL on failure. */
metrics_events_t *metrics_events_new(const rk_node_status_t *st);

/* Delivers what is queued, stops the thread, frees e. NULL is fine. Not
 * from a listener. */
void metrics_events_free(metrics_events_t *e);

/* What differs between events of one publication; the rest (term, leader,
 * configuration) comes from the status. */
typedef struct metrics_event_lite {
    rk_node_event_type_t type;
    rk_node_state_t state, prev_state;
    rk_peer_id_t peer;
} metrics_event_lite_t;

/* Queues n events, completed from st, for every listener registered now,
 * and makes st the state a listener registered later starts from (its
 * RK_EVENT_CURRENT). Copies everything; takes the queue lock briefly; never
 * waits for listeners. Returns RK_ENOMEM (events dropped) or 0. Any thread,
 * but events posted from different threads have no defined order. */
int metrics_events_post(metrics_events_t *e, const metrics_event_lite_t *evs, size_t n,
                        const rk_node_status_t *st);

/* rk_node_add_listener; also RK_ETOOBIG past 64 listeners. */
int metrics_events_add(metrics_events_t *e, rk_node_listener_t *l);
int metrics_events_remove(metrics_events_t *e, rk_node_listener_t *l);

/* Waits until everything queued before the call was delivered. */
void metrics_events_flush_queue(metrics_events_t *e);

#endif /* RAFTKIT_METRICS_EVENTS_H */
