/* Throughput benchmark of the Raft core alone: three in-memory cores in one
 * thread, a leader fed proposals in batches, every write "persisted" at once,
 * messages delivered at once. It measures what the algorithm costs per entry
 * (no disk, no network, no threads), so a profiler shows the core's own hot
 * spots. Prints figures; asserts nothing about time.
 *
 *   build/tools/core_bench [batches [batch_size [payload_bytes]]]
 *   defaults: 1000 batches of 1024 entries of 256 bytes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/core/core.h"
#include "tools/common/mem_log.h"

#define NODES 3

typedef struct node {
    core_t *core;
    rk_peer_id_t id;
    mem_log_t log;
    uint64_t applied;
} node_t;

typedef struct msgq {
    core_msg_t *v;
    int *to;
    size_t n, cap;
} msgq_t;

static node_t nodes[NODES];
static msgq_t q;
static uint64_t n_msgs, n_updates;

static void die(const char *what)
{
    fprintf(stderr, "core_bench: %s\n", what);
    exit(1);
}

/* The host snapshots at its applied index and drops the log before it. */
static void compact(node_t *n)
{
    if (n->applied <= n->log.compact_index + 4096)
        return;
    core_snapshot_meta_t meta;
    memset(&meta, 0, sizeof meta);
    meta.index = n->applied;
    meta.term = n->log.v[meta.index - n->log.compact_index - 1].term;
    meta.conf = *core_get_conf(n->core, NULL);
    if (core_snapshot_taken(n->core, &meta) != 0)
        die("snapshot_taken");
    mem_log_compact(&n->log, meta.index, meta.term);
    if (core_compacted(n->core, meta.index, meta.term) != 0)
        die("compacted");
}

/* ------------------------------------------------------------- network */

static int index_of(const rk_peer_id_t *p)
{
    for (int i = 0; i < NODES; i++)
        if (core_peer_eq(&nodes[i].id, p))
            return i;
    return -1;
}

/* Takes the message over (the update's array slot is zeroed). */
static void send(core_msg_t *m)
{
    int to = index_of(&m->to);
    if (to < 0) {
        core_msg_free_contents(m);
        return;
    }
    if (q.n == q.cap) {
        q.cap = q.cap ? 2 * q.cap : 64;
        q.v = realloc(q.v, q.cap * sizeof *q.v);
        q.to = realloc(q.to, q.cap * sizeof *q.to);
        if (q.v == NULL || q.to == NULL)
            die("out of memory");
    }
    q.v[q.n] = *m;
    q.to[q.n] = to;
    q.n++;
    memset(m, 0, sizeof *m);
}

static void drain(int i)
{
    node_t *n = &nodes[i];
    while (core_has_update(n->core)) {
        core_update_t u;
        core_update_get(n->core, &u);
        n_updates++;
        n_msgs += u.n_msgs + u.n_msgs_after;
        if (u.fatal)
            die("core halted");
        for (size_t k = 0; k < u.n_msgs; k++)
            send(&u.msgs[k]);
        if (u.has_snapshot)
            die("unexpected snapshot install");
        mem_log_append(&n->log, u.entries, u.n_entries);
        if (u.id != 0 && core_persisted(n->core, u.id) != 0)
            die("persisted");
        for (size_t k = 0; k < u.n_msgs_after; k++)
            send(&u.msgs_after[k]);
        if (u.apply_hi >= u.apply_lo) {
            n->applied = u.apply_hi;
            core_applied(n->core, n->applied);
        }
        core_update_release(&u);
        compact(n);
    }
}

/* Delivers until the network is quiet. */
static void pump(void)
{
    for (int i = 0; i < NODES; i++)
        drain(i);
    while (q.n > 0) {
        msgq_t batch = q;
        memset(&q, 0, sizeof q);
        for (size_t k = 0; k < batch.n; k++) {
            core_step(nodes[batch.to[k]].core, &batch.v[k]);
            core_msg_free_contents(&batch.v[k]);
        }
        free(batch.v);
        free(batch.to);
        for (int i = 0; i < NODES; i++)
            drain(i);
    }
}

