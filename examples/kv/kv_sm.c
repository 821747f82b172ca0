/* The kv state machine: the rk_state_machine_t callbacks around kv_store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/kv/kv_sm.h"
#include "raftkit/log.h"

#define KV_SNAPSHOT_FILE "kv.data"

static void on_apply(rk_state_machine_t *base, rk_iterator_t *it)
{
    kv_sm_t *sm = (kv_sm_t *)base;
    for (; rk_iterator_valid(it); rk_iterator_next(it)) {
        size_t len;
        const void *data = rk_iterator_data(it, &len);
        Kv__Command *cmd = kv__command__unpack(NULL, len, data);
        rk_closure_t *done = rk_iterator_done(it);
        kv_write_t *w = done ? rk_container_of(done, kv_write_t, done) : NULL;
        if (cmd == NULL) {
            /* Every replica sees the same bytes, so skipping is the same
             * everywhere; only a bug writes such an entry. */
            RK_ERROR(sm->name, NULL, "undecodable entry at index %lld skipped",
                     (long long)rk_iterator_index(it));
            continue;
        }
        kv_outcome_t out;
        pthread_mutex_lock(&sm->mu);
        int rc = kv_store_exec(sm->store, cmd, (uint64_t)rk_iterator_index(it), &out);
        if (rc == 0 && w != NULL) {
            w->result = out.result;
            w->duplicate = out.duplicate;
            if (out.value != NULL && (w->value = malloc(out.value_len ? out.value_len : 1))) {
                memcpy(w->value, out.value, out.value_len);
                w->value_len = out.value_len;
                w->has_value = true;
            }
        }
        pthread_mutex_unlock(&sm->mu);
        kv__command__free_unpacked(cmd, NULL);
        if (rc == -2) {
            /* Out of memory: this replica cannot follow the others. */
            rk_status_t st;
            rk_status_set(&st, RK_ENOMEM, "kv store out of memory at index %lld",
                          (long long)rk_iterator_index(it));
            rk_iterator_set_error_and_rollback(it, 1, &st);
            return;
        }
    }
}

static void on_snapshot_save(rk_state_machine_t *base, rk_snapshot_writer_t *wr, rk_closure_t *done)
{
    kv_sm_t *sm = (kv_sm_t *)base;
    char path[1024];
    rk_status_t st;
    rk_status_clear(&st);
    snprintf(path, sizeof path, "%s/%s", rk_snapshot_writer_path(wr), KV_SNAPSHOT_FILE);
    pthread_mutex_lock(&sm->mu);
    int rc = kv_store_save(sm->store, path);
    size_t n = kv_store_count(sm->store);
    pthread_mutex_unlock(&sm->mu);
    if (rc != 0)
        rk_status_set(&st, RK_EIO, "writing %s: %s", path, strerror(-rc));
    else if ((rc = rk_snapshot_writer_add_file(wr, KV_SNAPSHOT_FILE)) != 0)
        rk_status_set(&st, rc, "adding %s to the snapshot", KV_SNAPSHOT_FILE);
    else
        RK_INFO(sm->name, NULL, "snapshot saved: %zu keys", n);
    done->run(done, &st);
}

static int on_snapshot_load(rk_state_machine_t *base, rk_snapshot_reader_t *r)
{
    kv_sm_t *sm = (kv_sm_t *)base;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", rk_snapshot_reader_path(r), KV_SNAPSHOT_FILE);
    pthread_mutex_lock(&sm->mu);
    int rc = kv_store_load(sm->store, path);
    size_t n = kv_store_count(sm->store);
    pthread_mutex_unlock(&sm->mu);
    if (rc != 0) {
        RK_ERROR(sm->name, NULL, "loading snapshot %s: %s", path, strerror(-rc));
        return RK_ECORRUPT;
    }
    RK_INFO(sm->name, NULL, "snapshot loaded at index %lld: %zu keys",
            (long long)rk_snapshot_reader_index(r), n);
    return 0;
}

static void on_leader_start(rk_state_machine_t *base, int64_t term)
{
    kv_sm_t *sm = (kv_sm_t *)base;
    RK_INFO(sm->name, NULL, "this node is the leader (term %lld)", (long long)term);
}

static void on_leader_stop(rk_state_machine_t *base, const rk_status_t *st)
{
    kv_sm_t *sm = (kv_sm_t *)base;
    RK_INFO(sm->name, NULL, "this node stopped being the leader: %s", st->msg);
}

static void on_error(rk_state_machine_t *base, const rk_status_t *err)
{
    kv_sm_t *sm = (kv_sm_t *)base;
    RK_ERROR(sm->name, NULL, "state machine stopped: %s: %s", rk_err_name(err->code), err->msg);
}

int kv_sm_init(kv_sm_t *sm, const char *name)
{
    memset(sm, 0, sizeof *sm);
    sm->store = kv_store_new();
    if (sm->store == NULL)
        return -1;
    pthread_mutex_init(&sm->mu, NULL);
    sm->name = name;
    sm->base.on_apply = on_apply;
    sm->base.on_snapshot_save = on_snapshot_save;
    sm->base.on_snapshot_load = on_snapshot_load;
    sm->base.on_leader_start = on_leader_start;
    sm->base.on_leader_stop = on_leader_stop;
    sm->base.on_error = on_error;
    return 0;
}

void kv_sm_destroy(kv_sm_t *sm)
{
    kv_store_free(sm->store);
    sm->store = NULL;
    pthread_mutex_destroy(&sm->mu);
}

int kv_sm_get(kv_sm_t *sm, const uint8_t *key, size_t klen, uint8_t **value, size_t *len)
{
    const uint8_t *v;
    size_t n;
    *value = NULL;
    *len = 0;
    pthread_mutex_lock(&sm->mu);
    Kv__Result r = kv_store_get(sm->store, key, klen, &v, &n);
    if (r == KV__RESULT__RES_OK) {
        *value = malloc(n ? n : 1);
        if (*value == NULL) {
            pthread_mutex_unlock(&sm->mu);
            return -1;
        }
        memcpy(*value, v, n);
        *len = n;
    }
    pthread_mutex_unlock(&sm->mu);
    return (int)r;
}
