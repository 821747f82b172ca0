/* counter-client: JRaft's counter client.
 *
 *   counter-client --peers LIST [--group counter] incrementAndGet DELTA
 *   counter-client --peers LIST [--group counter] get
 *
 * Prints the value (exit 0), or "FAIL reason" (exit 4: certainly not
 * applied) or "UNKNOWN reason" (exit 3: the increment may have happened);
 * a bad command line exits 2 with the reason on stderr.
 * The counter has no deduplication, so an increment is never retried once
 * it may have reached the leader.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/counter/counter.h"
#include "raftkit/client.h"
#include "raftkit/log.h"

int main(int argc, char **argv)
{
    const char *group = "counter", *peers = NULL;
    rk_rpc_client_options_t sec = {.name = "counter-client"};
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--peers") == 0)
            peers = argv[i + 1];
        else if (strcmp(argv[i], "--group") == 0)
            group = argv[i + 1];
        else if (strcmp(argv[i], "--tls-cert") == 0)
            sec.tls_cert = argv[i + 1];
        else if (strcmp(argv[i], "--tls-key") == 0)
            sec.tls_key = argv[i + 1];
        else if (strcmp(argv[i], "--tls-ca") == 0)
            sec.tls_ca = argv[i + 1];
        else if (strcmp(argv[i], "--tls-peer-names") == 0)
            sec.tls_peer_names = argv[i + 1];
        else if (strcmp(argv[i], "--cluster-key-file") == 0)
            sec.cluster_key_file = argv[i + 1];
        else
            break;
    }
    bool help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    bool incr = i + 2 == argc && strcmp(argv[i], "incrementAndGet") == 0;
    bool get = i + 1 == argc && strcmp(argv[i], "get") == 0;
    if (help || peers == NULL || (!incr && !get)) {
        fprintf(help ? stdout : stderr,
                "usage: counter-client --peers LIST [--group G] [security] "
                "incrementAndGet DELTA | get\n"
                "security: --tls-cert F --tls-key F --tls-ca F --tls-peer-names LIST, or "
                "--cluster-key-file F\n");
        return help ? 0 : 2;
    }
    rk_configuration_t conf;
    rk_status_t perr;
    if (rk_configuration_parse(&conf, peers, &perr) != 0 || conf.n_peers == 0) {
        fprintf(stderr, "counter-client: bad --peers '%s': %s\n", peers,
                perr.code != 0 ? perr.msg : "no voter");
        return 2;
    }
    int64_t delta = 0;
    if (incr) {
        char *end;
        errno = 0;
        long long d = strtoll(argv[i + 1], &end, 10);
        if (end == argv[i + 1] || *end != '\0' || errno == ERANGE) {
            fprintf(stderr, "counter-client: DELTA '%s' is not a 64-bit integer\n", argv[i + 1]);
            return 2;
        }
        delta = d;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getenv("RAFTKIT_LOG") == NULL)
        rk_log_set_level(RK_LOG_ERROR);
    uint8_t req[COUNTER_REQ_LEN] = {incr ? COUNTER_OP_INCR : COUNTER_OP_GET};
    counter_put64(req + 1, delta);

    rk_status_t st;
    rk_cli_client_t *cli = rk_cli_client_open(2000, &sec, &st);
    if (cli == NULL) {
        fprintf(stderr, "counter-client: %s\n", st.msg);
        return 2;
    }
    rk_peer_id_t leader;
    int code = 4;
    char why[256] = "";
    if (rk_cli_get_leader(cli, group, &conf, &leader, &st) != 0) {
        snprintf(why, sizeof why, "finding the leader: %s", st.msg);
        goto out;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        rk_rpc_reply_t r;
        rk_rpc_client_call(rk_cli_client_rpc(cli), &leader.endpoint, COUNTER_METHOD, req,
                           sizeof req, 3000, &r);
        if (r.status.code != 0 || r.len < COUNTER_RESP_MIN) {
            snprintf(why, sizeof why, "%s", r.status.code ? r.status.msg : "short response");
            if (r.maybe_delivered && incr)
                code = 3; /* never retried: it may have been applied */
            rk_rpc_reply_release(&r);
            if (code == 3 || !r.maybe_delivered)
                goto out;
            continue;
        }
        int32_t rc;
        memcpy(&rc, r.body, 4);
        int64_t v = counter_get64((uint8_t *)r.body + 4);
        if (rc == 0) {
            printf("%" PRId64 "\n", v);
            code = 0;
            rk_rpc_reply_release(&r);
            goto out;
        }
        snprintf(why, sizeof why, "%s", rk_strerror(rc));
        if (rc == RK_ENOTLEADER && r.len > COUNTER_RESP_MIN) {
            char id[RK_PEER_ID_STRLEN] = "";
            size_t n =
                r.len - COUNTER_RESP_MIN < sizeof id - 1 ? r.len - COUNTER_RESP_MIN : sizeof id - 1;
            memcpy(id, (char *)r.body + COUNTER_RESP_MIN, n);
            rk_peer_id_parse(&leader, id, NULL);
        } else if (rc == RK_ELEADERLOST || rc == RK_ESHUTDOWN) {
            code = 3;
            rk_rpc_reply_release(&r);
            goto out;
        } else {
            usleep(200 * 1000);
            rk_cli_get_leader(cli, group, &conf, &leader, &st);
        }
        rk_rpc_reply_release(&r);
    }
out:
    if (code == 3)
        printf("UNKNOWN %s\n", why);
    else if (code == 4)
        printf("FAIL %s\n", why);
    rk_cli_client_free(cli);
    return code;
}
