/* The FSM caller: applies a node's committed entries in log order, in
 * batches, through the state machine's on_apply, and runs every other
 * state-machine callback and every user closure at its place in that order.
 * A slow state machine therefore delays applying, never the loop
 * (heartbeats, elections, replication).
 *
 * The work of every node of a runtime is run by a fixed pool of executor
 * threads, not by a thread per node: a process hosting thousands of groups
 * would otherwise run thousands of threads. Each node is bound to one
 * executor for its life, so its callbacks are serialized and in log order
 * by construction. An executor runs the nodes that have queued work in the
 * order they became ready, a bounded turn each, so that a busy node cannot
 * starve the others bound to the same executor.
 *
 * Entries are read back from the durable log (the core only hands out
 * committed entries that are durable locally), so the loop never copies
 * payloads for the state machine.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

/* ------------------------------------------------------ pending proposals */

int pend_push(rk_node_t *n, uint64_t index, uint64_t term, rk_closure_t *done, bool task_closure)
{
    pthread_mutex_lock(&n->pend_mu);
    if (n->pend_count == n->pend_cap) {
        size_t cap = n->pend_cap ? n->pend_cap * 2 : 16; /* grows with what is in flight */
        node_pending_t *p = malloc(cap * sizeof(*p));
        if (p == NULL) {
            pthread_mutex_unlock(&n->pend_mu);
            return RK_ENOMEM;
        }
        for (size_t i = 0; i < n->pend_count; i++)
            p[i] = n->pend[(n->pend_head + i) % n->pend_cap];
        free(n->pend);
        n->pend = p;
        n->pend_cap = cap;
        n->pend_head = 0;
    }
    n->pend[(n->pend_head + n->pend_count) % n->pend_cap] =
        (node_pending_t){.index = index, .term = term, .done = done, .task_closure = task_closure};
    n->pend_count++;
    pthread_mutex_unlock(&n->pend_mu);
    return 0;
}

void pend_fail_above(rk_node_t *n, uint64_t above, int code, const char *msg)
{
    for (;;) {
        rk_closure_t *done = NULL;
        pthread_mutex_lock(&n->pend_mu);
        if (n->pend_count > 0) {
            node_pending_t *last = &n->pend[(n->pend_head + n->pend_count - 1) % n->pend_cap];
            if (last->index > above) {
                done = last->done;
                n->pend_count--;
            }
        }
        bool more = done != NULL;
        pthread_mutex_unlock(&n->pend_mu);
        if (!more)
            return;
        fsm_post_closure(n, done, code, msg);
    }
}

static void run_closure(rk_closure_t *done, int code, const char *msg)
{
    if (done == NULL)
        return;
    rk_status_t st;
    if (code == 0)
        rk_status_clear(&st);
    else
        rk_status_set(&st, code, "%s", msg ? msg : "");
    done->run(done, &st);
}

/* FSM thread: the closure of the entry (index, term), NULL when this node did
 * not propose it. Closures of proposals that lost their index (overwritten by
 * another leader's entries) fail with RK_ELEADERLOST here. *task_closure (may
 * be NULL) says whether the closure is an rk_task_closure_t's. */
static rk_closure_t *pend_take_tc(rk_node_t *n, uint64_t index, uint64_t term, bool *task_closure)
{
    if (task_closure)
        *task_closure = false;
    for (;;) {
        pthread_mutex_lock(&n->pend_mu);
        if (n->pend_count == 0 || n->pend[n->pend_head].index > index) {
            pthread_mutex_unlock(&n->pend_mu);
            return NULL;
        }
        node_pending_t p = n->pend[n->pend_head];
        n->pend_head = (n->pend_head + 1) % n->pend_cap;
        n->pend_count--;
        pthread_mutex_unlock(&n->pend_mu);
        if (p.index == index && p.term == term) {
            if (task_closure)
                *task_closure = p.task_closure;
            return p.done;
        }
        run_closure(p.done, RK_ELEADERLOST, "another leader's entry was committed at this index");
        if (p.index == index)
            return NULL;
    }
}

static rk_closure_t *pend_take(rk_node_t *n, uint64_t index, uint64_t term)
{
    return pend_take_tc(n, index, term, NULL);
}

