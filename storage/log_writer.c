/* Log writer thread with group commit (see log_writer.h). */
#include "storage/log_writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"

#define WRITER_DEFAULT_BATCH        4096
#define WRITER_DEFAULT_INLINE_BYTES (64u << 10)
#define WRITER_DEFAULT_BATCH_BYTES  (256u << 10)

struct log_writer {
    log_env_t *env;
    uv_loop_t *loop;
    uv_async_t async;
    pthread_t thread;
    size_t max_batch;
    size_t max_batch_bytes;
    size_t inline_max_bytes;
    void (*on_failure)(void *arg, int code, const rk_status_t *st);
    void *failure_arg;
    log_op_t *scratch; /* whoever executes (thread or inline): one transaction */

    /* Loop thread only: requests held back until log_writer_flush. */
    log_write_req_t *held_head, *held_tail;
    size_t held_n, held_bytes;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    log_write_req_t *queue_head, *queue_tail; /* submitted, not yet taken */
    log_write_req_t *done_head, *done_tail;   /* executed, callback pending */
    /* committed with the meta page not yet synced: completed once a later
     * fdatasync covers it (see execute) */
    log_write_req_t *deferred_head, *deferred_tail;
    bool stopping;
    bool busy;            /* the thread is executing a group or checkpointing */
    bool inline_running;  /* the loop is executing held requests itself */
    bool ckpt_wanted;     /* an inline write found a checkpoint due */
    bool fail_unreported; /* a background checkpoint failed: on_failure is due */
    int error;
    rk_status_t error_st;
    uint64_t txns, ops;
};

static void push(log_write_req_t **head, log_write_req_t **tail, log_write_req_t *r)
{
    r->next = NULL;
    if (*tail)
        (*tail)->next = r;
    else
        *head = r;
    *tail = r;
}

/* Runs the callbacks of executed requests, in order, then on_failure if a
 * background checkpoint failed. Loop thread. */
static void deliver(log_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    log_write_req_t *r = w->done_head;
    w->done_head = w->done_tail = NULL;
    bool failed = w->fail_unreported;
    w->fail_unreported = false;
    int code = w->error;
    rk_status_t st = w->error_st;
    pthread_mutex_unlock(&w->mu);
    while (r) {
        log_write_req_t *next = r->next;
        r->cb(r, r->op.status);
        r = next;
    }
    if (failed && w->on_failure != NULL)
        w->on_failure(w->failure_arg, code, &st);
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
}

/* Moves the deferred (committed, not yet durable) requests to the done
 * list with status rc when rc is an error. Writer thread, mu held. */
static void release_deferred(log_writer_t *w, int rc)
{
    for (log_write_req_t *r = w->deferred_head; r != NULL;) {
        log_write_req_t *next = r->next;
        if (rc != 0)
            r->op.status = rc;
        push(&w->done_head, &w->done_tail, r);
        r = next;
    }
    w->deferred_head = w->deferred_tail = NULL;
}

/* Makes the deferred requests durable with one fdatasync and completes them.
 * Writer thread, mu not held. */
