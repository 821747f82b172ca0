/* Crash durability of the log: a child appends batches through the log
 * writer and reports every acknowledged index over a pipe; the parent
 * SIGKILLs it at a random moment, reopens the log and checks that every
 * acknowledged entry is present and intact and that the log is one
 * contiguous range of valid entries. Repeated many times on the same
 * directory, so each child also recovers what the previous one left.
 *
 *   storage-crash [-n kills] [-s seed] [-d dir] [-p] [-g groups] [-t ms]
 *
 * Now and then a batch rewrites the last few entries with a higher term
 * (Raft 5.3: a new leader's entries replace a follower's tail), so that
 * suffix truncations are crashed too; a rewrite appends at least as many
 * entries as it removes, so the log never gets shorter than what was
 * acknowledged. Each acknowledgement carries the batch's range and term: an
 * acknowledged entry must come back with that term or a higher one (a later
 * rewrite that made it to disk unacknowledged).
 *
 * -p: power loss instead of a process crash (tests/storage/powerloss.c):
 * after each kill, every page written but not yet fdatasync'ed survives or
 * not at random, so an acknowledgement given before its data and meta pages
 * (or, with the journal, its journal record) were synced shows up as a lost
 * entry or a corrupt log.
 *
 * Every other child submits its batches with log_writer_submit_held, one at a
 * time, and flushes before the loop blocks, so the loop runs the small ones
 * itself and acknowledges them from durable_cb (journal record synced, LMDB
 * commit still to come), the earliest moment the writer reports durability;
 * the large ones go to the thread. The others keep IN_FLIGHT batches queued
 * to the thread.
 *
 * -g: that many groups (default 1) write into the one environment
 * concurrently, each with its own batches, terms and rewrites, through the
 * one writer (group commit across groups); every group is checked after
 * each kill. New groups are registered by their first write (log_store.c,
 * "registration"); every odd group is a new one in each child, so the
 * crashes also hit groups whose registration is only in the journal.
 *
 * -t: each child is killed after 1..ms milliseconds (default 30); a disk
 * on which opening the environment takes longer than that needs more, or
 * the children rarely get to write.
 *
 * Exits non-zero on the first violation, printing the seed to replay. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/log_writer.h"
#include "tests/storage/powerloss.h"
#include "tools/common/storage_util.h"

#define IN_FLIGHT   4
#define MAX_BATCH   32
#define MAX_PAYLOAD 5000  /* past 2000 bytes, runs of entries share a record */
#define RESTART_AT  20000 /* start a fresh log past this many entries */
#define REWRITE_MAX 8     /* entries a rewrite takes back at most */
#define TERM_STEP   1000  /* child k writes terms k*TERM_STEP, +1 per rewrite */
#define MAX_GROUPS  256

static uint64_t rng_state;
static bool power_loss;
static int n_groups = 1;
static int cur_kill; /* the child being run and killed */

/* With several groups, every odd one is new in each child ("crash-<g>-<k>"):
 * its registration is in the journal only, until a drain or a checkpoint,
 * so the kills hit that window too. */
static bool group_is_new(int g)
{
    return n_groups > 1 && g % 2 == 1;
}

static void group_name(int g, char *buf, size_t len)
{
    if (n_groups == 1)
        snprintf(buf, len, "crash");
    else if (group_is_new(g))
        snprintf(buf, len, "crash-%d-%d", g, cur_kill);
    else
        snprintf(buf, len, "crash-%d", g);
}
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- child ---- */

typedef struct cgroup {
    log_store_t *log;
    uint64_t next, term;
    meta_hard_state_t hs;
} cgroup_t;

typedef struct child {
    uv_loop_t loop;
    log_writer_t *w;
    cgroup_t g[MAX_GROUPS];
    int fd;
    uv_prepare_t flusher;
    uv_timer_t starter; /* starts the new groups one by one */
    int next_new;
    bool held;
} child_t;

