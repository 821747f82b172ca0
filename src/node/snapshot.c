/* The snapshot executor: starts local snapshots (timer, log margin, manual),
 * truncates the log prefix once one is durable, serves the newest snapshot's
 * files to followers (GetFile), and on a follower copies the leader's
 * snapshot chunk by chunk -- throttled, resumed after a dropped connection --
 * before handing it to the core (Raft section 7, InstallSnapshot; thesis 5.1).
 *
 * Every disk access runs on the libuv thread pool (uv_queue_work), never on
 * the loop. Outstanding work, calls and timers are counted in
 * n->close_pending so the node is not freed under them.
 */
#include <stdlib.h>
#include <string.h>

#include "raftkit/log.h"
#include "rpc/raft.pb-c.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"
#include "src/metrics/metrics.h"
#include "src/node/node_internal.h"

#define DL_MAX_RETRIES 20
#define DL_RETRY_MS    200

/* ------------------------------------------------------ local snapshots */

void snap_exec_maybe_start(rk_node_t *n, rk_closure_t *done, bool manual)
{
    (void)manual;
    if (n->snapshot_running) {
        fsm_post_closure(n, done, RK_EBUSY, "a snapshot is already being saved");
        return;
    }
    if (n->download != NULL) {
        fsm_post_closure(n, done, RK_EBUSY, "a snapshot is being installed");
        return;
    }
    fsm_item_t *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        fsm_post_closure(n, done, RK_ENOMEM, "snapshot");
        return;
    }
    n->snapshot_running = true;
    it->type = FSM_SNAPSHOT_SAVE;
    it->done = done;
    fsm_post(n, it);
}

typedef struct trunc_req {
    log_write_req_t req;
    rk_node_t *n;
    uint64_t index, term; /* new log base */
    uint64_t t0_ns;       /* submitted at (metrics: truncate-log-prefix) */
} trunc_req_t;

static void truncated(log_write_req_t *req, int status)
{
    trunc_req_t *t = req->data;
    rk_node_t *n = t->n;
    n->log_reqs--;
    if (status == 0)
        metrics_record_since(n->metrics, METRIC_TRUNCATE_LOG_PREFIX, t->t0_ns);
    if (status == 0 && !n->stopping && n->core)
        core_compacted(n->core, t->index, t->term);
    else if (status != 0 && !n->stopping)
        RK_WARN(n->group, n->self_str, "log prefix truncation failed: %s", rk_strerror(status));
    free(t);
}

static void src_release(rk_node_t *n, node_snap_src_t *s);

void snap_after_save(rk_node_t *n, uint64_t index, uint64_t term, const core_conf_t *conf)
{
    if (n->stopping || n->core == NULL)
        return;
    if (index > n->last_snapshot_index) {
        n->last_snapshot_index = index;
        n->last_snapshot_term = term;
    }
    core_snapshot_meta_t meta = {.index = index, .term = term, .conf = *conf};
    core_snapshot_taken(n->core, &meta);
    if (n->snap_src) { /* serve the new one from now on */
        node_snap_src_t *old = n->snap_src;
        n->snap_src = NULL;
        src_release(n, old);
    }
    /* Keep snapshot_log_index_margin entries before the snapshot so slightly
     * lagging followers catch up from the log rather than a snapshot. */
    uint64_t margin = (uint64_t)n->opts.snapshot_log_index_margin;
    if (index <= margin)
        return;
    uint64_t base = index - margin; /* entries <= base go */
    if (base + 1 <= log_store_first_index(n->store))
        return;
    uint64_t base_term = 0;
    if (log_store_term(n->store, base, &base_term, NULL) != 0)
        return;
    trunc_req_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return;
    t->n = n;
    t->index = base;
    t->term = base_term;
    t->req.op = (log_op_t){.store = n->store, .kind = LOG_OP_TRUNCATE_PREFIX, .index = base + 1};
    t->req.data = t;
    t->t0_ns = metrics_now_ns();
    if (log_writer_submit(n->writer, &t->req, truncated) != 0)
        free(t);
    else
        n->log_reqs++;
}

