/* A small raftkit server for the multi-process tests: one counter group.
 *
 *   rk-test-server GROUP SELF CONF DATA_DIR STATUS_FILE
 *
 * While it is the leader it proposes a task (value 1) every millisecond and
 * counts the acknowledged ones. Every 20 ms it rewrites STATUS_FILE with
 *   "<state> <term> <applied> <sum> <acked>"
 * (through a rename, so readers never see a torn line). It stops proposing
 * once DATA_DIR/../stop exists, and shuts down cleanly on SIGTERM. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "raftkit/metrics.h"
#include "tests/node/cluster.h"

static volatile sig_atomic_t stop_flag;
static atomic_long acked;

static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

typedef struct req {
    rk_closure_t c;
} req_t;

static void req_done(rk_closure_t *c, const rk_status_t *st)
{
    if (st->code == 0)
        atomic_fetch_add(&acked, 1);
    free(c);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s GROUP SELF CONF DATA_DIR STATUS_FILE\n", argv[0]);
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    if (getenv("RAFTKIT_LOG") == NULL)
        rk_log_set_level(RK_LOG_WARN);
    tc_counter_t fsm;
    tc_counter_init(&fsm);
    rk_node_options_t o;
    rk_node_options_init(&o);
    o.election_timeout_ms = 300;
    o.fsm = &fsm.sm;
    o.data_path = argv[4];
    /* tests/node/multiproc-tls.sh runs the same test over mutual TLS */
    o.tls_cert = getenv("RK_TEST_TLS_CERT");
    o.tls_key = getenv("RK_TEST_TLS_KEY");
    o.tls_ca = getenv("RK_TEST_TLS_CA");
    o.tls_peer_names = getenv("RK_TEST_TLS_PEER_NAMES");
    rk_status_t st;
    rk_peer_id_t self;
    if (rk_peer_id_parse(&self, argv[2], &st) != 0 ||
        rk_configuration_parse(&o.initial_conf, argv[3], &st) != 0) {
        fprintf(stderr, "bad arguments: %s\n", st.msg);
        return 2;
    }
    rk_group_service_t *svc = rk_group_service_new(argv[1], &self, &o, &st);
    rk_node_t *n = svc ? rk_group_service_start(svc, &st) : NULL;
    if (n == NULL) {
        fprintf(stderr, "start failed: %s\n", st.msg);
        return 1;
    }
    char stopfile[600], tmp[600];
    snprintf(stopfile, sizeof(stopfile), "%s/../stop", argv[4]);
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[5]);
    for (long iter = 0; !stop_flag; iter++) {
        if (rk_node_is_leader(n) && access(stopfile, F_OK) != 0) {
            req_t *r = malloc(sizeof(*r));
            r->c.run = req_done;
            uint8_t one[8] = {1};
            rk_task_t t = {.data = one, .len = 8, .done = &r->c, .expected_term = -1};
            if (rk_node_apply(n, &t) != 0)
                free(r);
        }
        if (iter % 20 == 0) {
            FILE *f = fopen(tmp, "w");
            rk_metrics_t *m = rk_node_get_metrics(n);
            if (f) {
                fprintf(f, "%s %lld %lld %llu %ld %d\n", rk_node_state_name(rk_node_state(n)),
                        (long long)rk_node_term(n), (long long)rk_node_applied_index(n),
                        (unsigned long long)atomic_load(&fsm.sum), atomic_load(&acked),
                        m != NULL && m->status.quiesced);
                fclose(f);
                rename(tmp, argv[5]);
            }
            rk_metrics_free(m);
        }
        usleep(1000);
    }
    rk_group_service_shutdown(svc);
    rk_group_service_join(svc);
    rk_group_service_free(svc);
    return atomic_load(&fsm.shutdowns) == 1 ? 0 : 3;
}
