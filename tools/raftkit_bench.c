/* raftkit-bench: throughput and latency of a local raftkit cluster.
 *
 *   raftkit-bench --nodes N --entries E --size S --inflight W [--sync 0|1] [--dir D] [--json]
 *                 [--stages] [--election-ms T] [--tls-cert F --tls-key F --tls-ca F
 *                 --tls-peer-names L | --cluster-key-file F]
 *
 * Starts N node processes on loopback (this process is node 1, the others are
 * forked children), each with its data on disk under D (a temporary directory
 * by default) and a no-op counter state machine. Node 1 has the short election
 * timeout, so it becomes leader; it keeps W tasks of S bytes in flight through
 * rk_node_apply until E are applied, then prints
 *
 *   raftkit entries=E size=S inflight=W secs=... ops_per_s=... p50_ms=... p99_ms=...
 *
 * (latency per task: from rk_node_apply to its closure), stops the other
 * processes and exits. It is the same workload, with the same election timing
 * trick, as the canonical raft peer benchmark, so the two can be compared run
 * for run. Peak RSS of every node process goes to stderr (and into --json).
 * --stages adds, on stderr, where the leader's time went: the p50/p99 of its
 * stage histograms (log write, AppendEntries round trip, commit to applied).
 *
 * Many groups per process (multi-raft):
 *
 *   raftkit-bench --groups G [--nodes N] [--secs S] [--idle-secs I] [--settle-secs W]
 *                 [--size B] [--sync 0|1] [--dir D] [--election-ms T] [--json]
 *                 [security options as above]
 *
 * This process only coordinates: it forks N node processes (3 by default, at
 * least 3), each hosting the G groups "bench-0" .. "bench-<G-1>" on one shared
 * rk_server_t (data under D/n<i>, one directory per group in D/n<i>/groups/),
 * and drives them over a pair of pipes per process with a line protocol
 * ("leading" -> the groups this process leads, "run S" -> the results of a
 * workload). Node 1 has the short election timeout, so it normally leads
 * every group. Then it prints one line
 *
 *   raftkit-multi groups=G ready_s=... idle_cpu_pct=... rss_mib=... disk_mib=... threads=...
 *                 ops_per_s=... p50_ms=... failover_s=...
 *
 * ready_s      from forking the processes until every group has a leader;
 * idle_cpu_pct, rss_mib, threads, disk_mib
 *              for each node process, over I seconds (10 by default) of
 *              idleness that start W seconds (3 by default: the new
 *              leaders' first entries commit, idle groups settle) after
 *              every group has a leader; the line shows the largest of them
 *              (every process's figures go to stderr): CPU (user + sys) in %
 *              of one core, VmRSS and Threads at the end of the idle time,
 *              disk used by the process's data directory (allocated blocks,
 *              like du);
 * ops_per_s    tasks of B bytes (256 by default) applied per second over S
 *              seconds (10 by default) with one task in flight in every
 *              group (each leader resubmits from the task's closure), all
 *              groups together; p50_ms is the median task latency of that
 *              run;
 * failover_s   from kill -9 of the process leading the most groups until
 *              every group it led has a leader again among the others.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "raftkit/metrics.h"
#include "raftkit/node.h"
#include "raftkit/raftkit.h"

#define MAX_NODES 9

struct bench {
    long nodes, entries, size, inflight;
    long groups, secs, idle_secs, settle_secs; /* groups > 0: the multi-group benchmark */
    long election_ms;                          /* node 1's election timeout */
    int sync, json, stages;
    const char *dir;
    /* security of every node (one certificate for all is enough here) */
    const char *tls_cert, *tls_key, *tls_ca, *tls_peer_names, *cluster_key_file;
    char tmpdir[256];
    int base_port;
    pid_t pids[MAX_NODES + 1];

    /* workload, shared between the submitting thread and the FSM thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long submitted, completed, failed;
    double *lat;
    double t_start;
};

struct req {
    rk_closure_t closure;
    struct bench *b;
    double t0;
};

/* The state machine: counts applied entries and does nothing else. */
struct counter_sm {
    rk_state_machine_t sm;
    atomic_long applied;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void counter_apply(rk_state_machine_t *sm, rk_iterator_t *it)
{
    struct counter_sm *c = rk_container_of(sm, struct counter_sm, sm);
    long n = 0;
    for (; rk_iterator_valid(it); rk_iterator_next(it))
        n++;
    atomic_fetch_add(&c->applied, n);
}

static void counter_snapshot_save(rk_state_machine_t *sm, rk_snapshot_writer_t *w,
                                  rk_closure_t *done)
{
    struct counter_sm *c = rk_container_of(sm, struct counter_sm, sm);
    char path[1024];
    rk_status_t st;
    rk_status_clear(&st);
    snprintf(path, sizeof path, "%s/counter", rk_snapshot_writer_path(w));
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%ld\n", atomic_load(&c->applied)) < 0 || fclose(f) != 0)
        rk_status_set(&st, RK_EIO, "writing %s: %s", path, strerror(errno));
    else if (rk_snapshot_writer_add_file(w, "counter") != 0)
        rk_status_set(&st, RK_EIO, "add_file counter failed");
    done->run(done, &st);
}

static int counter_snapshot_load(rk_state_machine_t *sm, rk_snapshot_reader_t *r)
{
    struct counter_sm *c = rk_container_of(sm, struct counter_sm, sm);
    char path[1024];
    long v = 0;
    snprintf(path, sizeof path, "%s/counter", rk_snapshot_reader_path(r));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return RK_EIO;
    int ok = fscanf(f, "%ld", &v) == 1;
    fclose(f);
    if (!ok)
        return RK_ECORRUPT;
    atomic_store(&c->applied, v);
    return 0;
}

static void req_done(rk_closure_t *self, const rk_status_t *st)
{
    struct req *r = rk_container_of(self, struct req, closure);
    struct bench *b = r->b;
    double t = now() - r->t0;
    pthread_mutex_lock(&b->mu);
    if (st->code == RK_OK)
        b->lat[b->completed++] = t;
    else
        b->failed++;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    free(r);
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: raftkit-bench --nodes N --entries E --size S --inflight W\n"
        "                     [--sync 0|1] [--dir D] [--json] [--stages] [--election-ms T]\n"
        "       raftkit-bench --groups G [--nodes N] [--secs S] [--idle-secs I] [--settle-secs W]\n"
        "                     [--size B] [--sync 0|1] [--dir D] [--json] [--election-ms T]\n"
        "  --nodes N      node processes on loopback, 1..%d (default 3; >= 3 with --groups)\n"
        "  --entries E    tasks to apply (default 100000)\n"
        "  --size S       bytes per task (default 256)\n"
        "  --inflight W   tasks kept outstanding (default 1024)\n"
        "  --sync 0|1     fsync log writes (default 1)\n"
        "  --dir D        data directory (default: a new temporary one, removed after)\n"
        "  --json         print the result as one JSON object instead\n"
        "  --stages       also print the leader's stage latencies (stderr)\n"
        "  --election-ms T  node 1's election timeout, so that it leads (default 150,\n"
        "                 1000 with --groups); the others': max(3000, 3 T)\n"
        "  --groups G     G groups on one shared server per node process; prints one\n"
        "                 raftkit-multi line (see the header of tools/raftkit_bench.c)\n"
        "  --secs S       with --groups: seconds of the one-task-per-group workload (10)\n"
        "  --idle-secs I  with --groups: seconds of idleness measured (10)\n"
        "  --settle-secs W  with --groups: seconds between readiness and that (3)\n"
        "  --tls-cert F --tls-key F --tls-ca F --tls-peer-names LIST\n"
        "                 mutual TLS between the nodes (make certs: data/certs/)\n"
        "  --cluster-key-file F   TLS with cluster keys instead\n",
        MAX_NODES);
}