static void sync_deferred(log_writer_t *w)
{
    rk_status_t st;
    rk_status_clear(&st);
    int rc = log_env_sync(w->env, &st);
    pthread_mutex_lock(&w->mu);
    if (rc != 0 && w->error == 0) {
        w->error = rc;
        w->error_st = st;
        RK_ERROR(NULL, NULL, "log writer: sync failed, refusing further writes: %s",
                 st.msg[0] ? st.msg : rk_strerror(rc));
    }
    release_deferred(w, rc);
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

/* Executes one group of requests in one transaction. Writer thread.
 *
 * Durability with one fdatasync per transaction: an LMDB commit normally
 * costs two device flushes, one for the data pages and one for the meta page
 * that publishes them. The writer commits with LOG_ENV_DEFER_META instead
 * (data synced, meta only written) and keeps the group's completions back
 * ("deferred") until the meta is durable too: either the next commit's
 * fdatasync has covered it (under load: one flush per batch), or, when no
 * work is queued, an explicit log_env_sync (idle: two flushes, as before).
 * So a callback still never reports a write that a power loss could undo. */
struct group_ref {
    log_write_req_t *group;
    size_t n;
};

static void group_durable(void *arg)
{
    struct group_ref *g = arg;
    log_write_req_t *r = g->group;
    for (size_t i = 0; i < g->n; i++, r = r->next)
        if (r->durable_cb)
            r->durable_cb(r);
}

static void execute(log_writer_t *w, log_write_req_t *group, size_t n, bool inline_)
{
    rk_status_t st;
    rk_status_clear(&st);
    pthread_mutex_lock(&w->mu);
    int err = w->error;
    pthread_mutex_unlock(&w->mu);

    log_write_req_t *r = group;
    for (size_t i = 0; i < n; i++, r = r->next)
        w->scratch[i] = r->op;
    uint64_t txn_before = log_env_last_txnid(w->env);
    unsigned flags = w->env->journal ? (inline_ ? LOG_STORE_NO_CHECKPOINT : 0) : LOG_ENV_DEFER_META;
    struct group_ref g = {group, n};
    int rc = err ? err
                 : log_store_write_ex(w->env, w->scratch, n, flags, inline_ ? group_durable : NULL,
                                      &g, &st);
    /* did this commit write (and therefore fdatasync before its meta)? */
    bool wrote = rc == 0 && log_env_last_txnid(w->env) != txn_before;
    r = group;
    for (size_t i = 0; i < n; i++, r = r->next)
        r->op.status = rc ? rc : w->scratch[i].status;

    if (rc != 0 && w->deferred_head != NULL)
        sync_deferred(w); /* what committed before the failure still counts */
    pthread_mutex_lock(&w->mu);
    if (rc == 0) {
        w->txns++;
        w->ops += n;
    } else if (w->error == 0) {
        w->error = rc;
        w->error_st = st;
        RK_ERROR(NULL, NULL, "log writer: storage failed, refusing further writes: %s",
                 st.msg[0] ? st.msg : rk_strerror(rc));
    }
    if (wrote)
        release_deferred(w, 0); /* this commit's fdatasync covered their meta */
    /* Completions stay in submission order: behind anything still deferred. */
    /* With a journal the batch is durable already: its record was synced. */
    bool defer = (wrote && w->env->sync && w->env->journal == NULL) || w->deferred_head != NULL;
    for (r = group; n-- > 0;) {
        log_write_req_t *next = r->next;
        if (defer)
            push(&w->deferred_head, &w->deferred_tail, r);
        else
            push(&w->done_head, &w->done_tail, r);
        r = next;
    }
    bool any_done = w->done_head != NULL;
    pthread_mutex_unlock(&w->mu);
    if (any_done && !inline_) /* inline: the loop delivers them itself */
        uv_async_send(&w->async);
}

/* Writer thread, mu not held: the checkpoint an inline write left due. */
static void checkpoint_due(log_writer_t *w)
{
    rk_status_t st;
    rk_status_clear(&st);
    int rc = log_store_checkpoint_due(w->env, &st);
    if (rc == 0)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->error == 0) {
        w->error = rc;
        w->error_st = st;
        RK_ERROR(NULL, NULL, "log writer: checkpoint failed, refusing further writes: %s",
                 st.msg[0] ? st.msg : rk_strerror(rc));
        w->fail_unreported = true;
    }
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->async); /* deliver() reports it */
}

/* What a request weighs against the batch limits: payloads plus 64 per
 * entry. */
static size_t req_bytes(const log_write_req_t *r)
{
    size_t b = 0;
    for (size_t i = 0; i < r->op.n_entries; i++)
        b += r->op.entries[i].len + 64;
    return b;
}

/* The last request of the group that starts at head (one transaction, one
 * flush): requests are taken until max_batch of them or until they reach
 * max_batch_bytes; a single request is always taken whole. *n gets the
 * group's size. */
static log_write_req_t *group_end(const log_writer_t *w, log_write_req_t *head, size_t *n)
{
    log_write_req_t *r = head;
    size_t bytes = req_bytes(r);
    *n = 1;
    while (r->next && *n < w->max_batch && bytes < w->max_batch_bytes) {
        r = r->next;
        bytes += req_bytes(r);
        (*n)++;
    }
    return r;
}

static void *writer_main(void *arg)
{
    log_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->inline_running || (w->queue_head == NULL && !w->stopping &&
                                     w->deferred_head == NULL && !w->ckpt_wanted))
            pthread_cond_wait(&w->cond, &w->mu);
        if (w->queue_head == NULL && w->ckpt_wanted) {
            w->ckpt_wanted = false;
            w->busy = true;
            pthread_mutex_unlock(&w->mu);
            checkpoint_due(w);
            pthread_mutex_lock(&w->mu);
            w->busy = false;
            continue;
        }
        if (w->queue_head == NULL) {
            if (w->deferred_head == NULL)
                break; /* stopping and drained */
            /* Nothing else to commit: pay the second flush now rather than
             * keep the deferred callers waiting. */
            pthread_mutex_unlock(&w->mu);
            sync_deferred(w);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        /* Take what is queued, up to the batch limits: this is the group
         * commit. */
        size_t n;
        log_write_req_t *group = w->queue_head, *r = group_end(w, group, &n);
        w->queue_head = r->next;
        if (w->queue_head == NULL)
            w->queue_tail = NULL;
        w->busy = true;
        pthread_mutex_unlock(&w->mu);
        execute(w, group, n, false);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int log_writer_start(log_env_t *env, uv_loop_t *loop, const log_writer_options_t *o,
                     log_writer_t **out, rk_status_t *st)
{
    if (env == NULL || loop == NULL || out == NULL)
        return rk_status_set(st, RK_EINVAL, "log_writer_start: NULL argument");
    log_writer_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return rk_status_set(st, RK_ENOMEM, "log_writer_start");
    w->env = env;
    w->loop = loop;
    w->max_batch = o && o->max_batch_ops ? o->max_batch_ops : WRITER_DEFAULT_BATCH;
    w->max_batch_bytes = o && o->max_batch_bytes ? o->max_batch_bytes : WRITER_DEFAULT_BATCH_BYTES;
    w->inline_max_bytes = !o                                  ? WRITER_DEFAULT_INLINE_BYTES
                          : o->inline_max_bytes == (size_t)-1 ? 0
                          : o->inline_max_bytes               ? o->inline_max_bytes
                                                              : WRITER_DEFAULT_INLINE_BYTES;
    if (o != NULL) {
        w->on_failure = o->on_failure;
        w->failure_arg = o->failure_arg;
    }
    w->scratch = calloc(w->max_batch, sizeof *w->scratch);
    if (w->scratch == NULL) {
        free(w);
        return rk_status_set(st, RK_ENOMEM, "log_writer_start");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (uv_async_init(loop, &w->async, on_async) != 0)
        goto err_after_init;
    w->async.data = w;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        uv_close((uv_handle_t *)&w->async, NULL);
        /* the handle must be closed before its memory goes: run the loop
         * just for that close */
        uv_run(loop, UV_RUN_NOWAIT);
        goto err_after_init;
    }
    *out = w;
    return 0;
err_after_init:
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w->scratch);
    free(w);
    return rk_status_set(st, RK_EIO, "log_writer_start: cannot start the writer");
}

