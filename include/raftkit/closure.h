/* Closures: how raftkit reports the outcome of an asynchronous call.
 *
 * A closure is a struct the application embeds in its own request struct and
 * recovers with container_of-style arithmetic in run(). The caller owns the
 * memory; raftkit never frees a closure. The rule, as in libuv:
 *
 *   - a call that returns an error never runs the closure;
 *   - a call that accepted the closure runs it exactly once: on success, on
 *     failure, or with RK_ESHUTDOWN when the node stops first.
 *
 * After run() returns raftkit no longer touches the closure, so run() may
 * free the memory that holds it.
 */
#ifndef RAFTKIT_CLOSURE_H
#define RAFTKIT_CLOSURE_H

#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef struct rk_closure rk_closure_t;
struct rk_closure {
    void (*run)(rk_closure_t *self, const rk_status_t *st);
};

/* JRaft's TaskClosure: the closure of a task (rk_task_t.task_done) with a
 * hook for "the entry is committed". on_committed (may be NULL) runs at most
 * once, on the FSM thread, when this node -- as the leader that proposed the
 * entry -- learns that it is committed, before on_apply is handed the entry
 * (and, as entries are applied in batches, before on_apply of the batch that
 * holds it). It does not run when the outcome is an error known before the
 * commit (RK_ENOTLEADER, RK_ELEADERLOST, RK_ESHUTDOWN, ...). closure.run
 * follows exactly once, as for any task: RK_OK after on_apply moved past the
 * entry, or the state machine's error if applying failed. Typical use:
 * answer a client as soon as its write is durable on a majority, and apply
 * it later (a write-ahead service). */
typedef struct rk_task_closure rk_task_closure_t;
struct rk_task_closure {
    rk_closure_t closure;
    void (*on_committed)(rk_task_closure_t *self);
};

/* The result of a linearizable read (rk_node_read_index): on success, index
 * is the read index, and the state machine has applied at least up to it
 * when run() is called; ctx is the context the caller passed in. */
typedef struct rk_read_index_closure rk_read_index_closure_t;
struct rk_read_index_closure {
    void (*run)(rk_read_index_closure_t *self, const rk_status_t *st, int64_t index,
                const void *ctx, size_t ctx_len);
};

#define rk_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_CLOSURE_H */
