/* The example servers' options: INI file through inih, then flags. Unknown
 * keys and malformed values are errors naming the file and line, so a typo
 * in a conf file never silently falls back to a default. */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common/app_conf.h"
#include "raftkit/log.h"

static int copy_str(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

static int parse_int(const char *v, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max)
        return -1;
    *out = (int)x;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = true;
    else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* Sets one option by its file key (flags map onto the same keys). Returns 0,
 * -1 for a bad value, -2 for an unknown key. */
static int set_key(app_conf_t *c, const char *section, const char *key, const char *v)
{
    if (strcmp(section, "raft") == 0) {
        if (strcmp(key, "group") == 0)
            return copy_str(c->group, sizeof c->group, v);
        if (strcmp(key, "shards") == 0)
            return parse_int(v, 1, APP_MAX_SHARDS, &c->shards);
        if (strcmp(key, "peer") == 0)
            return copy_str(c->peer, sizeof c->peer, v);
        if (strcmp(key, "peers") == 0)
            return copy_str(c->peers, sizeof c->peers, v);
        if (strcmp(key, "listen") == 0)
            return copy_str(c->listen, sizeof c->listen, v);
        if (strcmp(key, "data") == 0)
            return copy_str(c->data, sizeof c->data, v);
        if (strcmp(key, "election_timeout_ms") == 0)
            return parse_int(v, 10, 600000, &c->election_timeout_ms);
        if (strcmp(key, "snapshot_interval_s") == 0)
            return parse_int(v, 0, INT_MAX, &c->snapshot_interval_s);
        if (strcmp(key, "admin_port") == 0)
            return parse_int(v, 0, 65535, &c->admin_port);
        if (strcmp(key, "sync") == 0)
            return parse_bool(v, &c->sync);
        if (strcmp(key, "read_only") == 0) {
            if (strcmp(v, "safe") != 0 && strcmp(v, "lease") != 0)
                return -1;
            c->read_lease = strcmp(v, "lease") == 0;
            return 0;
        }
    } else if (strcmp(section, "security") == 0) {
        static const struct {
            const char *key;
            size_t off, cap;
        } sec[] = {
#define SEC(k) {#k, offsetof(app_conf_t, k), sizeof((app_conf_t *)0)->k}
            SEC(tls_cert),        SEC(tls_key),          SEC(tls_ca),      SEC(tls_peer_names),
            SEC(tls_admin_names), SEC(cluster_key_file), SEC(admin_token),
#undef SEC
        };
        for (size_t i = 0; i < sizeof sec / sizeof sec[0]; i++)
            if (strcmp(key, sec[i].key) == 0)
                return copy_str((char *)c + sec[i].off, sec[i].cap, v);
    } else if (strcmp(section, "log") == 0) {
        if (strcmp(key, "level") == 0) {
            rk_log_level_t l;
            if (rk_log_level_parse(v, &l) != 0)
                return -1;
            return copy_str(c->log_level, sizeof c->log_level, v);
        }
    }
    return -2;
}

typedef struct ini_ctx {
    app_conf_t *c;
    char *err;
    size_t errlen;
    const char *path;
} ini_ctx_t;

/* inih reports the line of the first failing handler call as its return
 * value; the message is completed with it in app_conf_load_file. */
static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *x = user;
    int rc = set_key(x->c, section, name, value);
    if (rc == -2 && x->err[0] == '\0')
        snprintf(x->err, x->errlen, "unknown key '%s' in section [%s]", name, section);
    else if (rc != 0 && x->err[0] == '\0')
        snprintf(x->err, x->errlen, "bad value '%s' for %s", value, name);
    return rc == 0;
}

int app_conf_load_file(app_conf_t *c, const char *path, char *err, size_t errlen)
{
    ini_ctx_t x = {c, err, errlen, path};
    err[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_file(f, on_ini, &x);
    fclose(f);
    if (rc != 0) {
        char what[256];
        snprintf(what, sizeof what, "%s", err[0] ? err : "syntax error");
        snprintf(err, errlen, "%s:%d: %s", path, rc, what);
        return -1;
    }
    return 0;
}

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--conf FILE] [options]\n"
            "\n"
            "Options (override the file's [raft] and [log] keys of the same name):\n"
            "  --conf FILE                 INI file to read first (see conf/)\n"
            "  --group G                   Raft group id                       (group)\n"
            "  --shards N                  host N groups G-0 .. G-(N-1) instead of\n"
            "                              the one group G; default 1          (shards)\n"
            "  --peer HOST:PORT[:IDX[:PRIO]]\n"
            "                              this node; HOST: IP or DNS name     (peer)\n"
            "  --listen HOST:PORT          bind here, e.g. 0.0.0.0:8101;       (listen)\n"
            "                              default: the peer's address\n"
            "  --peers LIST                initial configuration, comma-separated (peers)\n"
            "  --data DIR                  log, meta and snapshots live here    (data)\n"
            "  --election-timeout-ms N     default 1000                         "
            "(election_timeout_ms)\n"
            "  --snapshot-interval-s N     timed snapshots; 0 = off, default 3600 "
            "(snapshot_interval_s)\n"
            "  --sync on|off               fsync the log before acknowledging; on (sync)\n"
            "  --read-only safe|lease      reads: a heartbeat round (safe, default) or\n"
            "                              the leader's lease (lease; assumes bounded\n"
            "                              clock drift)                        (read_only)\n"
            "  --log-level L               trace|debug|info|warn|error|off      ([log] level)\n"
            "\n"
            "Security (the file's [security] keys; README \"Security\"):\n"
            "  --tls-cert FILE             this node's certificate              (tls_cert)\n"
            "  --tls-key FILE              its private key                      (tls_key)\n"
            "  --tls-ca FILE               CA of every node and client          (tls_ca)\n"
            "  --tls-peer-names LIST       names node certificates carry        (tls_peer_names)\n"
            "  --tls-admin-names LIST      names of admin certificates          "
            "(tls_admin_names)\n"
            "  --cluster-key-file FILE     keys instead of certificates         "
            "(cluster_key_file)\n"
            "  admin_token (file only)     bearer token of the HTTPS admin endpoint\n"
            "  --help                      this text\n",
            prog);
}

