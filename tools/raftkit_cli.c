/* raftkit-cli: manages a running raftkit group through the CLI service
 * (braft_cli's job with JRaft's command names).
 *
 *   raftkit-cli --group G --peers a,b,c <command> [args]
 *
 * Exit codes: 0 done; 1 the cluster refused or the operation failed (the
 * reason is printed); 2 usage error; 3 no answer (unreachable, timed out,
 * no leader).
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftkit/client.h"
#include "raftkit/log.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_NOANSWER = 3 };

typedef struct ctx {
    const char *group;
    rk_configuration_t conf;
    bool have_conf;
    bool alive;
    rk_cli_client_t *cli;
} ctx_t;

typedef struct command {
    const char *name;
    const char *args; /* synopsis of the arguments */
    int nargs;
    bool needs_peers;
    const char *help;
    int (*run)(ctx_t *c, char **args);
} command_t;

/* A positive int written in full ("500"), else -1 ("500ms", "", "0"). */
static int parse_ms(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && *end == '\0' && v > 0 && v <= 86400000 ? (int)v : -1;
}

static int fail(const char *what, const rk_status_t *st)
{
    /* The message adds detail; a server that had none may have sent the
     * code's own text, which is not repeated. */
    bool detail = st->msg[0] != '\0' && strcmp(st->msg, rk_strerror(st->code)) != 0;
    fprintf(stderr, "raftkit-cli: %s: %s: %s%s%s\n", what, rk_err_name(st->code),
            rk_strerror(st->code), detail ? " -- " : "", detail ? st->msg : "");
    switch (st->code) {
    case RK_EUNREACHABLE:
    case RK_ETIMEDOUT:
    case RK_ENOLEADER:
        return CLI_NOANSWER;
    default:
        return CLI_FAILED;
    }
}

static int parse_peer(const char *s, rk_peer_id_t *p)
{
    rk_status_t st;
    if (rk_peer_id_parse(p, s, &st) != 0) {
        fprintf(stderr, "raftkit-cli: bad peer '%s': %s\n", s, st.msg);
        return CLI_USAGE;
    }
    return 0;
}

static int parse_conf(const char *s, rk_configuration_t *c)
{
    rk_status_t st;
    if (rk_configuration_parse(c, s, &st) != 0) {
        fprintf(stderr, "raftkit-cli: bad peer list '%s': %s\n", s, st.msg);
        return CLI_USAGE;
    }
    return 0;
}

static void print_conf(const char *prefix, const rk_configuration_t *c)
{
    char buf[RK_CONF_MAX_PEERS * 2 * (RK_PEER_ID_STRLEN + 9)];
    rk_configuration_format(c, buf, sizeof buf);
    printf("%s%s\n", prefix, buf);
}

static int cmd_get_leader(ctx_t *c, char **a)
{
    (void)a;
    rk_peer_id_t l;
    rk_status_t st;
    if (rk_cli_get_leader(c->cli, c->group, &c->conf, &l, &st) != 0)
        return fail("get_leader", &st);
    char buf[RK_PEER_ID_STRLEN];
    rk_peer_id_format(&l, buf, sizeof buf);
    printf("%s\n", buf);
    return CLI_OK;
}

static int cmd_get_peers(ctx_t *c, char **a)
{
    (void)a;
    rk_configuration_t out;
    rk_status_t st;
    if (rk_cli_get_peers(c->cli, c->group, &c->conf, c->alive, &out, &st) != 0)
        return fail("get_peers", &st);
    print_conf("", &out);
    return CLI_OK;
}

/* rk_cli_add_peer and rk_cli_remove_peer. */
typedef int (*peer_op_fn)(rk_cli_client_t *, const char *, const rk_configuration_t *,
                          const rk_peer_id_t *, rk_configuration_t *, rk_status_t *);

static int peer_op(ctx_t *c, const char *name, const char *arg, peer_op_fn op)
{
    rk_peer_id_t p;
    rk_configuration_t out;
    rk_status_t st;
    int rc = parse_peer(arg, &p);
    if (rc)
        return rc;
    if (op(c->cli, c->group, &c->conf, &p, &out, &st) != 0)
        return fail(name, &st);
    print_conf("OK peers ", &out);
    return CLI_OK;
}

static int cmd_add_peer(ctx_t *c, char **a)
{
    return peer_op(c, "add_peer", a[0], rk_cli_add_peer);
}

static int cmd_remove_peer(ctx_t *c, char **a)
{
    return peer_op(c, "remove_peer", a[0], rk_cli_remove_peer);
}

