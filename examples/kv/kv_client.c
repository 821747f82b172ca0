/* kv-client: talks to a kv-server cluster. Finds the leader itself (route
 * table, "not leader, try X" redirects), and prints one line per command:
 *
 *   OK [value]       exit 0
 *   NOT_FOUND        exit 1   (get or del of an absent key)
 *   MISMATCH         exit 1   (cas found another value)
 *   UNKNOWN reason   exit 3   (a write that may or may not have been applied)
 *   FAIL reason      exit 4   (certainly not applied)
 *   usage errors     exit 2
 *
 * Shards: against a server started with --shards N, kv-client --shards N
 * sends each key to group G-i, i = XXH64(key bytes, seed 0) mod N (see
 * kv_shard_of), and follows that group's leader: the route table keeps one
 * leader per group. Every command names one key, so every command goes to
 * exactly one group.
 *
 * Retries: every write carries this process's random client id and a
 * sequence number, and the servers apply a (client id, seq) at most once
 * (kv_store.c). So a write whose outcome is unknown (timeout after sending,
 * connection lost, leader lost) is retried with the same seq until an
 * answer arrives or --timeout-ms runs out; only then is it UNKNOWN.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "examples/common/app_conf.h"
#include "examples/kv/kv.pb-c.h"
#include "examples/kv/kv_sm.h"
#include "raftkit/client.h"
#include "raftkit/log.h"

enum { EXIT_OK = 0, EXIT_NO = 1, EXIT_USAGE = 2, EXIT_UNKNOWN = 3, EXIT_FAIL = 4 };

/* Longest single attempt: a slow attempt is abandoned (and retried) so that
 * a dead leader does not eat the whole --timeout-ms. */
#define ATTEMPT_MS 1000

typedef struct client {
    const char *group;
    int shards; /* 1: group itself; N: groups group-0 .. group-(N-1) */
    rk_configuration_t conf;
    int timeout_ms;
    Kv__ReadMode read;
    rk_cli_client_t *cli;
    rk_route_table_t *rt;
    bool *routed; /* routed[i]: shard i's group is in rt */
    uint64_t client_id;
    uint64_t seq;
    uint32_t rr; /* round-robin cursor over the peers */
} client_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: kv-client --peers LIST [--group G] [--shards N] [--timeout-ms N]\n"
           "                 [--read leader|follower|stale] CMD\n"
           "       kv-client --peers LIST [...] --stdin\n"
           "\n"
           "CMD is one of:\n"
           "  get K            the value of K                       OK VALUE | NOT_FOUND\n"
           "  put K V          set K to V                           OK\n"
           "  cas K OLD NEW    set K to NEW if it is OLD            OK | MISMATCH\n"
           "                   (OLD \"\" means: only if K is absent)\n"
           "  del K            delete K                             OK | NOT_FOUND\n"
           "\n"
           "Output is one line per command; exit codes: 0 OK, 1 NOT_FOUND or MISMATCH,\n"
           "2 usage, 3 UNKNOWN (a write that may or may not have been applied),\n"
           "4 FAIL (certainly not applied).\n"
           "\n"
           "  --peers LIST      the cluster, e.g. 127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103\n"
           "                    (hosts: IP addresses or DNS names, as kv-1:8101)\n"
           "  --group G         Raft group (default kv)\n"
           "  --shards N        the servers' --shards: key K is in group G-i,\n"
           "                    i = XXH64(K, seed 0) mod N (default 1: group G itself)\n"
           "  --timeout-ms N    give up after N ms per command (default 5000)\n"
           "  --read MODE       leader: linearizable, on the leader (default)\n"
           "                    follower: linearizable, on a follower (read_index)\n"
           "                    stale: a follower's local state, may be behind (NOT linearizable)\n"
           "  --stdin           read commands from stdin, one per line, one result line each\n"
           "\n"
           "Security (a cluster with TLS or cluster keys; README \"Security\"):\n"
           "  --tls-cert FILE --tls-key FILE  this client's certificate\n"
           "  --tls-ca FILE                   the cluster's CA\n"
           "  --tls-peer-names LIST           names the nodes' certificates carry\n"
           "  --cluster-key-file FILE         or: the cluster's key file\n");
}