typedef struct batch {
    log_write_req_t req;
    child_t *c;
    int g;
    log_entry_t *e;
    size_t n;
} batch_t;

static void submit_batch(child_t *c, int g);

/* what the child tells the parent: entries first..last of group g are
 * durable with this term */
typedef struct ack_msg {
    uint64_t first, last, term, g;
} ack_msg_t;

static void ack(const batch_t *b)
{
    ack_msg_t m = {b->e[0].index, b->e[b->n - 1].index, b->e[0].term, (uint64_t)b->g};
    if (write(b->c->fd, &m, sizeof m) != sizeof m)
        _exit(4);
}

static void on_durable(log_write_req_t *r)
{
    ack((batch_t *)r);
}

/* Before the loop blocks: run what is held (inline when the thread is idle;
 * the callbacks of an inline run hold new batches, so go again). */
static void on_prepare(uv_prepare_t *h)
{
    child_t *c = h->data;
    while (log_writer_flush(c->w))
        ;
}

static void on_written(log_write_req_t *r, int status)
{
    batch_t *b = (batch_t *)r;
    child_t *c = b->c;
    if (status != 0) {
        fprintf(stderr, "storage-crash child: write failed: %s\n", rk_strerror(status));
        _exit(3);
    }
    /* durable: acknowledge the batch */
    ack(b);
    int g = b->g;
    tu_entries_free(b->e, b->n);
    free(b);
    submit_batch(c, g);
}

static void submit_batch(child_t *cc, int g)
{
    batch_t *b = calloc(1, sizeof *b);
    cgroup_t *c = &cc->g[g];
    b->c = cc;
    b->g = g;
    b->n = 1 + rnd() % MAX_BATCH;
    b->req.op.truncate_from = 0;
    if (c->next > 2 && rnd() % 6 == 0) { /* rewrite the tail, higher term */
        uint64_t back = 1 + rnd() % REWRITE_MAX;
        if (back > c->next - 2)
            back = c->next - 2;
        c->next -= back;
        b->req.op.truncate_from = c->next;
        if (b->n < back)
            b->n = (size_t)back;
        c->term++;
        c->hs.term = c->term;
    }
    b->e = tu_entries(c->next, b->n, c->term, MAX_PAYLOAD);
    c->next += b->n;
    b->req.op.store = c->log;
    b->req.op.kind = LOG_OP_APPEND;
    b->req.op.entries = b->e;
    b->req.op.n_entries = b->n;
    if (rnd() % 4 == 0) { /* hard state rides along now and then */
        c->hs.commit = b->e[0].index - 1;
        b->req.op.hard_state = &c->hs;
    }
    int rc;
    if (cc->held) {
        b->req.durable_cb = on_durable;
        rc = log_writer_submit_held(cc->w, &b->req, on_written);
    } else {
        rc = log_writer_submit(cc->w, &b->req, on_written);
    }
    if (rc != 0)
        _exit(5);
}

/* One more new group starts writing: their first writes, which register
 * them, are spread over the child's life instead of all at its start. */
static void start_new_group(uv_timer_t *t)
{
    child_t *c = t->data;
    while (c->next_new < n_groups && !group_is_new(c->next_new))
        c->next_new++;
    if (c->next_new < n_groups)
        submit_batch(c, c->next_new++);
    else
        uv_timer_stop(t);
}

