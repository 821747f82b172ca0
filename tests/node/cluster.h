/* Test support for node integration tests: a counter state machine (JRaft's
 * counter example: every entry adds a little-endian u64 to a sum) and a
 * cluster of real nodes on loopback in one process, each with its own loop.
 */
#ifndef RAFTKIT_TESTS_NODE_CLUSTER_H
#define RAFTKIT_TESTS_NODE_CLUSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftkit/node.h"

#define TC_MAX 8

typedef struct tc_counter {
    rk_state_machine_t sm;
    atomic_uint_fast64_t sum;
    atomic_uint_fast64_t applied; /* entries applied */
    atomic_uint_fast64_t last_index;
    atomic_int leader_starts, leader_stops, shutdowns, loads, saves, errors;
    atomic_int start_following;
    uint64_t apply_delay_us; /* slow state machine */
} tc_counter_t;

void tc_counter_init(tc_counter_t *c);

/* A task whose closure records its outcome. */
typedef struct tc_req {
    rk_closure_t closure;
    atomic_int runs;
    atomic_int code;
} tc_req_t;

void tc_req_init(tc_req_t *r);

typedef struct tc_node {
    rk_peer_id_t id;
    char dir[256];
    tc_counter_t fsm;
    rk_group_service_t *svc;
    rk_node_t *node;
    rk_server_t *server; /* when shared */
} tc_node_t;

typedef struct tc_cluster {
    int n;
    char group[64];
    char root[200];
    tc_node_t nodes[TC_MAX];
    rk_configuration_t conf;
    rk_node_options_t base_opts;
} tc_cluster_t;

/* Free loopback ports, n dirs under a fresh temporary root, conf of the
 * first n_voters nodes. opts (may be NULL) is the template for every node. */
void tc_cluster_init(tc_cluster_t *c, const char *group, int n, int n_voters,
                     const rk_node_options_t *opts);
/* Starts node i (conf = the cluster's unless empty_conf). Returns 0 or error. */
int tc_start(tc_cluster_t *c, int i, bool empty_conf);
void tc_stop(tc_cluster_t *c, int i);
void tc_cluster_stop_all(tc_cluster_t *c);
void tc_cluster_destroy(tc_cluster_t *c); /* stops and removes the directories */

/* Index of the leader among running nodes, waiting up to ms; -1 if none. */
int tc_wait_leader(tc_cluster_t *c, int ms);
/* Waits until cond(arg) is true or ms pass; returns cond's last value. */
bool tc_wait(bool (*cond)(void *), void *arg, int ms);
/* The node's clock: its core's tick count, read on its loop thread (0
 * before the core exists; aborts when the loop no longer takes calls). */
uint64_t tc_node_ticks(rk_node_t *n);
/* Waits until every running node has applied >= index. */
bool tc_wait_applied(tc_cluster_t *c, int64_t index, int ms);

/* Applies value with req's closure on node i; returns rk_node_apply's rc. */
int tc_apply(tc_cluster_t *c, int i, uint64_t value, tc_req_t *req, int64_t expected_term);
/* Applies count tasks of value 1 on the leader and waits for their closures;
 * returns how many succeeded. */
int tc_apply_many(tc_cluster_t *c, int leader, int count);

void tc_msleep(int ms);

#endif