/* The shard of a key: a stable hash (64-bit xxHash, seed 0, of the key's
 * bytes) modulo the shard count, so that every client agrees. */
static int kv_shard_of(const char *key, size_t len, int shards)
{
    return (int)(XXH64(key, len, 0) % (uint64_t)shards);
}

/* The peer to try next: the leader for writes and leader reads, a follower
 * for the other reads (any peer when followers are unknown). */
static rk_peer_id_t pick(client_t *c, const char *group, bool want_leader)
{
    rk_peer_id_t leader;
    bool have_leader = rk_route_table_select_leader(c->rt, group, &leader) == 0;
    if (want_leader && have_leader)
        return leader;
    for (uint32_t i = 0; i < c->conf.n_peers; i++) {
        const rk_peer_id_t *p = &c->conf.peers[c->rr++ % c->conf.n_peers];
        if (want_leader || !have_leader || !rk_peer_id_equal(p, &leader) || c->conf.n_peers == 1)
            return *p;
    }
    return c->conf.peers[0];
}

typedef struct outcome {
    int exit;
    char line[1024];
} outcome_t;

static void set_line(outcome_t *o, int code, const char *fmt, const char *a, const char *b)
{
    o->exit = code;
    snprintf(o->line, sizeof o->line, fmt, a, b);
}