/* Appends the held requests to the thread's queue. mu held. */
static void queue_held(log_writer_t *w)
{
    if (w->held_head == NULL)
        return;
    if (w->queue_tail)
        w->queue_tail->next = w->held_head;
    else
        w->queue_head = w->held_head;
    w->queue_tail = w->held_tail;
    w->held_head = w->held_tail = NULL;
    w->held_n = w->held_bytes = 0;
}

/* Checks a submission and readies req for either queue. */
static int req_init(log_writer_t *w, log_write_req_t *req, log_write_cb cb)
{
    if (w == NULL || req == NULL || cb == NULL || req->op.store == NULL)
        return RK_EINVAL;
    req->cb = cb;
    req->op.status = RK_ECANCELED;
    return 0;
}

int log_writer_submit(log_writer_t *w, log_write_req_t *req, log_write_cb cb)
{
    if (req_init(w, req, cb) != 0)
        return RK_EINVAL;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return RK_ESHUTDOWN;
    }
    queue_held(w); /* held requests were submitted first */
    push(&w->queue_head, &w->queue_tail, req);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int log_writer_submit_held(log_writer_t *w, log_write_req_t *req, log_write_cb cb)
{
    if (req_init(w, req, cb) != 0)
        return RK_EINVAL;
    pthread_mutex_lock(&w->mu);
    bool stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    if (stopping)
        return RK_ESHUTDOWN;
    push(&w->held_head, &w->held_tail, req);
    w->held_n++;
    w->held_bytes += req_bytes(req);
    return 0;
}

bool log_writer_flush(log_writer_t *w)
{
    if (w == NULL || w->held_head == NULL)
        return false;
    pthread_mutex_lock(&w->mu);
    /* Inline only when it cannot reorder completions or wait behind the
     * thread: nothing queued, executing, deferred or undelivered. */
    size_t group_n;
    group_end(w, w->held_head, &group_n);
    bool inline_ = w->held_bytes <= w->inline_max_bytes && group_n == w->held_n &&
                   w->queue_head == NULL && !w->busy && w->deferred_head == NULL &&
                   w->done_head == NULL && w->error == 0 && !w->stopping;
    /* and never behind another writer's journal work (groups sharing the
     * environment): a checkpoint can take milliseconds */
    inline_ = inline_ && log_store_journal_idle(w->env);
    if (!inline_) {
        queue_held(w);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    w->inline_running = true;
    pthread_mutex_unlock(&w->mu);

    log_write_req_t *group = w->held_head;
    size_t n = w->held_n;
    w->held_head = w->held_tail = NULL;
    w->held_n = w->held_bytes = 0;
    execute(w, group, n, true);

    pthread_mutex_lock(&w->mu);
    w->inline_running = false;
    if (w->error == 0 && log_store_checkpoint_pending(w->env))
        w->ckpt_wanted = true;
    if (w->queue_head != NULL || w->ckpt_wanted)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    deliver(w);
    return true;
}

static void on_closed(uv_handle_t *h)
{
    log_writer_t *w = h->data;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w->scratch);
    free(w);
}

void log_writer_stop(log_writer_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    queue_held(w);
    w->stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->on_failure = NULL; /* the owner is stopping: requests still report */
    deliver(w);
    uv_close((uv_handle_t *)&w->async, on_closed);
}

void log_writer_stats(log_writer_t *w, uint64_t *txns, uint64_t *ops)
{
    pthread_mutex_lock(&w->mu);
    if (txns)
        *txns = w->txns;
    if (ops)
        *ops = w->ops;
    pthread_mutex_unlock(&w->mu);
}

int log_writer_error(log_writer_t *w, rk_status_t *st)
{
    pthread_mutex_lock(&w->mu);
    int e = w->error;
    if (st)
        *st = w->error_st;
    pthread_mutex_unlock(&w->mu);
    return e;
}
