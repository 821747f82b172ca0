/* raftkit-bench: throughput and latency of a local raftkit cluster.
 *
 *   raftkit-bench --nodes N --entries E --size S --inflight W [--sync 0|1] [--dir D] [--json]
 *                 [--stages] [--tls-cert F --tls-key F --tls-ca F --tls-peer-names L |
 *                 --cluster-key-file F]
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
 */
#include <errno.h>
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
    fprintf(out,
            "usage: raftkit-bench --nodes N --entries E --size S --inflight W\n"
            "                     [--sync 0|1] [--dir D] [--json] [--stages]\n"
            "  --nodes N      node processes on loopback, 1..%d (default 3)\n"
            "  --entries E    tasks to apply (default 100000)\n"
            "  --size S       bytes per task (default 256)\n"
            "  --inflight W   tasks kept outstanding (default 1024)\n"
            "  --sync 0|1     fsync log writes (default 1)\n"
            "  --dir D        data directory (default: a new temporary one, removed after)\n"
            "  --json         print the result as one JSON object instead\n"
            "  --stages       also print the leader's stage latencies (stderr)\n"
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
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || b->nodes < 1 || b->nodes > MAX_NODES || b->entries < 1 || b->size < 1 ||
        b->size > (1 << 20) || b->inflight < 1 || (b->sync != 0 && b->sync != 1)) {
        usage(stderr);
        return -1;
    }
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

/* Starts node id; node 1 gets the short election timeout (it should lead). */
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
    o.election_timeout_ms = id == 1 ? 150 : 3000;
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
    for (long i = 2; i <= b->nodes; i++) {
        if (b->pids[i] <= 0)
            continue;
        kill(b->pids[i], SIGKILL);
        waitpid(b->pids[i], NULL, 0);
        b->pids[i] = 0;
    }
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