/* Runs one command to completion (see the file comment). */
static void run_cmd(client_t *c, Kv__Op op, const char *key, const char *val, const char *exp,
                    outcome_t *o)
{
    bool is_write = op != KV__OP__OP_GET;
    bool want_leader = is_write || c->read == KV__READ_MODE__READ_LEADER;
    char group[APP_GROUP_ID_MAX];
    int shard = kv_shard_of(key, strlen(key), c->shards);
    app_group_id(c->group, c->shards, shard, group, sizeof group);
    /* A group enters the route table when first used: a client of many
     * shards that runs one command pays for one group. Every group has the
     * same peers; each has its own leader. */
    if (!c->routed[shard]) {
        if (rk_route_table_update_configuration(c->rt, group, &c->conf) != 0) {
            set_line(o, EXIT_FAIL, "FAIL out of memory%s%s", "", "");
            return;
        }
        c->routed[shard] = true;
    }
    Kv__Command cmd = KV__COMMAND__INIT;
    cmd.op = op;
    cmd.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    if (val)
        cmd.value = (ProtobufCBinaryData){strlen(val), (uint8_t *)val};
    if (exp)
        cmd.expected = (ProtobufCBinaryData){strlen(exp), (uint8_t *)exp};
    if (is_write) {
        cmd.client_id = c->client_id;
        cmd.seq = ++c->seq;
    }
    Kv__Request req = KV__REQUEST__INIT;
    req.group_id = group;
    req.shards = (uint32_t)c->shards;
    req.cmd = &cmd;
    req.read = is_write ? KV__READ_MODE__READ_LEADER : c->read;
    size_t len = kv__request__get_packed_size(&req);
    uint8_t *body = malloc(len ? len : 1);
    if (body == NULL) {
        set_line(o, EXIT_FAIL, "FAIL out of memory%s%s", "", "");
        return;
    }
    kv__request__pack(&req, body);

    uint64_t deadline = now_ms() + (uint64_t)c->timeout_ms;
    bool maybe_applied = false;
    char last[512] = "no attempt made";
    int backoff = 0;
    rk_rpc_client_t *rpc = rk_cli_client_rpc(c->cli);
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        {
            /* Leader unknown: ask for it (follower reads use it to avoid
             * the leader). */
            rk_peer_id_t l;
            if (rk_route_table_select_leader(c->rt, group, &l) != 0) {
                rk_status_t st;
                if (rk_route_table_refresh_leader(c->rt, c->cli, group, &st) != 0)
                    snprintf(last, sizeof last, "finding the leader: %s", st.msg);
            }
        }
        rk_peer_id_t target = pick(c, group, want_leader);
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            break;
        rk_rpc_reply_t r;
        rk_rpc_client_call(rpc, &target.endpoint, KV_METHOD, body, len,
                           left < ATTEMPT_MS ? left : ATTEMPT_MS, &r);
        char tbuf[RK_PEER_ID_STRLEN];
        rk_peer_id_format(&target, tbuf, sizeof tbuf);
        bool retry_now = false;
        if (r.status.code != 0) {
            /* Transport failure (or a refusal by the rpc layer). */
            if (r.maybe_delivered && is_write)
                maybe_applied = true;
            snprintf(last, sizeof last, "%s: %s: %s", tbuf, rk_err_name(r.status.code),
                     r.status.msg);
            rk_route_table_update_leader(c->rt, group, NULL);
        } else {
            Kv__Response *resp = kv__response__unpack(NULL, r.len, r.body);
            if (resp == NULL) {
                if (is_write)
                    maybe_applied = true;
                snprintf(last, sizeof last, "%s: undecodable response", tbuf);
            } else if (resp->code == 0) {
                switch (resp->result) {
                case KV__RESULT__RES_OK:
                    if (op == KV__OP__OP_GET)
                        snprintf(o->line, sizeof o->line, "OK %.*s", (int)resp->value.len,
                                 (const char *)resp->value.data);
                    else
                        snprintf(o->line, sizeof o->line, "OK");
                    o->exit = EXIT_OK;
                    break;
                case KV__RESULT__RES_NOT_FOUND:
                    set_line(o, EXIT_NO, "NOT_FOUND%s%s", "", "");
                    break;
                default:
                    set_line(o, EXIT_NO, "MISMATCH%s%s", "", "");
                    break;
                }
                kv__response__free_unpacked(resp, NULL);
                rk_rpc_reply_release(&r);
                free(body);
                return;
            } else {
                if (resp->maybe_applied && is_write)
                    maybe_applied = true;
                snprintf(last, sizeof last, "%s: %s: %s", tbuf, rk_err_name(resp->code), resp->msg);
                if (resp->code == RK_ENOTLEADER) {
                    rk_peer_id_t l;
                    if (resp->leader[0] && rk_peer_id_parse(&l, resp->leader, NULL) == 0) {
                        rk_route_table_update_leader(c->rt, group, &l);
                        retry_now = !rk_peer_id_equal(&l, &target);
                    } else {
                        rk_route_table_update_leader(c->rt, group, NULL);
                    }
                } else if (resp->code == RK_EINVAL || resp->code == RK_ENOGROUP ||
                           resp->code == RK_ETOOBIG || resp->code == RK_EPROTO) {
                    /* Retrying cannot help: the request itself is refused. */
                    kv__response__free_unpacked(resp, NULL);
                    rk_rpc_reply_release(&r);
                    break;
                } else {
                    rk_route_table_update_leader(c->rt, group, NULL);
                }
                kv__response__free_unpacked(resp, NULL);
            }
        }
        rk_rpc_reply_release(&r);
        if (!retry_now) {
            /* Give an election time to finish instead of spinning. */
            backoff = backoff ? (backoff * 2 > 200 ? 200 : backoff * 2) : 20;
            uint64_t n = now_ms();
            if (n + (uint64_t)backoff >= deadline)
                break;
            usleep((useconds_t)backoff * 1000);
        }
    }
    free(body);
    if (maybe_applied)
        set_line(o, EXIT_UNKNOWN, "UNKNOWN %s%s", last, "");
    else
        set_line(o, EXIT_FAIL, "FAIL %s%s", last, "");
}

/* Splits a command line into at most max words, in place. Words are
 * separated by spaces or tabs; a word in double quotes may hold spaces
 * ("hello world"), \" and \\ inside quotes stand for " and \, and "" is the
 * empty word. Returns the word count, or -1 for too many words or an
 * unterminated quote. */
