/* Snapshots in the core: sending the latest local snapshot to a follower
 * whose next entry was compacted away, and installing (restoring) a snapshot
 * received from the leader. The data itself moves outside the core. */
#include "src/core/core_internal.h"

/* Leader: pr needs entries we no longer have. Inactive followers are skipped
 * until they answer again (scenario 56). */
bool snap_send(core_t *c, core_progress_t *pr)
{
    if (!pr->recent_active || c->latest_snap.index == 0)
        return false;
    core_msg_t *m = core_msg_new(c, CORE_MSG_SNAP, &pr->id, false);
    if (m == NULL)
        return false;
    m->snap = malloc(sizeof *m->snap);
    if (m->snap == NULL) {
        c->msgs.n--;
        return false;
    }
    m->snap->index = c->latest_snap.index;
    m->snap->term = c->latest_snap.term;
    m->snap->conf = *c->latest_snap.conf;
    m->term = c->term;
    progress_become_snapshot(pr, c->latest_snap.index);
    return true;
}

/* Follower: a snapshot from the leader (thesis 5.1 InstallSnapshot receiver). */
void snap_handle(core_t *c, const core_msg_t *m)
{
    const core_snapshot_meta_t *s = m->snap;
    core_msg_t *r;
    if (s == NULL)
        return;
    if (s->index <= c->log.commit) {
        /* Stale: we already have all of it. */
        goto reply;
    }
    if (log_match_term(c, s->index, s->term)) {
        /* Our log already holds the snapshot's last entry: just commit to it
         * and keep the tail (scenario 60). */
        uint64_t old = c->log.commit;
        log_commit_to(c, s->index);
        repl_after_commit(c, old);
        goto reply;
    }
    if (c->fatal)
        return;
    const core_conf_t *conf = core_conf_intern(&s->conf);
    if (conf == NULL) {
        core_set_fatal(c, RK_ENOMEM);
        return;
    }
    log_restore(c, s, conf);
    int rv = conf_set(c, conf, s->index);
    if (rv == 0) {
        conf_assign(&c->prev_conf, conf);
        c->prev_conf_index = c->conf_index;
        c->conf_committed_reported = s->index;
        /* It is now our latest snapshot too, should we lead and need to send one. */
        if (s->index > c->latest_snap.index) {
            c->latest_snap.index = s->index;
            c->latest_snap.term = s->term;
            conf_assign(&c->latest_snap.conf, conf);
        }
    }
    core_conf_release(conf);
    if (rv != 0)
        return;
reply:
    r = core_msg_new(c, CORE_MSG_APP_RESP, &m->from, true);
    if (r == NULL)
        return;
    r->term = c->term;
    r->index = s->index > c->log.commit ? log_last_index(c) : c->log.commit;
    if (r->index > log_last_index(c))
        r->index = log_last_index(c);
}
