/* Deterministic cluster simulator for the Raft core: shared types.
 *
 * N simulated processes, each hosting one member of each of G groups (a
 * multi-raft server), run in one real process under one seeded PRNG. A
 * discrete-event
 * scheduler drives them: ticks, message deliveries over a faulty virtual
 * network, completions of a simulated disk (writes become durable only when
 * the disk completes them, in update order), client actions (proposals,
 * reads, membership changes, transfers, snapshots) and faults (crashes that
 * lose everything not yet durable, restarts from the durable state,
 * partitions, pauses, clock jumps). Processes fail as a whole: a crash,
 * pause or partition hits every group they host. Invariants are checked
 * incrementally, per group, after every event; the first violation stops
 * the run and prints the seed, the group, the step and a trace.
 *
 * Files: rng/heap helpers here, net.c (network), host.c (one group member:
 * disk, storage, update handling, crash/restart), proc.c (a process: its
 * tick, crash, restart, pause, clock, and the process-level liveness
 * stream), quiesce.c (quiescence in the hosts), check.c (invariants and
 * trace), workload.c (client actions and faults), cluster.c (driver),
 * main.c (CLI).
 */
#ifndef RAFTKIT_TESTS_SIM_SIM_H
#define RAFTKIT_TESTS_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/core/core.h"

#define SIM_MAX_NODES  16 /* processes */
#define SIM_MAX_GROUPS 1024
#define SIM_KEYS       4 /* registers of the checked state machine */
#define SIM_RECV_SNAPS 4
#define SIM_TRACE      64
#define SIM_TICK       10 /* time units between two ticks of one node */

/* ------------------------------------------------------------------ PRNG */

/* xoshiro256** seeded through splitmix64: the simulator's only randomness. */
typedef struct sim_rng {
    uint64_t s[4];
} sim_rng_t;

static inline uint64_t sim_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = sim_splitmix(&seed);
}

static inline uint64_t sim_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t sim_rand(sim_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t res = sim_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sim_rotl(s[3], 45);
    return res;
}