static int split(char *line, char **w, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0')
            return n;
        if (n == max)
            return -1;
        if (*p != '"') {
            w[n++] = p;
            while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
                p++;
            if (*p)
                *p++ = '\0';
            continue;
        }
        char *out = ++p; /* unescape in place: the word only shrinks */
        w[n++] = out;
        for (;;) {
            if (*p == '\0' || *p == '\n' || *p == '\r')
                return -1; /* unterminated */
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            *out++ = *p++;
        }
        if (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return -1; /* text glued to a closing quote */
        *out = '\0';
    }
}

/* Runs words[0..n) as a command; returns false on a usage error (o set). */
static bool dispatch(client_t *c, char **w, int n, outcome_t *o)
{
    if (n == 2 && strcmp(w[0], "get") == 0)
        run_cmd(c, KV__OP__OP_GET, w[1], NULL, NULL, o);
    else if (n == 3 && strcmp(w[0], "put") == 0)
        run_cmd(c, KV__OP__OP_PUT, w[1], w[2], NULL, o);
    else if (n == 4 && strcmp(w[0], "cas") == 0)
        run_cmd(c, KV__OP__OP_CAS, w[1], w[3], w[2], o);
    else if (n == 2 && (strcmp(w[0], "del") == 0 || strcmp(w[0], "delete") == 0))
        run_cmd(c, KV__OP__OP_DEL, w[1], NULL, NULL, o);
    else {
        set_line(o, EXIT_USAGE, "FAIL usage: get K | put K V | cas K OLD NEW | del K%s%s", "", "");
        return false;
    }
    return true;
}

/* A positive int written in full ("500"), else -1 ("500ms", "", "0"). */
static int parse_ms(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && *end == '\0' && v > 0 && v <= 86400000 ? (int)v : -1;
}

/* A shard count from 1 to APP_MAX_SHARDS written in full, else -1. */
static int parse_count(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && *end == '\0' && v > 0 && v <= APP_MAX_SHARDS ? (int)v : -1;
}