/* ------------------------------------------ leader: serving the snapshot */

struct node_snap_src {
    rk_node_t *n;
    snap_reader_t *r;
    uint64_t index;
    uint64_t term;
    int refs;     /* the node's reference + work in flight */
    bool opening; /* reader being opened */
    rk_peer_id_t waiting[RK_CONF_MAX_PEERS * 2];
    size_t n_waiting;
    uv_work_t work;
    int open_rc;
};

static void src_release(rk_node_t *n, node_snap_src_t *s)
{
    (void)n;
    if (--s->refs > 0)
        return;
    if (s->r)
        snap_reader_close(s->r);
    free(s);
}

static void send_install(rk_node_t *n, node_snap_src_t *s, const rk_peer_id_t *to)
{
    char from[RK_PEER_ID_STRLEN], tos[RK_PEER_ID_STRLEN];
    rk_peer_id_t a = n->self, b = *to;
    a.priority = b.priority = RK_PRIORITY_DISABLED;
    rk_peer_id_format(&a, from, sizeof(from));
    rk_peer_id_format(&b, tos, sizeof(tos));
    core_status_t cs;
    core_get_status(n->core, &cs);
    Rk__SnapshotMeta meta = RK__SNAPSHOT_META__INIT;
    meta.last_included_index = s->index;
    meta.last_included_term = s->term;
    Rk__InstallSnapshotRequest r = RK__INSTALL_SNAPSHOT_REQUEST__INIT;
    r.group_id = n->group, r.server_id = from, r.peer_id = tos, r.term = cs.term;
    r.meta = &meta;
    r.reader_id = s->index;
    char ep[RK_PEER_ID_STRLEN];
    rk_endpoint_format(&to->endpoint, ep, sizeof(ep));
    rpc_channel_t *ch = rpc_client_channel(n->rt->client, ep, NULL);
    rpc_req_t req = {.method = RPC_M_INSTALL_SNAPSHOT, .msg = &r.base};
    if (ch == NULL || rpc_channel_send(ch, &req) != 0)
        core_report_snapshot(n->core, to, false);
    else
        RK_INFO(n->group, n->self_str, "sending snapshot %llu to %s", (unsigned long long)s->index,
                tos);
}

static void src_open_work(uv_work_t *w)
{
    node_snap_src_t *s = w->data;
    rk_status_t st;
    s->open_rc = snap_reader_open(s->n->snaps, &s->r, &st);
    if (s->open_rc == 0) {
        s->index = snap_reader_meta(s->r)->last_index;
        s->term = snap_reader_meta(s->r)->last_term;
    }
}

static void src_open_done(uv_work_t *w, int status)
{
    node_snap_src_t *s = w->data;
    rk_node_t *n = s->n;
    n->close_pending--;
    s->opening = false;
    bool ok = status == 0 && s->open_rc == 0 && !n->stopping && n->snap_src == s;
    for (size_t i = 0; i < s->n_waiting && !n->stopping; i++) {
        if (ok)
            send_install(n, s, &s->waiting[i]);
        else
            core_report_snapshot(n->core, &s->waiting[i], false);
    }
    s->n_waiting = 0;
    if (!ok && n->snap_src == s) {
        n->snap_src = NULL;
        s->refs--; /* the node's reference; the work's goes below */
    }
    src_release(n, s);
    if (!n->stopping)
        node_wake(n);
}

void snap_src_send(rk_node_t *n, const core_msg_t *m)
{
    node_snap_src_t *s = n->snap_src;
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            core_report_snapshot(n->core, &m->to, false);
            return;
        }
        s->n = n;
        s->refs = 2; /* node + work */
        s->opening = true;
        s->work.data = s;
        n->snap_src = s;
        n->close_pending++;
        uv_queue_work(&n->rt->loop, &s->work, src_open_work, src_open_done);
    }
    if (s->opening) {
        for (size_t i = 0; i < s->n_waiting; i++)
            if (core_peer_eq(&s->waiting[i], &m->to))
                return;
        if (s->n_waiting < sizeof(s->waiting) / sizeof(s->waiting[0]))
            s->waiting[s->n_waiting++] = m->to;
        return;
    }
    send_install(n, s, &m->to);
}

