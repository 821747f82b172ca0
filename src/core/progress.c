/* Per-peer replication progress (probe / replicate / snapshot, inflight
 * window) and the quorum arithmetic over it, joint-aware: with a joint
 * configuration every decision needs a majority of C_old AND of C_new
 * (thesis 4.3). */
#include "src/core/core_internal.h"

bool core_is_self(const core_t *c, const rk_peer_id_t *p)
{
    return core_peer_eq(&c->o.self, p);
}

static bool list_has(const rk_peer_id_t *l, uint32_t n, const rk_peer_id_t *p)
{
    for (uint32_t i = 0; i < n; i++)
        if (core_peer_eq(&l[i], p))
            return true;
    return false;
}

bool core_conf_is_voter(const core_conf_t *c, const rk_peer_id_t *p)
{
    if (list_has(c->cur.peers, c->cur.n_peers, p))
        return true;
    return c->joint && list_has(c->old.peers, c->old.n_peers, p);
}

bool core_conf_is_learner(const core_conf_t *c, const rk_peer_id_t *p)
{
    if (core_conf_is_voter(c, p))
        return false;
    if (list_has(c->cur.learners, c->cur.n_learners, p))
        return true;
    return c->joint && list_has(c->old.learners, c->old.n_learners, p);
}

bool core_conf_is_member(const core_conf_t *c, const rk_peer_id_t *p)
{
    return core_conf_is_voter(c, p) || core_conf_is_learner(c, p);
}

core_progress_t *progress_find(core_t *c, const rk_peer_id_t *id)
{
    for (size_t i = 0; i < c->n_prs; i++)
        if (core_peer_eq(&c->prs[i].id, id))
            return &c->prs[i];
    return NULL;
}

core_progress_t *progress_self(core_t *c)
{
    return progress_find(c, &c->o.self);
}

void progress_free_all(core_t *c)
{
    for (size_t i = 0; i < c->n_prs; i++)
        free(c->prs[i].infl);
    free(c->prs);
    c->prs = NULL;
    c->n_prs = 0;
}

static void init_new(core_t *c, core_progress_t *pr, const rk_peer_id_t *id)
{
    memset(pr, 0, sizeof *pr);
    pr->id = *id;
    pr->is_self = core_is_self(c, id);
    pr->next = log_last_index(c) + 1;
    pr->state = CORE_PR_PROBE;
    /* A new peer starts active so that a quorum check right after adding it
     * does not depose the leader (scenario: new peer before the check). */
    pr->recent_active = true;
    if (pr->is_self)
        pr->match = log_stable_index(c);
}

/* Adds id to the new array unless already present; reuses old progress. */
static int add_peer(core_t *c, core_progress_t *old, size_t n_old, core_progress_t *arr, size_t *n,
                    const rk_peer_id_t *id)
{
    for (size_t i = 0; i < *n; i++)
        if (core_peer_eq(&arr[i].id, id))
            return 0;
    core_progress_t *pr = &arr[(*n)++];
    for (size_t i = 0; i < n_old; i++) {
        if (core_peer_eq(&old[i].id, id)) {
            *pr = old[i];
            pr->id = *id; /* priority may have changed */
            /* the ring moved: old[i] keeps an empty window */
            old[i].infl = NULL;
            old[i].infl_cap = 0;
            progress_infl_reset(&old[i]);
            return 0;
        }
    }
    init_new(c, pr, id);
    return 0;
}

/* Rebuilds the progress set from c->conf, keeping the state of peers that
 * stay (a config change must not reset replication of unaffected peers). */
int progress_rebuild(core_t *c)
{
    const core_conf_t *cf = c->conf;
    size_t max = 2u * (cf->cur.n_peers + cf->cur.n_learners) + 2u;
    if (cf->joint)
        max += cf->old.n_peers + cf->old.n_learners;
    core_progress_t *arr = calloc(max, sizeof *arr);
    if (arr == NULL)
        return RK_ENOMEM;
    size_t n = 0;
    int rv = 0;
    for (uint32_t i = 0; rv == 0 && i < cf->cur.n_peers; i++)
        rv = add_peer(c, c->prs, c->n_prs, arr, &n, &cf->cur.peers[i]);
    if (cf->joint)
        for (uint32_t i = 0; rv == 0 && i < cf->old.n_peers; i++)
            rv = add_peer(c, c->prs, c->n_prs, arr, &n, &cf->old.peers[i]);
    for (uint32_t i = 0; rv == 0 && i < cf->cur.n_learners; i++)
        rv = add_peer(c, c->prs, c->n_prs, arr, &n, &cf->cur.learners[i]);
    if (cf->joint)
        for (uint32_t i = 0; rv == 0 && i < cf->old.n_learners; i++)
            rv = add_peer(c, c->prs, c->n_prs, arr, &n, &cf->old.learners[i]);
    if (rv != 0) {
        for (size_t i = 0; i < n; i++)
            free(arr[i].infl);
        free(arr);
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        arr[i].voter_cur = list_has(cf->cur.peers, cf->cur.n_peers, &arr[i].id);
        arr[i].voter_old = cf->joint && list_has(cf->old.peers, cf->old.n_peers, &arr[i].id);
    }
    progress_free_all(c);
    c->prs = arr;
    c->n_prs = n;
    return 0;
}