/* Uniform in [0, n); 0 when n is 0. */
static inline uint64_t sim_below(sim_rng_t *r, uint64_t n)
{
    return n ? sim_rand(r) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline uint64_t sim_between(sim_rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + sim_below(r, hi - lo + 1);
}

/* True with probability permille/1000. */
static inline bool sim_chance(sim_rng_t *r, uint32_t permille)
{
    return sim_below(r, 1000) < permille;
}

/* Order-dependent 64-bit hash combine. */
static inline uint64_t sim_mix(uint64_t h, uint64_t v)
{
    uint64_t x = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
    return sim_splitmix(&x);
}

/* ----------------------------------------------------- checked state machine */

/* Payload of a DATA entry: a globally unique write id and the register it
 * writes. Each register holds the id of the last write applied to it. */
typedef struct sim_cmd {
    uint64_t wid;
    uint32_t key;
    uint32_t proposer;
} sim_cmd_t;

typedef struct sim_sm {
    uint64_t applied; /* index of the last applied entry */
    uint64_t hash;    /* running hash over applied DATA write ids */
    uint64_t count;   /* DATA entries applied */
    uint64_t reg[SIM_KEYS];
} sim_sm_t;

/* A snapshot: the core's metadata plus the state-machine data at its index
 * (and the log's chain hash there, so log-matching checks continue past it). */
typedef struct sim_snap {
    core_snapshot_meta_t meta; /* meta.index 0 = none */
    sim_sm_t sm;
    uint64_t chain;
} sim_snap_t;

/* ------------------------------------------------------------------ log */

/* A log entry as the host stores it: the core's entry (holding one reference
 * on its data) plus the chain hash of the whole prefix ending here, which
 * turns "identical prefixes" into one comparison. */
typedef struct sim_ent {
    core_entry_t e;
    uint64_t chain;
} sim_ent_t;

/* Entries compact_index+1 .. compact_index+n. */
typedef struct sim_log {
    uint64_t compact_index, compact_term, compact_chain;
    sim_ent_t *v;
    size_t n, cap;
} sim_log_t;

void slog_init(sim_log_t *l);
void slog_free(sim_log_t *l);
uint64_t slog_last(const sim_log_t *l);
const sim_ent_t *slog_get(const sim_log_t *l, uint64_t index);
/* Chain hash at index (compact_chain at compact_index); false when absent. */
bool slog_chain(const sim_log_t *l, uint64_t index, uint64_t *chain);
bool slog_term(const sim_log_t *l, uint64_t index, uint64_t *term);
void slog_truncate(sim_log_t *l, uint64_t from);                     /* drops entries >= from */
void slog_push(sim_log_t *l, const core_entry_t *e, uint64_t chain); /* takes a new ref */
void slog_compact(sim_log_t *l, uint64_t index);                     /* drops entries <= index */
void slog_reset(sim_log_t *l, uint64_t index, uint64_t term, uint64_t chain);
void slog_copy(sim_log_t *dst, const sim_log_t *src); /* dst freed first */
uint64_t sim_entry_hash(const core_entry_t *e);
uint64_t sim_chain_next(uint64_t prev_chain, const core_entry_t *e);

/* --------------------------------------------------------------- network */

typedef struct sim_msg {
    core_msg_t m; /* deep copy: entries array and snap are ours */
    int from, to; /* processes; the group is the delivery event's */
    bool has_data;
    sim_snap_t data; /* SNAP: the state-machine data the leader host attached */
} sim_msg_t;

sim_msg_t *sim_msg_copy(const core_msg_t *m, int from, int to);
sim_msg_t *sim_msg_dup(const sim_msg_t *sm);
void sim_msg_free(sim_msg_t *sm);

/* ---------------------------------------------------------------- events */

typedef enum sim_ev_type {
    EV_TICK,
    EV_DELIVER,
    EV_DISK,
    EV_CLIENT,
    EV_FAULT,
    EV_RESTART,
    EV_SNAP_REPORT,
    EV_UNREACH,
    EV_NEMESIS, /* targeted fault at a node that just became leader; aux: 0 crash, 1 isolate,
                 * 2 crash after a promise, 3 read at a leader cut off while quiesced or
                 * paused, 4 pause and isolate */
    EV_RESUME,  /* a paused process runs again */
    EV_READ,    /* a client's read reaches the process (queued reads in order) */
} sim_ev_type_t;

typedef struct sim_event {
    uint64_t at, seq;
    sim_ev_type_t type;
    int group;    /* the group the event concerns (process-level events: any) */
    int node;     /* target node, i.e. process */
    uint32_t inc; /* target process's incarnation when scheduled */
    int aux;      /* SNAP_REPORT: ok; UNREACH: peer */
    sim_msg_t *msg;
} sim_event_t;

typedef struct sim_heap {
    sim_event_t *v;
    size_t n, cap;
} sim_heap_t;

/* ------------------------------------------------------------------ host */

/* A write the simulated disk has not completed yet. */
typedef struct sim_write {
    uint64_t id;
    bool has_hs;
    core_hard_state_t hs;
    bool has_snap;
    sim_snap_t snap;
    sim_ent_t *ents; /* refs held; chains computed when emitted */
    size_t n_ents;
    sim_msg_t **after; /* msgs_after, sent once durable */
    size_t n_after, cap_after;
    struct sim_write *next;
} sim_write_t;

typedef struct sim_prop {
    uint64_t wid, index, term;
    uint32_t key;
} sim_prop_t;

typedef struct sim_read {
    uint64_t ctx;
    uint32_t key;
    uint64_t need_key; /* log index of the newest write to key completed before start */
    uint64_t need_all; /* log index of the newest write completed before start */
    uint64_t index;    /* read index once confirmed */
    bool ready;
    bool queued; /* not handed to the core yet (sent to a paused process) */
} sim_read_t;

/* One group's member on one process (the process's index is its id). */
typedef struct sim_node {
    int id;
    rk_peer_id_t peer;
    bool up;
    core_t *core;
    /* durable */
    core_hard_state_t hs;
    sim_log_t dlog;
    sim_snap_t dsnap;
    /* volatile (lost on crash) */
    sim_log_t vlog; /* durable + every pending write: the log as the core sees it */
    sim_write_t *wq_head, *wq_tail;
    uint64_t disk_free_at;
    uint64_t last_update_id;
    sim_sm_t sm;
    uint64_t apply_target;
    uint64_t commit_seen;
    uint64_t term_seen;
    core_role_t role_seen;
    sim_snap_t recv[SIM_RECV_SNAPS];
    unsigned recv_next;
    sim_prop_t *props;
    size_t n_props, cap_props;
    sim_read_t *reads;
    size_t n_reads, cap_reads;
    /* quiescence (quiesce.c): what the host last saw of its core */
    bool q_seen;
    core_role_t q_role;
    int q_leader;          /* process the follower quiesced under, -1 none */
    uint32_t q_leader_inc; /* that process's incarnation as this process knew it then */
} sim_node_t;

#define SIM_INC_UNKNOWN UINT32_MAX

/* A simulated process (proc.c): what its groups share -- life, one disk,
 * one tick, one clock, one liveness view of the other processes. */
typedef struct sim_proc {
    bool up;
    uint32_t inc;          /* incarnation: changes on every crash */
    uint64_t paused_until; /* SIGSTOP-like: no progress before this time (0: running) */
    uint64_t tick_at;      /* when the next tick is due */
    bool tick_lost;        /* the due tick fell into a pause */
    uint64_t ticks;        /* the process's clock, in ticks */
    uint64_t disk_free_at; /* one disk (one log writer) for all groups */
    bool slow_disk;
    /* The process-level liveness stream: the clock tick this process last
     * heard each other process at, and the incarnation it heard. */
    uint64_t heard_at[SIM_MAX_NODES];
    uint32_t inc_seen[SIM_MAX_NODES];
} sim_proc_t;

/* ----------------------------------------------------------------- checks */

typedef struct sim_committed {
    uint64_t term, chain;
    uint64_t commit_term; /* lowest current term of a node reporting it committed */
    bool set;
} sim_committed_t;

typedef struct sim_write_rec {
    uint64_t index; /* where it was applied (0: not yet) */
    uint32_t key;
    bool completed;
} sim_write_rec_t;

typedef struct sim_trace_rec {
    uint64_t step, now;
    int kind;
    int group;
    int node, peer;
    uint64_t a, b, c, d;
} sim_trace_rec_t;

/* (index, term) -> chain hash, open addressing. */
typedef struct sim_itmap {
    uint64_t *idx, *term, *chain;
    size_t cap, n;
} sim_itmap_t;

/* ------------------------------------------------------------- parameters */

typedef struct sim_params {
    int nodes;  /* initial voters */
    int spares; /* extra pool members, initially outside the configuration */
    int groups; /* groups, each with one member on every process */
    uint64_t steps;
    bool verbose;
    bool liveness;    /* heal at the end and require progress */
    bool faults;      /* crashes, partitions, drops */
    bool lease;       /* CORE_READ_LEASE reads (with check-quorum) instead of ReadIndex */
    bool rules;       /* protocol-rule checks (durable promises, §5.4.2 commit rule) on top of
                       * the black-box safety invariants */
    int quiesce;      /* -1: drawn per seed (default), 0: never (--no-quiesce), 1: always */
    bool lossy_ticks; /* a resumed process runs one tick, not the ones it missed */
} sim_params_t;

/* Per-seed fault profile, drawn from the seed. */
typedef struct sim_profile {
    uint32_t drop, dup;      /* permille */
    uint32_t delay_max;      /* ordinary message delay in time units */
    uint32_t tail, tail_max; /* permille of slow messages, their max delay */
    uint32_t disk_max;       /* ordinary disk latency */
    uint32_t slow_disk_max;  /* latency of a slow disk */
    uint32_t client_gap;     /* mean gap between client actions */
    uint32_t fault_gap;      /* mean gap between faults */
    uint32_t crash_w, partition_w, disk_w;
    uint32_t nemesis;         /* permille of new leaders hit by a targeted fault soon after */
    uint32_t nemesis_isolate; /* permille of those faults that isolate rather than crash */
    uint32_t leader_crash;    /* permille of random crashes aimed at a leader */
    bool storm;               /* the leader-churn family of profiles (see work_profile) */
    uint32_t snap_w, conf_w, transfer_w, read_w, propose_w, campaign_w;
    bool pre_vote, check_quorum;
    uint32_t max_entries_per_msg, max_inflight;
    /* quiescence */
    bool quiesce;             /* core_options_t.quiesce, and hosts quiesce idle groups */
    bool skip_quiesced;       /* quiesced cores are not ticked (the multi-raft node's tick) */
    uint32_t quiesce_try;     /* permille of leader ticks that try core_quiesce */
    uint32_t liveness_lag;    /* ticks past the election timeout before a silent peer is down */
    bool liveness_blind;      /* the liveness stream crosses partitions (never signals them) */
    bool wake_on_restart;     /* a new incarnation of a follower's process wakes our leader */
    uint32_t idle;            /* permille of client slots that start an idle period */
    uint32_t quiesce_nemesis; /* permille of quiescing leaders isolated or crashed soon after */
    /* process faults */
    uint32_t pause_w, jump_w;
    uint32_t pause_max; /* longest pause, time units */
} sim_profile_t;

/* One group: its members (one per process), its checks, its workload. */
typedef struct sim_group {
    int id;
    sim_node_t nodes[SIM_MAX_NODES];
    core_conf_t boot;
    uint64_t next_wid, next_ctx;
    /* checks */
    uint64_t *leader_of_term; /* term -> node+1 */
    size_t n_lot;
    sim_committed_t *committed;
    size_t cap_committed;
    uint64_t max_committed;
    uint64_t *sm_hash; /* index -> state-machine hash + 1 after applying it (0 unknown) */
    size_t cap_sm_hash;
    sim_itmap_t itmap;
    sim_write_rec_t *writes;
    size_t cap_writes;
    uint64_t done_key[SIM_KEYS]; /* newest completed write index per key */
    uint64_t done_all;
    /* workload */
    uint64_t idle_until; /* no client actions before this time (idle period) */
    int probe_node;      /* leader cut off while quiesced, to read from after a write; -1 none */
    /* final phase */
    uint64_t final_wid;
    int final_node;
    uint64_t final_index;
} sim_group_t;

typedef struct sim {
    sim_params_t p;
    sim_profile_t prof;
    uint64_t seed;
    sim_rng_t rng;
    int n; /* processes (pool size) */
    sim_proc_t procs[SIM_MAX_NODES];
    sim_group_t *groups;
    int n_groups;
    sim_group_t *g; /* the group the current event concerns */
    uint32_t election_ticks;
    bool blocked[SIM_MAX_NODES][SIM_MAX_NODES];
    sim_heap_t heap;
    uint64_t now, step, ev_seq;
    bool quiet; /* final phase: no faults, healed network */
    int victim; /* final phase: process killed for good, -1 none */
    sim_trace_rec_t trace[SIM_TRACE];
    uint64_t n_trace;
    bool violated;
    char violation[512];
    uint64_t violation_step;
    int violation_group;
    /* stats */
    uint64_t st_elections, st_writes_done, st_reads_done, st_crashes, st_snap_installs, st_confs,
        st_transfers, st_compactions;
    uint64_t st_quiesce_leader, st_quiesce_follower, st_wake_leader, st_wake_follower, st_proc_down;
    uint64_t st_pauses, st_jumps;
} sim_t;

/* heap (cluster.c): an event for the current group (s->g) at process `node` */
void sim_schedule(sim_t *s, uint64_t delay, sim_ev_type_t type, int node, int aux, sim_msg_t *m);

/* net.c */
void net_send(sim_t *s, int from, const core_msg_t *m);
void net_send_copy(sim_t *s, sim_msg_t *m); /* takes ownership */
void net_deliver(sim_t *s, sim_msg_t *m);   /* takes ownership */
int net_node_of(const sim_t *s, const rk_peer_id_t *p);
void net_partition_random(sim_t *s);
void net_heal(sim_t *s);

/* host.c: one member of the current group */
void host_boot(sim_t *s, sim_node_t *nd);
void host_crash(sim_t *s, sim_node_t *nd);
void host_restart(sim_t *s, sim_node_t *nd);
void host_free(sim_node_t *nd);
void host_drain(sim_t *s, sim_node_t *nd); /* handle every pending update of nd's core */
void host_disk_complete(sim_t *s, sim_node_t *nd);
void host_take_snapshot(sim_t *s, sim_node_t *nd);
const sim_snap_t *host_snapshot_data(const sim_node_t *nd, const core_snapshot_meta_t *m);
bool host_conf_at(const sim_t *s, const sim_node_t *nd, uint64_t index, core_conf_t *out);

/* proc.c */
void proc_boot(sim_t *s, int p);
void proc_crash(sim_t *s, int p); /* every group's member; the restart is the caller's */
void proc_restart(sim_t *s, int p);
void proc_tick_event(sim_t *s, int p); /* EV_TICK: the tick (and any missed ones) */
void proc_pause(sim_t *s, int p, uint64_t len);
void proc_resume(sim_t *s, int p);
void proc_clock_jump(sim_t *s, int p, uint64_t ticks);
bool proc_paused(const sim_t *s, int p);

/* quiesce.c */
void quiesce_tick(sim_t *s, sim_node_t *nd); /* a member's tick, quiescence-aware */
void quiesce_observe(sim_t *s, sim_node_t *nd);
void quiesce_write_completed(sim_t *s, sim_node_t *nd);
void quiesce_liveness(sim_t *s, int p); /* process p's liveness stream, once per tick */

/* check.c */
void check_init(sim_group_t *g);
void check_free(sim_group_t *g);
void check_fail(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check_entry_written(sim_t *s, sim_node_t *nd, const sim_ent_t *e, uint64_t prev_term,
                         uint64_t commit_before);
void check_committed(sim_t *s, sim_node_t *nd, uint64_t index, uint64_t term, uint64_t chain);
void check_status(sim_t *s, sim_node_t *nd);
void check_commit_safe(sim_t *s);
void check_promise(sim_t *s, const sim_msg_t *sm);
void check_new_leader(sim_t *s, sim_node_t *nd, uint64_t term);
void check_applied(sim_t *s, sim_node_t *nd, const sim_ent_t *e);
void check_sm_state(sim_t *s, sim_node_t *nd);
void check_write_proposed(sim_t *s, uint64_t wid, uint32_t key);
void check_write_completed(sim_t *s, sim_node_t *nd, uint64_t wid, uint64_t index);
void check_read_start(sim_t *s, sim_read_t *r);
void check_read_served(sim_t *s, sim_node_t *nd, const sim_read_t *r);

enum {
    TR_DELIVER,
    TR_DROP,
    TR_DISK,
    TR_ROLE,
    TR_PROPOSE,
    TR_READ,
    TR_READ_DONE,
    TR_CONF,
    TR_TRANSFER,
    TR_SNAPSHOT,
    TR_COMPACT,
    TR_INSTALL,
    TR_CRASH,
    TR_RESTART,
    TR_PARTITION,
    TR_HEAL,
    TR_CAMPAIGN,
    TR_COMMIT,
    TR_WRITE_DONE,
    TR_SLOW_DISK,
    TR_QUIESCE,
    TR_WAKE,
    TR_PROC_DOWN,
    TR_PAUSE,
    TR_RESUME,
    TR_JUMP,
};
void trace_add(sim_t *s, int kind, int node, int peer, uint64_t a, uint64_t b, uint64_t c,
               uint64_t d);
void trace_print(const sim_t *s, const sim_trace_rec_t *t);
void trace_dump(const sim_t *s);

/* workload.c */
void work_profile(sim_t *s);
void work_client(sim_t *s);
void work_fault(sim_t *s);
void work_new_leader(sim_t *s, sim_node_t *nd);
void work_after_update(sim_t *s, sim_node_t *nd, const core_update_t *u);
void work_nemesis(sim_t *s, sim_node_t *nd, int kind);
void work_read_arrives(sim_t *s, sim_node_t *nd);
void work_final(sim_t *s); /* final phase: drive one write of the group to completion */
bool work_final_done(sim_t *s);
bool work_can_lose(sim_t *s, int p); /* does every group keep a quorum without process p? */

/* cluster.c */
typedef struct sim_totals {
    uint64_t steps, elections, writes, reads, crashes, confs, transfers, compactions, snap_installs;
    uint64_t quiesce_leader, quiesce_follower, wake_leader, wake_follower, proc_down;
    uint64_t pauses, jumps;
} sim_totals_t;
/* One run; adds its counters to *t. Returns 1 on a violation (reported on stdout). */
int sim_run(const sim_params_t *p, uint64_t seed, sim_totals_t *t);

#endif /* RAFTKIT_TESTS_SIM_SIM_H */