typedef struct file_read {
    uv_work_t work;
    node_snap_src_t *src;
    rpc_call_t *call;
    char name[SNAP_NAME_MAX];
    uint64_t offset;
    size_t count;
    uint8_t *buf;
    size_t nread;
    bool eof;
    int rc;
} file_read_t;

static void read_work(uv_work_t *w)
{
    file_read_t *f = w->data;
    f->rc =
        snap_reader_read(f->src->r, f->name, f->offset, f->buf, f->count, &f->nread, &f->eof, NULL);
}

static void free_chunk(void *arg)
{
    free(arg);
}

static void read_done(uv_work_t *w, int status)
{
    file_read_t *f = w->data;
    rk_node_t *n = f->src->n;
    n->close_pending--;
    if (status != 0 || f->rc != 0) {
        rpc_call_fail(f->call, f->rc ? f->rc : RK_ECANCELED, "reading %s", f->name);
        free(f->buf);
    } else {
        Rk__GetFileResponse r = RK__GET_FILE_RESPONSE__INIT;
        r.eof = f->eof;
        r.read_size = f->nread;
        r.data_in_attachment = true;
        uv_buf_t b = uv_buf_init((char *)f->buf, (unsigned)f->nread);
        rpc_call_reply(f->call, &r.base, &b, 1, free_chunk, f->buf);
    }
    src_release(n, f->src);
    free(f);
}

int snap_serve_get_file(rk_node_t *n, uint64_t reader_id, const char *name, uint64_t offset,
                        uint64_t count, void *call)
{
    node_snap_src_t *s = n->snap_src;
    if (s == NULL || s->opening || s->index != reader_id)
        return RK_ESTALE;
    if (name == NULL || strlen(name) >= SNAP_NAME_MAX)
        return RK_EINVAL;
    size_t max = (size_t)n->opts.raft_options.max_byte_count_per_rpc;
    if (count == 0 || count > max)
        count = max;
    file_read_t *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->buf = malloc(count)) == NULL) {
        free(f);
        return RK_ENOMEM;
    }
    f->src = s;
    f->call = call;
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->offset = offset;
    f->count = count;
    f->work.data = f;
    s->refs++;
    n->close_pending++;
    uv_queue_work(&n->rt->loop, &f->work, read_work, read_done);
    return 0;
}

void snap_on_install_done(rk_node_t *n, const rk_peer_id_t *from, bool ok)
{
    if (n->core == NULL || n->stopping)
        return;
    core_report_snapshot(n->core, from, ok);
    node_wake(n);
}

/* -------------------------------------------- follower: downloading */

typedef enum dl_stage { DL_META, DL_BEGIN, DL_FILE, DL_WRITE, DL_COMMIT } dl_stage_t;

struct node_download {
    rk_node_t *n;
    rk_peer_id_t from;
    uint64_t term;
    uint64_t index;
    uint64_t reader_id;
    dl_stage_t stage;
    snap_download_t *d;
    uint8_t *meta_rec;
    size_t meta_len;
    uint32_t file;   /* index into the metadata's files */
    uint64_t offset; /* next byte of the current file */
    uint8_t *chunk;  /* received bytes waiting to be written */
    size_t chunk_len;
    bool chunk_eof;
    int retries;
    int rc;
    rk_status_t st;
    bool canceled;
    uint64_t t0_ns; /* started at (metrics: install-snapshot) */
    uv_timer_t timer;
    uv_work_t work;
    int busy; /* outstanding call/work/timer-close */
};

static void dl_next(node_download_t *dl);

