/* The node's log as the core sees it: entry types converted between the
 * core and the log store, and the core_storage_t through which the core
 * reads terms and entries it no longer holds in memory.
 */
#include "src/node/node_internal.h"

log_entry_type_t node_log_entry_type(core_entry_type_t t)
{
    switch (t) {
    case CORE_ENTRY_NOOP:
        return LOG_ENTRY_NOOP;
    case CORE_ENTRY_CONF:
        return LOG_ENTRY_CONF;
    default:
        return LOG_ENTRY_DATA;
    }
}

static core_entry_type_t core_entry_type(log_entry_type_t t)
{
    switch (t) {
    case LOG_ENTRY_NOOP:
        return CORE_ENTRY_NOOP;
    case LOG_ENTRY_CONF:
        return CORE_ENTRY_CONF;
    default:
        return CORE_ENTRY_DATA;
    }
}

static int st_term(void *arg, uint64_t index, uint64_t *term)
{
    rk_node_t *n = arg;
    int rc = log_store_term(n->store, index, term, NULL);
    return rc == RK_ENOTFOUND ? RK_ENOTFOUND : (rc ? RK_EIO : 0);
}

static int st_entries(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, core_entry_t *out,
                      size_t *n_out)
{
    rk_node_t *n = arg;
    log_entry_t *ents = NULL;
    size_t cnt = 0;
    int rc = log_store_fetch(n->store, lo, (size_t)(hi - lo), max_bytes, &ents, &cnt, NULL);
    if (rc != 0)
        return rc == RK_ENOTFOUND ? RK_ENOTFOUND : RK_EIO;
    size_t total = 0, k = 0;
    for (; k < cnt; k++) {
        size_t sz = ents[k].len + 24;
        if (k > 0 && total + sz > max_bytes)
            break;
        total += sz;
        buf_t *b = NULL;
        if (ents[k].len > 0 && (b = buf_new(ents[k].data, ents[k].len)) == NULL) {
            for (size_t j = 0; j < k; j++)
                buf_unref(out[j].data);
            log_entries_free(ents, cnt);
            return RK_EIO;
        }
        out[k] = (core_entry_t){.term = ents[k].term,
                                .index = ents[k].index,
                                .type = core_entry_type(ents[k].type),
                                .data = b};
    }
    *n_out = k;
    log_entries_free(ents, cnt);
    return 0;
}

core_storage_t node_core_storage(rk_node_t *n)
{
    return (core_storage_t){.arg = n, .term = st_term, .entries = st_entries};
}
