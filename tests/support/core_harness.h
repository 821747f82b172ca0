/* A small deterministic harness for the Raft core's scenario tests: N cores
 * with in-memory durable logs, a hand-driven network (messages queue up until
 * a test delivers or drops them) and hand-driven persistence (updates wait
 * until the test persists them, unless auto_persist is on). */
#ifndef RAFTKIT_TESTS_CORE_HARNESS_H
#define RAFTKIT_TESTS_CORE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/core/core.h"
#include "tools/common/mem_log.h"

#define H_MAX         7
#define H_PENDING_MAX 64

typedef struct h_node {
    core_t *core;
    rk_peer_id_t id;
    bool voter;   /* in the bootstrap configuration */
    bool learner; /* bootstrap learner */
    /* durable state */
    core_hard_state_t hs;
    core_snapshot_meta_t snap;
    mem_log_t log;
    /* updates drained but not yet persisted */
    core_update_t pending[H_PENDING_MAX];
    size_t n_pending;
    uint64_t applied;
    core_read_state_t reads[256];
    size_t n_reads;
    core_event_t events[512];
    size_t n_events;
    int fatal;
    bool down;
} h_node_t;

typedef struct h_net_msg {
    core_msg_t m;
    int from, to; /* node indexes */
} h_net_msg_t;

typedef struct h_cluster {
    h_node_t n[H_MAX];
    int count;
    h_net_msg_t *net;
    size_t n_net, cap_net;
    bool cut[H_MAX][H_MAX];
    bool auto_persist;
    core_options_t opts; /* template; self set per node */
    core_conf_t boot;    /* bootstrap configuration */
} h_cluster_t;

/* Options template with small timeouts: election 10, heartbeat 1. */
void h_default_opts(core_options_t *o);

/* n voters (nodes 0..n-1) plus `learners` learners after them. opts may be
 * NULL (defaults). auto_persist starts true. */
void h_init(h_cluster_t *cl, int voters, int learners, const core_options_t *opts);
void h_free(h_cluster_t *cl);

/* For the end of a core suite's main, after the tests: once every test freed
 * its cores no interned configuration may be left (a reference a core failed
 * to drop keeps its entry, which the leak checker cannot see: the table
 * reaches it). Returns 0, or 1 with the count on stderr. */
int h_conf_leaked(void);

/* Node index of a peer id, -1 if none. */
int h_index(h_cluster_t *cl, const rk_peer_id_t *id);

/* Drains node i's update: messages go to the network; with auto_persist the
 * writes are persisted and acked at once (and msgs_after sent). */
void h_drain(h_cluster_t *cl, int i);
void h_drain_all(h_cluster_t *cl);

/* Persists node i's pending updates: all, or the first k. */
void h_persist(h_cluster_t *cl, int i);
void h_persist_n(h_cluster_t *cl, int i, size_t k);

/* Delivers every queued message (respecting cuts and down nodes), draining
 * nodes between rounds, until the network is quiet. Returns delivered count. */
size_t h_stabilize(h_cluster_t *cl);

/* Delivers queued messages matching (from, to, type); -1 = any. Returns count. */
size_t h_deliver(h_cluster_t *cl, int from, int to, int type);
/* Drops queued messages matching (from, to, type); -1 = any. */
size_t h_drop(h_cluster_t *cl, int from, int to, int type);
/* Counts queued messages matching. */
size_t h_count(h_cluster_t *cl, int from, int to, int type);
/* First queued message matching, or NULL. */
h_net_msg_t *h_find(h_cluster_t *cl, int from, int to, int type);

void h_tick(h_cluster_t *cl, int i, int n);
/* n rounds of: tick every up node once, then stabilize. */
void h_run(h_cluster_t *cl, int n);
/* Index of the unique leader among up nodes with the highest term, or -1. */
int h_leader(h_cluster_t *cl);
void h_isolate(h_cluster_t *cl, int i, bool on);
void h_cut(h_cluster_t *cl, int a, int b, bool on);

/* Campaign at i, then stabilize; returns the resulting role of i. */
core_role_t h_elect(h_cluster_t *cl, int i);

/* Proposes a DATA entry with payload s at i (0 or RK_E*). */
int h_propose(h_cluster_t *cl, int i, const char *s);

core_role_t h_role(h_cluster_t *cl, int i);
uint64_t h_term(h_cluster_t *cl, int i);
uint64_t h_commit(h_cluster_t *cl, int i);
uint64_t h_last(h_cluster_t *cl, int i);
/* Durable log term at index (0 if absent). */
uint64_t h_log_term(h_cluster_t *cl, int i, uint64_t index);
/* Durable last index. */
uint64_t h_log_last(h_cluster_t *cl, int i);

/* Crash: drop unpersisted updates and in-flight messages to/from i, rebuild
 * the core from i's durable state. */
void h_restart(h_cluster_t *cl, int i);

/* Builds a durable log for node i directly: terms[k] is the term of index k+1
 * (DATA entries), replacing what it had; the core is rebuilt. */
void h_set_log(h_cluster_t *cl, int i, const uint64_t *terms, size_t n, uint64_t term);

/* Injects a message into node i as if received (owned by the caller). */
int h_step(h_cluster_t *cl, int i, const core_msg_t *m);

/* Events of a type recorded at node i since the last h_clear_events. */
size_t h_events(h_cluster_t *cl, int i, core_event_type_t t);
void h_clear_events(h_cluster_t *cl, int i);

rk_peer_id_t h_peer(int i);

#endif /* RAFTKIT_TESTS_CORE_HARNESS_H */