static void dl_timer_closed(uv_handle_t *h)
{
    node_download_t *dl = h->data;
    dl->n->close_pending--;
    free(dl->meta_rec);
    free(dl->chunk);
    free(dl);
}

/* Ends the download (ok: the snapshot is installed locally). */
static void dl_finish(node_download_t *dl, bool ok)
{
    rk_node_t *n = dl->n;
    if (n->download == dl)
        n->download = NULL;
    if (dl->d) {
        snap_download_abort(dl->d); /* still open: not committed */
        dl->d = NULL;
    }
    if (!n->stopping && n->core) {
        if (ok)
            metrics_record_since(n->metrics, METRIC_INSTALL_SNAPSHOT, dl->t0_ns);
        transport_send_snapshot_resp(n, &dl->from, dl->term, ok);
        if (!ok)
            RK_WARN(n->group, n->self_str, "snapshot %llu download failed: %s",
                    (unsigned long long)dl->index, dl->st.msg);
    }
    uv_close((uv_handle_t *)&dl->timer, dl_timer_closed);
}

static void dl_retry_later(node_download_t *dl, const rk_status_t *why);

static void dl_timer_fired(uv_timer_t *t)
{
    node_download_t *dl = t->data;
    if (dl->canceled || dl->n->stopping) {
        dl_finish(dl, false);
        return;
    }
    dl_next(dl);
}

static void dl_schedule(node_download_t *dl, uint64_t delay_ms)
{
    uv_timer_start(&dl->timer, dl_timer_fired, delay_ms, 0);
}

static void dl_retry_later(node_download_t *dl, const rk_status_t *why)
{
    dl->st = *why;
    if (++dl->retries > DL_MAX_RETRIES || dl->canceled || dl->n->stopping) {
        dl_finish(dl, false);
        return;
    }
    RK_INFO(dl->n->group, dl->n->self_str,
            "snapshot copy: %s; resuming at file %u offset %llu in %d ms", why->msg,
            (unsigned)dl->file, (unsigned long long)dl->offset, DL_RETRY_MS);
    dl_schedule(dl, DL_RETRY_MS);
}

static void dl_work(uv_work_t *w)
{
    node_download_t *dl = w->data;
    switch (dl->stage) {
    case DL_BEGIN:
        dl->rc = snap_download_begin(dl->n->snaps, dl->meta_rec, dl->meta_len, &dl->d, &dl->st);
        break;
    case DL_WRITE: {
        const snap_meta_t *m = snap_download_meta(dl->d);
        dl->rc = snap_download_write(dl->d, m->files[dl->file].name, dl->offset, dl->chunk,
                                     dl->chunk_len, &dl->st);
        break;
    }
    case DL_COMMIT:
        dl->rc = snap_download_commit(dl->d, &dl->st);
        dl->d = NULL; /* freed in every case */
        break;
    default:
        break;
    }
}

static void dl_installed(node_download_t *dl, const snap_meta_t *m);

static void dl_work_done(uv_work_t *w, int status)
{
    node_download_t *dl = w->data;
    rk_node_t *n = dl->n;
    n->close_pending--;
    if (status != 0 || dl->canceled || n->stopping) {
        if (dl->rc == 0 && status != 0)
            rk_status_set(&dl->st, RK_ECANCELED, "canceled");
        dl_finish(dl, false);
        return;
    }
    if (dl->rc != 0) {
        dl_finish(dl, false);
        return;
    }
    switch (dl->stage) {
    case DL_BEGIN:
        dl->stage = DL_FILE;
        dl->file = 0;
        dl->offset = 0;
        dl_next(dl);
        break;
    case DL_WRITE: {
        size_t len = dl->chunk_len;
        dl->offset += len;
        free(dl->chunk);
        dl->chunk = NULL;
        if (dl->chunk_eof) {
            dl->file++;
            dl->offset = 0;
        }
        dl->stage = DL_FILE;
        int rate = n->opts.raft_options.snapshot_throttle_bytes_per_sec;
        if (rate > 0 && len > 0)
            dl_schedule(dl, (uint64_t)len * 1000 / (uint64_t)rate);
        else
            dl_next(dl);
        break;
    }
    case DL_COMMIT: {
        snap_meta_t m;
        memset(&m, 0, sizeof(m));
        if (snap_meta_decode(dl->meta_rec, dl->meta_len, &m) != 0) {
            rk_status_set(&dl->st, RK_ECORRUPT, "metadata");
            dl_finish(dl, false);
            return;
        }
        dl_installed(dl, &m);
        snap_meta_free(&m);
        dl_finish(dl, true);
        break;
    }
    default:
        break;
    }
}

