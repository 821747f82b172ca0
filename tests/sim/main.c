/* raft_sim: runs the deterministic cluster simulator over a range of seeds.
 *
 *   raft_sim --seeds N      seeds 1..N (default 100)
 *   raft_sim --seed S       one seed, e.g. to replay a failure
 *   --nodes K               initial voters (default 5)
 *   --spares K              pool members outside the initial configuration (default 2)
 *   --groups G              groups, each with a member on every process (default 1)
 *   --steps M               events per run before the final heal phase (default 4000
 *                           per group)
 *   --no-faults             no crashes, partitions, drops or duplicates
 *   --no-liveness           skip the final heal-and-converge check
 *   --lease                 lease-based reads (CORE_READ_LEASE, check-quorum on)
 *   --quiesce / --no-quiesce  quiescence in every seed / in none (default: 3 seeds in 4)
 *   --pause-loses-ticks     a resumed process runs one tick, not every tick it missed
 *                           (a plain repeating timer): shows why leases need the catch-up
 *   --no-rule-checks        only black-box safety invariants (no durable-promise or
 *                           commit-rule checks): to measure what the invariants alone catch
 *   --verbose               print every traced event
 *
 * Ends with "sim: <runs> runs, <violations> violations"; exits 1 on any. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define U(x) ((unsigned long long)(x))

static void usage(void)
{
    fprintf(stderr,
            "usage: raft_sim [--seeds N | --seed S] [--nodes K] [--spares K] "
            "[--groups G] [--steps M] [--no-faults] [--no-liveness] [--no-rule-checks] [--lease] "
            "[--quiesce | --no-quiesce] [--pause-loses-ticks] [--verbose]\n");
    exit(2);
}

static uint64_t num(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        usage();
    return v;
}

int main(int argc, char **argv)
{
    sim_params_t p = {.nodes = 5,
                      .spares = 2,
                      .groups = 1,
                      .liveness = true,
                      .faults = true,
                      .rules = true,
                      .quiesce = -1};
    uint64_t first = 1, last = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--seeds") && has) {
            first = 1;
            last = num(argv[++i]);
        } else if (!strcmp(a, "--seed") && has) {
            first = last = num(argv[++i]);
        } else if (!strcmp(a, "--nodes") && has) {
            p.nodes = (int)num(argv[++i]);
        } else if (!strcmp(a, "--spares") && has) {
            p.spares = (int)num(argv[++i]);
        } else if (!strcmp(a, "--groups") && has) {
            p.groups = (int)num(argv[++i]);
        } else if (!strcmp(a, "--steps") && has) {
            p.steps = num(argv[++i]);
        } else if (!strcmp(a, "--no-faults")) {
            p.faults = false;
        } else if (!strcmp(a, "--quiesce")) {
            p.quiesce = 1;
        } else if (!strcmp(a, "--no-quiesce")) {
            p.quiesce = 0;
        } else if (!strcmp(a, "--pause-loses-ticks")) {
            p.lossy_ticks = true;
        } else if (!strcmp(a, "--lease")) {
            p.lease = true;
        } else if (!strcmp(a, "--no-rule-checks")) {
            p.rules = false;
        } else if (!strcmp(a, "--no-liveness")) {
            p.liveness = false;
        } else if (!strcmp(a, "--verbose")) {
            p.verbose = true;
        } else {
            usage();
        }
    }
    if (p.nodes < 1 || p.nodes + p.spares > SIM_MAX_NODES || p.nodes > RK_CONF_MAX_PEERS) {
        fprintf(stderr, "raft_sim: need 1 <= nodes and nodes + spares <= %d\n", SIM_MAX_NODES);
        return 2;
    }
    if (p.groups < 1 || p.groups > SIM_MAX_GROUPS) {
        fprintf(stderr, "raft_sim: need 1 <= groups <= %d\n", SIM_MAX_GROUPS);
        return 2;
    }
    if (p.steps == 0)
        p.steps = 4000 * (uint64_t)p.groups;
    uint64_t runs = 0, bad = 0;
    sim_totals_t t = {0};
    for (uint64_t seed = first; seed <= last; seed++) {
        runs++;
        bad += (uint64_t)sim_run(&p, seed, &t);
        fflush(stdout);
    }
    printf("sim totals: %llu events, %llu elections, %llu writes completed, %llu reads served, "
           "%llu crashes, %llu membership changes, %llu transfers, %llu compactions, %llu "
           "snapshot installs, %llu leader quiesces, %llu follower quiesces, %llu leader wakes, "
           "%llu follower wakes, %llu process-down wakes, %llu pauses, %llu clock jumps\n",
           U(t.steps), U(t.elections), U(t.writes), U(t.reads), U(t.crashes), U(t.confs),
           U(t.transfers), U(t.compactions), U(t.snap_installs), U(t.quiesce_leader),
           U(t.quiesce_follower), U(t.wake_leader), U(t.wake_follower), U(t.proc_down), U(t.pauses),
           U(t.jumps));
    printf("sim: %llu runs, %llu violations\n", (unsigned long long)runs, (unsigned long long)bad);
    return bad ? 1 : 0;
}