static void pend_fail_all(rk_node_t *n, int code, const char *msg)
{
    for (;;) {
        rk_closure_t *done = NULL;
        bool any = false;
        pthread_mutex_lock(&n->pend_mu);
        if (n->pend_count > 0) {
            done = n->pend[n->pend_head].done;
            n->pend_head = (n->pend_head + 1) % n->pend_cap;
            n->pend_count--;
            any = true;
        }
        pthread_mutex_unlock(&n->pend_mu);
        if (!any)
            return;
        run_closure(done, code, msg);
    }
}

/* ------------------------------------------------------------ the queue */

/* Under n->fsm_mu: n has work (or must check whether it may shut down).
 * Returns its executor when n is to join its ready list (ready(), once
 * fsm_mu is released: n cannot run before), NULL when n is there already,
 * running, or not bound yet (fsm_start then does it). */
static fsm_exec_t *claim_locked(rk_node_t *n)
{
    if (n->fsm_exec == NULL || n->fsm_scheduled)
        return NULL;
    n->fsm_scheduled = true;
    return n->fsm_exec;
}

/* Puts n (claimed) at the back of ex's ready list. Without a lock held, and
 * the executor woken after ex->mu is released: it does not wake only to
 * wait for a lock of the poster's. */
static void ready(fsm_exec_t *ex, rk_node_t *n)
{
    if (ex == NULL)
        return;
    pthread_mutex_lock(&ex->mu);
    n->fsm_ready_next = NULL;
    if (ex->ready_tail)
        ex->ready_tail->fsm_ready_next = n;
    else
        ex->ready_head = n;
    ex->ready_tail = n;
    pthread_mutex_unlock(&ex->mu);
    pthread_cond_signal(&ex->cv);
}

void fsm_post(rk_node_t *n, fsm_item_t *it)
{
    it->next = NULL;
    if (it->t0_ns == 0)
        it->t0_ns = metrics_now_ns();
    pthread_mutex_lock(&n->fsm_mu);
    if (n->fsm_tail)
        n->fsm_tail->next = it;
    else
        n->fsm_head = it;
    n->fsm_tail = it;
    fsm_exec_t *ex = claim_locked(n);
    pthread_mutex_unlock(&n->fsm_mu);
    ready(ex, n);
}

int fsm_post_simple(rk_node_t *n, fsm_item_type_t type, uint64_t a, const rk_status_t *st)
{
    fsm_item_t *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return RK_ENOMEM;
    it->type = type;
    it->a = a;
    if (st)
        it->st = *st;
    fsm_post(n, it);
    return 0;
}

void fsm_post_closure(rk_node_t *n, rk_closure_t *done, int code, const char *msg)
{
    if (done == NULL)
        return;
    fsm_item_t *it = calloc(1, sizeof(*it));
    if (it == NULL) { /* last resort: run it here rather than lose it */
        run_closure(done, code, msg);
        return;
    }
    it->type = FSM_CLOSURE;
    it->done = done;
    if (code != 0)
        rk_status_set(&it->st, code, "%s", msg ? msg : "");
    fsm_post(n, it);
}

/* Committed work coalesces into the tail item, so a burst of commits costs
 * one item and one wakeup. */
void fsm_post_committed(rk_node_t *n, uint64_t hi)
{
    pthread_mutex_lock(&n->fsm_mu);
    if (n->fsm_tail && n->fsm_tail->type == FSM_COMMITTED) {
        if (hi > n->fsm_tail->a)
            n->fsm_tail->a = hi;
        pthread_mutex_unlock(&n->fsm_mu);
        return;
    }
    pthread_mutex_unlock(&n->fsm_mu);
    fsm_post_simple(n, FSM_COMMITTED, hi, NULL);
}

/* --------------------------------------------------------------- iterator */

struct rk_iterator {
    rk_node_t *n;
    const log_entry_t *ents;
    rk_closure_t **dones;
    size_t count;
    size_t pos;
    bool error;
    size_t keep; /* after an error: entries of this run that count as applied */
};

bool rk_iterator_valid(const rk_iterator_t *it)
{
    return !it->error && it->pos < it->count;
}

void rk_iterator_next(rk_iterator_t *it)
{
    if (!rk_iterator_valid(it))
        return;
    rk_closure_t *done = it->dones[it->pos];
    it->dones[it->pos] = NULL;
    it->pos++;
    run_closure(done, 0, NULL);
}

int64_t rk_iterator_index(const rk_iterator_t *it)
{
    return it->pos < it->count ? (int64_t)it->ents[it->pos].index : 0;
}

int64_t rk_iterator_term(const rk_iterator_t *it)
{
    return it->pos < it->count ? (int64_t)it->ents[it->pos].term : 0;
}

