/* Many-groups startup benchmark: one server with a data_path starts G new
 * one-member groups (one log environment for all of them), then stops and
 * starts them again on the same directory. Prints how long the starts took,
 * how long until every group applied its bootstrap entry, the stops, and the
 * data directory's size. Asserts nothing about time.
 *
 *   build/tests/node-groups-startup-bench [G=1000] [election_timeout_ms=100000]
 *
 * The default election timeout keeps elections out of the figures (a
 * one-member group elects itself once it expires).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "raftkit/log.h"
#include "raftkit/node.h"
#include "tests/node/cluster.h"
#include "tools/common/storage_util.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int eto = argc > 2 ? atoi(argv[2]) : 100000;
    if (n < 1 || eto < 10) {
        fprintf(stderr, "usage: %s [groups] [election_timeout_ms]\n", argv[0]);
        return 2;
    }
    rk_log_set_level(RK_LOG_ERROR);
    char *dir = tu_mkdtemp("groups-bench");
    tc_counter_t *fsm = calloc((size_t)n, sizeof *fsm);
    rk_group_service_t **svc = calloc((size_t)n, sizeof *svc);
    rk_node_t **node = calloc((size_t)n, sizeof *node);
    char id[64];
    snprintf(id, sizeof id, "127.0.0.1:%u", free_port());
    rk_peer_id_t self;
    if (fsm == NULL || svc == NULL || node == NULL || rk_peer_id_parse(&self, id, NULL) != 0)
        return 1;
    for (int round = 0; round < 2; round++) {
        rk_node_options_t so;
        rk_node_options_init(&so);
        so.data_path = dir;
        rk_status_t st;
        double t0 = now_s();
        rk_server_t *server = rk_server_new_opts(&self.endpoint, &so, &st);
        if (server == NULL) {
            fprintf(stderr, "server: %s\n", st.msg);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            rk_node_options_t o;
            rk_node_options_init(&o);
            tc_counter_init(&fsm[i]);
            o.fsm = &fsm[i].sm;
            o.election_timeout_ms = eto;
            o.snapshot_interval_secs = 0;
            o.initial_conf.n_peers = 1;
            o.initial_conf.peers[0] = self;
            char g[32];
            snprintf(g, sizeof g, "g%d", i);
            svc[i] = rk_group_service_new_shared(g, &self, &o, server, &st);
            node[i] = svc[i] ? rk_group_service_start(svc[i], &st) : NULL;
            if (node[i] == NULL) {
                fprintf(stderr, "group %d: %s\n", i, st.msg);
                return 1;
            }
        }
        double t1 = now_s();
        for (int i = 0; i < n; i++)
            while (rk_node_applied_index(node[i]) < 1)
                tc_msleep(1);
        double t2 = now_s();
        for (int i = 0; i < n; i++)
            rk_group_service_shutdown(svc[i]);
        for (int i = 0; i < n; i++)
            rk_group_service_free(svc[i]);
        rk_server_free(server);
        double t3 = now_s();
        printf("%s %d groups: started in %.3f s, bootstrap entries applied at %.3f s, stopped "
               "in %.3f s\n",
               round == 0 ? "new" : "restart", n, t1 - t0, t2 - t0, t3 - t2);
        fflush(stdout);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "du -sh %s | cut -f1", dir);
    printf("data directory: ");
    fflush(stdout);
    if (system(cmd) != 0)
        printf("?\n");
    tu_rm_rf(dir);
    free(dir);
    free(fsm);
    free(svc);
    free(node);
    return 0;
}
