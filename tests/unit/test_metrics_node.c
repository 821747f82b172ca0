/* The per-node metrics hub: registry under JRaft names, snapshots, status
 * publication, the Prometheus exposition (checked by a strict parser),
 * status JSON round trips, and listener events derived from publications. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/metrics.h"
#include "src/metrics/packed_status.h"
#include "tests/support/prom_check.h"

static rk_peer_id_t peer(const char *s)
{
    rk_peer_id_t p;
    assert_int_equal(rk_peer_id_parse(&p, s, NULL), 0);
    return p;
}

/* A three-voter, one-learner leader with progress for each follower. */
static void leader_status(rk_node_status_t *st, int64_t term)
{
    rk_node_status_init(st);
    st->state = RK_STATE_LEADER;
    st->term = term;
    st->leader = peer("127.0.0.1:8081");
    assert_int_equal(rk_configuration_parse(&st->conf,
                                            "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083,"
                                            "127.0.0.1:8084/learner",
                                            NULL),
                     0);
    st->first_log_index = 1;
    st->last_log_index = 1000;
    st->committed_index = 998;
    st->applied_index = 990;
    st->snapshot_index = 0;
    st->n_peers = 3;
    const char *ids[] = {"127.0.0.1:8082", "127.0.0.1:8083", "127.0.0.1:8084"};
    for (int i = 0; i < 3; i++) {
        rk_peer_status_t *r = &st->peers[i];
        memset(r, 0, sizeof *r);
        r->peer = peer(ids[i]);
        r->learner = i == 2;
        r->reachable = true;
        r->next_index = 1001 - i;
        r->match_index = 1000 - i;
        r->log_lags = i;
        r->heartbeat_times = 10u + (unsigned)i;
        r->append_entries_times = 100;
        r->last_contact_age_ms = i == 1 ? -1 : 5;
    }
}

static metrics_node_t *new_hub(void)
{
    rk_peer_id_t self = peer("127.0.0.1:8081");
    metrics_node_t *m = metrics_node_new("counter", &self);
    assert_non_null(m);
    return m;
}

static void snapshot_lists_every_metric_under_its_jraft_name(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    rk_metrics_t *s = metrics_snapshot(m);
    assert_non_null(s);
    assert_int_equal(s->n_metrics, METRIC__COUNT);
    const char *names[] = {"append-logs",
                           "append-logs-count",
                           "append-logs-bytes",
                           "replicate-entries",
                           "replicate-entries-count",
                           "replicate-entries-bytes",
                           "replicate-inflights-count",
                           "fsm-apply-tasks",
                           "fsm-apply-tasks-count",
                           "fsm-commit",
                           "handle-append-entries",
                           "pre-vote",
                           "request-vote",
                           "read-index",
                           "handle-read-index",
                           "install-snapshot",
                           "truncate-log-prefix",
                           "truncate-log-suffix",
                           "save-raft-meta",
                           "apply-busy-rejections",
                           "apply-queue-depth"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const rk_metric_t *x = rk_metrics_find(s, names[i]);
        assert_non_null(x);
        assert_int_equal(x->hist.count, 0);
        assert_true(strlen(x->help) > 0);
    }
    assert_null(rk_metrics_find(s, "no-such-metric"));
    assert_int_equal(rk_metrics_find(s, "append-logs")->kind, RK_METRIC_LATENCY);
    assert_int_equal(rk_metrics_find(s, "append-logs-bytes")->kind, RK_METRIC_SIZE);
    assert_string_equal(s->status.group, "counter");
    assert_int_equal(s->status.state, RK_STATE_UNINITIALIZED);
    rk_metrics_free(s);
    metrics_node_free(m);
}