/* ---------------------------------------------------------------- main */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long batches = argc > 1 ? atol(argv[1]) : 1000;
    long batch = argc > 2 ? atol(argv[2]) : 1024;
    long payload = argc > 3 ? atol(argv[3]) : 256;
    if (batches <= 0 || batch <= 0 || payload < 0)
        die("usage: core_bench [batches [batch_size [payload_bytes]]]");

    core_conf_t conf;
    memset(&conf, 0, sizeof conf);
    for (int i = 0; i < NODES; i++) {
        rk_peer_id_t *p = &nodes[i].id;
        memset(p, 0, sizeof *p);
        snprintf(p->endpoint.host, sizeof p->endpoint.host, "10.0.0.%d", i + 1);
        p->endpoint.port = 8000;
        p->priority = RK_PRIORITY_DISABLED;
        conf.cur.peers[conf.cur.n_peers++] = *p;
    }
    for (int i = 0; i < NODES; i++) {
        core_init_t init;
        memset(&init, 0, sizeof init);
        core_options_init(&init.opts);
        init.opts.self = nodes[i].id;
        init.opts.seed = (uint64_t)i + 1;
        init.conf = conf;
        init.prev_conf = conf;
        core_storage_t st = {
            .arg = &nodes[i].log, .term = mem_log_term, .entries = mem_log_entries};
        int err;
        nodes[i].core = core_new(&init, &st, &err);
        if (nodes[i].core == NULL)
            die("core_new");
    }
    if (core_campaign(nodes[0].core) != 0)
        die("campaign");
    pump();
    core_status_t s;
    core_get_status(nodes[0].core, &s);
    if (s.role != CORE_LEADER)
        die("n1 did not become leader");

    core_entry_t *ents = calloc((size_t)batch, sizeof *ents);
    uint8_t *data = calloc(1, (size_t)payload + 1);
    if (ents == NULL || data == NULL)
        die("out of memory");
    uint64_t first_commit = s.commit;
    n_msgs = n_updates = 0;
    double t0 = now_s();
    for (long b = 0; b < batches; b++) {
        for (long k = 0; k < batch; k++) {
            ents[k].type = CORE_ENTRY_DATA;
            ents[k].data = buf_new(data, (size_t)payload);
        }
        int rv = core_propose(nodes[0].core, ents, (size_t)batch, NULL, NULL);
        for (long k = 0; k < batch; k++)
            buf_unref(ents[k].data);
        if (rv != 0)
            die("propose");
        pump();
        /* a tick (heartbeat interval) per 1024 entries, whatever the batch */
        if ((b + 1) * batch / 1024 != b * batch / 1024) {
            for (int i = 0; i < NODES; i++)
                core_tick(nodes[i].core);
            pump();
        }
    }
    double t1 = now_s();
    uint64_t total = (uint64_t)batches * (uint64_t)batch;
    for (int i = 0; i < NODES; i++) {
        core_get_status(nodes[i].core, &s);
        if (s.commit - first_commit != total || nodes[i].applied != s.commit)
            die("not everything committed and applied everywhere");
    }
    double secs = t1 - t0;
    printf("core_bench: %d nodes, %ld batches x %ld entries x %ld B: %llu entries in %.3f s\n",
           NODES, batches, batch, payload, (unsigned long long)total, secs);
    printf("core_bench: %.0f entries/s, %.1f ns/entry (all three cores, one thread)\n",
           (double)total / secs, secs * 1e9 / (double)total);
    printf("core_bench: %.3f messages and %.3f updates per entry\n", (double)n_msgs / (double)total,
           (double)n_updates / (double)total);

    free(ents);
    free(data);
    for (int i = 0; i < NODES; i++) {
        core_free(nodes[i].core);
        mem_log_free(&nodes[i].log);
    }
    return 0;
}
