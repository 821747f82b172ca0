/* The kv example's state machine: applies Command entries to a kv_store,
 * hands each proposer its result, and saves and loads the store as a
 * one-file snapshot. */
#ifndef KV_SM_H
#define KV_SM_H

#include <pthread.h>
#include <stdbool.h>

#include "examples/kv/kv_store.h"
#include "raftkit/closure.h"
#include "raftkit/rpc.h"
#include "raftkit/state_machine.h"

/* The application RPC method carrying Kv__Request / Kv__Response. */
#define KV_METHOD (RK_RPC_APP_FIRST + 1)

typedef struct kv_sm {
    rk_state_machine_t base; /* first: raftkit calls back with &base */
    pthread_mutex_t mu;      /* guards store: FSM thread writes, stale reads read */
    kv_store_t *store;
    const char *name; /* for log lines */
} kv_sm_t;

/* A write proposed by this node: the closure given to rk_node_apply, and
 * the result on_apply fills in before raftkit runs it. */
typedef struct kv_write {
    rk_closure_t done;
    Kv__Result result;
    bool duplicate;
    uint8_t *value; /* cas mismatch: the current value (malloc'd), else NULL */
    size_t value_len;
    bool has_value;
} kv_write_t;

/* Returns 0 or -1 (out of memory). */
int kv_sm_init(kv_sm_t *sm, const char *name);
void kv_sm_destroy(kv_sm_t *sm);

/* Looks key up under the lock; *value is malloc'd (caller frees). Returns
 * KV__RESULT__RES_OK or KV__RESULT__RES_NOT_FOUND, or -1 when out of memory. */
int kv_sm_get(kv_sm_t *sm, const uint8_t *key, size_t klen, uint8_t **value, size_t *len);

#endif /* KV_SM_H */