/* On becoming leader (§5.3): nextIndex = last+1 for everyone, match unknown. */
void progress_reset_all(core_t *c)
{
    for (size_t i = 0; i < c->n_prs; i++) {
        core_progress_t *pr = &c->prs[i];
        core_inflight_t *infl = pr->infl;
        uint32_t cap = pr->infl_cap;
        rk_peer_id_t id = pr->id;
        bool vc = pr->voter_cur, vo = pr->voter_old;
        init_new(c, pr, &id);
        pr->infl = infl;
        pr->infl_cap = cap;
        pr->voter_cur = vc;
        pr->voter_old = vo;
    }
}

void progress_infl_reset(core_progress_t *pr)
{
    pr->infl_start = 0;
    pr->infl_count = 0;
    pr->infl_bytes = 0;
}

int progress_infl_reserve(core_t *c, core_progress_t *pr)
{
    if (pr->infl_count < pr->infl_cap)
        return 0;
    uint32_t cap = pr->infl_cap > 0 ? 2 * pr->infl_cap : 4;
    if (cap > c->o.max_inflight_msgs)
        cap = c->o.max_inflight_msgs;
    assert(cap > pr->infl_count); /* progress_is_paused stops sending at the maximum */
    core_inflight_t *infl = malloc(cap * sizeof *infl);
    if (infl == NULL)
        return RK_ENOMEM;
    for (uint32_t i = 0; i < pr->infl_count; i++)
        infl[i] = pr->infl[(pr->infl_start + i) % pr->infl_cap];
    free(pr->infl);
    pr->infl = infl;
    pr->infl_cap = cap;
    pr->infl_start = 0;
    return 0;
}

void progress_infl_add(core_progress_t *pr, uint64_t last, uint64_t bytes)
{
    assert(pr->infl_count < pr->infl_cap);
    uint32_t at = (pr->infl_start + pr->infl_count) % pr->infl_cap;
    pr->infl[at] = (core_inflight_t){.last = last, .bytes = bytes};
    pr->infl_count++;
    pr->infl_bytes += bytes;
}

/* An ack for `index` frees every inflight append ending at or below it;
 * stale acks free nothing. */
void progress_infl_free_le(core_progress_t *pr, uint64_t index)
{
    while (pr->infl_count > 0 && pr->infl[pr->infl_start].last <= index) {
        pr->infl_bytes -= pr->infl[pr->infl_start].bytes;
        pr->infl_start = (pr->infl_start + 1) % pr->infl_cap;
        pr->infl_count--;
    }
    if (pr->infl_count == 0)
        progress_infl_reset(pr);
}

void progress_become_probe(core_t *c, core_progress_t *pr)
{
    /* Coming back from a snapshot, the follower has at least the snapshot. */
    uint64_t next = pr->match + 1;
    if (pr->state == CORE_PR_SNAPSHOT && pr->pending_snapshot + 1 > next)
        next = pr->pending_snapshot + 1;
    (void)c;
    pr->state = CORE_PR_PROBE;
    pr->next = next;
    pr->pending_snapshot = 0;
    pr->probe_sent = false;
    progress_infl_reset(pr);
}

void progress_become_replicate(core_progress_t *pr)
{
    pr->state = CORE_PR_REPLICATE;
    pr->next = pr->match + 1;
    pr->pending_snapshot = 0;
    pr->probe_sent = false;
    progress_infl_reset(pr);
}

void progress_become_snapshot(core_progress_t *pr, uint64_t index)
{
    pr->state = CORE_PR_SNAPSHOT;
    pr->pending_snapshot = index;
    pr->next = index + 1;
    pr->probe_sent = true;
    progress_infl_reset(pr);
}

