/* Options of the example servers: an INI file (--conf FILE) overridden by
 * command-line flags, parsed with inih. Shared by kv-server and
 * counter-server.
 *
 *   [raft]
 *   group = kv
 *   shards = 1                      ; N > 1: groups kv-0 .. kv-(N-1) (app_group_id)
 *   peer  = 127.0.0.1:8101          ; or a host name: kv-0.kv:8101
 *   listen = 0.0.0.0:8101           ; optional: bind here instead of peer's address
 *   peers = 127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103
 *   data  = data/kv/n1
 *   election_timeout_ms = 1000
 *   snapshot_interval_s = 30
 *   sync = on                 ; off acknowledges before fsync (unsafe)
 *   read_only = safe          ; or lease
 *   [log]
 *   level = info
 *   [security]              (optional; README "Security")
 *   tls_cert = data/certs/node1.crt
 *   tls_key = data/certs/node1.key
 *   tls_ca = data/certs/ca.crt
 *   tls_peer_names = peer.raftkit
 *   tls_admin_names = admin.raftkit
 *   cluster_key_file = FILE  (instead of the tls_ keys)
 *   admin_token = SECRET     (with TLS and admin_port)
 */
#ifndef EXAMPLES_APP_CONF_H
#define EXAMPLES_APP_CONF_H

#include <stdbool.h>
#include <stdio.h>

#include "raftkit/peer.h"

/* Most groups one server hosts (shards), the room of a group name, and of
 * a shard's group id "<group>-<i>", NULs included. */
#define APP_GROUP_MAX    64
#define APP_MAX_SHARDS   100000
#define APP_GROUP_ID_MAX (APP_GROUP_MAX + 8)

typedef struct app_conf {
    char group[APP_GROUP_MAX];
    int shards; /* groups this server hosts (1: just group) */
    char peer[RK_PEER_ID_STRLEN];
    char listen[RK_PEER_ID_STRLEN]; /* "" when absent: bind the peer's address */
    char peers[2048];
    char data[512];
    int election_timeout_ms;
    int snapshot_interval_s;
    int admin_port;
    bool sync;       /* fsync log writes before acknowledging (default true) */
    bool read_lease; /* read_only = lease: RK_READ_ONLY_LEASE_BASED reads */
    char log_level[16];
    /* [security]; empty: off */
    char tls_cert[512];
    char tls_key[512];
    char tls_ca[512];
    char tls_peer_names[512];
    char tls_admin_names[512];
    char cluster_key_file[512];
    char admin_token[256];
    /* parsed forms, filled by app_conf_parse */
    rk_peer_id_t self;
    rk_endpoint_t listen_ep; /* empty (host "") when listen is absent */
    rk_configuration_t conf;
} app_conf_t;

/* Parses argv (flags below, after an optional --conf FILE read first).
 * Returns 0 when the server should start, 1 when --help was printed to out,
 * or -1 with a one-line reason in err. prog names the program in messages;
 * default_group is the group when neither file nor flags set one.
 *
 *   --conf FILE  --group G  --shards N  --peer HOST:PORT  --listen HOST:PORT  --peers LIST
 *   --data DIR  --election-timeout-ms N  --snapshot-interval-s N  --sync on|off
 *   --read-only safe|lease  --log-level L  --help
 *   --tls-cert F  --tls-key F  --tls-ca F  --tls-peer-names L  --tls-admin-names L
 *   --cluster-key-file F
 */
int app_conf_parse(app_conf_t *c, int argc, char **argv, const char *prog,
                   const char *default_group, FILE *out, char *err, size_t errlen);

/* The id of shard i (0 <= i < shards) of group: group itself when there is
 * one shard, else "<group>-<i>" ("kv-0" .. "kv-15"). Servers name their
 * groups so, and clients the group of a key. */
void app_group_id(const char *group, int shards, int i, char *buf, size_t len);

/* Reads an INI file into c (keys it sets override c's). Returns 0 or -1 with
 * the reason (file, line, key) in err. */
int app_conf_load_file(app_conf_t *c, const char *path, char *err, size_t errlen);

#endif /* EXAMPLES_APP_CONF_H */
