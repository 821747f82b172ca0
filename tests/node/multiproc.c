/* Multi-process test: a 3-node counter group as three rk-test-server
 * processes on loopback. The leader is SIGKILLed (no acknowledged task may be
 * lost; the restarted node catches up) and SIGSTOPped (the others elect a new
 * leader; the old one steps down when it wakes up), then, once the idle
 * group has quiesced, SIGSTOPped again (its followers hear nothing from a
 * quiesced group: only the process heartbeats it stops answering tell
 * them). Ends with SIGTERM: every process shuts down cleanly and all state
 * machines agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/node/cluster.h"

static char server_bin[512];
static tc_cluster_t C;
static pid_t pids[3];
static bool stopped[3];

typedef struct pstatus {
    char state[32];
    long long term, applied;
    unsigned long long sum;
    long acked;
    int quiesced;
} pstatus_t;

static bool read_status(int i, pstatus_t *s)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/status%d", C.root, i);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    int k = fscanf(f, "%31s %lld %lld %llu %ld %d", s->state, &s->term, &s->applied, &s->sum,
                   &s->acked, &s->quiesced);
    fclose(f);
    return k == 6;
}

static void spawn(int i)
{
    char id[RK_PEER_ID_STRLEN], conf[1024], status[300];
    rk_peer_id_format(&C.nodes[i].id, id, sizeof(id));
    rk_configuration_format(&C.conf, conf, sizeof(conf));
    snprintf(status, sizeof(status), "%s/status%d", C.root, i);
    unlink(status);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        execl(server_bin, server_bin, C.group, id, conf, C.nodes[i].dir, status, (char *)NULL);
        _exit(127);
    }
    pids[i] = p;
    stopped[i] = false;
}

/* The live, running process whose status says leader at the highest term. */
static int find_leader(int exclude, int ms)
{
    for (int waited = 0; waited < ms; waited += 20) {
        int best = -1;
        long long best_term = -1;
        for (int i = 0; i < 3; i++) {
            pstatus_t s;
            if (pids[i] <= 0 || stopped[i] || i == exclude || !read_status(i, &s))
                continue;
            if (strcmp(s.state, "leader") == 0 && s.term > best_term)
                best = i, best_term = s.term;
        }
        if (best >= 0)
            return best;
        tc_msleep(20);
    }
    return -1;
}

static long wait_acked(int i, long at_least, int ms)
{
    pstatus_t s = {0};
    for (int waited = 0; waited < ms; waited += 20) {
        if (read_status(i, &s) && s.acked >= at_least)
            return s.acked;
        tc_msleep(20);
    }
    return s.acked;
}

static bool wait_sum(int i, unsigned long long at_least, int ms)
{
    pstatus_t s;
    for (int waited = 0; waited < ms; waited += 20) {
        if (read_status(i, &s) && s.sum >= at_least)
            return true;
        tc_msleep(20);
    }
    return false;
}

static void test_kill_and_stop_leader(void **state)
{
    (void)state;
    tc_cluster_init(&C, "mp", 3, 3, NULL);
    for (int i = 0; i < 3; i++)
        spawn(i);
    int leader = find_leader(-1, 10000);
    assert_true(leader >= 0);
    assert_true(wait_acked(leader, 300, 10000) >= 300);

    /* SIGKILL: acknowledged tasks survive on the new leader */
    kill(pids[leader], SIGKILL);
    waitpid(pids[leader], NULL, 0);
    pids[leader] = 0;
    pstatus_t last;
    assert_true(read_status(leader, &last));
    int l2 = find_leader(leader, 10000);
    assert_true(l2 >= 0);
    assert_true(wait_sum(l2, (unsigned long long)last.acked, 10000));
    spawn(leader); /* restarted on its data: catches up */
    assert_true(wait_acked(l2, 200, 10000) >= 200);

    /* SIGSTOP: the others move on; the old leader steps down on SIGCONT */
    kill(pids[l2], SIGSTOP);
    stopped[l2] = true;
    int l3 = find_leader(l2, 10000);
    assert_true(l3 >= 0 && l3 != l2);
    kill(pids[l2], SIGCONT);
    stopped[l2] = false;
    pstatus_t s;
    bool stepped_down = false;
    for (int waited = 0; waited < 10000 && !stepped_down; waited += 20) {
        tc_msleep(20);
        stepped_down = read_status(l2, &s) && strcmp(s.state, "leader") != 0;
    }
    assert_true(stepped_down);

    /* stop writing; everyone converges on the same state */
    char stopfile[300];
    snprintf(stopfile, sizeof(stopfile), "%s/stop", C.root);
    FILE *f = fopen(stopfile, "w");
    assert_non_null(f);
    fclose(f);
    bool same = false;
    for (int waited = 0; waited < 15000 && !same; waited += 50) {
        tc_msleep(50);
        pstatus_t a, b, c;
        same = read_status(0, &a) && read_status(1, &b) && read_status(2, &c) && a.sum == b.sum &&
               b.sum == c.sum && a.applied == b.applied && b.applied == c.applied && a.sum > 0;
    }
    assert_true(same);

    /* Idle now: every member quiesces; then the leader is SIGSTOPped. */
    bool quiet = false;
    for (int waited = 0; waited < 15000 && !quiet; waited += 50) {
        tc_msleep(50);
        pstatus_t a, b, c;
        quiet = read_status(0, &a) && read_status(1, &b) && read_status(2, &c) && a.quiesced &&
                b.quiesced && c.quiesced;
    }
    assert_true(quiet);
    int l4 = find_leader(-1, 10000);
    assert_true(l4 >= 0);
    kill(pids[l4], SIGSTOP);
    stopped[l4] = true;
    int l5 = find_leader(l4, 10000);
    assert_true(l5 >= 0 && l5 != l4);
    kill(pids[l4], SIGCONT);
    stopped[l4] = false;
    for (int i = 0; i < 3; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < 3; i++) {
        int wst = 0;
        waitpid(pids[i], &wst, 0);
        assert_true(WIFEXITED(wst));
        assert_int_equal(WEXITSTATUS(wst), 0);
        pids[i] = 0;
    }
    tc_cluster_destroy(&C);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[512];
    snprintf(self, sizeof(self), "%s", argv[0]);
    snprintf(server_bin, sizeof(server_bin), "%s/rk-test-server", dirname(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_and_stop_leader),
    };
    int rc = cmocka_run_group_tests_name("node_multiproc", tests, NULL, NULL);
    for (int i = 0; i < 3; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGCONT);
            kill(pids[i], SIGKILL);
        }
    return rc;
}