static int cmd_change_peers(ctx_t *c, char **a)
{
    rk_configuration_t target, out;
    rk_status_t st;
    int rc = parse_conf(a[0], &target);
    if (rc)
        return rc;
    if (rk_cli_change_peers(c->cli, c->group, &c->conf, &target, &out, &st) != 0)
        return fail("change_peers", &st);
    print_conf("OK peers ", &out);
    return CLI_OK;
}

static int cmd_reset_peer(ctx_t *c, char **a)
{
    rk_peer_id_t p;
    rk_configuration_t target;
    rk_status_t st;
    int rc = parse_peer(a[0], &p);
    if (rc || (rc = parse_conf(a[1], &target)))
        return rc;
    if (rk_cli_reset_peer(c->cli, c->group, &p, &target, &st) != 0)
        return fail("reset_peer", &st);
    printf("OK\n");
    return CLI_OK;
}

/* rk_cli_add_learners, rk_cli_remove_learners and rk_cli_reset_learners. */
typedef int (*learners_op_fn)(rk_cli_client_t *, const char *, const rk_configuration_t *,
                              const rk_peer_id_t *, size_t, rk_configuration_t *, rk_status_t *);

static int learners(ctx_t *c, const char *name, const char *arg, learners_op_fn op)
{
    rk_configuration_t list, out;
    rk_status_t st;
    int rc = 0;
    rk_configuration_init(&list);
    if (op != rk_cli_reset_learners || arg[0] != '\0') /* reset_learners "": no learners */
        rc = parse_conf(arg, &list);
    if (rc)
        return rc;
    /* Learners may be written with or without the /learner suffix. */
    rk_peer_id_t ps[RK_CONF_MAX_PEERS * 2];
    size_t n = 0;
    for (uint32_t i = 0; i < list.n_peers; i++)
        ps[n++] = list.peers[i];
    for (uint32_t i = 0; i < list.n_learners; i++)
        ps[n++] = list.learners[i];
    if (n > RK_CONF_MAX_PEERS) {
        fprintf(stderr, "raftkit-cli: more than %d learners\n", RK_CONF_MAX_PEERS);
        return CLI_USAGE;
    }
    if (op(c->cli, c->group, &c->conf, ps, n, &out, &st) != 0)
        return fail(name, &st);
    print_conf("OK peers ", &out);
    return CLI_OK;
}

static int cmd_add_learners(ctx_t *c, char **a)
{
    return learners(c, "add_learners", a[0], rk_cli_add_learners);
}

static int cmd_remove_learners(ctx_t *c, char **a)
{
    return learners(c, "remove_learners", a[0], rk_cli_remove_learners);
}

static int cmd_reset_learners(ctx_t *c, char **a)
{
    return learners(c, "reset_learners", a[0], rk_cli_reset_learners);
}

static int cmd_transfer_leader(ctx_t *c, char **a)
{
    rk_peer_id_t p;
    rk_status_t st;
    int rc = parse_peer(a[0], &p);
    if (rc)
        return rc;
    if (rk_cli_transfer_leader(c->cli, c->group, &c->conf, &p, &st) != 0)
        return fail("transfer_leader", &st);
    /* The leader accepted; wait (bounded) until the target reports itself
     * leader so that the exit status means "done". */
    for (int i = 0; i < 50; i++) {
        rk_peer_id_t l;
        if (rk_cli_get_leader(c->cli, c->group, &c->conf, &l, &st) == 0 &&
            rk_peer_id_equal(&l, &p)) {
            printf("OK leader %s\n", a[0]);
            return CLI_OK;
        }
        usleep(100 * 1000);
    }
    fprintf(stderr, "raftkit-cli: transfer_leader: accepted, but %s is not the leader after 5 s\n",
            a[0]);
    return CLI_FAILED;
}

static int cmd_snapshot(ctx_t *c, char **a)
{
    rk_peer_id_t p;
    rk_status_t st;
    int rc = parse_peer(a[0], &p);
    if (rc)
        return rc;
    if (rk_cli_snapshot(c->cli, c->group, &p, &st) != 0)
        return fail("snapshot", &st);
    printf("OK snapshot saved on %s\n", a[0]);
    return CLI_OK;
}

