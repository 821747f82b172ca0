/* Client side of a raftkit cluster: the CLI service client (JRaft's
 * CliService: membership, leadership, snapshots, status) and the route table
 * (JRaft's RouteTable: per group, the configuration and the cached leader).
 *
 * Both are built on the blocking rk_rpc_client_t (rpc.h): every call below
 * waits for its answer, at most the client's timeout per request, on the
 * calling thread. A client must not be used from two threads at once; the
 * route table may be shared (it has its own lock).
 *
 * Peers may be named by DNS names (kv-1.example:8101): each connection
 * resolves the name anew (see rk_rpc_client_call), and a leader named in a
 * redirect is reached by its name.
 *
 * Redirects: a request that only the leader can serve, sent to a follower,
 * fails with RK_ENOTLEADER and a status message "leader=<peer id>" (empty
 * when that node knows no leader). The functions taking a configuration
 * find the leader themselves and follow such redirects.
 *
 *   rk_cli_client_t *cli = rk_cli_client_new(2000);
 *   rk_configuration_t conf;
 *   rk_configuration_parse(&conf, "127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103", NULL);
 *   rk_peer_id_t leader;
 *   rk_status_t st;
 *   if (rk_cli_get_leader(cli, "kv", &conf, &leader, &st) == 0) ...
 *   rk_cli_add_peer(cli, "kv", &conf, &new_peer, NULL, &st);  // NULL: no new_conf wanted
 *   rk_cli_client_free(cli);
 */
#ifndef RAFTKIT_CLIENT_H
#define RAFTKIT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/metrics.h"
#include "raftkit/peer.h"
#include "raftkit/rpc.h"
#include "raftkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what is declared here is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- CLI service client ---- */

typedef struct rk_cli_client rk_cli_client_t;

/* timeout_ms bounds each request (<= 0: 5000). Returns NULL when out of
 * memory. */
rk_cli_client_t *rk_cli_client_new(int timeout_ms);
void rk_cli_client_free(rk_cli_client_t *c);

/* The RPC client underneath, to call application methods over the same
 * connections. Owned by c. */
rk_rpc_client_t *rk_cli_client_rpc(rk_cli_client_t *c);

/* If st is a redirect (RK_ENOTLEADER with "leader=<id>" naming a peer),
 * stores the leader in *leader and returns true. */
bool rk_cli_redirect_leader(const rk_status_t *st, rk_peer_id_t *leader);

/* Every function below returns 0 or an RK_E* code, with the reason in st
 * (may be NULL): RK_EUNREACHABLE / RK_ETIMEDOUT (transport), RK_ENOLEADER
 * (no peer of conf knows a leader), RK_ENOGROUP (the peer does not host the
 * group), RK_EINVAL, or the node's own error (RK_ECONFCHANGE, RK_EEXIST,
 * RK_ENOTFOUND, ...). Functions that change the cluster wait until the
 * leader reports the change committed. */

/* Asks the peers of conf in turn until one names the leader. */
int rk_cli_get_leader(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                      rk_peer_id_t *leader, rk_status_t *st);

/* The leader's current configuration; with only_alive, the voters the
 * leader heard from within an election timeout (and no learners). */
int rk_cli_get_peers(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                     bool only_alive, rk_configuration_t *out, rk_status_t *st);

/* Membership changes through the leader. new_conf (may be NULL) receives
 * the configuration after the change. For the learner functions it comes
 * from the leader's answer; a server of an older version answers with the
 * learners only, and the voters are then asked for separately: if that
 * question fails the call still returns 0 (the change was made) and
 * new_conf holds the learners with no voters (n_peers == 0). */
int rk_cli_add_peer(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                    const rk_peer_id_t *peer, rk_configuration_t *new_conf, rk_status_t *st);
int rk_cli_remove_peer(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                       const rk_peer_id_t *peer, rk_configuration_t *new_conf, rk_status_t *st);
int rk_cli_change_peers(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                        const rk_configuration_t *target, rk_configuration_t *new_conf,
                        rk_status_t *st);
int rk_cli_add_learners(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                        const rk_peer_id_t *learners, size_t n, rk_configuration_t *new_conf,
                        rk_status_t *st);
int rk_cli_remove_learners(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                           const rk_peer_id_t *learners, size_t n, rk_configuration_t *new_conf,
                           rk_status_t *st);
int rk_cli_reset_learners(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                          const rk_peer_id_t *learners, size_t n, rk_configuration_t *new_conf,
                          rk_status_t *st);

/* Unsafe (disaster recovery after losing a majority): sets peer's
 * configuration to target without consensus. Sent to peer itself. */
int rk_cli_reset_peer(rk_cli_client_t *c, const char *group, const rk_peer_id_t *peer,
                      const rk_configuration_t *target, rk_status_t *st);

/* Asks the leader to hand leadership to peer (NULL: a live voter the leader
 * picks). Returns once the leader accepted; the transfer completes shortly
 * after (poll rk_cli_get_leader). */
int rk_cli_transfer_leader(rk_cli_client_t *c, const char *group, const rk_configuration_t *conf,
                           const rk_peer_id_t *peer, rk_status_t *st);

/* Makes peer take a snapshot now and waits until it is saved. */
int rk_cli_snapshot(rk_cli_client_t *c, const char *group, const rk_peer_id_t *peer,
                    rk_status_t *st);

/* One node's full status (GetNodeStatus): what its admin endpoint's /status
 * shows -- state, term, leader, configuration, log indexes and, when peer is
 * the leader, every follower's replication progress (out->peers). The status
 * is the one the node's loop last published (out->age_ms old when it was
 * read there). Errors as above, RK_ESTATE when the group has disable_cli,
 * RK_EPROTO for an undecodable answer. */
int rk_cli_node_status(rk_cli_client_t *c, const char *group, const rk_peer_id_t *peer,
                       rk_node_status_t *out, rk_status_t *st);

/* ---- route table ---- */

typedef struct rk_route_table rk_route_table_t;

/* Returns NULL when out of memory. */
rk_route_table_t *rk_route_table_new(void);
void rk_route_table_free(rk_route_table_t *rt);

/* Sets group's configuration (the peers to ask). Returns 0, RK_EINVAL,
 * RK_ENOMEM. */
int rk_route_table_update_configuration(rk_route_table_t *rt, const char *group,
                                        const rk_configuration_t *conf);
/* Returns 0 or RK_ENOTFOUND (group unknown). */
int rk_route_table_get_configuration(rk_route_table_t *rt, const char *group,
                                     rk_configuration_t *out);

/* Caches leader (NULL or empty forgets it). Returns 0 or RK_ENOTFOUND. */
int rk_route_table_update_leader(rk_route_table_t *rt, const char *group,
                                 const rk_peer_id_t *leader);
/* The cached leader; RK_ENOLEADER when none, RK_ENOTFOUND for an unknown group. */
int rk_route_table_select_leader(rk_route_table_t *rt, const char *group, rk_peer_id_t *leader);

/* Asks the group's peers for the leader and caches it. */
int rk_route_table_refresh_leader(rk_route_table_t *rt, rk_cli_client_t *c, const char *group,
                                  rk_status_t *st);
/* Asks the leader for the configuration and stores it. */
int rk_route_table_refresh_configuration(rk_route_table_t *rt, rk_cli_client_t *c,
                                         const char *group, rk_status_t *st);

/* Follows a redirect: if st is one, caches its leader and returns true;
 * for any other RK_ENOTLEADER forgets the cached leader. */
bool rk_route_table_handle_redirect(rk_route_table_t *rt, const char *group, const rk_status_t *st);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* RAFTKIT_CLIENT_H */