static void dl_queue(node_download_t *dl, dl_stage_t stage)
{
    dl->stage = stage;
    dl->work.data = dl;
    dl->n->close_pending++;
    uv_queue_work(&dl->n->rt->loop, &dl->work, dl_work, dl_work_done);
}

/* The snapshot is durable locally: hand it to the core, which resets the log
 * (through the next update) and has the FSM load it. */
static void dl_installed(node_download_t *dl, const snap_meta_t *m)
{
    rk_node_t *n = dl->n;
    core_snapshot_meta_t meta = {.index = m->last_index, .term = m->last_term};
    meta.conf.cur = m->conf;
    meta.conf.joint = m->has_old_conf;
    if (m->has_old_conf)
        meta.conf.old = m->old_conf;
    core_msg_t msg = {
        .type = CORE_MSG_SNAP, .from = dl->from, .to = n->self, .term = dl->term, .snap = &meta};
    int rc = core_step(n->core, &msg);
    RK_INFO(n->group, n->self_str, "snapshot %llu copied from the leader (step: %s)",
            (unsigned long long)m->last_index, rc ? rk_strerror(rc) : "ok");
    node_wake(n);
}

static void dl_got_chunk(void *arg, const rk_status_t *st, const rpc_resp_t *resp)
{
    node_download_t *dl = arg;
    rk_node_t *n = dl->n;
    n->close_pending--;
    if (dl->canceled || n->stopping) {
        dl_finish(dl, false);
        return;
    }
    if (st->code != 0) {
        if (st->code == RK_ESTALE || st->code == RK_ENOTFOUND) {
            dl->st = *st;
            dl_finish(dl, false); /* the leader moved on to a newer snapshot */
        } else {
            dl_retry_later(dl, st);
        }
        return;
    }
    const Rk__GetFileResponse *r = (const void *)resp->msg;
    const uint8_t *data = r->data_in_attachment ? resp->attach : r->data.data;
    size_t len = r->data_in_attachment ? resp->attach_len : r->data.len;
    dl->retries = 0;
    if (dl->stage == DL_META) {
        uint8_t *p = realloc(dl->meta_rec, dl->meta_len + len + 1);
        if (p == NULL) {
            rk_status_set(&dl->st, RK_ENOMEM, "metadata");
            dl_finish(dl, false);
            return;
        }
        memcpy(p + dl->meta_len, data, len);
        dl->meta_rec = p;
        dl->meta_len += len;
        dl->offset += len;
        if (r->eof)
            dl_queue(dl, DL_BEGIN);
        else
            dl_next(dl);
        return;
    }
    dl->chunk = malloc(len ? len : 1);
    if (dl->chunk == NULL) {
        rk_status_set(&dl->st, RK_ENOMEM, "chunk");
        dl_finish(dl, false);
        return;
    }
    memcpy(dl->chunk, data, len);
    dl->chunk_len = len;
    dl->chunk_eof = r->eof;
    dl_queue(dl, DL_WRITE);
}