const void *rk_iterator_data(const rk_iterator_t *it, size_t *len)
{
    if (it->pos >= it->count) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = it->ents[it->pos].len;
    return it->ents[it->pos].data;
}

rk_closure_t *rk_iterator_done(const rk_iterator_t *it)
{
    return it->pos < it->count ? it->dones[it->pos] : NULL;
}

void rk_iterator_set_error_and_rollback(rk_iterator_t *it, size_t ntail, const rk_status_t *st)
{
    if (it->error)
        return;
    it->error = true;
    /* JRaft: the applied index goes back to current - ntail, so the current
     * entry and the ntail - 1 before it are not applied; not below the start
     * of this run (earlier entries may already have served reads). */
    size_t back = ntail > 0 ? ntail - 1 : 0;
    it->keep = it->pos > back ? it->pos - back : 0;
    rk_status_t e;
    if (st != NULL && st->code != 0)
        e = *st;
    else
        rk_status_set(&e, RK_EINTERNAL, "state machine set_error_and_rollback");
    for (size_t i = it->pos; i < it->count; i++) {
        rk_closure_t *d = it->dones[i];
        it->dones[i] = NULL;
        if (d)
            d->run(d, &e);
    }
    node_enter_error(it->n, e.code, "state machine error at index %llu: %s",
                     (unsigned long long)(it->pos < it->count ? it->ents[it->pos].index : 0),
                     e.msg);
}

/* ------------------------------------------------------ default callbacks */

static void default_apply(rk_state_machine_t *sm, rk_iterator_t *it)
{
    (void)sm;
    for (; rk_iterator_valid(it); rk_iterator_next(it))
        ;
}

/* ------------------------------------------------------------- applying */

static void set_applied(rk_node_t *n, uint64_t index, uint64_t term)
{
    atomic_store(&n->applied, index);
    n->fsm_applied_term = term;
}

/* The configuration as of the applied index becomes conf (interned: the
 * groups of a process share one copy). Out of memory puts the node in error:
 * a later snapshot must not record a stale configuration. */
static bool fsm_set_conf(rk_node_t *n, const core_conf_t *conf)
{
    const core_conf_t *in = core_conf_intern(conf);
    if (in == NULL) {
        node_enter_error(n, RK_ENOMEM, "interning the applied configuration");
        n->fsm_error = true;
        return false;
    }
    core_conf_release(n->fsm_conf);
    n->fsm_conf = in;
    return true;
}

