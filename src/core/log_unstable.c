/* The core's view of the log: durable entries read through the host's
 * storage callbacks, plus the "unstable" suffix the core has appended but the
 * host has not yet acknowledged as durable, plus a restored snapshot pending
 * installation.
 *
 * Acknowledgements and the ABA race: the host persists updates in order and
 * acks them by id. Each handed-out write remembers the last index it wrote;
 * when the log is later truncated at i, every pending write's `last` is
 * clamped to i-1, because what that write put on disk beyond i-1 is no longer
 * our log (and the truncating write is still pending). So an ack for an older
 * write can never mark newer, overwritten-then-rewritten entries as stable
 * (etcd's async_storage_writes_append_aba_race). */
#include "src/core/core_internal.h"

void core_entries_free(core_entry_t *e, size_t n)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        buf_unref(e[i].data);
    free(e);
}

int log_init(core_t *c, const core_init_t *init)
{
    core_log_t *l = &c->log;
    memset(l, 0, sizeof *l);
    l->compact_index = init->compact_index;
    l->compact_term = init->compact_term;
    l->offset = init->last_index + 1;
    l->commit = init->hs.commit;
    if (l->commit > init->last_index)
        return RK_EINVAL;
    l->applied = init->applied;
    l->applied_handed = init->applied > init->snapshot.index ? init->applied : init->snapshot.index;
    if (l->applied_handed > l->commit)
        l->commit = l->applied_handed;
    l->handed = init->last_index;
    return 0;
}

void log_destroy(core_log_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        buf_unref(l->ents[i].data);
    free(l->ents);
    free(l->writes);
    core_conf_release(l->snap.conf);
    memset(l, 0, sizeof *l);
}

uint64_t log_last_index(const core_t *c)
{
    return c->log.offset + c->log.n - 1;
}

uint64_t log_first_index(const core_t *c)
{
    return c->log.compact_index + 1;
}

uint64_t log_stable_index(const core_t *c)
{
    return c->log.offset - 1;
}

int log_term(core_t *c, uint64_t index, uint64_t *term)
{
    const core_log_t *l = &c->log;
    if (index == l->compact_index) {
        *term = l->compact_term;
        return 0;
    }
    if (index < l->compact_index || index > log_last_index(c))
        return RK_ENOTFOUND;
    if (index >= l->offset) {
        *term = l->ents[index - l->offset].term;
        return 0;
    }
    if (index == 0) {
        *term = 0;
        return 0;
    }
    int rv = c->st.term(c->st.arg, index, term);
    if (rv != 0 && rv != RK_ENOTFOUND)
        core_set_fatal(c, rv);
    return rv;
}

uint64_t log_term_or0(core_t *c, uint64_t index)
{
    uint64_t t = 0;
    if (log_term(c, index, &t) != 0)
        return 0;
    return t;
}

uint64_t log_last_term(core_t *c)
{
    return log_term_or0(c, log_last_index(c));
}

bool log_match_term(core_t *c, uint64_t index, uint64_t term)
{
    uint64_t t;
    if (log_term(c, index, &t) != 0)
        return false;
    return t == term;
}

/* §5.4.1: the candidate's log is at least as up-to-date as ours when its last
 * term is higher, or equal with an index at least as large. */
bool log_up_to_date(core_t *c, uint64_t last_index, uint64_t last_term)
{
    uint64_t my_term = log_last_term(c);
    return last_term > my_term || (last_term == my_term && last_index >= log_last_index(c));
}

/* The largest index <= index whose term is <= term (etcd findConflictByTerm):
 * with it a leader skips a whole divergent term per round trip (end of §5.3). */
uint64_t log_find_conflict_by_term(core_t *c, uint64_t index, uint64_t term)
{
    uint64_t last = log_last_index(c);
    if (index > last)
        index = last;
    for (; index > c->log.compact_index; index--) {
        uint64_t t;
        if (log_term(c, index, &t) != 0)
            return c->log.compact_index;
        if (t <= term)
            return index;
    }
    return c->log.compact_index;
}

int log_entries(core_t *c, uint64_t lo, uint64_t hi, uint64_t max_bytes, size_t max_n,
                core_entry_t **out, size_t *n)
{
    core_log_t *l = &c->log;
    *out = NULL;
    *n = 0;
    if (lo <= l->compact_index)
        return RK_ENOTFOUND;
    if (hi > log_last_index(c) + 1)
        hi = log_last_index(c) + 1;
    if (hi - lo > max_n)
        hi = lo + max_n;
    if (hi <= lo)
        return 0;
    core_entry_t *e = calloc(hi - lo, sizeof *e);
    if (e == NULL)
        return RK_ENOMEM;
    size_t got = 0;
    uint64_t bytes = 0;
    if (lo < l->offset) {
        uint64_t shi = hi < l->offset ? hi : l->offset;
        size_t sn = 0;
        int rv = c->st.entries(c->st.arg, lo, shi, max_bytes, e, &sn);
        if (rv != 0) {
            free(e);
            if (rv != RK_ENOTFOUND)
                core_set_fatal(c, rv);
            return rv;
        }
        got = sn;
        for (size_t i = 0; i < sn; i++)
            bytes += core_entry_size(&e[i]);
        if (lo + sn < shi) /* storage stopped at the byte limit */
            goto done;
    }
    for (uint64_t i = lo + got; i < hi; i++) {
        const core_entry_t *src = &l->ents[i - l->offset];
        uint64_t sz = core_entry_size(src);
        if (got > 0 && max_bytes > 0 && bytes + sz > max_bytes)
            break;
        e[got] = *src;
        buf_ref(e[got].data);
        bytes += sz;
        got++;
    }
done:
    *out = e;
    *n = got;
    return 0;
}

