/* The log writer thread: the node loop queues log ops (appends with optional
 * suffix truncation and hard state, prefix truncations, resets); the thread
 * commits everything queued in one LMDB transaction and one fsync (group
 * commit), then posts the completions back to the loop with uv_async_send.
 *
 * Why a thread: an fsync takes from tens of microseconds to tens of
 * milliseconds, and the loop must keep sending heartbeats meanwhile. Why
 * group commit: while one transaction syncs, new batches queue up, and the
 * next transaction takes all of them for the price of one fsync, so
 * throughput grows with load instead of being capped at one batch per fsync.
 * The leader writes its own log in parallel with replication (Raft thesis
 * 10.2.1); a follower acknowledges AppendEntries only from the completion
 * callback, i.e. once the entries are durable.
 *
 * With the journal (env.h, journal.c; the default when syncing) a batch is
 * durable once its journal record is fdatasync'ed, and the LMDB commit that
 * follows does not sync: one device flush per batch even when there is no
 * later batch to share it with. Without it, the commit syncs its data pages
 * and the completions wait for a later flush to cover the meta page.
 *
 * At low load the loop may run a write itself instead (log_writer_submit_held
 * + log_writer_flush, below): waking the thread and being woken back costs
 * more than a small journal write, and the loop has nothing better to do
 * meanwhile.
 *
 * Order: requests are executed and completed in submission order, across all
 * groups sharing the environment.
 *
 * Errors: an op that does not fit the log (RK_EINVAL) fails alone. A failed
 * transaction (RK_ENOSPC: disk full, file size limit or map limit; RK_EIO;
 * RK_ECORRUPT) fails every request in it, and the writer then fails every
 * later request with the same error: after a storage failure the node must
 * stop rather than carry on with a log that lost a batch in the middle.
 * Nothing of a failed transaction is stored.
 */
#ifndef RAFTKIT_STORAGE_LOG_WRITER_H
#define RAFTKIT_STORAGE_LOG_WRITER_H

#include <uv.h>

#include "storage/log_store.h"

typedef struct log_writer log_writer_t;
typedef struct log_write_req log_write_req_t;

/* Called on the loop thread, once per accepted request, with the op's
 * status (also in req->op.status). The request and what it points to may be
 * freed or reused from inside the callback. */
typedef void (*log_write_cb)(log_write_req_t *req, int status);

/* Caller-allocated, like a uv_write_t: fill op, keep req and everything op
 * points to (entries, payloads, hard state) alive until cb runs. */
struct log_write_req {
    log_op_t op;
    void *data; /* for the caller */
    /* Optional, set by the caller: called on the loop thread, in order, when
     * the request is durable but not yet visible to readers (its journal
     * record synced, the LMDB commit still to come) -- only for requests a
     * flush runs inline, and not always then. cb still runs, after it;
     * should the commit fail, cb reports the error although the data is
     * durable (it is replayed at the next open). Lets a follower answer
     * AppendEntries a commit earlier. Must not submit or flush. */
    void (*durable_cb)(log_write_req_t *req);
    /* private */
    log_write_cb cb;
    log_write_req_t *next;
};

typedef struct log_writer_options {
    /* Most ops taken into one transaction; 0 = default (4096). */
    size_t max_batch_ops;
    /* A transaction takes queued requests until their entries reach this
     * many bytes (payloads plus 64 per entry); one request always goes
     * whole, however big. 0 = default (256 KiB). */
    size_t max_batch_bytes;
    /* Held requests (log_writer_submit_held) of at most this many bytes
     * (payloads plus 64 per entry) may run on the loop thread itself; 0 =
     * default (64 KiB), (size_t)-1 = never. */
    size_t inline_max_bytes;
    /* Optional: called once, on the loop thread, when the writer fails
     * outside any request -- a checkpoint the thread ran in the background
     * (the environment is then sticky-failed, env.h). Failures of requests
     * are reported through their callbacks instead. Lets an idle owner learn
     * at once that its storage failed, not at its next write. */
    void (*on_failure)(void *arg, int code, const rk_status_t *st);
    void *failure_arg;
} log_writer_options_t;

/* Starts the writer thread for env, delivering completions on loop. o may be
 * NULL. Thread: the loop thread. Errors: RK_ENOMEM, RK_EIO (thread or async
 * handle creation failed); then nothing was started. */
int log_writer_start(log_env_t *env, uv_loop_t *loop, const log_writer_options_t *o,
                     log_writer_t **out, rk_status_t *st);

/* Queues req. Returns 0 (cb will run exactly once, on the loop thread), or
 * RK_EINVAL (NULL req/cb/store) / RK_ESHUTDOWN (writer stopping) and cb will
 * not run. A writer that already failed accepts the request and completes it
 * with its error. Thread: any (completions still run on the loop thread). */
int log_writer_submit(log_writer_t *w, log_write_req_t *req, log_write_cb cb);

/* Like log_writer_submit, but the request is held on the loop side until
 * the next log_writer_flush, which decides where it runs. Requests submitted
 * with log_writer_submit afterwards still run after it. Returns 0 (cb will
 * run exactly once), RK_EINVAL or RK_ESHUTDOWN (cb will not run). Thread: the
 * loop thread. */
int log_writer_submit_held(log_writer_t *w, log_write_req_t *req, log_write_cb cb);

/* Executes the held requests. When the thread is idle (nothing queued,
 * running, deferred or waiting for delivery), the environment has a journal
 * and the requests are small (inline_max_bytes), the loop thread runs them
 * itself: one journal record and fdatasync, the LMDB commit, then their
 * callbacks, synchronously, before this returns true. A checkpoint that falls
 * due is left to the thread. Otherwise they are queued for the thread, as by
 * log_writer_submit, and this returns false.
 *
 * Why: at low load the hand-offs cost more than the write. Queuing to the
 * thread wakes it (tens of microseconds when its CPU was idle), and its
 * completion wakes the loop again; the loop would sit idle meanwhile anyway,
 * since a follower answers and a leader commits only once the write is
 * durable. Under load the thread is busy, so batches go to it and group
 * commit keeps working while the loop serves the network. The loop blocks
 * for one small journal write at most; a checkpoint, a large batch or a
 * writer without a journal (two flushes per commit) never runs inline.
 * Thread: the loop thread; not from inside a callback. */
bool log_writer_flush(log_writer_t *w);

/* Stops the writer: every request already queued is still executed and its
 * callback run (synchronously, before this returns), the thread joined, and
 * the async handle closed; the writer's memory is released once the loop has
 * run the close (run the loop, e.g. uv_run(loop, UV_RUN_DEFAULT), before
 * closing the loop). Thread: the loop thread; not from inside a callback. */
void log_writer_stop(log_writer_t *w);

/* Transactions committed and ops executed so far (ops / txns is the group
 * commit factor). Thread: any. */
void log_writer_stats(log_writer_t *w, uint64_t *txns, uint64_t *ops);

/* The sticky error, 0 while healthy; st gets its message. Thread: any. */
int log_writer_error(log_writer_t *w, rk_status_t *st);

#endif /* RAFTKIT_STORAGE_LOG_WRITER_H */