void app_group_id(const char *group, int shards, int i, char *buf, size_t len)
{
    if (shards == 1)
        snprintf(buf, len, "%s", group);
    else
        snprintf(buf, len, "%s-%d", group, i);
}

int app_conf_parse(app_conf_t *c, int argc, char **argv, const char *prog,
                   const char *default_group, FILE *out, char *err, size_t errlen)
{
    enum {
        O_CONF = 1,
        O_GROUP,
        O_PEER,
        O_PEERS,
        O_DATA,
        O_ET,
        O_SI,
        O_SYNC,
        O_RO,
        O_LOG,
        O_HELP,
        O_LISTEN,
        O_SHARDS,
        O_CERT,
        O_KEY,
        O_CA,
        O_PNAMES,
        O_ANAMES,
        O_KEYFILE
    };
    static const struct option longopts[] = {
        {"conf", required_argument, NULL, O_CONF},
        {"group", required_argument, NULL, O_GROUP},
        {"peer", required_argument, NULL, O_PEER},
        {"peers", required_argument, NULL, O_PEERS},
        {"data", required_argument, NULL, O_DATA},
        {"election-timeout-ms", required_argument, NULL, O_ET},
        {"snapshot-interval-s", required_argument, NULL, O_SI},
        {"sync", required_argument, NULL, O_SYNC},
        {"read-only", required_argument, NULL, O_RO},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {"listen", required_argument, NULL, O_LISTEN},
        {"shards", required_argument, NULL, O_SHARDS},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"tls-ca", required_argument, NULL, O_CA},
        {"tls-peer-names", required_argument, NULL, O_PNAMES},
        {"tls-admin-names", required_argument, NULL, O_ANAMES},
        {"cluster-key-file", required_argument, NULL, O_KEYFILE},
        {NULL, 0, NULL, 0},
    };
    static const char *const keys[] = {
        [O_GROUP] = "group",
        [O_PEER] = "peer",
        [O_PEERS] = "peers",
        [O_DATA] = "data",
        [O_ET] = "election_timeout_ms",
        [O_SI] = "snapshot_interval_s",
        [O_SYNC] = "sync",
        [O_RO] = "read_only",
        [O_LOG] = "level",
        [O_LISTEN] = "listen",
        [O_SHARDS] = "shards",
        [O_CERT] = "tls_cert",
        [O_KEY] = "tls_key",
        [O_CA] = "tls_ca",
        [O_PNAMES] = "tls_peer_names",
        [O_ANAMES] = "tls_admin_names",
        [O_KEYFILE] = "cluster_key_file",
    };
    memset(c, 0, sizeof *c);
    c->shards = 1;
    c->election_timeout_ms = 1000;
    c->snapshot_interval_s = 3600;
    c->sync = true;
    snprintf(c->log_level, sizeof c->log_level, "info");
    err[0] = '\0';

    /* Pass 1: --conf and --help, so the file is read before any flag
     * overrides it whatever the order on the command line. */
    opterr = 0;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (o == O_HELP) {
            usage(out, prog);
            return 1;
        }
        if (o == '?') {
            snprintf(err, errlen, "unknown or incomplete option '%s' (see --help)",
                     argv[optind - 1]);
            return -1;
        }
        if (o == O_CONF && app_conf_load_file(c, optarg, err, errlen) != 0)
            return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return -1;
    }
    optind = 1;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (o == O_CONF)
            continue;
        const char *section = o == O_LOG ? "log" : o >= O_CERT ? "security" : "raft";
        if (set_key(c, section, keys[o], optarg) != 0) {
            snprintf(err, errlen, "bad value '%s' for --%s", optarg, longopts[o - 1].name);
            return -1;
        }
    }
    if (c->group[0] == '\0')
        snprintf(c->group, sizeof c->group, "%s", default_group);
    rk_status_t st;
    if (c->peer[0] == '\0') {
        snprintf(err, errlen, "no peer: set [raft] peer in the conf file or --peer HOST:PORT");
        return -1;
    }
    if (rk_peer_id_parse(&c->self, c->peer, &st) != 0) {
        snprintf(err, errlen, "bad peer '%s': %s", c->peer, st.msg);
        return -1;
    }
    if (c->listen[0] != '\0' && rk_endpoint_parse(&c->listen_ep, c->listen, &st) != 0) {
        snprintf(err, errlen, "bad listen '%s': %s", c->listen, st.msg);
        return -1;
    }
    if (c->peers[0] == '\0') {
        snprintf(err, errlen, "no peers: set [raft] peers or --peers LIST");
        return -1;
    }
    if (rk_configuration_parse(&c->conf, c->peers, &st) != 0) {
        snprintf(err, errlen, "bad peers '%s': %s", c->peers, st.msg);
        return -1;
    }
    if (!rk_configuration_contains(&c->conf, &c->self) &&
        !rk_configuration_is_learner(&c->conf, &c->self)) {
        snprintf(err, errlen, "peer %s is not in peers (%s)", c->peer, c->peers);
        return -1;
    }
    if (c->data[0] == '\0') {
        snprintf(err, errlen, "no data directory: set [raft] data or --data DIR");
        return -1;
    }
    return 0;
}