static int ents_reserve(core_log_t *l, size_t want)
{
    if (want <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 16;
    while (cap < want)
        cap *= 2;
    core_entry_t *p = realloc(l->ents, cap * sizeof *p);
    if (p == NULL)
        return RK_ENOMEM;
    l->ents = p;
    l->cap = cap;
    return 0;
}

/* Clamp pending writes after a truncation at `from` (see file comment). */
static void writes_truncated(core_log_t *l, uint64_t from)
{
    for (size_t i = 0; i < l->n_writes; i++)
        if (l->writes[i].last >= from)
            l->writes[i].last = from - 1;
}

/* Appends ents (consecutive indexes; ents[0].index <= last+1), truncating our
 * log from ents[0].index when that is not the end. The caller checked that no
 * committed entry is overwritten. Takes its own references. */
int log_append(core_t *c, const core_entry_t *ents, size_t n)
{
    core_log_t *l = &c->log;
    if (n == 0)
        return 0;
    uint64_t first = ents[0].index;
    assert(first > l->commit || l->commit == 0);
    assert(first <= log_last_index(c) + 1);
    if (first <= log_last_index(c))
        writes_truncated(l, first);
    if (first < l->offset) {
        /* Truncating into the durable part: it all becomes unstable again. */
        for (size_t i = 0; i < l->n; i++)
            buf_unref(l->ents[i].data);
        l->n = 0;
        l->offset = first;
    } else {
        size_t keep = first - l->offset;
        for (size_t i = keep; i < l->n; i++)
            buf_unref(l->ents[i].data);
        l->n = keep;
    }
    if (l->handed >= first)
        l->handed = first - 1;
    if (ents_reserve(l, l->n + n) != 0)
        return RK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        l->ents[l->n] = ents[i];
        buf_ref(ents[i].data);
        l->n++;
    }
    return 0;
}

/* Restore from a snapshot received from the leader: the whole log is
 * replaced by the snapshot; commit jumps to its index (thesis 5.1 "discard
 * the entire log"). */
void log_restore(core_t *c, const core_snapshot_meta_t *s, const core_conf_t *conf)
{
    core_log_t *l = &c->log;
    for (size_t i = 0; i < l->n; i++)
        buf_unref(l->ents[i].data);
    l->n = 0;
    for (size_t i = 0; i < l->n_writes; i++)
        l->writes[i].last = 0; /* whatever they wrote is discarded */
    l->compact_index = s->index;
    l->compact_term = s->term;
    l->offset = s->index + 1;
    l->handed = s->index;
    l->has_snap = true;
    l->snap_handed = false;
    l->snap.index = s->index;
    l->snap.term = s->term;
    conf_assign(&l->snap.conf, conf);
    l->commit = s->index;
    l->applied_handed = s->index;
    if (l->applied > s->index)
        l->applied = s->index;
}

void log_commit_to(core_t *c, uint64_t index)
{
    if (index > log_last_index(c))
        index = log_last_index(c);
    if (index > c->log.commit)
        c->log.commit = index;
}

int log_writes_push(core_t *c, uint64_t id, uint64_t last, uint64_t snap_index)
{
    core_log_t *l = &c->log;
    if (l->n_writes == l->cap_writes) {
        size_t cap = l->cap_writes ? 2 * l->cap_writes : 8;
        core_pending_write_t *p = realloc(l->writes, cap * sizeof *p);
        if (p == NULL)
            return RK_ENOMEM;
        l->writes = p;
        l->cap_writes = cap;
    }
    l->writes[l->n_writes++] =
        (core_pending_write_t){.id = id, .last = last, .snap_index = snap_index};
    return 0;
}

/* Marks every write with id <= `id` durable. Entries up to the (clamped)
 * `last` of each leave the unstable buffer. */
void log_writes_ack(core_t *c, uint64_t id)
{
    core_log_t *l = &c->log;
    size_t k = 0;
    while (k < l->n_writes && l->writes[k].id <= id) {
        core_pending_write_t *w = &l->writes[k];
        if (w->snap_index != 0 && l->has_snap && l->snap.index == w->snap_index)
            l->has_snap = false;
        if (w->last >= l->offset && w->last <= l->handed) {
            size_t drop = w->last - l->offset + 1;
            for (size_t i = 0; i < drop; i++)
                buf_unref(l->ents[i].data);
            memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof *l->ents);
            l->n -= drop;
            l->offset = w->last + 1;
        }
        k++;
    }
    memmove(l->writes, l->writes + k, (l->n_writes - k) * sizeof *l->writes);
    l->n_writes -= k;
}