/* The leader's view of its followers: replication progress per peer. */
static void print_replication(const rk_node_status_t *s)
{
    char self[RK_PEER_ID_STRLEN];
    rk_peer_id_format(&s->self, self, sizeof self);
    printf("\nreplication on the leader %s (last log index %lld):\n", self,
           (long long)s->last_log_index);
    printf("%-30s %-9s %10s %10s %8s %13s %6s\n", "FOLLOWER", "REACHABLE", "NEXT", "MATCH", "LAG",
           "LAST_CONTACT", "ERRORS");
    for (uint32_t i = 0; i < s->n_peers; i++) {
        const rk_peer_status_t *p = &s->peers[i];
        char pbuf[RK_PEER_ID_STRLEN + 8];
        rk_peer_id_format(&p->peer, pbuf, sizeof pbuf);
        if (p->learner)
            strcat(pbuf, "/learner");
        char contact[32] = "never";
        if (p->last_contact_age_ms >= 0)
            snprintf(contact, sizeof contact, "%lld ms ago", (long long)p->last_contact_age_ms);
        printf("%-30s %-9s %10lld %10lld %8lld %13s %6llu\n", pbuf, p->reachable ? "yes" : "NO",
               (long long)p->next_index, (long long)p->match_index, (long long)p->log_lags, contact,
               (unsigned long long)p->consecutive_errors);
    }
}

static int cmd_status(ctx_t *c, char **a)
{
    (void)a;
    printf("%-22s %-12s %6s %-22s %10s %10s %10s\n", "PEER", "STATE", "TERM", "LEADER", "LAST",
           "COMMITTED", "APPLIED");
    uint32_t answered = 0;
    uint32_t total = c->conf.n_peers + c->conf.n_learners;
    rk_node_status_t *leader = NULL; /* 15 KiB each: on the heap */
    rk_node_status_t *s = malloc(sizeof *s);
    if (s == NULL) {
        fprintf(stderr, "raftkit-cli: out of memory\n");
        return CLI_FAILED;
    }
    for (uint32_t i = 0; i < total; i++) {
        const rk_peer_id_t *p =
            i < c->conf.n_peers ? &c->conf.peers[i] : &c->conf.learners[i - c->conf.n_peers];
        char pbuf[RK_PEER_ID_STRLEN];
        rk_peer_id_format(p, pbuf, sizeof pbuf);
        rk_status_t st;
        if (rk_cli_node_status(c->cli, c->group, p, s, &st) != 0) {
            printf("%-22s %-12s %s\n", pbuf, "DOWN", st.msg);
            continue;
        }
        answered++;
        char lbuf[RK_PEER_ID_STRLEN] = "-";
        if (!rk_peer_id_is_empty(&s->leader))
            rk_peer_id_format(&s->leader, lbuf, sizeof lbuf);
        printf("%-22s %-12s %6lld %-22s %10lld %10lld %10lld\n", pbuf, rk_node_state_name(s->state),
               (long long)s->term, lbuf, (long long)s->last_log_index,
               (long long)s->committed_index, (long long)s->applied_index);
        if (s->error.code != 0)
            printf("%-22s error: %s: %s\n", "", rk_err_name(s->error.code), s->error.msg);
        if (s->state == RK_STATE_LEADER && (leader == NULL || s->term > leader->term)) {
            if (leader == NULL)
                leader = s, s = malloc(sizeof *s);
            else
                *leader = *s;
            if (s == NULL) {
                fprintf(stderr, "raftkit-cli: out of memory\n");
                free(leader);
                return CLI_FAILED;
            }
        }
    }
    if (leader != NULL)
        print_replication(leader);
    free(leader);
    free(s);
    /* A peer down is reported in the table; the command itself worked if
     * any peer answered. */
    return answered > 0 ? CLI_OK : CLI_NOANSWER;
}

static const command_t commands[] = {
    {"get_leader", "", 0, true, "Prints the leader's peer id.", cmd_get_leader},
    {"get_peers", "[--alive]", 0, true,
     "Prints the leader's configuration (voters, then learners as IP:PORT/learner).\n"
     "With --alive, only the voters the leader heard from within an election timeout.",
     cmd_get_peers},
    {"add_peer", "PEER", 1, true,
     "Adds PEER as a voter (it catches up first) and waits until the change is committed.",
     cmd_add_peer},
    {"remove_peer", "PEER", 1, true, "Removes the voter PEER and waits for the commit.",
     cmd_remove_peer},
    {"change_peers", "LIST", 1, true,
     "Changes the configuration to exactly LIST (joint consensus), e.g.\n"
     "127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8104.",
     cmd_change_peers},
    {"reset_peer", "PEER LIST", 2, false,
     "UNSAFE, for disaster recovery after losing a majority: forces PEER's configuration\n"
     "to LIST without consensus. Committed data may be lost. Sent to PEER only.",
     cmd_reset_peer},
    {"add_learners", "LIST", 1, true, "Adds the peers of LIST as learners (non-voting).",
     cmd_add_learners},
    {"remove_learners", "LIST", 1, true, "Removes the learners of LIST.", cmd_remove_learners},
    {"reset_learners", "LIST", 1, true,
     "Makes LIST exactly the set of learners (adds and removes as needed);\n"
     "\"\" removes every learner.",
     cmd_reset_learners},
    {"transfer_leader", "PEER", 1, true,
     "Hands leadership to PEER and waits (up to 5 s) until it leads.", cmd_transfer_leader},
    {"snapshot", "PEER", 1, false, "Makes PEER take a snapshot now and waits until it is saved.",
     cmd_snapshot},
    {"status", "", 0, true,
     "A table of every peer of --peers: state, term, leader, last, committed and applied\n"
     "log index. A peer that does not answer is shown as DOWN. Then, from the leader,\n"
     "each follower's replication progress: reachable, next and match index, lag behind\n"
     "the leader's last index, last contact and consecutive send errors.",
     cmd_status},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: raftkit-cli --group G --peers LIST [--timeout-ms N] <command> [args]\n"
               "       raftkit-cli <command> --help\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].args);
    fprintf(f, "\nLIST is comma-separated: 127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103;\n"
               "hosts may be IP addresses ([::1]:8101) or DNS names (kv-1.example:8101).\n"
               "Exit codes: 0 done, 1 refused or failed, 2 usage, 3 no answer\n"
               "(unreachable, timed out, no leader).\n");
}