/* A successful ack of index n. Returns true when match advanced. */
bool progress_maybe_update(core_progress_t *pr, uint64_t n)
{
    bool updated = false;
    if (pr->match < n) {
        pr->match = n;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < n + 1)
        pr->next = n + 1;
    return updated;
}

/* A rejection of the append whose prev index was `rejected`; match_hint is
 * the follower's hint. Returns false for stale rejections (reordered or
 * duplicated messages must never rewind below match, scenarios 108/109). */
bool progress_maybe_decr_to(core_progress_t *pr, uint64_t rejected, uint64_t match_hint)
{
    if (pr->state == CORE_PR_REPLICATE) {
        if (rejected <= pr->match)
            return false;
        pr->next = pr->match + 1;
        return true;
    }
    if (pr->state == CORE_PR_SNAPSHOT)
        return false;
    if (pr->next - 1 != rejected)
        return false;
    uint64_t next = rejected < match_hint + 1 ? rejected : match_hint + 1;
    if (next < pr->match + 1)
        next = pr->match + 1;
    if (next < 1)
        next = 1;
    pr->next = next;
    pr->probe_sent = false;
    return true;
}

bool progress_is_paused(const core_t *c, const core_progress_t *pr)
{
    switch (pr->state) {
    case CORE_PR_PROBE:
        return pr->probe_sent;
    case CORE_PR_REPLICATE:
        if (pr->infl_count >= c->o.max_inflight_msgs)
            return true;
        return c->o.max_inflight_bytes > 0 && pr->infl_bytes >= c->o.max_inflight_bytes;
    case CORE_PR_SNAPSHOT:
        return true;
    }
    return true;
}

/* ---------------------------------------------------------------- quorum */

/* Insertion sort, descending: n is a handful of voters and this runs on
 * every append ack, where qsort's indirect calls cost more than the sort. */
static void sort_desc(uint64_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] < x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

static uint64_t half_committed(core_t *c, bool old, bool use_read_ack)
{
    uint64_t vals[2 * RK_CONF_MAX_PEERS + 2];
    size_t n = 0;
    for (size_t i = 0; i < c->n_prs; i++) {
        const core_progress_t *pr = &c->prs[i];
        if (!(old ? pr->voter_old : pr->voter_cur))
            continue;
        uint64_t v = use_read_ack ? (pr->is_self ? c->read_seq : pr->read_ack) : pr->match;
        vals[n++] = v;
    }
    if (n == 0)
        return UINT64_MAX; /* an empty half never constrains */
    sort_desc(vals, n);
    return vals[n / 2];
}

/* The highest value acknowledged by a majority of every half (§5.3, 4.3). */
uint64_t quorum_committed(core_t *c, bool use_read_ack)
{
    uint64_t v = half_committed(c, false, use_read_ack);
    if (c->conf->joint) {
        uint64_t o = half_committed(c, true, use_read_ack);
        if (o < v)
            v = o;
    }
    return v == UINT64_MAX ? 0 : v;
}

static int half_vote(core_t *c, bool old)
{
    size_t n = 0, yes = 0, no = 0;
    for (size_t i = 0; i < c->n_prs; i++) {
        const core_progress_t *pr = &c->prs[i];
        if (!(old ? pr->voter_old : pr->voter_cur))
            continue;
        n++;
        if (pr->vote > 0)
            yes++;
        else if (pr->vote < 0)
            no++;
    }
    size_t q = n / 2 + 1;
    if (n == 0 || yes >= q)
        return 1;
    if (n - no < q)
        return -1;
    return 0;
}

int quorum_vote_result(core_t *c)
{
    int a = half_vote(c, false);
    int b = c->conf->joint ? half_vote(c, true) : 1;
    if (a < 0 || b < 0)
        return -1;
    if (a > 0 && b > 0)
        return 1;
    return 0;
}

static bool half_active(core_t *c, bool old)
{
    size_t n = 0, act = 0;
    for (size_t i = 0; i < c->n_prs; i++) {
        const core_progress_t *pr = &c->prs[i];
        if (!(old ? pr->voter_old : pr->voter_cur))
            continue;
        n++;
        if (pr->is_self || pr->recent_active)
            act++;
    }
    return n == 0 || act >= n / 2 + 1;
}

bool quorum_active(core_t *c)
{
    return half_active(c, false) && (!c->conf->joint || half_active(c, true));
}

size_t quorum_voter_count(const core_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_prs; i++)
        if (c->prs[i].voter_cur || c->prs[i].voter_old)
            n++;
    return n;
}