/* Requests the next chunk, or commits when every file is complete. */
static void dl_next(node_download_t *dl)
{
    rk_node_t *n = dl->n;
    const char *name = SNAP_META_NAME;
    if (dl->stage != DL_META) {
        const snap_meta_t *m = snap_download_meta(dl->d);
        if (dl->file >= m->n_files) {
            dl_queue(dl, DL_COMMIT);
            return;
        }
        name = m->files[dl->file].name;
        if (m->files[dl->file].size == 0 && dl->offset == 0) {
            /* empty file: nothing to copy, but it must exist */
            dl->chunk = NULL;
            dl->chunk_len = 0;
            dl->chunk_eof = true;
            dl_queue(dl, DL_WRITE);
            return;
        }
    }
    char from[RK_PEER_ID_STRLEN], to[RK_PEER_ID_STRLEN], ep[RK_PEER_ID_STRLEN];
    rk_peer_id_t a = n->self, b = dl->from;
    a.priority = b.priority = RK_PRIORITY_DISABLED;
    rk_peer_id_format(&a, from, sizeof(from));
    rk_peer_id_format(&b, to, sizeof(to));
    rk_endpoint_format(&dl->from.endpoint, ep, sizeof(ep));
    Rk__GetFileRequest r = RK__GET_FILE_REQUEST__INIT;
    r.group_id = n->group, r.server_id = from, r.peer_id = to;
    r.reader_id = dl->reader_id;
    r.filename = (char *)name;
    r.offset = dl->offset;
    r.count = (uint64_t)n->opts.raft_options.max_byte_count_per_rpc;
    rpc_channel_t *ch = rpc_client_channel(n->rt->client, ep, NULL);
    rpc_req_t req = {.method = RPC_M_GET_FILE,
                     .msg = &r.base,
                     .timeout_ms = (uint32_t)n->opts.election_timeout_ms * 5};
    int rc = ch ? rpc_channel_call(ch, &req, dl_got_chunk, dl) : RK_EINVAL;
    if (rc != 0) {
        rk_status_t st;
        rk_status_set(&st, rc, "get_file %s: %s", name, rk_strerror(rc));
        dl_retry_later(dl, &st);
        return;
    }
    n->close_pending++;
}

void snap_dl_position(rk_node_t *n, uint32_t *file, uint64_t *offset)
{
    *file = n->download ? n->download->file : 0;
    *offset = n->download ? n->download->offset : 0;
}

void snap_on_install_request(rk_node_t *n, const rk_peer_id_t *from, uint64_t term,
                             const core_snapshot_meta_t *meta, uint64_t reader_id,
                             const void *meta_rec, size_t meta_len)
{
    (void)meta_rec;
    (void)meta_len;
    core_status_t cs;
    core_get_status(n->core, &cs);
    if (term < cs.term)
        return; /* a deposed leader */
    if (n->download != NULL) {
        if (n->download->index == meta->index)
            return;                   /* already copying it */
        n->download->canceled = true; /* a newer one supersedes it */
    }
    if (meta->index <= cs.commit) {
        transport_send_snapshot_resp(n, from, term, false);
        return;
    }
    node_download_t *dl = calloc(1, sizeof(*dl));
    if (dl == NULL)
        return;
    dl->n = n;
    dl->from = *from;
    dl->term = term;
    dl->index = meta->index;
    dl->reader_id = reader_id;
    dl->stage = DL_META;
    dl->t0_ns = metrics_now_ns();
    uv_timer_init(&n->rt->loop, &dl->timer);
    dl->timer.data = dl;
    n->close_pending++; /* the timer handle, until dl_timer_closed */
    n->download = dl;
    RK_INFO(n->group, n->self_str, "installing snapshot %llu from the leader",
            (unsigned long long)meta->index);
    dl_next(dl);
}

bool snap_busy(rk_node_t *n)
{
    return n->snapshot_running || n->download != NULL;
}

void snap_stop(rk_node_t *n)
{
    if (n->download)
        n->download->canceled = true;
    if (n->snap_src) {
        node_snap_src_t *s = n->snap_src;
        n->snap_src = NULL;
        src_release(n, s);
    }
}

int snap_load_latest(rk_node_t *n, core_snapshot_meta_t *meta, bool call_fsm, rk_status_t *err)
{
    (void)n, (void)meta, (void)call_fsm, (void)err;
    return RK_ENOTFOUND;
}
