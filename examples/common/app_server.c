/* Start-up and shut-down of the example servers (see app_server.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/common/app_server.h"
#include "raftkit/log.h"

int app_server_conf(app_conf_t *c, int argc, char **argv, const char *prog,
                    const char *default_group)
{
    char err[512];
    int rc = app_conf_parse(c, argc, argv, prog, default_group, stdout, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    rk_log_level_t level;
    if (rk_log_level_parse(c->log_level, &level) == 0)
        rk_log_set_level(level);
    return -1;
}

/* The shard count is part of the data: with another count keys would be
 * looked up in other groups than the ones that hold them. A sharded data
 * directory records its count in the file "shards" on first start; one
 * with a log and no such file holds a single group. Returns 0, or -1 after
 * printing why the server must not start. */
static int check_shards(const app_conf_t *c, const char *prog)
{
    char path[sizeof c->data + 16];
    int had = 0; /* 0: a fresh directory */
    snprintf(path, sizeof path, "%s/shards", c->data);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &had) != 1 || had < 1) {
            fprintf(stderr, "%s: %s does not hold a shard count\n", prog, path);
            fclose(f);
            return -1;
        }
        fclose(f);
    } else {
        char log[sizeof c->data + 16];
        snprintf(log, sizeof log, "%s/log", c->data);
        if (access(log, F_OK) == 0)
            had = 1;
    }
    if (had != 0 && had != c->shards) {
        fprintf(stderr,
                "%s: %s holds the data of %d shard%s; start it with --shards %d (another "
                "count would look keys up in other groups)\n",
                prog, c->data, had, had == 1 ? "" : "s", had);
        return -1;
    }
    if (had != 0 || c->shards == 1)
        return 0;
    /* Written aside and renamed: a crash leaves the whole file or none. */
    char tmp[sizeof path + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char line[16];
    int n = snprintf(line, sizeof line, "%d\n", c->shards);
    int rc = fd >= 0 && write(fd, line, (size_t)n) == n && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    if (rc != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: writing %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    return 0;
}

int app_server_run(const app_conf_t *c, const app_server_spec_t *spec)
{
    const char *prog = spec->prog;
    /* Signals are taken synchronously by main (sigwait); every thread
     * raftkit starts inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    mkdir(c->data, 0755); /* the node creates what it needs below it */
    if (check_shards(c, prog) != 0)
        return 1;

    rk_node_options_t opts;
    rk_node_options_init(&opts);
    opts.data_path = c->data;
    opts.initial_conf = c->conf;
    opts.election_timeout_ms = c->election_timeout_ms;
    opts.snapshot_interval_secs = c->snapshot_interval_s;
    opts.admin_port = c->admin_port;
    opts.raft_options.sync = c->sync;
    if (c->read_lease)
        opts.raft_options.read_only_option = RK_READ_ONLY_LEASE_BASED;
    opts.listen = c->listen_ep; /* places the admin endpoint next to the RPC port */
#define OPT_STR(f) opts.f = c->f[0] != '\0' ? c->f : NULL
    OPT_STR(tls_cert);
    OPT_STR(tls_key);
    OPT_STR(tls_ca);
    OPT_STR(tls_peer_names);
    OPT_STR(tls_admin_names);
    OPT_STR(cluster_key_file);
    OPT_STR(admin_token);
#undef OPT_STR

    rk_status_t st;
    rk_server_t *server = NULL;
    rk_rpc_server_t *rpc = NULL;
    int n = c->shards;
    rk_group_service_t **svc = calloc((size_t)n, sizeof *svc);
    int exit_code = 1;
    char peer[RK_PEER_ID_STRLEN];
    rk_peer_id_format(&c->self, peer, sizeof peer);
    if (svc == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }

    const rk_endpoint_t *bind = c->listen[0] != '\0' ? &c->listen_ep : &c->self.endpoint;
    if ((server = rk_server_new_opts(bind, &opts, &st)) == NULL) {
        fprintf(stderr, "%s: cannot serve on %s: %s\n", prog, c->listen[0] ? c->listen : peer,
                st.msg);
        goto out;
    }
    if ((rpc = rk_rpc_server_attach(server, &st)) == NULL) {
        fprintf(stderr, "%s: attaching the application service: %s\n", prog, st.msg);
        goto out;
    }
    int rc = rk_rpc_server_register(rpc, spec->method, spec->handler, spec->handler_arg);
    if (rc != 0) {
        fprintf(stderr, "%s: registering method %u: %s\n", prog, spec->method, rk_strerror(rc));
        goto out;
    }
    for (int i = 0; i < n; i++) {
        char id[APP_GROUP_ID_MAX], dir[sizeof c->data + APP_GROUP_ID_MAX + 8];
        app_group_id(c->group, n, i, id, sizeof id);
        if (n > 1) {
            snprintf(dir, sizeof dir, "%s/groups/%s", c->data, id);
            opts.data_path = dir;
        }
        opts.fsm = spec->fsm[i];
        if ((svc[i] = rk_group_service_new_shared(id, &c->self, &opts, server, &st)) == NULL) {
            fprintf(stderr, "%s: %s: %s\n", prog, id, st.msg);
            goto out;
        }
        rk_node_t *node = rk_group_service_start(svc[i], &st);
        if (node == NULL) {
            fprintf(stderr, "%s: starting the node of %s: %s: %s\n", prog, id, rk_err_name(st.code),
                    st.msg);
            goto out;
        }
        spec->node[i] = node;
    }
    if (n == 1)
        RK_INFO(c->group, peer, "%s up: peers %s, data %s", prog, c->peers, c->data);
    else
        RK_INFO(c->group, peer, "%s up: %d groups %s-0 .. %s-%d, peers %s, data %s", prog, n,
                c->group, c->group, n - 1, c->peers, c->data);

    int sig = 0;
    sigwait(&sigs, &sig);
    RK_INFO(c->group, peer, "signal %d: stopping", sig);
    exit_code = 0;
out:
    /* The handler may use the nodes: unregister it before they go. Every
     * group is told to stop before any is waited for, so that they stop
     * together. */
    rk_rpc_server_detach(rpc);
    for (int i = 0; i < n && svc[i] != NULL; i++)
        rk_group_service_shutdown(svc[i]);
    for (int i = 0; i < n && svc[i] != NULL; i++) {
        rk_group_service_join(svc[i]);
        spec->node[i] = NULL;
        rk_group_service_free(svc[i]);
    }
    free(svc);
    rk_server_free(server);
    return exit_code;
}