static void recorded_values_show_in_the_next_snapshot(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    /* 1000 tasks in batches of 32 (the last one of 8), as the FSM caller does. */
    for (int applied = 0; applied < 1000; applied += 32) {
        int n = 1000 - applied < 32 ? 1000 - applied : 32;
        metrics_record(m, METRIC_FSM_APPLY_TASKS_COUNT, (uint64_t)n);
        metrics_record(m, METRIC_FSM_APPLY_TASKS, 1500);
    }
    metrics_add(m, METRIC_APPLY_BUSY_REJECTIONS, 3);
    metrics_add(m, METRIC_APPLY_BUSY_REJECTIONS, 2);
    metrics_set(m, METRIC_APPLY_QUEUE_DEPTH, 17);
    uint64_t t0 = metrics_now_ns();
    metrics_record_since(m, METRIC_SAVE_RAFT_META, t0);

    rk_metrics_t *s = metrics_snapshot(m);
    const rk_metric_t *cnt = rk_metrics_find(s, "fsm-apply-tasks-count");
    assert_int_equal(cnt->hist.sum, 1000);
    assert_int_equal(cnt->hist.count, 32);
    assert_int_equal(cnt->hist.max, 32);
    assert_int_equal(cnt->hist.min, 8);
    assert_int_equal(rk_metrics_find(s, "fsm-apply-tasks")->hist.p99, 1500);
    assert_int_equal(rk_metrics_find(s, "apply-busy-rejections")->value, 5);
    assert_int_equal(rk_metrics_find(s, "apply-queue-depth")->value, 17);
    assert_int_equal(s->status.apply_queue_depth, 17);
    assert_int_equal(rk_metrics_find(s, "save-raft-meta")->hist.count, 1);
    char buf[8192];
    int n = metrics_describe(s, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_non_null(strstr(buf, "fsm-apply-tasks-count"));
    assert_non_null(strstr(buf, "sum=1000"));
    assert_null(strstr(buf, "  append-logs ")); /* empty histograms are left out */
    /* snprintf semantics on a short buffer. */
    char small[16];
    assert_int_equal(metrics_describe(s, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    rk_metrics_free(s);
    metrics_node_free(m);
}

static void published_status_is_what_readers_get(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    rk_node_status_t st, got;
    leader_status(&st, 3);
    snprintf(st.group, sizeof st.group, "ignored");
    metrics_publish_status(m, &st);
    metrics_read_status(m, &got);
    assert_string_equal(got.group, "counter"); /* the hub's own identity wins */
    assert_int_equal(got.state, RK_STATE_LEADER);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.committed_index, 998);
    assert_int_equal(got.n_peers, 3);
    assert_true(got.age_ms >= 0 && got.age_ms < 60000);
    assert_true(rk_configuration_equal(&got.conf, &st.conf));
    metrics_node_free(m);
}

/* The hub keeps statuses packed (arrays cut to their counts): what readers
 * get is byte for byte what was published, whatever stale entries the
 * publisher left past the counts, through growing and shrinking counts. */
static void packed_statuses_read_back_exactly(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    rk_node_status_t *st = malloc(sizeof *st), *want = malloc(sizeof *want),
                     *got = malloc(sizeof *got);
    for (int round = 0; round < 4; round++) {
        /* The publisher's scratch: garbage past the counts, as
         * packed_status_reset leaves it. */
        memset(st, 0xa5, sizeof *st);
        packed_status_reset(st);
        leader_status(want, 10 + round);
        if (round == 1) {
            want->joint = true;
            rk_configuration_parse(&want->old_conf, "127.0.0.1:8081,127.0.0.1:8085", NULL);
        }
        if (round == 2) {
            want->n_peers = 1; /* fewer followers than before */
            want->conf.n_learners = 0;
        }
        if (round == 3)
            want->state = RK_STATE_FOLLOWER, want->n_peers = 0, want->quiesced = true;
        /* Built field by field into the scratch, as node_obs does. */
        memcpy(st, want, offsetof(rk_node_status_t, conf));
        packed_status_conf_copy(&st->conf, &want->conf);
        st->joint = want->joint;
        packed_status_conf_copy(&st->old_conf, &want->old_conf);
        memcpy(&st->first_log_index, &want->first_log_index,
               offsetof(rk_node_status_t, peers) - offsetof(rk_node_status_t, first_log_index));
        memcpy(st->peers, want->peers, want->n_peers * sizeof want->peers[0]);
        metrics_publish_status(m, st);
        metrics_read_status(m, got);
        /* Clean copies past the counts; the hub's identity and the reader's
         * fields as the hub sets them. */
        rk_node_status_t *clean = malloc(sizeof *clean);
        memcpy(clean, want, sizeof *clean);
        memset(&clean->peers[clean->n_peers], 0,
               (RK_STATUS_MAX_PEERS - clean->n_peers) * sizeof clean->peers[0]);
        memset(&clean->conf.learners[clean->conf.n_learners], 0,
               (RK_CONF_MAX_PEERS - clean->conf.n_learners) * sizeof clean->conf.learners[0]);
        snprintf(clean->group, sizeof clean->group, "counter");
        clean->self = peer("127.0.0.1:8081");
        clean->age_ms = got->age_ms;
        clean->apply_queue_depth = got->apply_queue_depth;
        assert_memory_equal(got, clean, sizeof *got);
        free(clean);
        /* Publishing the same again changes nothing readers see. */
        metrics_publish_status(m, st);
        metrics_read_status(m, want);
        want->age_ms = got->age_ms;
        assert_memory_equal(got, want, sizeof *got);
    }
    free(st);
    free(want);
    free(got);
    metrics_node_free(m);
}

static void exposition_passes_the_strict_parser(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    rk_node_status_t st;
    leader_status(&st, 7);
    metrics_publish_status(m, &st);
    for (int i = 0; i < 100; i++) {
        metrics_record(m, METRIC_APPEND_LOGS, 20000 + (uint64_t)i * 100);
        metrics_record(m, METRIC_APPEND_LOGS_COUNT, 4);
    }
    metrics_add(m, METRIC_APPLY_TASKS, 400);
    rk_metrics_t *s = metrics_snapshot(m);
    char *text = rk_metrics_to_prometheus(s);
    assert_non_null(text);
    char err[256] = "";
    if (prom_check(text, err, sizeof err) != 0)
        fail_msg("%s\n%s", err, text);

    double v;
    const char *L = "{group=\"counter\",peer=\"127.0.0.1:8081\"";
    char key[256];
    snprintf(key, sizeof key, "raftkit_append_logs_seconds_count%s}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v == 100);
    snprintf(key, sizeof key, "raftkit_append_logs_seconds%s,quantile=\"0.5\"}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v > 24000e-9 && v < 26000e-9); /* ns exposed as seconds */
    snprintf(key, sizeof key, "raftkit_append_logs_count_sum%s}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v == 400);
    snprintf(key, sizeof key, "raftkit_apply_tasks_total%s}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v == 400);
    snprintf(key, sizeof key, "raftkit_term%s}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v == 7);
    snprintf(key, sizeof key, "raftkit_state%s,state=\"LEADER\"}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v == 1);
    snprintf(key, sizeof key, "raftkit_replicator_log_lags%s,follower=\"127.0.0.1:8084\"}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v == 2);
    /* A follower never heard from has no last-contact sample. */
    snprintf(key, sizeof key,
             "raftkit_replicator_last_contact_age_seconds%s,follower=\"127.0.0.1:8083\"}", L);
    assert_int_equal(prom_sample(text, key, &v), -1);
    /* An empty histogram has NaN quantiles, which the format allows. */
    snprintf(key, sizeof key, "raftkit_pre_vote_seconds%s,quantile=\"0.99\"}", L);
    assert_int_equal(prom_sample(text, key, &v), 0);
    assert_true(v != v);
    free(text);
    rk_metrics_free(s);
    metrics_node_free(m);
}

static void exposition_escapes_label_values_and_groups_families(void **state)
{
    (void)state;
    rk_peer_id_t self = peer("[::1]:9000");
    metrics_node_t *a = metrics_node_new("we\"ird\\group\nname", &self);
    metrics_node_t *b = new_hub();
    rk_metrics_t *ms[2] = {metrics_snapshot(a), metrics_snapshot(b)};
    char *text = metrics_prometheus_render((const rk_metrics_t *const *)ms, 2);
    char err[256] = "";
    if (prom_check(text, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_non_null(strstr(text, "group=\"we\\\"ird\\\\group\\nname\",peer=\"[::1]:9000\""));
    /* One TYPE line per family even with two groups. */
    const char *t = "# TYPE raftkit_term gauge\n";
    char *first = strstr(text, t);
    assert_non_null(first);
    assert_null(strstr(first + 1, t));
    free(text);
    rk_metrics_free(ms[0]);
    rk_metrics_free(ms[1]);
    metrics_node_free(a);
    metrics_node_free(b);
}

static void the_strict_parser_rejects_malformed_expositions(void **state)
{
    (void)state;
    const char *bad[] = {
        "x 1\n",                                              /* no TYPE */
        "# HELP x h\n# TYPE x gauge\nx 1",                    /* no final newline */
        "# HELP x h\n# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n", /* duplicate label */
        "# HELP x h\n# TYPE x gauge\nx{a=\"\\q\"} 1\n",       /* bad escape */
        "# HELP x h\n# TYPE x gauge\nx one\n",                /* bad value */
        "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",             /* duplicate series */
        "# HELP x h\n# TYPE x gauge\n# HELP y h\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 1\n",
        "# HELP x h\n# TYPE x summary\nx 1\n",               /* quantile missing */
        "# HELP x h\n# TYPE x counter\nx_sum 1\n",           /* counter with _sum */
        "# HELP x h\n# TYPE x gauge\n# TYPE x gauge\nx 1\n", /* second TYPE */
        "# HELP x h\n# TYPE x gauge\nx{a=\"1\"  1\n",        /* unterminated */
        "# HELP 1x h\n# TYPE 1x gauge\n1x 1\n",              /* bad name */
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (prom_check(bad[i], err, sizeof err) == 0)
            fail_msg("accepted bad exposition %zu: %s", i, bad[i]);
    assert_int_equal(prom_check("# HELP x h\n# TYPE x summary\nx{quantile=\"0.5\"} NaN\n"
                                "x_sum 0\nx_count 0\n# HELP y h\n# TYPE y counter\ny 3 1700000\n",
                                err, sizeof err),
                     0);
}

static void status_json_round_trips(void **state)
{
    (void)state;
    rk_node_status_t st, back;
    leader_status(&st, 9);
    snprintf(st.group, sizeof st.group, "kv \"quoted\" \xc3\xa9");
    st.self = peer("127.0.0.1:8081");
    st.joint = true;
    st.quiesced = true;
    assert_int_equal(rk_configuration_parse(&st.old_conf, "127.0.0.1:8081,127.0.0.1:8082", NULL),
                     0);
    st.state = RK_STATE_ERROR;
    rk_status_set(&st.error, RK_EIO, "disk \"full\"");
    char *json = rk_node_status_to_json(&st, true);
    assert_non_null(json);
    rk_status_t err;
    assert_int_equal(rk_node_status_from_json(json, &back, &err), 0);
    assert_string_equal(back.group, st.group);
    assert_true(rk_peer_id_equal(&back.self, &st.self));
    assert_int_equal(back.state, RK_STATE_ERROR);
    assert_int_equal(back.term, 9);
    assert_true(rk_peer_id_equal(&back.leader, &st.leader));
    assert_true(rk_configuration_equal(&back.conf, &st.conf));
    assert_true(back.joint);
    assert_true(back.quiesced);
    assert_true(rk_configuration_equal(&back.old_conf, &st.old_conf));
    assert_int_equal(back.committed_index, 998);
    assert_int_equal(back.error.code, RK_EIO);
    assert_string_equal(back.error.msg, "disk \"full\"");
    assert_int_equal(back.n_peers, 3);
    assert_int_equal(back.peers[2].log_lags, 2);
    assert_true(back.peers[2].learner);
    assert_int_equal(back.peers[1].last_contact_age_ms, -1);
    assert_int_equal(back.peers[0].heartbeat_times, 10);
    free(json);

    /* Text for people: the facts are there. */
    char text[4096];
    int n = rk_node_status_format(&back, text, sizeof text);
    assert_true(n > 0 && (size_t)n < sizeof text);
    assert_non_null(strstr(text, "state: ERROR (quiesced)"));
    assert_non_null(strstr(text, "old_conf: 127.0.0.1:8081,127.0.0.1:8082"));
    assert_non_null(strstr(text, "127.0.0.1:8084/learner"));
    assert_non_null(strstr(text, "RK_EIO"));
}

static void malformed_status_json_is_refused(void **state)
{
    (void)state;
    rk_node_status_t st;
    rk_status_t err;
    const char *bad[] = {"",
                         "{",
                         "[]",
                         "{\"term\":\"3\"}",
                         "{\"state\":\"KING\"}",
                         "{\"leader\":\"nohost\"}",
                         "{\"conf\":{\"peers\":[1]}}",
                         "{\"replicators\":[3]}",
                         "{\"term\":1,\"term\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (rk_node_status_from_json(bad[i], &st, &err) != RK_EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_true(strlen(err.msg) > 0);
    }
    assert_int_equal(rk_node_status_from_json("{\"unknown\":1}", &st, &err), 0);
    assert_int_equal(st.state, RK_STATE_UNINITIALIZED);
}

/* ---- listeners ---- */

#define MAX_SEEN 64
typedef struct recorder {
    rk_node_listener_t l;
    pthread_mutex_t lock;
    int n;
    rk_node_event_t seen[MAX_SEEN];
    metrics_node_t *hub; /* for self-removal */
    bool remove_self_on_leader;
} recorder_t;

static void record_event(rk_node_listener_t *l, const rk_node_event_t *ev)
{
    recorder_t *r = rk_container_of(l, recorder_t, l);
    pthread_mutex_lock(&r->lock);
    if (r->n < MAX_SEEN)
        r->seen[r->n++] = *ev;
    pthread_mutex_unlock(&r->lock);
    if (r->remove_self_on_leader && ev->type == RK_EVENT_BECAME_LEADER)
        assert_int_equal(metrics_listener_remove(r->hub, l), 0);
}

static void recorder_init(recorder_t *r, metrics_node_t *hub)
{
    memset(r, 0, sizeof *r);
    r->l.on_event = record_event;
    r->hub = hub;
    pthread_mutex_init(&r->lock, NULL);
}

static void follower_status(rk_node_status_t *st, int64_t term, const char *leader)
{
    leader_status(st, term);
    st->state = RK_STATE_FOLLOWER;
    st->n_peers = 0;
    if (leader)
        st->leader = peer(leader);
    else
        rk_peer_id_clear(&st->leader);
}

/* Threads of this process (Threads: in /proc/self/status). */
static long thread_count(void)
{
    char line[256];
    long n = -1;
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* A hub nobody listens to runs no thread (a process with thousands of
 * groups has thousands of hubs); the first listener starts it. */
static void the_listener_thread_starts_with_the_first_listener(void **state)
{
    (void)state;
    long before = thread_count();
    metrics_node_t *m = new_hub();
    rk_node_status_t st;
    follower_status(&st, 1, "127.0.0.1:8082");
    metrics_publish_status(m, &st);
    metrics_events_flush(m);
    assert_int_equal(thread_count(), before);

    recorder_t r;
    recorder_init(&r, m);
    assert_int_equal(metrics_listener_add(m, &r.l), 0);
    assert_int_equal(thread_count(), before + 1);
    follower_status(&st, 2, "127.0.0.1:8083");
    metrics_publish_status(m, &st);
    metrics_events_flush(m);
    pthread_mutex_lock(&r.lock);
    assert_int_equal(r.n, 2); /* CURRENT, LEADER_CHANGED */
    assert_int_equal(r.seen[0].type, RK_EVENT_CURRENT);
    pthread_mutex_unlock(&r.lock);
    metrics_node_free(m);
    assert_int_equal(thread_count(), before);
}

static void listeners_see_a_failover_in_order(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    rk_node_status_t st;
    follower_status(&st, 1, "127.0.0.1:8082");
    metrics_publish_status(m, &st);

    recorder_t r;
    recorder_init(&r, m);
    assert_int_equal(metrics_listener_add(m, &r.l), 0);
    assert_int_equal(metrics_listener_add(m, &r.l), RK_EEXIST);

    metrics_publish_status(m, &st); /* nothing changed: no event */
    follower_status(&st, 2, NULL);  /* the leader died; we stand */
    st.state = RK_STATE_CANDIDATE;
    metrics_publish_status(m, &st);
    leader_status(&st, 2); /* won */
    st.peers[1].reachable = false;
    metrics_publish_status(m, &st);
    st.peers[1].reachable = true;
    assert_int_equal(rk_configuration_remove_learner(&st.conf, &st.peers[2].peer), 0);
    metrics_publish_status(m, &st);
    follower_status(&st, 3, "127.0.0.1:8083"); /* deposed */
    metrics_publish_status(m, &st);
    metrics_events_flush(m);

    rk_node_event_type_t want[] = {
        RK_EVENT_CURRENT,
        RK_EVENT_BECAME_CANDIDATE,
        RK_EVENT_LEADER_CHANGED,
        RK_EVENT_BECAME_LEADER,
        RK_EVENT_LEADER_CHANGED,
        RK_EVENT_PEER_UNREACHABLE,
        RK_EVENT_CONFIGURATION_CHANGED,
        RK_EVENT_PEER_REACHABLE,
        RK_EVENT_BECAME_FOLLOWER,
        RK_EVENT_LEADER_CHANGED,
        RK_EVENT_CONFIGURATION_CHANGED,
    };
    size_t nw = sizeof want / sizeof want[0];
    for (int i = 0; r.n != (int)nw && i < r.n; i++)
        printf("  event %d: %s\n", i, rk_node_event_name(r.seen[i].type));
    assert_int_equal(r.n, nw);
    for (size_t i = 0; i < nw; i++)
        assert_int_equal(r.seen[i].type, want[i]);
    /* Details. */
    assert_int_equal(r.seen[0].state, RK_STATE_FOLLOWER);
    assert_true(rk_peer_id_equal(&r.seen[0].leader, &(rk_peer_id_t){0}) == false);
    assert_int_equal(r.seen[1].prev_state, RK_STATE_FOLLOWER);
    assert_true(rk_peer_id_is_empty(&r.seen[2].leader));
    assert_int_equal(r.seen[3].term, 2);
    assert_true(rk_peer_id_equal(&r.seen[5].peer, &st.conf.peers[2]));
    assert_int_equal(r.seen[6].conf.n_learners, 0); /* configuration before peers */
    assert_int_equal(r.seen[8].prev_state, RK_STATE_LEADER);
    assert_int_equal(metrics_listener_remove(m, &r.l), 0);
    assert_int_equal(metrics_listener_remove(m, &r.l), RK_ENOTFOUND);
    metrics_node_free(m);
}

static void a_lost_and_regained_leadership_is_reported_even_between_ticks(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    recorder_t r;
    recorder_init(&r, m);
    rk_node_status_t st;
    leader_status(&st, 4);
    metrics_publish_status(m, &st);
    assert_int_equal(metrics_listener_add(m, &r.l), 0);
    leader_status(&st, 6);
    metrics_publish_status(m, &st);
    metrics_events_flush(m);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.seen[0].type, RK_EVENT_CURRENT);
    assert_int_equal(r.seen[0].state, RK_STATE_LEADER);
    assert_int_equal(r.seen[1].type, RK_EVENT_BECAME_FOLLOWER);
    assert_int_equal(r.seen[2].type, RK_EVENT_BECAME_LEADER);
    assert_int_equal(r.seen[3].type, RK_EVENT_LEADER_CHANGED);
    assert_int_equal(r.seen[3].term, 6);
    metrics_listener_remove(m, &r.l);
    metrics_node_free(m);
}

static void a_listener_may_remove_itself_and_later_listeners_start_from_current(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    recorder_t a, b;
    recorder_init(&a, m);
    recorder_init(&b, m);
    a.remove_self_on_leader = true;
    rk_node_status_t st;
    follower_status(&st, 1, NULL);
    metrics_publish_status(m, &st);
    assert_int_equal(metrics_listener_add(m, &a.l), 0);
    leader_status(&st, 2);
    metrics_publish_status(m, &st);
    assert_int_equal(metrics_listener_add(m, &b.l), 0);
    follower_status(&st, 3, "127.0.0.1:8082");
    metrics_publish_status(m, &st);
    metrics_events_flush(m);
    /* a: CURRENT, BECAME_LEADER (removes itself), nothing after. */
    assert_int_equal(a.n, 2);
    assert_int_equal(a.seen[1].type, RK_EVENT_BECAME_LEADER);
    assert_int_equal(metrics_listener_remove(m, &a.l), RK_ENOTFOUND);
    /* b: starts from the leader state, then the step down. */
    assert_int_equal(b.seen[0].type, RK_EVENT_CURRENT);
    assert_int_equal(b.seen[0].state, RK_STATE_LEADER);
    assert_int_equal(b.seen[0].term, 2);
    assert_int_equal(b.seen[1].type, RK_EVENT_BECAME_FOLLOWER);
    metrics_listener_remove(m, &b.l);
    metrics_node_free(m);
}

/* Readers and the publisher race: the publisher never blocks, readers
 * always see a whole status (all fields from one publication). */
static void *publisher(void *arg)
{
    metrics_node_t *m = arg;
    rk_node_status_t *st = malloc(sizeof *st);
    for (int64_t t = 1; t <= 20000; t++) {
        leader_status(st, t);
        st->committed_index = t;
        st->applied_index = t;
        metrics_publish_status(m, st);
    }
    free(st);
    return NULL;
}

static void readers_never_see_a_torn_status(void **state)
{
    (void)state;
    metrics_node_t *m = new_hub();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publisher, m), 0);
    rk_node_status_t *got = malloc(sizeof *got);
    int64_t last = 0;
    for (int i = 0; i < 20000 && last < 20000; i++) {
        metrics_read_status(m, got);
        if (got->state == RK_STATE_UNINITIALIZED)
            continue;
        assert_int_equal(got->term, got->committed_index);
        assert_int_equal(got->term, got->applied_index);
        assert_true(got->term >= last); /* never goes back */
        last = got->term;
    }
    pthread_join(t, NULL);
    metrics_read_status(m, got);
    assert_int_equal(got->term, 20000);
    free(got);
    metrics_node_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(snapshot_lists_every_metric_under_its_jraft_name),
        cmocka_unit_test(recorded_values_show_in_the_next_snapshot),
        cmocka_unit_test(published_status_is_what_readers_get),
        cmocka_unit_test(packed_statuses_read_back_exactly),
        cmocka_unit_test(exposition_passes_the_strict_parser),
        cmocka_unit_test(exposition_escapes_label_values_and_groups_families),
        cmocka_unit_test(the_strict_parser_rejects_malformed_expositions),
        cmocka_unit_test(status_json_round_trips),
        cmocka_unit_test(malformed_status_json_is_refused),
        cmocka_unit_test(listeners_see_a_failover_in_order),
        cmocka_unit_test(a_lost_and_regained_leadership_is_reported_even_between_ticks),
        cmocka_unit_test(a_listener_may_remove_itself_and_later_listeners_start_from_current),
        cmocka_unit_test(readers_never_see_a_torn_status),
        cmocka_unit_test(the_listener_thread_starts_with_the_first_listener),
    };
    return cmocka_run_group_tests_name("metrics_node", tests, NULL, NULL);
}
