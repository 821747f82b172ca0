/* The configuration forced by rk_node_reset_peers, kept durable until the
 * log carries it. reset_peers changes membership without consensus; the
 * forced configuration reaches the log only when this node next leads (it
 * re-proposes it). A restart before that would read the old membership back
 * from the log, so the forced configuration and the log index it applies at
 * are made durable in the group's directory before reset_peers returns; startup
 * uses it while no later configuration is in the log.
 *
 * This file adapts the node to the storage layer, which keeps the bytes
 * (storage/forced_conf_store.h): it encodes and decodes the configuration
 * (core_conf_encode) and reports failures in the node's log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "src/node/node_internal.h"
#include "storage/forced_conf_store.h"

/* Where the previous version kept it: the log directory under the group's
 * data_path, which every group had of its own. Still read, so that a
 * forced configuration written before an upgrade is not lost. */
static char *old_dir(rk_node_t *n)
{
    size_t len = strlen(n->group_dir) + sizeof "/log";
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/log", n->group_dir);
    return p;
}

int forced_conf_save(rk_node_t *n, const core_conf_t *conf, uint64_t index)
{
    buf_t *b = core_conf_encode(conf);
    if (b == NULL)
        return RK_ENOMEM;
    rk_status_t st;
    int rc = forced_conf_store_save(n->group_dir, index, b->data, b->len, &st);
    buf_unref(b);
    if (rc != 0)
        RK_ERROR(n->group, n->self_str, "forced configuration: %s", st.msg);
    return rc;
}

int forced_conf_load(rk_node_t *n, core_conf_t *conf, uint64_t *index)
{
    rk_status_t st;
    uint8_t *bytes = NULL;
    size_t len = 0;
    const char *dir = n->group_dir;
    char *old = NULL;
    int rc = forced_conf_store_load(dir, index, &bytes, &len, &st);
    if (rc == RK_ENOTFOUND) {
        if ((old = old_dir(n)) == NULL)
            return RK_ENOMEM;
        rc = forced_conf_store_load(dir = old, index, &bytes, &len, &st);
    }
    if (rc == 0 && core_conf_decode(bytes, len, conf) != 0)
        rc = rk_status_set(&st, RK_ECORRUPT, "forced configuration in %s does not decode", dir);
    free(bytes);
    free(old);
    if (rc != 0 && rc != RK_ENOTFOUND)
        RK_ERROR(n->group, n->self_str, "%s", st.msg);
    return rc;
}

/* From both places: one left in the old one would come back at the next
 * start. A directory that does not exist holds none. */
void forced_conf_remove(rk_node_t *n)
{
    rk_status_t st;
    char *old = old_dir(n);
    const char *dirs[2] = {n->group_dir, old};
    for (int i = 0; i < 2; i++) {
        if (dirs[i] != NULL && forced_conf_store_remove(dirs[i], &st) != 0 &&
            st.code != RK_ENOTFOUND)
            RK_WARN(n->group, n->self_str, "forced configuration: %s", st.msg);
    }
    free(old);
}