static void run_child(const char *dir, int fd, uint64_t term)
{
    static child_t c;
    c.fd = fd;
    log_env_t *env;
    rk_status_t st;
    if (power_loss && pl_child_begin(dir) != 0)
        _exit(2);
    if (log_env_open(dir, NULL, &env, &st) != 0) {
        fprintf(stderr, "storage-crash child: open: %s\n", st.msg);
        _exit(2);
    }
    for (int g = 0; g < n_groups; g++) {
        char name[32];
        group_name(g, name, sizeof name);
        if (log_store_open(env, name, NULL, &c.g[g].log, &st) != 0) {
            fprintf(stderr, "storage-crash child: open: %s\n", st.msg);
            _exit(2);
        }
        c.g[g].next = log_store_last_index(c.g[g].log) + 1;
        c.g[g].term = term;
        c.g[g].hs.term = term;
    }
    uv_loop_init(&c.loop);
    if (log_writer_start(env, &c.loop, NULL, &c.w, &st) != 0)
        _exit(2);
    uv_prepare_init(&c.loop, &c.flusher);
    c.flusher.data = &c;
    uv_prepare_start(&c.flusher, on_prepare);
    c.held = term / TERM_STEP % 2 == 0;
    /* one group: IN_FLIGHT batches queued to the thread; many: one each */
    for (int g = 0; g < n_groups; g++)
        for (int i = 0; i < (c.held || n_groups > 1 ? 1 : IN_FLIGHT); i++)
            if (!group_is_new(g))
                submit_batch(&c, g);
    uv_timer_init(&c.loop, &c.starter);
    c.starter.data = &c;
    uv_timer_start(&c.starter, start_new_group, 1, 3);
    uv_run(&c.loop, UV_RUN_DEFAULT); /* until killed */
    _exit(6);
}

/* ---- parent ---- */

/* What the parent knows of each group: the lowest term each index may
 * have (the term of the last acknowledged batch that wrote it), for the
 * indexes of the current log; the largest index acknowledged by the child
 * just killed; where the next check starts. */
typedef struct pgroup {
    uint64_t *min_term;
    size_t min_term_cap;
    uint64_t acked, checked_from;
} pgroup_t;

static pgroup_t pg[MAX_GROUPS];

static void note_ack(const ack_msg_t *m)
{
    pgroup_t *p = &pg[m->g < MAX_GROUPS ? m->g : 0];
    if (m->last >= p->min_term_cap) {
        size_t cap = p->min_term_cap ? p->min_term_cap : 1024;
        while (cap <= m->last)
            cap *= 2;
        p->min_term = realloc(p->min_term, cap * sizeof *p->min_term);
        memset(p->min_term + p->min_term_cap, 0, (cap - p->min_term_cap) * sizeof *p->min_term);
        p->min_term_cap = cap;
    }
    /* completions run in submission order: a later ack overrides */
    for (uint64_t i = m->first; i <= m->last; i++)
        p->min_term[i] = m->term;
    if (m->last > p->acked)
        p->acked = m->last;
}

static void drain(int fd, bool block)
{
    ack_msg_t v[64]; /* writes of one message are atomic (PIPE_BUF) */
    for (;;) {
        ssize_t n = read(fd, v, sizeof v);
        if (n > 0) {
            for (size_t i = 0; i < (size_t)n / sizeof v[0]; i++)
                note_ack(&v[i]);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && block) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, -1);
            continue;
        }
        return;
    }
}

/* -p: the environment is created before the first power loss can hit. */
static int power_loss_setup(const char *dir)
{
    log_env_t *env;
    rk_status_t st;
    if (log_env_open(dir, NULL, &env, &st) != 0) {
        fprintf(stderr, "storage-crash: creating the log: %s\n", st.msg);
        return -1;
    }
    log_env_close(env);
    return pl_init(dir);
}

