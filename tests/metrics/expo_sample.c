/* Prints a Prometheus exposition of two groups with recorded values, a
 * leader with followers and a follower, after their process series, for the
 * reference-parser check (prom_client_check.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics/metrics.h"

int main(void)
{
    rk_peer_id_t self;
    rk_peer_id_parse(&self, "127.0.0.1:8081", NULL);
    metrics_node_t *a = metrics_node_new("counter", &self);
    metrics_node_t *b = metrics_node_new("kv \"q\"", &self);
    rk_node_status_t *st = malloc(sizeof *st);
    rk_node_status_init(st);
    st->state = RK_STATE_LEADER;
    st->term = 3;
    st->leader = self;
    rk_configuration_parse(&st->conf, "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083/learner", NULL);
    st->n_peers = 2;
    for (int i = 0; i < 2; i++) {
        memset(&st->peers[i], 0, sizeof st->peers[i]);
        st->peers[i].peer = i == 0 ? st->conf.peers[1] : st->conf.learners[0];
        st->peers[i].learner = i == 1;
        st->peers[i].reachable = true;
        st->peers[i].next_index = 11;
        st->peers[i].last_contact_age_ms = 3;
    }
    metrics_publish_status(a, st);
    rk_node_status_init(st);
    st->state = RK_STATE_FOLLOWER;
    metrics_publish_status(b, st);
    for (uint64_t i = 0; i < 1000; i++) {
        metrics_record(a, METRIC_APPEND_LOGS, 10000 + i * 37);
        metrics_record(a, METRIC_APPEND_LOGS_COUNT, 1 + i % 32);
    }
    metrics_add(a, METRIC_APPLY_TASKS, 1000);
    /* The process series first, as the admin endpoint serves them. */
    metrics_totals_t *t = malloc(sizeof *t);
    metrics_totals_init(t);
    metrics_totals_add(t, a);
    metrics_totals_add(t, b);
    char *text = metrics_totals_render(t);
    fputs(text, stdout);
    free(text);
    free(t);
    rk_metrics_t *ms[2] = {metrics_snapshot(a), metrics_snapshot(b)};
    text = metrics_prometheus_render((const rk_metrics_t *const *)ms, 2);
    fputs(text, stdout);
    free(text);
    rk_metrics_free(ms[0]);
    rk_metrics_free(ms[1]);
    free(st);
    metrics_node_free(a);
    metrics_node_free(b);
    return 0;
}