static void serve_reads(rk_node_t *n)
{
    uint64_t applied = atomic_load(&n->applied);
    fsm_item_t **pp = &n->fsm_reads;
    while (*pp) {
        fsm_item_t *r = *pp;
        if (r->a <= applied) {
            *pp = r->next;
            rk_status_t ok;
            rk_status_clear(&ok);
            metrics_record_since(n->metrics, METRIC_READ_INDEX, r->t0_ns);
            r->read_done->run(r->read_done, &ok, (int64_t)r->a, r->ctx, r->ctx_len);
            free(r->ctx);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void maybe_leader_start(rk_node_t *n, uint64_t term)
{
    if (n->fsm_leader_term != 0 && !n->fsm_is_leader && term >= n->fsm_leader_term) {
        n->fsm_is_leader = true;
        if (n->fsm->on_leader_start)
            n->fsm->on_leader_start(n->fsm, (int64_t)n->fsm_leader_term);
        else
            RK_INFO(n->group, n->self_str, "on_leader_start term %llu",
                    (unsigned long long)n->fsm_leader_term);
    }
}

/* Applies a run of DATA entries through on_apply; returns how many were
 * applied (all of them unless the state machine failed). */
static size_t apply_data_run(rk_node_t *n, const log_entry_t *ents, size_t count)
{
    rk_closure_t *dones_small[64];
    rk_closure_t **dones = count <= 64 ? dones_small : calloc(count, sizeof(*dones));
    if (dones == NULL) {
        node_enter_error(n, RK_ENOMEM, "out of memory applying entries");
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        bool tc = false;
        dones[i] = pend_take_tc(n, ents[i].index, ents[i].term, &tc);
        /* JRaft's TaskClosure.onCommitted: known committed, not yet applied */
        if (tc) {
            rk_task_closure_t *t = rk_container_of(dones[i], rk_task_closure_t, closure);
            if (t->on_committed)
                t->on_committed(t);
        }
    }
    rk_iterator_t it = {.n = n, .ents = ents, .dones = dones, .count = count};
    uint64_t base_index = atomic_load(&n->applied), base_term = n->fsm_applied_term;
    void (*apply)(rk_state_machine_t *, rk_iterator_t *) =
        n->fsm->on_apply ? n->fsm->on_apply : default_apply;
    uint64_t t0 = metrics_now_ns();
    while (rk_iterator_valid(&it)) {
        size_t before = it.pos;
        apply(n->fsm, &it);
        if (it.pos > 0 && !it.error) /* after an error: it.keep, below */
            set_applied(n, ents[it.pos - 1].index, ents[it.pos - 1].term);
        if (!it.error && it.pos == before) {
            rk_status_t e;
            rk_status_set(&e, RK_EINTERNAL, "on_apply returned without advancing the iterator");
            rk_iterator_set_error_and_rollback(&it, 0, &e);
        }
    }
    size_t applied = it.pos;
    if (it.error) { /* closures from it.pos on already failed */
        n->fsm_error = true;
        applied = it.keep; /* set_error_and_rollback's ntail */
        if (applied > 0)
            set_applied(n, ents[applied - 1].index, ents[applied - 1].term);
        else
            set_applied(n, base_index, base_term);
    }
    metrics_record_since(n->metrics, METRIC_FSM_APPLY_TASKS, t0);
    metrics_record(n->metrics, METRIC_FSM_APPLY_TASKS_COUNT, applied);
    if (dones != dones_small)
        free(dones);
    return applied;
}

static bool snapshot_load_queued(rk_node_t *n)
{
    bool found = false;
    pthread_mutex_lock(&n->fsm_mu);
    for (fsm_item_t *it = n->fsm_head; it; it = it->next)
        if (it->type == FSM_SNAPSHOT_LOAD)
            found = true;
    pthread_mutex_unlock(&n->fsm_mu);
    return found;
}

/* Applies one fetch of committed entries (up to 1024 entries or 4 MiB) up
 * to hi. Returns true when entries up to hi remain: the executor lets the
 * other nodes bound to it have a turn before the rest. */
static bool apply_committed(rk_node_t *n, uint64_t hi)
{
    size_t batch = (size_t)n->opts.raft_options.apply_batch;
    uint64_t lo = atomic_load(&n->applied) + 1;
    if (n->fsm_error || lo > hi)
        return false;
    log_entry_t *ents = NULL;
    size_t cnt = 0;
    rk_status_t st;
    size_t want = hi - lo + 1 < 1024 ? (size_t)(hi - lo + 1) : 1024;
    int rc = log_store_fetch(n->store, lo, want, 4u << 20, &ents, &cnt, &st);
    if (rc == RK_ENOTFOUND && snapshot_load_queued(n))
        return false; /* the log was reset under a snapshot that supersedes these */
    if (rc != 0) {
        node_enter_error(n, rc, "reading committed entry %llu: %s", (unsigned long long)lo, st.msg);
        return false;
    }
    size_t i = 0;
    while (i < cnt && !n->fsm_error) {
        const log_entry_t *e = &ents[i];
        if (e->type == LOG_ENTRY_DATA) {
            size_t j = i;
            while (j < cnt && j - i < batch && ents[j].type == LOG_ENTRY_DATA)
                j++;
            size_t run = j - i;
            size_t done = apply_data_run(n, &ents[i], run);
            i += done;
            if (done < run)
                break;
            serve_reads(n);
            continue;
        }
        rk_closure_t *stale = pend_take(n, e->index, e->term);
        run_closure(stale, 0, NULL);
        if (e->type == LOG_ENTRY_CONF) {
            core_conf_t conf;
            if (core_conf_decode(e->data, e->len, &conf) == 0) {
                if (!fsm_set_conf(n, &conf))
                    break;
                if (n->fsm->on_configuration_committed)
                    n->fsm->on_configuration_committed(n->fsm, &conf.cur);
            }
        }
        set_applied(n, e->index, e->term);
        if (e->type == LOG_ENTRY_NOOP)
            maybe_leader_start(n, e->term);
        i++;
    }
    log_entries_free(ents, cnt);
    serve_reads(n);
    node_wake(n); /* the loop reports the applied index to the core */
    return !n->fsm_error && atomic_load(&n->applied) < hi;
}

/* ------------------------------------------------------------- snapshots */

struct rk_snapshot_writer {
    rk_closure_t closure; /* handed to on_snapshot_save */
    rk_node_t *n;
    snap_writer_t *w;
    rk_closure_t *user_done;
    uint64_t index, term;
    core_conf_t conf;
    uint64_t t0_ns; /* metrics: fsm-snapshot-save */
};

struct rk_snapshot_reader {
    snap_reader_t *r;
};

const char *rk_snapshot_writer_path(const rk_snapshot_writer_t *w)
{
    return snap_writer_path(w->w);
}

int rk_snapshot_writer_add_file(rk_snapshot_writer_t *w, const char *name)
{
    return snap_writer_add_file(w->w, name, NULL);
}

const char *rk_snapshot_reader_path(const rk_snapshot_reader_t *r)
{
    return snap_reader_path(r->r);
}
size_t rk_snapshot_reader_file_count(const rk_snapshot_reader_t *r)
{
    return snap_reader_meta(r->r)->n_files;
}
const char *rk_snapshot_reader_file(const rk_snapshot_reader_t *r, size_t i)
{
    const snap_meta_t *m = snap_reader_meta(r->r);
    return i < m->n_files ? m->files[i].name : NULL;
}
int64_t rk_snapshot_reader_index(const rk_snapshot_reader_t *r)
{
    return (int64_t)snap_reader_meta(r->r)->last_index;
}
int64_t rk_snapshot_reader_term(const rk_snapshot_reader_t *r)
{
    return (int64_t)snap_reader_meta(r->r)->last_term;
}

/* on_snapshot_save's closure: may run on any thread. */
static void snapshot_saved(rk_closure_t *c, const rk_status_t *st)
{
    rk_snapshot_writer_t *w = rk_container_of(c, rk_snapshot_writer_t, closure);
    rk_node_t *n = w->n;
    rk_status_t cst;
    int rc = st->code;
    if (rc == 0) {
        rc = snap_writer_commit(w->w, &cst);
        if (rc != 0)
            RK_ERROR(n->group, n->self_str, "snapshot %llu: commit failed: %s",
                     (unsigned long long)w->index, cst.msg);
    } else {
        snap_writer_abort(w->w);
        cst = *st;
    }
    if (rc == 0)
        metrics_record_since(n->metrics, METRIC_FSM_SNAPSHOT_SAVE, w->t0_ns);
    if (rc == 0)
        RK_INFO(n->group, n->self_str, "snapshot saved at index %llu term %llu",
                (unsigned long long)w->index, (unsigned long long)w->term);
    fsm_post_closure(n, w->user_done, rc, rc ? cst.msg : NULL);
    node_on_snapshot_saved(n, w->index, w->term, &w->conf, rc);
    free(w);
    /* under fsm_mu, with a turn for n: a stopping node waits for this to
     * run on_shutdown (end_turn) */
    pthread_mutex_lock(&n->fsm_mu);
    atomic_fetch_sub(&n->snap_inflight, 1);
    fsm_exec_t *ex = claim_locked(n);
    pthread_mutex_unlock(&n->fsm_mu);
    ready(ex, n);
}

static void do_snapshot_save(rk_node_t *n, rk_closure_t *user_done)
{
    uint64_t index = atomic_load(&n->applied);
    rk_status_t st;
    if (n->fsm_error) {
        run_closure(user_done, RK_ESTATE, "node is in the error state");
        node_on_snapshot_saved(n, 0, 0, NULL, RK_ESTATE);
        return;
    }
    if (index == 0 || index <= snap_store_latest_index(n->snaps)) {
        run_closure(user_done, 0, NULL); /* nothing new to save */
        node_on_snapshot_saved(n, 0, 0, NULL, 0);
        return;
    }
    rk_snapshot_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        run_closure(user_done, RK_ENOMEM, "snapshot writer");
        node_on_snapshot_saved(n, 0, 0, NULL, RK_ENOMEM);
        return;
    }
    w->closure.run = snapshot_saved;
    w->n = n;
    w->user_done = user_done;
    w->index = index;
    w->term = n->fsm_applied_term;
    w->conf = *n->fsm_conf;
    w->t0_ns = metrics_now_ns();
    int rc = snap_writer_begin(n->snaps, index, w->term, &w->conf.cur,
                               w->conf.joint ? &w->conf.old : NULL, &w->w, &st);
    if (rc != 0) {
        run_closure(user_done, rc, st.msg);
        node_on_snapshot_saved(n, 0, 0, NULL, rc);
        free(w);
        return;
    }
    atomic_fetch_add(&n->snap_inflight, 1);
    if (n->fsm->on_snapshot_save) {
        n->fsm->on_snapshot_save(n->fsm, w, &w->closure);
    } else {
        rk_status_set(&st, RK_EINVAL, "the state machine has no on_snapshot_save");
        w->closure.run(&w->closure, &st);
    }
}

/* Replaces the state machine's state with the newest local snapshot. */
static void do_snapshot_load(rk_node_t *n, uint64_t index)
{
    rk_status_t st;
    snap_reader_t *r = NULL;
    int rc = snap_reader_open(n->snaps, &r, &st);
    if (rc != 0) {
        node_enter_error(n, rc, "opening snapshot %llu: %s", (unsigned long long)index, st.msg);
        n->fsm_error = true;
        return;
    }
    const snap_meta_t *m = snap_reader_meta(r);
    if (m->last_index < index) {
        snap_reader_close(r);
        node_enter_error(n, RK_ECORRUPT, "snapshot %llu missing (newest is %llu)",
                         (unsigned long long)index, (unsigned long long)m->last_index);
        n->fsm_error = true;
        return;
    }
    rk_snapshot_reader_t rd = {.r = r};
    if (n->fsm->on_snapshot_load) {
        uint64_t t0 = metrics_now_ns();
        rc = n->fsm->on_snapshot_load(n->fsm, &rd);
        if (rc == 0)
            metrics_record_since(n->metrics, METRIC_FSM_SNAPSHOT_LOAD, t0);
    } else {
        RK_WARN(n->group, n->self_str, "no on_snapshot_load: refusing snapshot %llu",
                (unsigned long long)m->last_index);
        rc = RK_EINVAL;
    }
    if (rc != 0) {
        snap_reader_close(r);
        node_enter_error(n, rc, "on_snapshot_load(%llu) failed", (unsigned long long)index);
        n->fsm_error = true;
        return;
    }
    core_conf_t conf = {.cur = m->conf, .joint = m->has_old_conf};
    if (m->has_old_conf)
        conf.old = m->old_conf;
    if (!fsm_set_conf(n, &conf)) {
        snap_reader_close(r);
        return;
    }
    if (n->fsm->on_configuration_committed)
        n->fsm->on_configuration_committed(n->fsm, &m->conf);
    /* proposals at or below the snapshot can no longer be matched */
    pend_take(n, m->last_index, UINT64_MAX);
    set_applied(n, m->last_index, m->last_term);
    snap_reader_close(r);
    RK_INFO(n->group, n->self_str, "snapshot %llu loaded", (unsigned long long)index);
    serve_reads(n);
    node_wake(n);
}

/* ------------------------------------------------------------- the items */

/* Returns true when entries of the item remain to be applied. */
static bool on_committed(rk_node_t *n, fsm_item_t *it)
{
    if (n->fsm_error)
        return false;
    if (apply_committed(n, it->a))
        return true;
    /* from the first commit advance this item covers */
    if (!n->fsm_error)
        metrics_record_since(n->metrics, METRIC_FSM_COMMIT, it->t0_ns);
    return false;
}

static void on_leader_stop(rk_node_t *n, fsm_item_t *it)
{
    if (n->fsm_is_leader) {
        if (n->fsm->on_leader_stop)
            n->fsm->on_leader_stop(n->fsm, &it->st);
        else
            RK_INFO(n->group, n->self_str, "on_leader_stop: %s", it->st.msg);
    }
    n->fsm_is_leader = false;
    n->fsm_leader_term = 0;
}

/* A read: failed at once, or queued until applied reaches its index.
 * Returns true when it was queued (it is no longer the caller's). */
static bool on_read(rk_node_t *n, fsm_item_t *it)
{
    if (it->st.code != 0 || n->fsm_error) {
        rk_status_t e = it->st;
        if (e.code == 0)
            rk_status_set(&e, RK_ESTATE, "node is in the error state");
        it->read_done->run(it->read_done, &e, 0, it->ctx, it->ctx_len);
        return false;
    }
    it->next = n->fsm_reads;
    n->fsm_reads = it;
    serve_reads(n);
    return true;
}

/* Runs it; returns true when it is not finished (a commit with entries
 * left): it is still the caller's, to be run again. */
static bool handle(rk_node_t *n, fsm_item_t *it)
{
    switch (it->type) {
    case FSM_COMMITTED:
        if (on_committed(n, it))
            return true;
        break;
    case FSM_LEADER_START:
        n->fsm_leader_term = it->a;
        n->fsm_is_leader = false;
        break;
    case FSM_LEADER_STOP:
        on_leader_stop(n, it);
        break;
    case FSM_START_FOLLOWING:
        if (n->fsm->on_start_following)
            n->fsm->on_start_following(n->fsm, &it->lc);
        break;
    case FSM_STOP_FOLLOWING:
        if (n->fsm->on_stop_following)
            n->fsm->on_stop_following(n->fsm, &it->lc);
        break;
    case FSM_CLOSURE:
        it->done->run(it->done, &it->st);
        break;
    case FSM_READ:
        if (on_read(n, it))
            return false; /* kept (or freed by serve_reads) */
        break;
    case FSM_SNAPSHOT_SAVE:
        do_snapshot_save(n, it->done);
        break;
    case FSM_SNAPSHOT_LOAD:
        do_snapshot_load(n, it->a);
        break;
    case FSM_ERROR:
        if (n->fsm->on_error)
            n->fsm->on_error(n->fsm, &it->st);
        else
            RK_ERROR(n->group, n->self_str, "on_error: %s", it->st.msg);
        n->fsm_error = true;
        break;
    case FSM_SHUTDOWN:
        n->fsm_stopping = true;
        break;
    }
    free(it->ctx);
    free(it);
    return false;
}

static void shutdown_fsm(rk_node_t *n)
{
    pend_fail_all(n, RK_ESHUTDOWN, "node shut down");
    while (n->fsm_reads) {
        fsm_item_t *r = n->fsm_reads;
        n->fsm_reads = r->next;
        rk_status_t e;
        rk_status_set(&e, RK_ESHUTDOWN, "node shut down");
        r->read_done->run(r->read_done, &e, 0, r->ctx, r->ctx_len);
        free(r->ctx);
        free(r);
    }
    if (n->fsm_is_leader) {
        rk_status_t e;
        rk_status_set(&e, RK_ESHUTDOWN, "node shut down");
        if (n->fsm->on_leader_stop)
            n->fsm->on_leader_stop(n->fsm, &e);
        n->fsm_is_leader = false;
    }
    if (n->fsm->on_shutdown)
        n->fsm->on_shutdown(n->fsm);
}

/* ------------------------------------------------------------ executors */

/* Items a node runs in one turn before the other ready nodes of its
 * executor get theirs; a commit applies one fetch of entries per item. */
#define FSM_TURN_ITEMS 32

/* Executor thread, after n's turn: back to the ready list while it has
 * items; otherwise on_shutdown once FSM_SHUTDOWN was taken and no snapshot
 * save is outstanding. Items posted behind FSM_SHUTDOWN (the closure of a
 * snapshot whose on_snapshot_save finished meanwhile, on this thread or
 * another) and the closures of snapshots still being saved (snap_inflight,
 * whose end gives n a turn) come first, so every closure runs once and none
 * after on_shutdown. */
static void end_turn(rk_node_t *n)
{
    pthread_mutex_lock(&n->fsm_mu);
    bool more = n->fsm_head != NULL;
    if (more || !n->fsm_stopping || atomic_load(&n->snap_inflight) > 0) {
        n->fsm_scheduled = more; /* stays claimed for its next turn */
        fsm_exec_t *ex = n->fsm_exec;
        pthread_mutex_unlock(&n->fsm_mu);
        if (more)
            ready(ex, n);
        return;
    }
    pthread_mutex_unlock(&n->fsm_mu);
    shutdown_fsm(n);
    /* fsm_scheduled stays set: n never runs again; fsm_join may free it as
     * soon as fsm_mu is released */
    pthread_mutex_lock(&n->fsm_mu);
    n->fsm_finished = true;
    pthread_cond_broadcast(&n->fsm_cv);
    pthread_mutex_unlock(&n->fsm_mu);
}

static void run_turn(rk_node_t *n)
{
    for (int k = 0; k < FSM_TURN_ITEMS; k++) {
        pthread_mutex_lock(&n->fsm_mu);
        fsm_item_t *it = n->fsm_head;
        if (it != NULL) {
            n->fsm_head = it->next;
            if (n->fsm_head == NULL)
                n->fsm_tail = NULL;
        }
        pthread_mutex_unlock(&n->fsm_mu);
        if (it == NULL)
            break;
        if (handle(n, it)) { /* the rest of it after the others' turns */
            pthread_mutex_lock(&n->fsm_mu);
            it->next = n->fsm_head;
            n->fsm_head = it;
            if (n->fsm_tail == NULL)
                n->fsm_tail = it;
            pthread_mutex_unlock(&n->fsm_mu);
            break;
        }
    }
    end_turn(n);
}

static void *exec_main(void *arg)
{
    fsm_exec_t *ex = arg;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        rk_node_t *n = ex->ready_head;
        if (n == NULL) {
            if (ex->stop)
                break;
            pthread_cond_wait(&ex->cv, &ex->mu);
            continue;
        }
        ex->ready_head = n->fsm_ready_next;
        if (ex->ready_head == NULL)
            ex->ready_tail = NULL;
        pthread_mutex_unlock(&ex->mu);
        run_turn(n);
        pthread_mutex_lock(&ex->mu);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

int fsm_pool_init(fsm_pool_t *p, int threads)
{
    memset(p, 0, sizeof(*p));
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    p->execs = calloc((size_t)threads, sizeof(*p->execs));
    if (p->execs == NULL)
        return RK_ENOMEM;
    p->max = threads;
    pthread_mutex_init(&p->mu, NULL);
    return 0;
}

/* Under p->mu: the executor for a new node. The least loaded running one,
 * unless every running one has nodes and the pool may grow: then a new one.
 * NULL when none runs and none could be started. */
static fsm_exec_t *pool_pick(fsm_pool_t *p)
{
    fsm_exec_t *best = NULL;
    for (int i = 0; i < p->n; i++)
        if (best == NULL || p->execs[i].n_groups < best->n_groups)
            best = &p->execs[i];
    if ((best == NULL || best->n_groups > 0) && p->n < p->max) {
        fsm_exec_t *ex = &p->execs[p->n];
        pthread_mutex_init(&ex->mu, NULL);
        pthread_cond_init(&ex->cv, NULL);
        if (pthread_create(&ex->thread, NULL, exec_main, ex) == 0) {
            pthread_setname_np(ex->thread, "raftkit-fsm"); /* top -H, /proc/PID/task */
            p->n++;
            return ex;
        }
        pthread_mutex_destroy(&ex->mu);
        pthread_cond_destroy(&ex->cv);
        RK_WARN(NULL, NULL, "cannot start FSM executor %d; using the %d running", p->n + 1, p->n);
    }
    return best;
}

int fsm_start(rk_node_t *n)
{
    fsm_pool_t *p = &n->rt->fsm_pool;
    pthread_mutex_lock(&p->mu);
    fsm_exec_t *ex = p->stopped ? NULL : pool_pick(p);
    if (ex != NULL)
        ex->n_groups++;
    int rc = ex != NULL ? 0 : p->stopped ? RK_ESHUTDOWN : RK_EIO;
    pthread_mutex_unlock(&p->mu);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&n->fsm_mu);
    n->fsm_exec = ex;
    /* items posted before n was bound */
    fsm_exec_t *wake = n->fsm_head != NULL ? claim_locked(n) : NULL;
    pthread_mutex_unlock(&n->fsm_mu);
    ready(wake, n);
    return 0;
}

void fsm_join(rk_node_t *n)
{
    pthread_mutex_lock(&n->fsm_mu);
    fsm_exec_t *ex = n->fsm_exec;
    while (ex != NULL && !n->fsm_finished)
        pthread_cond_wait(&n->fsm_cv, &n->fsm_mu);
    n->fsm_exec = NULL; /* a later post only queues: node_free frees it */
    pthread_mutex_unlock(&n->fsm_mu);
    if (ex == NULL)
        return;
    fsm_pool_t *p = &n->rt->fsm_pool;
    pthread_mutex_lock(&p->mu);
    ex->n_groups--;
    pthread_mutex_unlock(&p->mu);
}

void fsm_pool_stop(fsm_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopped = true;
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        fsm_exec_t *ex = &p->execs[i];
        pthread_mutex_lock(&ex->mu);
        ex->stop = true;
        pthread_cond_signal(&ex->cv);
        pthread_mutex_unlock(&ex->mu);
        pthread_join(ex->thread, NULL);
        pthread_mutex_destroy(&ex->mu);
        pthread_cond_destroy(&ex->cv);
    }
    p->n = 0;
}

void fsm_pool_free(fsm_pool_t *p)
{
    if (p->execs == NULL)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p->execs);
    p->execs = NULL;
}