/* Checks group g of env; *last_out gets its last index. */
static int check_group(log_env_t *env, int g, uint64_t *last_out, unsigned seed, int kill_no)
{
    pgroup_t *p = &pg[g];
    uint64_t acked = p->acked, from = p->checked_from, *min_term = p->min_term;
    size_t min_term_cap = p->min_term_cap;
    log_store_t *s;
    rk_status_t st;
    char name[32];
    int bad = 0;
    *last_out = 0;
    group_name(g, name, sizeof name);
    if (log_store_open(env, name, NULL, &s, &st) != 0) {
        fprintf(stderr, "storage-crash: kill %d (seed %u): reopen failed: %s\n", kill_no, seed,
                st.msg);
        return 1;
    }
    uint64_t first = log_store_first_index(s), last = log_store_last_index(s);
    uint64_t bad_index = 0;
    if (first != 1 || last < acked) {
        fprintf(stderr,
                "storage-crash: kill %d (seed %u): group %s: log is [%llu, %llu] but %llu was "
                "acknowledged\n",
                kill_no, seed, name, (unsigned long long)first, (unsigned long long)last,
                (unsigned long long)acked);
        bad = 1;
    } else if (log_store_verify(s, &bad_index, &st) != 0) {
        fprintf(stderr, "storage-crash: kill %d (seed %u): %s\n", kill_no, seed, st.msg);
        bad = 1;
    }
    /* Payloads and terms of the entries written since the last check (a
     * rewrite reaches REWRITE_MAX back; older ones were checked before and
     * the checksum scan above covers them since). */
    uint64_t prev_term = 0;
    for (uint64_t i = from > REWRITE_MAX + 1 ? from - REWRITE_MAX - 1 : 1; !bad && i <= last; i++) {
        log_entry_t e;
        if (log_store_get(s, i, &e, &st) != 0 || e.len != tu_payload_len(i, MAX_PAYLOAD) ||
            !tu_payload_check(i, e.term, e.data, e.len) || e.term < prev_term ||
            (i < min_term_cap && e.term < min_term[i])) {
            fprintf(stderr,
                    "storage-crash: kill %d (seed %u): group %s: entry %llu is wrong (term %llu, "
                    "acknowledged with %llu)\n",
                    kill_no, seed, name, (unsigned long long)i, (unsigned long long)e.term,
                    (unsigned long long)(i < min_term_cap ? min_term[i] : 0));
            bad = 1;
        }
        prev_term = e.term;
        log_entry_release(&e);
    }
    meta_hard_state_t hs;
    if (!bad && meta_store_load(s, &hs, &st) != 0) {
        fprintf(stderr, "storage-crash: kill %d (seed %u): hard state: %s\n", kill_no, seed,
                st.msg);
        bad = 1;
    }
    log_store_close(s);
    *last_out = last;
    return bad;
}

/* Reopens the environment and checks every group; *last_total gets the sum
 * of their last indexes and *checked the entries checked. */
static int check(const char *dir, uint64_t *last_total, uint64_t *checked, unsigned seed,
                 int kill_no)
{
    log_env_t *env;
    rk_status_t st;
    *last_total = 0;
    if (log_env_open(dir, NULL, &env, &st) != 0) {
        fprintf(stderr, "storage-crash: kill %d (seed %u): reopen failed: %s\n", kill_no, seed,
                st.msg);
        return 1;
    }
    int bad = 0;
    for (int g = 0; g < n_groups && !bad; g++) {
        uint64_t last = 0;
        bad = check_group(env, g, &last, seed, kill_no);
        *checked += last >= pg[g].checked_from ? last - pg[g].checked_from + 1 : 0;
        pg[g].checked_from = last + 1;
        pg[g].acked = 0;
        if (group_is_new(g)) { /* the next child writes another one */
            pg[g].checked_from = 1;
            if (pg[g].min_term != NULL)
                memset(pg[g].min_term, 0, pg[g].min_term_cap * sizeof *pg[g].min_term);
        } else {
            *last_total += last;
        }
    }
    log_env_close(env);
    /* Reopening recovered the log (journal replay and checkpoint) and synced
     * everything before the close: the disk now holds what the files hold. */
    if (power_loss && pl_init(dir) != 0) {
        fprintf(stderr, "storage-crash: power loss simulation: cannot reset\n");
        bad = 1;
    }
    return bad;
}