static int parse_args(struct bench *b, int argc, char **argv)
{
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"entries", required_argument, NULL, 'e'},
        {"size", required_argument, NULL, 's'},
        {"inflight", required_argument, NULL, 'w'},
        {"sync", required_argument, NULL, 'y'},
        {"dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"stages", no_argument, NULL, 'g'},
        {"groups", required_argument, NULL, 'G'},
        {"secs", required_argument, NULL, 'S'},
        {"idle-secs", required_argument, NULL, 'I'},
        {"settle-secs", required_argument, NULL, 'W'},
        {"election-ms", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"tls-peer-names", required_argument, NULL, 'N'},
        {"cluster-key-file", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    int c;
    b->nodes = 3, b->entries = 100000, b->size = 256, b->inflight = 1024, b->sync = 1;
    b->groups = 0, b->secs = 10, b->idle_secs = 10, b->settle_secs = 3, b->election_ms = -1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        long v = optarg ? strtol(optarg, &end, 10) : 0;
        if (optarg && (*optarg == '\0' || *end != '\0') && strchr("dCKANF", c) == NULL) {
            fprintf(stderr, "raftkit-bench: not a number: %s\n", optarg);
            return -1;
        }
        switch (c) {
        case 'n':
            b->nodes = v;
            break;
        case 'e':
            b->entries = v;
            break;
        case 's':
            b->size = v;
            break;
        case 'w':
            b->inflight = v;
            break;
        case 'y':
            b->sync = (int)v;
            break;
        case 'd':
            b->dir = optarg;
            break;
        case 'C':
            b->tls_cert = optarg;
            break;
        case 'K':
            b->tls_key = optarg;
            break;
        case 'A':
            b->tls_ca = optarg;
            break;
        case 'N':
            b->tls_peer_names = optarg;
            break;
        case 'F':
            b->cluster_key_file = optarg;
            break;
        case 'j':
            b->json = 1;
            break;
        case 'g':
            b->stages = 1;
            break;
        case 'G':
            b->groups = v;
            break;
        case 'S':
            b->secs = v;
            break;
        case 'I':
            b->idle_secs = v;
            break;
        case 'W':
            b->settle_secs = v;
            break;
        case 'E':
            b->election_ms = v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (b->groups > 0 && b->nodes < 3) {
        fprintf(stderr, "raftkit-bench: --groups needs --nodes 3 or more (failover kills one)\n");
        return -1;
    }
    if (optind != argc || b->nodes < 1 || b->nodes > MAX_NODES || b->entries < 1 || b->size < 1 ||
        b->size > (1 << 20) || b->inflight < 1 || (b->sync != 0 && b->sync != 1) || b->groups < 0 ||
        b->groups > 1000000 || b->secs < 1 || b->idle_secs < 1 || b->settle_secs < 0 ||
        (b->election_ms != -1 && (b->election_ms < 10 || b->election_ms > 60000))) {
        usage(stderr);
        return -1;
    }
    if (b->election_ms == -1)
        b->election_ms = b->groups > 0 ? 1000 : 150;
    return 0;
}

static void make_conf(const struct bench *b, rk_configuration_t *conf)
{
    rk_configuration_init(conf);
    for (long i = 1; i <= b->nodes; i++) {
        rk_peer_id_t p;
        rk_peer_id_clear(&p);
        snprintf(p.endpoint.host, sizeof p.endpoint.host, "127.0.0.1");
        p.endpoint.port = (uint16_t)(b->base_port + i);
        rk_configuration_add_peer(conf, &p);
    }
}

/* Node 1 gets the short election timeout (it should lead). */
static int election_timeout(const struct bench *b, long id)
{
    if (id == 1)
        return (int)b->election_ms;
    return b->election_ms * 3 > 3000 ? (int)b->election_ms * 3 : 3000;
}

/* Starts node id. */
static rk_group_service_t *start_node(const struct bench *b, long id, struct counter_sm *sm,
                                      rk_node_t **node)
{
    rk_node_options_t o;
    rk_status_t st;
    rk_peer_id_t self;
    char path[512];

    rk_node_options_init(&o);
    make_conf(b, &o.initial_conf);
    self = o.initial_conf.peers[id - 1];
    snprintf(path, sizeof path, "%s/n%ld", b->dir, id);
    mkdir(path, 0755);
    o.data_path = path;
    o.election_timeout_ms = election_timeout(b, id);
    o.snapshot_interval_secs = 0;
    o.raft_options.sync = b->sync != 0;
    o.fsm = &sm->sm;
    o.tls_cert = b->tls_cert;
    o.tls_key = b->tls_key;
    o.tls_ca = b->tls_ca;
    o.tls_peer_names = b->tls_peer_names;
    o.cluster_key_file = b->cluster_key_file;
    rk_group_service_t *svc = rk_group_service_new("bench", &self, &o, &st);
    if (svc == NULL) {
        fprintf(stderr, "raftkit-bench: node %ld: %s\n", id, st.msg);
        return NULL;
    }
    *node = rk_group_service_start(svc, &st);
    if (*node == NULL) {
        fprintf(stderr, "raftkit-bench: node %ld start: %s\n", id, st.msg);
        rk_group_service_free(svc);
        return NULL;
    }
    return svc;
}

static void init_sm(struct counter_sm *sm)
{
    memset(sm, 0, sizeof *sm);
    sm->sm.on_apply = counter_apply;
    sm->sm.on_snapshot_save = counter_snapshot_save;
    sm->sm.on_snapshot_load = counter_snapshot_load;
}

/* A follower process: runs until its parent kills it (or dies). */
static void follower_main(const struct bench *b, long id)
{
    struct counter_sm sm;
    rk_node_t *node;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Followers see the leader go away at the end of every run: not news. */
    rk_log_set_level(RK_LOG_ERROR);
    init_sm(&sm);
    if (start_node(b, id, &sm, &node) == NULL)
        _exit(1);
    for (;;)
        pause();
}

static long peak_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Keeps `inflight` tasks outstanding until `entries` completed. */
static int run_workload(struct bench *b, rk_node_t *node)
{
    char *payload = malloc((size_t)b->size);
    memset(payload, 'x', (size_t)b->size);
    b->t_start = now();
    pthread_mutex_lock(&b->mu);
    while (b->completed + b->failed < b->entries) {
        if (b->submitted < b->entries && b->submitted - b->completed - b->failed < b->inflight) {
            struct req *r = malloc(sizeof *r);
            r->closure.run = req_done;
            r->b = b;
            r->t0 = now();
            b->submitted++;
            pthread_mutex_unlock(&b->mu);
            rk_task_t task = {
                .data = payload, .len = (size_t)b->size, .done = &r->closure, .expected_term = -1};
            int rv = rk_node_apply(node, &task);
            while (rv == RK_EBUSY) { /* apply queue full: back off briefly */
                usleep(100);
                rv = rk_node_apply(node, &task);
            }
            pthread_mutex_lock(&b->mu);
            if (rv != 0) {
                fprintf(stderr, "raftkit-bench: rk_node_apply: %s\n", rk_strerror(rv));
                free(r);
                b->failed++;
            }
            continue;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    free(payload);
    return b->failed == 0 ? 0 : -1;
}

/* The leader's stage histograms: where the time between rk_node_apply and
 * the closure went. */
static void print_stages(rk_node_t *node)
{
    static const char *names[] = {
        "append-logs",       /* leader's own log write: queued -> durable */
        "replicate-entries", /* AppendEntries sent -> follower's ack */
        "fsm-commit",        /* commit index advanced -> entries applied */
        "fsm-apply-tasks",   /* one on_apply call */
    };
    rk_metrics_t *m = rk_node_get_metrics(node);
    if (m == NULL)
        return;
    fprintf(stderr, "raftkit-bench: leader stages (p50 / p99 us, count):\n");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const rk_metric_t *x = rk_metrics_find(m, names[i]);
        if (x == NULL)
            continue;
        fprintf(stderr, "  %-18s %8.1f / %8.1f  (%llu)\n", names[i], (double)x->hist.p50 / 1e3,
                (double)x->hist.p99 / 1e3, (unsigned long long)x->hist.count);
    }
    rk_metrics_free(m);
}

static void stop_children(struct bench *b)
{
    for (long i = 1; i <= b->nodes; i++) { /* pids[1]: 0 unless --groups */
        if (b->pids[i] <= 0)
            continue;
        kill(b->pids[i], SIGKILL);
        waitpid(b->pids[i], NULL, 0);
        b->pids[i] = 0;
    }
}

/* ---- many groups per process (--groups) ---- */

/* Task latencies in microseconds, log-linear buckets: 0..63 exact, then 32
 * buckets per power of two (within 3 %). */
#define LAT_SUB     32
#define LAT_BUCKETS (40 * LAT_SUB)

static unsigned lat_bucket(uint64_t us)
{
    if (us < 2 * LAT_SUB)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned shift = msb - 5;
    unsigned i = (shift + 1) * LAT_SUB + (unsigned)((us >> shift) - LAT_SUB);
    return i < LAT_BUCKETS ? i : LAT_BUCKETS - 1;
}

/* The middle of bucket i, in microseconds. */
static double lat_bucket_mid(unsigned i)
{
    if (i < 2 * LAT_SUB)
        return i;
    unsigned shift = i / LAT_SUB - 1;
    double lo = (double)((uint64_t)(i % LAT_SUB + LAT_SUB) << shift);
    return lo + (double)((uint64_t)1 << shift) / 2;
}

/* One group of a node process, with its one task in flight. */
struct mgroup {
    struct counter_sm sm;
    rk_group_service_t *svc;
    rk_node_t *node;
    struct mnode *mn;
    rk_closure_t closure;
    double t0;
};

/* A node process of the multi-group benchmark. */
struct mnode {
    const struct bench *b;
    long id;
    rk_server_t *server;
    struct mgroup *groups;
    char *payload;
    /* the running workload: written by the closures (FSM threads) */
    double t_end;
    atomic_long ok, failed, inflight;
    atomic_ulong lat[LAT_BUCKETS];
};

static void mgroup_submit(struct mgroup *g);

static void mgroup_done(rk_closure_t *self, const rk_status_t *st)
{
    struct mgroup *g = rk_container_of(self, struct mgroup, closure);
    struct mnode *mn = g->mn;
    double t = now();
    if (st->code == RK_OK) {
        atomic_fetch_add(&mn->lat[lat_bucket((uint64_t)((t - g->t0) * 1e6))], 1);
        if (t <= mn->t_end)
            atomic_fetch_add(&mn->ok, 1);
    } else {
        atomic_fetch_add(&mn->failed, 1);
    }
    if (st->code == RK_OK && t < mn->t_end)
        mgroup_submit(g);
    else
        atomic_fetch_sub(&mn->inflight, 1);
}

/* Proposes the group's next task; its closure proposes the one after. */
static void mgroup_submit(struct mgroup *g)
{
    g->closure.run = mgroup_done;
    g->t0 = now();
    rk_task_t task = {.data = g->mn->payload,
                      .len = (size_t)g->mn->b->size,
                      .done = &g->closure,
                      .expected_term = -1};
    int rv = rk_node_apply(g->node, &task);
    if (rv != 0) {
        fprintf(stderr, "raftkit-bench: n%ld: rk_node_apply: %s\n", g->mn->id, rk_strerror(rv));
        atomic_fetch_add(&g->mn->failed, 1);
        atomic_fetch_sub(&g->mn->inflight, 1);
    }
}

/* Starts the process's server and its groups. */
static int mnode_start(struct mnode *mn)
{
    const struct bench *b = mn->b;
    rk_node_options_t o;
    rk_status_t st;
    char path[512];

    rk_node_options_init(&o);
    make_conf(b, &o.initial_conf);
    rk_peer_id_t self = o.initial_conf.peers[mn->id - 1];
    snprintf(path, sizeof path, "%s/n%ld", b->dir, mn->id);
    mkdir(path, 0755);
    o.data_path = path;
    o.election_timeout_ms = election_timeout(b, mn->id);
    o.snapshot_interval_secs = 0;
    o.raft_options.sync = b->sync != 0;
    o.tls_cert = b->tls_cert;
    o.tls_key = b->tls_key;
    o.tls_ca = b->tls_ca;
    o.tls_peer_names = b->tls_peer_names;
    o.cluster_key_file = b->cluster_key_file;
    mn->server = rk_server_new_opts(&self.endpoint, &o, &st);
    if (mn->server == NULL) {
        fprintf(stderr, "raftkit-bench: n%ld: server: %s\n", mn->id, st.msg);
        return -1;
    }
    mn->groups = calloc((size_t)b->groups, sizeof *mn->groups);
    mn->payload = malloc((size_t)b->size);
    if (mn->groups == NULL || mn->payload == NULL)
        return -1;
    memset(mn->payload, 'x', (size_t)b->size);
    for (long i = 0; i < b->groups; i++) {
        struct mgroup *g = &mn->groups[i];
        char gid[32];
        snprintf(gid, sizeof gid, "bench-%ld", i);
        snprintf(path, sizeof path, "%s/n%ld/groups/%s", b->dir, mn->id, gid);
        init_sm(&g->sm);
        g->mn = mn;
        o.data_path = path;
        o.fsm = &g->sm.sm;
        g->svc = rk_group_service_new_shared(gid, &self, &o, mn->server, &st);
        if (g->svc == NULL || (g->node = rk_group_service_start(g->svc, &st)) == NULL) {
            fprintf(stderr, "raftkit-bench: n%ld: group %s: %s\n", mn->id, gid, st.msg);
            return -1;
        }
    }
    return 0;
}

/* "leading": one character per group, '1' where this process leads. */
static void mnode_leading(struct mnode *mn, FILE *out)
{
    fputs("leading ", out);
    for (long i = 0; i < mn->b->groups; i++)
        fputc(rk_node_is_leader(mn->groups[i].node) ? '1' : '0', out);
    fputc('\n', out);
}

/* "run S": one task in flight in every group this process leads for S
 * seconds; answers "run OK FAILED" and the nonzero latency buckets as
 * "index:count". */
static void mnode_run(struct mnode *mn, long secs, FILE *out)
{
    atomic_store(&mn->ok, 0);
    atomic_store(&mn->failed, 0);
    for (unsigned i = 0; i < LAT_BUCKETS; i++)
        atomic_store(&mn->lat[i], 0);
    mn->t_end = now() + (double)secs;
    for (long i = 0; i < mn->b->groups; i++) {
        if (!rk_node_is_leader(mn->groups[i].node))
            continue;
        atomic_fetch_add(&mn->inflight, 1);
        mgroup_submit(&mn->groups[i]);
    }
    while (atomic_load(&mn->inflight) > 0)
        usleep(10000);
    fprintf(out, "run %ld %ld", atomic_load(&mn->ok), atomic_load(&mn->failed));
    for (unsigned i = 0; i < LAT_BUCKETS; i++)
        if (atomic_load(&mn->lat[i]) > 0)
            fprintf(out, " %u:%lu", i, atomic_load(&mn->lat[i]));
    fputc('\n', out);
}

/* A node process: starts its groups, then answers the coordinator's
 * commands on in until it is killed (or its parent dies). */
static void mnode_main(const struct bench *b, long id, int in_fd, int out_fd)
{
    static struct mnode mn;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Every group sees its leader go away at failover: not news. */
    rk_log_set_level(RK_LOG_ERROR);
    mn.b = b;
    mn.id = id;
    FILE *in = fdopen(in_fd, "r"), *out = fdopen(out_fd, "w");
    if (in == NULL || out == NULL || mnode_start(&mn) != 0)
        _exit(1);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        long secs;
        if (strcmp(line, "leading\n") == 0)
            mnode_leading(&mn, out);
        else if (sscanf(line, "run %ld", &secs) == 1)
            mnode_run(&mn, secs, out);
        else
            fprintf(out, "error unknown command\n");
        fflush(out);
    }
    _exit(0);
}

/* The coordinator's side of one node process. */
struct mproc {
    pid_t pid;
    FILE *to, *from;
    char *line; /* last answer */
    size_t cap;
};

/* Sends cmd to p and reads its answer into p->line; -1 when p is gone. */
static int mproc_ask(struct mproc *p, const char *cmd)
{
    if (fprintf(p->to, "%s\n", cmd) < 0 || fflush(p->to) != 0 ||
        getline(&p->line, &p->cap, p->from) <= 0) {
        fprintf(stderr, "raftkit-bench: node process %d does not answer\n", (int)p->pid);
        return -1;
    }
    return 0;
}

/* ORs the groups process p leads into lead (G characters). */
static int mproc_leading(struct mproc *p, char *lead, long groups)
{
    if (mproc_ask(p, "leading") != 0)
        return -1;
    if (strncmp(p->line, "leading ", 8) != 0 || (long)strlen(p->line) < 8 + groups) {
        fprintf(stderr, "raftkit-bench: bad answer: %.60s\n", p->line);
        return -1;
    }
    for (long i = 0; i < groups; i++)
        if (p->line[8 + i] == '1')
            lead[i] = '1';
    return 0;
}

/* user + sys CPU seconds of pid (fields 14 and 15 of /proc/<pid>/stat). */
static double proc_cpu_secs(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut, stime;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key: value" line of /proc/<pid>/status. */
static long proc_status_field(pid_t pid, const char *key)
{
    char path[64], line[256];
    long v = -1;
    size_t klen = strlen(key);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long long disk_bytes;

static int add_blocks(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path, (void)flag, (void)ftw;
    disk_bytes += (long long)st->st_blocks * 512;
    return 0;
}

/* Bytes allocated under dir, like du. */
static long long disk_usage(const char *dir)
{
    disk_bytes = 0;
    if (nftw(dir, add_blocks, 64, FTW_PHYS) != 0)
        return -1;
    return disk_bytes;
}

/* Forks the node processes, each with a command pipe and an answer pipe. */
static int mprocs_fork(struct bench *b, struct mproc *procs)
{
    for (long i = 1; i <= b->nodes; i++) {
        int cmd[2], ans[2];
        if (pipe(cmd) != 0 || pipe(ans) != 0) {
            perror("raftkit-bench: pipe");
            return -1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("raftkit-bench: fork");
            return -1;
        }
        if (pid == 0) {
            close(cmd[1]);
            close(ans[0]);
            for (long k = 1; k < i; k++) { /* the siblings' pipes */
                fclose(procs[k].to);
                fclose(procs[k].from);
            }
            mnode_main(b, i, cmd[0], ans[1]);
        }
        close(cmd[0]);
        close(ans[1]);
        b->pids[i] = procs[i].pid = pid;
        procs[i].to = fdopen(cmd[1], "w");
        procs[i].from = fdopen(ans[0], "r");
        if (procs[i].to == NULL || procs[i].from == NULL)
            return -1;
    }
    return 0;
}

/* Polls the live processes (procs[i].pid > 0) until every group flagged in
 * want has a leader among them, or timeout seconds passed. */
static int mprocs_wait_leaders(struct bench *b, struct mproc *procs, const char *want,
                               double timeout)
{
    char *lead = malloc((size_t)b->groups);
    double deadline = now() + timeout;
    int rc = -1;
    while (lead != NULL && now() < deadline) {
        memset(lead, '0', (size_t)b->groups);
        long i, missing = 0;
        for (i = 1; i <= b->nodes; i++)
            if (procs[i].pid > 0 && mproc_leading(&procs[i], lead, b->groups) != 0)
                break;
        if (i <= b->nodes)
            break;
        for (long g = 0; g < b->groups; g++)
            missing += (want == NULL || want[g] == '1') && lead[g] != '1';
        if (missing == 0) {
            rc = 0;
            break;
        }
        usleep(20000);
    }
    if (rc != 0)
        fprintf(stderr, "raftkit-bench: not every group has a leader after %.0f s\n", timeout);
    free(lead);
    return rc;
}

struct mresult {
    double ready_s, idle_cpu_pct, rss_mib, disk_mib, ops_per_s, p50_ms, failover_s;
    long threads;
};

/* Idle figures of every node process over b->idle_secs; the largest go to r. */
static int mprocs_idle(struct bench *b, struct mproc *procs, struct mresult *r)
{
    double cpu0[MAX_NODES + 1], t0 = now();
    for (long i = 1; i <= b->nodes; i++)
        cpu0[i] = proc_cpu_secs(procs[i].pid);
    sleep((unsigned)b->idle_secs);
    double secs = now() - t0;
    for (long i = 1; i <= b->nodes; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/n%ld", b->dir, i);
        double pct = (proc_cpu_secs(procs[i].pid) - cpu0[i]) / secs * 100;
        double rss = (double)proc_status_field(procs[i].pid, "VmRSS") / 1024;
        long threads = proc_status_field(procs[i].pid, "Threads");
        double disk = (double)disk_usage(dir) / (1024 * 1024);
        if (cpu0[i] < 0 || rss < 0 || threads < 0 || disk < 0) {
            fprintf(stderr, "raftkit-bench: cannot measure node process %ld\n", i);
            return -1;
        }
        fprintf(stderr,
                "raftkit-bench: idle n%ld: cpu %.2f %%, rss %.1f MiB, disk %.1f MiB, "
                "threads %ld\n",
                i, pct, rss, disk, threads);
        r->idle_cpu_pct = pct > r->idle_cpu_pct ? pct : r->idle_cpu_pct;
        r->rss_mib = rss > r->rss_mib ? rss : r->rss_mib;
        r->disk_mib = disk > r->disk_mib ? disk : r->disk_mib;
        r->threads = threads > r->threads ? threads : r->threads;
    }
    return 0;
}

/* The workload in every process at once; merges their results into r. */
static int mprocs_run(struct bench *b, struct mproc *procs, struct mresult *r)
{
    char cmd[32];
    uint64_t lat[LAT_BUCKETS] = {0}, total = 0;
    long ok = 0, failed = 0;
    snprintf(cmd, sizeof cmd, "run %ld", b->secs);
    for (long i = 1; i <= b->nodes; i++)
        if (fprintf(procs[i].to, "%s\n", cmd) < 0 || fflush(procs[i].to) != 0)
            return -1;
    for (long i = 1; i <= b->nodes; i++) {
        long o, f;
        int off;
        if (getline(&procs[i].line, &procs[i].cap, procs[i].from) <= 0 ||
            sscanf(procs[i].line, "run %ld %ld%n", &o, &f, &off) != 2) {
            fprintf(stderr, "raftkit-bench: node process %ld: no workload result\n", i);
            return -1;
        }
        ok += o;
        failed += f;
        unsigned bi;
        unsigned long c;
        int used;
        for (char *p = procs[i].line + off; sscanf(p, " %u:%lu%n", &bi, &c, &used) == 2; p += used)
            if (bi < LAT_BUCKETS) {
                lat[bi] += c;
                total += c;
            }
    }
    if (failed > 0)
        fprintf(stderr, "raftkit-bench: %ld tasks failed\n", failed);
    r->ops_per_s = (double)ok / (double)b->secs;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LAT_BUCKETS && total > 0; i++) {
        seen += lat[i];
        if (seen * 2 >= total) {
            r->p50_ms = lat_bucket_mid(i) / 1e3;
            break;
        }
    }
    return ok > 0 ? 0 : -1;
}

/* Kills the process leading the most groups and times the others' takeover
 * of its groups. */
static int mprocs_failover(struct bench *b, struct mproc *procs, struct mresult *r)
{
    char *lead = malloc((size_t)b->groups);
    long victim = 0, most = -1;
    int rc = -1;
    if (lead == NULL)
        return -1;
    for (long i = 1; i <= b->nodes; i++) {
        memset(lead, '0', (size_t)b->groups);
        if (mproc_leading(&procs[i], lead, b->groups) != 0)
            goto out;
        long n = 0;
        for (long g = 0; g < b->groups; g++)
            n += lead[g] == '1';
        if (n > most)
            most = n, victim = i;
    }
    memset(lead, '0', (size_t)b->groups);
    if (mproc_leading(&procs[victim], lead, b->groups) != 0)
        goto out;
    double t0 = now();
    kill(procs[victim].pid, SIGKILL);
    waitpid(procs[victim].pid, NULL, 0);
    b->pids[victim] = procs[victim].pid = 0;
    if (mprocs_wait_leaders(b, procs, lead, 120) == 0) {
        r->failover_s = now() - t0;
        rc = 0;
    }
    fprintf(stderr, "raftkit-bench: failover: killed n%ld, which led %ld groups\n", victim, most);
out:
    free(lead);
    return rc;
}

static int multi_main(struct bench *b)
{
    struct mproc procs[MAX_NODES + 1];
    struct mresult r;
    int rc = 1;
    memset(procs, 0, sizeof procs);
    memset(&r, 0, sizeof r);
    /* Nothing here writes to a pipe whose reader died: an error instead. */
    signal(SIGPIPE, SIG_IGN);
    double t0 = now();
    if (mprocs_fork(b, procs) != 0 || mprocs_wait_leaders(b, procs, NULL, 600) != 0)
        goto out;
    r.ready_s = now() - t0;
    sleep((unsigned)b->settle_secs);
    if (mprocs_idle(b, procs, &r) != 0 || mprocs_run(b, procs, &r) != 0 ||
        mprocs_failover(b, procs, &r) != 0)
        goto out;
    if (b->json)
        printf("{\"tool\":\"raftkit-multi\",\"groups\":%ld,\"nodes\":%ld,\"size\":%ld,\"sync\":%d,"
               "\"secs\":%ld,\"ready_s\":%.3f,\"idle_cpu_pct\":%.2f,\"rss_mib\":%.1f,"
               "\"disk_mib\":%.1f,\"threads\":%ld,\"ops_per_s\":%.0f,\"p50_ms\":%.3f,"
               "\"failover_s\":%.3f}\n",
               b->groups, b->nodes, b->size, b->sync, b->secs, r.ready_s, r.idle_cpu_pct, r.rss_mib,
               r.disk_mib, r.threads, r.ops_per_s, r.p50_ms, r.failover_s);
    else
        printf("raftkit-multi groups=%ld ready_s=%.3f idle_cpu_pct=%.2f rss_mib=%.1f "
               "disk_mib=%.1f threads=%ld ops_per_s=%.0f p50_ms=%.3f failover_s=%.3f\n",
               b->groups, r.ready_s, r.idle_cpu_pct, r.rss_mib, r.disk_mib, r.threads, r.ops_per_s,
               r.p50_ms, r.failover_s);
    fflush(stdout);
    rc = 0;
out:
    for (long i = 1; i <= b->nodes; i++) {
        if (procs[i].to)
            fclose(procs[i].to);
        if (procs[i].from)
            fclose(procs[i].from);
        free(procs[i].line);
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct bench b;
    struct counter_sm sm;
    rk_node_t *node = NULL;
    long rss[MAX_NODES + 1] = {0};
    int rc = 1;

    memset(&b, 0, sizeof b);
    if (parse_args(&b, argc, argv) != 0)
        return 2;
    if (b.dir == NULL) {
        snprintf(b.tmpdir, sizeof b.tmpdir, "%s/raftkit-bench.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(b.tmpdir) == NULL) {
            perror("raftkit-bench: mkdtemp");
            return 1;
        }
        b.dir = b.tmpdir;
    } else if (mkdir(b.dir, 0755) != 0 && errno != EEXIST) {
        perror("raftkit-bench: mkdir");
        return 1;
    }
    srand((unsigned)(time(NULL) ^ getpid()));
    b.base_port = 20000 + rand() % 20000;
    if (b.groups > 0) {
        rc = multi_main(&b);
        goto out_children;
    }
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    b.lat = calloc((size_t)b.entries, sizeof *b.lat);

    /* Fork the followers before any thread exists in this process. */
    for (long i = 2; i <= b.nodes; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("raftkit-bench: fork");
            goto out;
        }
        if (pid == 0)
            follower_main(&b, i);
        b.pids[i] = pid;
    }
    rk_log_set_level(RK_LOG_WARN);
    init_sm(&sm);
    rk_group_service_t *svc = start_node(&b, 1, &sm, &node);
    if (svc == NULL)
        goto out_children;
    double deadline = now() + 30;
    while (!rk_node_is_leader(node) && now() < deadline)
        usleep(5000);
    if (!rk_node_is_leader(node)) {
        fprintf(stderr, "raftkit-bench: node 1 did not become leader within 30 s\n");
    } else if (run_workload(&b, node) == 0) {
        double secs = now() - b.t_start;
        qsort(b.lat, (size_t)b.entries, sizeof *b.lat, cmp_double);
        double p50 = b.lat[b.entries / 2] * 1e3, p99 = b.lat[b.entries * 99 / 100] * 1e3;
        rss[1] = peak_rss_kib(getpid());
        for (long i = 2; i <= b.nodes; i++)
            rss[i] = peak_rss_kib(b.pids[i]);
        if (b.json) {
            printf("{\"tool\":\"raftkit\",\"nodes\":%ld,\"entries\":%ld,\"size\":%ld,"
                   "\"inflight\":%ld,\"sync\":%d,\"secs\":%.3f,\"ops_per_s\":%.0f,"
                   "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"peak_rss_kib\":[",
                   b.nodes, b.entries, b.size, b.inflight, b.sync, secs, (double)b.entries / secs,
                   p50, p99);
            for (long i = 1; i <= b.nodes; i++)
                printf("%s%ld", i > 1 ? "," : "", rss[i]);
            printf("]}\n");
        } else {
            printf("raftkit entries=%ld size=%ld inflight=%ld secs=%.3f ops_per_s=%.0f "
                   "p50_ms=%.3f p99_ms=%.3f\n",
                   b.entries, b.size, b.inflight, secs, (double)b.entries / secs, p50, p99);
        }
        fflush(stdout);
        fprintf(stderr, "raftkit-bench: peak rss MiB:");
        for (long i = 1; i <= b.nodes; i++)
            fprintf(stderr, " n%ld=%.1f", i, (double)rss[i] / 1024);
        fprintf(stderr, "\n");
        if (b.stages)
            print_stages(node);
        rc = 0;
    } else {
        fprintf(stderr, "raftkit-bench: %ld of %ld tasks failed\n", b.failed, b.entries);
    }
    rk_group_service_shutdown(svc);
    rk_group_service_join(svc);
    rk_group_service_free(svc);
out_children:
    stop_children(&b);
out:
    if (b.tmpdir[0] != '\0') {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", b.tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "raftkit-bench: could not remove %s\n", b.tmpdir);
    }
    free(b.lat);
    return rc;
}