int main(int argc, char **argv)
{
    enum {
        O_PEERS = 1,
        O_GROUP,
        O_SHARDS,
        O_TIMEOUT,
        O_READ,
        O_STDIN,
        O_HELP,
        O_TLS_CERT,
        O_TLS_KEY,
        O_TLS_CA,
        O_TLS_NAMES,
        O_KEY_FILE
    };
    static const struct option longopts[] = {
        {"peers", required_argument, NULL, O_PEERS},
        {"group", required_argument, NULL, O_GROUP},
        {"shards", required_argument, NULL, O_SHARDS},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"read", required_argument, NULL, O_READ},
        {"stdin", no_argument, NULL, O_STDIN},
        {"help", no_argument, NULL, O_HELP},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"tls-ca", required_argument, NULL, O_TLS_CA},
        {"tls-peer-names", required_argument, NULL, O_TLS_NAMES},
        {"cluster-key-file", required_argument, NULL, O_KEY_FILE},
        {NULL, 0, NULL, 0},
    };
    rk_rpc_client_options_t sec = {.name = "kv-client"};
    client_t c = {
        .group = "kv", .shards = 1, .timeout_ms = 5000, .read = KV__READ_MODE__READ_LEADER};
    const char *peers = NULL;
    bool from_stdin = false;
    int o;
    /* "+": stop at the first non-option, so values like "-1" are data. */
    while ((o = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (o) {
        case O_PEERS:
            peers = optarg;
            break;
        case O_GROUP:
            c.group = optarg;
            if (strlen(c.group) >= APP_GROUP_MAX) {
                fprintf(stderr, "kv-client: --group is longer than %d characters\n",
                        APP_GROUP_MAX - 1);
                return EXIT_USAGE;
            }
            break;
        case O_SHARDS:
            c.shards = parse_count(optarg);
            if (c.shards <= 0) {
                fprintf(stderr, "kv-client: --shards must be a number from 1 to %d (got '%s')\n",
                        APP_MAX_SHARDS, optarg);
                return EXIT_USAGE;
            }
            break;
        case O_TIMEOUT:
            c.timeout_ms = parse_ms(optarg);
            if (c.timeout_ms <= 0) {
                fprintf(stderr,
                        "kv-client: --timeout-ms must be a positive number of milliseconds "
                        "(got '%s')\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case O_READ:
            if (strcmp(optarg, "leader") == 0)
                c.read = KV__READ_MODE__READ_LEADER;
            else if (strcmp(optarg, "follower") == 0)
                c.read = KV__READ_MODE__READ_FOLLOWER;
            else if (strcmp(optarg, "stale") == 0)
                c.read = KV__READ_MODE__READ_STALE;
            else {
                fprintf(stderr, "kv-client: --read must be leader, follower or stale\n");
                return EXIT_USAGE;
            }
            break;
        case O_STDIN:
            from_stdin = true;
            break;
        case O_TLS_CERT:
            sec.tls_cert = optarg;
            break;
        case O_TLS_KEY:
            sec.tls_key = optarg;
            break;
        case O_TLS_CA:
            sec.tls_ca = optarg;
            break;
        case O_TLS_NAMES:
            sec.tls_peer_names = optarg;
            break;
        case O_KEY_FILE:
            sec.cluster_key_file = optarg;
            break;
        case O_HELP:
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (peers == NULL) {
        fprintf(stderr, "kv-client: --peers is required (see --help)\n");
        return EXIT_USAGE;
    }
    rk_status_t st;
    if (rk_configuration_parse(&c.conf, peers, &st) != 0 || c.conf.n_peers == 0) {
        fprintf(stderr, "kv-client: bad --peers '%s': %s\n", peers,
                c.conf.n_peers == 0 ? "no voter" : st.msg);
        return EXIT_USAGE;
    }
    if (!from_stdin && optind >= argc) {
        fprintf(stderr, "kv-client: no command (see --help)\n");
        return EXIT_USAGE;
    }
    if (from_stdin && optind < argc) {
        fprintf(stderr, "kv-client: --stdin takes no command arguments\n");
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    /* The transport logs reachability changes; a client prints results only
     * unless RAFTKIT_LOG asks for more. */
    if (getenv("RAFTKIT_LOG") == NULL)
        rk_log_set_level(RK_LOG_ERROR);
    if (getrandom(&c.client_id, sizeof c.client_id, 0) != sizeof c.client_id || !c.client_id)
        c.client_id = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ now_ms();
    c.cli = rk_cli_client_open(ATTEMPT_MS, &sec, &st);
    if (c.cli == NULL) {
        fprintf(stderr, "kv-client: %s\n", st.msg);
        return st.code == RK_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    c.rt = rk_route_table_new();
    c.routed = calloc((size_t)c.shards, sizeof *c.routed);
    if (c.rt == NULL || c.routed == NULL) {
        fprintf(stderr, "kv-client: out of memory\n");
        return EXIT_FAIL;
    }
    int code = EXIT_OK;
    outcome_t out;
    if (!from_stdin) {
        dispatch(&c, argv + optind, argc - optind, &out);
        if (out.exit == EXIT_USAGE) {
            fprintf(stderr, "kv-client: %s\n", out.line + 5);
        } else {
            printf("%s\n", out.line);
        }
        code = out.exit;
    } else {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, stdin) != -1) {
            char *w[5];
            int n = split(line, w, 4);
            if (n == 0)
                continue;
            if (n < 0)
                set_line(&out, EXIT_USAGE,
                         "FAIL usage: too many words or an unterminated quote%s%s", "", "");
            else
                dispatch(&c, w, n, &out);
            printf("%s\n", out.line);
            fflush(stdout);
        }
        free(line);
    }
    free(c.routed);
    rk_route_table_free(c.rt);
    rk_cli_client_free(c.cli);
    return code;
}