int main(int argc, char **argv)
{
    int kills = 200, kill_ms = 30;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    const char *dir_arg = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:d:pg:t:")) != -1) {
        if (opt == 'n')
            kills = atoi(optarg);
        else if (opt == 'g' && atoi(optarg) >= 1 && atoi(optarg) <= MAX_GROUPS)
            n_groups = atoi(optarg);
        else if (opt == 't' && atoi(optarg) >= 1)
            kill_ms = atoi(optarg);
        else if (opt == 's')
            seed = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 'd')
            dir_arg = optarg;
        else if (opt == 'p')
            power_loss = true;
        else {
            fprintf(stderr,
                    "usage: %s [-n kills] [-s seed] [-d dir] [-p] [-g groups (1..%d)] [-t ms]\n",
                    argv[0], MAX_GROUPS);
            return 2;
        }
    }
    rng_state = 0x9E3779B97F4A7C15ull ^ seed;
    char *dir = dir_arg ? strdup(dir_arg) : tu_mkdtemp("crash");
    printf("storage-crash: %d %s, %d group%s, seed %u, dir %s\n", kills,
           power_loss ? "power losses" : "kills", n_groups, n_groups > 1 ? "s" : "", seed, dir);
    unsigned pages_lost = 0, pages_kept = 0;
    if (power_loss && power_loss_setup(dir) != 0)
        return 1;
    fflush(stdout);
    uint64_t max_last = 0, entries_checked = 0;
    for (int g = 0; g < n_groups; g++)
        pg[g].checked_from = 1;
    int fails = 0, restarts = 0;
    for (int k = 0; k < kills && !fails; k++) {
        int p[2];
        if (pipe(p) != 0)
            return 2;
        uint64_t child_seed = rnd();
        cur_kill = k;
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            rng_state = child_seed | 1;
            run_child(dir, p[1], ((uint64_t)k + 1) * TERM_STEP);
        }
        close(p[1]);
        fcntl(p[0], F_SETFL, O_NONBLOCK);
        /* Kill after 1..kill_ms ms: sometimes during open, usually mid-commit. */
        uint64_t kill_ns = (1 + rnd() % (uint64_t)kill_ms) * 1000000u;
        struct timespec ts = {(time_t)(kill_ns / 1000000000u), (long)(kill_ns % 1000000000u)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int ws;
        waitpid(pid, &ws, 0);
        drain(p[0], false); /* acks written before death */
        close(p[0]);
        if (!WIFSIGNALED(ws)) {
            fprintf(stderr, "storage-crash: child exited with %d before the kill\n",
                    WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
            fails++;
            break;
        }
        if (power_loss && pl_power_loss(dir, rnd, &pages_lost, &pages_kept) != 0) {
            fprintf(stderr, "storage-crash: power loss simulation failed: %s\n", strerror(errno));
            fails++;
            break;
        }
        uint64_t last = 0;
        fails += check(dir, &last, &entries_checked, seed, k);
        if (last > max_last)
            max_last = last;
        if (last > RESTART_AT) {
            tu_rm_rf(dir);
            mkdir(dir, 0755);
            pl_remove(dir);
            if (power_loss && power_loss_setup(dir) != 0)
                return 1;
            for (int g = 0; g < n_groups; g++) {
                pg[g].checked_from = 1;
                if (pg[g].min_term != NULL)
                    memset(pg[g].min_term, 0, pg[g].min_term_cap * sizeof *pg[g].min_term);
            }
            restarts++;
        }
    }
    printf("storage-crash: largest log%s %llu entries, %llu entries checked, %d fresh restarts\n",
           n_groups > 1 ? "s (all groups)" : "", (unsigned long long)max_last,
           (unsigned long long)entries_checked, restarts);
    if (power_loss)
        printf("storage-crash: unsynced pages at the power losses: %u kept, %u lost\n", pages_kept,
               pages_lost);
    printf("storage-crash: %d passed, %d failed\n", fails ? 0 : 1, fails ? 1 : 0);
    if (!dir_arg && !fails) {
        tu_rm_rf(dir);
        pl_remove(dir);
    }
    free(dir);
    for (int g = 0; g < n_groups; g++)
        free(pg[g].min_term);
    return fails ? 1 : 0;
}