static void command_help(FILE *f, const command_t *cmd)
{
    fprintf(f, "usage: raftkit-cli --group G %s%s %s\n\n%s\n",
            cmd->needs_peers ? "--peers LIST " : "", cmd->name, cmd->args, cmd->help);
}

int main(int argc, char **argv)
{
    enum { O_GROUP = 1, O_PEERS, O_TIMEOUT, O_ALIVE, O_HELP };
    static const struct option longopts[] = {
        {"group", required_argument, NULL, O_GROUP},
        {"peers", required_argument, NULL, O_PEERS},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"alive", no_argument, NULL, O_ALIVE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    ctx_t c = {0};
    const char *peers = NULL;
    int timeout_ms = 5000;
    bool help = false;
    int o;
    while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (o) {
        case O_GROUP:
            c.group = optarg;
            break;
        case O_PEERS:
            peers = optarg;
            break;
        case O_TIMEOUT:
            timeout_ms = parse_ms(optarg);
            if (timeout_ms <= 0) {
                fprintf(stderr,
                        "raftkit-cli: --timeout-ms must be a positive number of milliseconds "
                        "(got '%s')\n",
                        optarg);
                return CLI_USAGE;
            }
            break;
        case O_ALIVE:
            c.alive = true;
            break;
        case 'h':
        case O_HELP:
            help = true;
            break;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    const command_t *cmd = NULL;
    if (optind < argc) {
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (strcmp(argv[optind], commands[i].name) == 0)
                cmd = &commands[i];
        if (cmd == NULL && strcmp(argv[optind], "help") == 0 && optind + 1 < argc) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(argv[optind + 1], commands[i].name) == 0)
                    cmd = &commands[i];
            help = true;
        }
        if (cmd == NULL) {
            fprintf(stderr, "raftkit-cli: unknown command '%s'\n\n", argv[optind]);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (help) {
        if (cmd != NULL)
            command_help(stdout, cmd);
        else
            usage(stdout);
        return CLI_OK;
    }
    if (cmd == NULL) {
        usage(stderr);
        return CLI_USAGE;
    }
    int nargs = argc - optind - 1;
    if (nargs != cmd->nargs) {
        fprintf(stderr, "raftkit-cli: %s takes %d argument%s, got %d\n\n", cmd->name, cmd->nargs,
                cmd->nargs == 1 ? "" : "s", nargs);
        command_help(stderr, cmd);
        return CLI_USAGE;
    }
    if (c.group == NULL) {
        fprintf(stderr, "raftkit-cli: --group is required\n");
        return CLI_USAGE;
    }
    if (peers != NULL) {
        int rc = parse_conf(peers, &c.conf);
        if (rc)
            return rc;
        c.have_conf = !rk_configuration_is_empty(&c.conf);
    }
    if (cmd->needs_peers && !c.have_conf) {
        fprintf(stderr, "raftkit-cli: %s needs --peers LIST (the peers to ask)\n", cmd->name);
        return CLI_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getenv("RAFTKIT_LOG") == NULL)
        rk_log_set_level(RK_LOG_ERROR);
    c.cli = rk_cli_client_new(timeout_ms);
    if (c.cli == NULL) {
        fprintf(stderr, "raftkit-cli: out of memory\n");
        return CLI_FAILED;
    }
    int rc = cmd->run(&c, argv + optind + 1);
    rk_cli_client_free(c.cli);
    return rc;
}
