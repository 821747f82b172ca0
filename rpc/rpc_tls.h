/* TLS 1.3 for RPC connections, with OpenSSL driven through memory BIOs: the
 * connection (rpc_conn.c) feeds the bytes libuv read into the engine and
 * writes what the engine produced with uv_write, so there is no blocking
 * socket and no thread of its own.
 *
 * Two ways to authenticate, one per context:
 *  - certificates: both sides present a certificate signed by tls_ca; the
 *    client checks that the server's carries one of tls_peer_names (CN or
 *    SAN, X509_check_host rules); the server requires a client certificate.
 *  - cluster keys: TLS 1.3 with external pre-shared keys read from a key
 *    file (one key per line, hex or base64, >= 32 bytes). A client offers
 *    the first key; a server accepts any listed key, so keys rotate without
 *    downtime. The key's identity on the wire is a hash of it, never the key.
 *
 * Each authenticated connection gets roles (RPC_ROLE_*) that the server
 * checks per method (rpc_method_role): everyone who completed the handshake
 * is a client; certificate names in tls_peer_names / tls_admin_names, or an
 * unmarked / "admin"-marked key line, add the peer / admin roles.
 *
 * Contexts are immutable after creation and reference counted (any thread);
 * a connection's state is used on its loop thread only.
 */
#ifndef RPC_TLS_H
#define RPC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkit/status.h"

#define RPC_ROLE_CLIENT 0x1u /* application methods, read-only CLI queries */
#define RPC_ROLE_PEER   0x2u /* Raft messages and snapshot files */
#define RPC_ROLE_ADMIN  0x4u /* membership and disaster commands */
#define RPC_ROLE_ALL    0x7u /* what every connection gets without security */

/* What a context is made of. Strings are read during rpc_tls_ctx_new only. */
typedef struct rpc_tls_config {
    const char *cert;             /* PEM certificate (chain) file */
    const char *key;              /* PEM private key file */
    const char *ca;               /* PEM file of the CA(s) a peer's certificate must chain to */
    const char *peer_names;       /* comma-separated: names a node's certificate carries */
    const char *admin_names;      /* comma-separated: names of admin certificates */
    const char *cluster_key_file; /* key mode instead of certificates */
} rpc_tls_config_t;

typedef struct rpc_tls_ctx rpc_tls_ctx_t;
typedef struct rpc_tls rpc_tls_t;

/* True when cfg asks for TLS at all (NULL-safe). */
bool rpc_tls_configured(const rpc_tls_config_t *cfg);

/* Builds a context for one side (server: accepts, client: connects) from
 * cfg. Returns 0 with *out (NULL when cfg configures nothing), or RK_EINVAL
 * with the reason in err: a file that cannot be read, a key that does not
 * match its certificate, a short or malformed cluster key (line named),
 * certificates and a key file both given, a certificate without a CA, a
 * client without tls_peer_names. */
int rpc_tls_ctx_new(const rpc_tls_config_t *cfg, bool server, rpc_tls_ctx_t **out,
                    rk_status_t *err);
void rpc_tls_ctx_ref(rpc_tls_ctx_t *ctx);
void rpc_tls_ctx_unref(rpc_tls_ctx_t *ctx); /* NULL-safe */

/* A connection's TLS state. Returns NULL when out of memory. */
rpc_tls_t *rpc_tls_new(rpc_tls_ctx_t *ctx);
void rpc_tls_free(rpc_tls_t *t); /* NULL-safe */

/* Hands ciphertext read from the socket to the engine. Returns 0 or RK_ENOMEM. */
int rpc_tls_feed(rpc_tls_t *t, const void *p, size_t n);

/* Advances the handshake. Returns 1 once it is complete and the peer is
 * authenticated, 0 when more input is needed, or RK_EPERM with the cause a
 * user can fix in why (unknown CA, name mismatch, expired certificate, no
 * client certificate, wrong cluster key, ...). */
int rpc_tls_handshake(rpc_tls_t *t, rk_status_t *why);

/* Decrypts into buf. Returns the number of bytes (> 0), 0 when more input is
 * needed, RK_EUNREACHABLE when the peer closed the TLS session, or RK_EPROTO
 * for a corrupt record (why says so). */
long rpc_tls_read(rpc_tls_t *t, void *buf, size_t cap, rk_status_t *why);

/* Encrypts n bytes; the ciphertext waits for rpc_tls_take_out. Returns 0,
 * RK_ENOMEM or RK_EPROTO. */
int rpc_tls_write(rpc_tls_t *t, const void *p, size_t n);

/* Ciphertext waiting to be written, and taking it out (returns bytes copied). */
size_t rpc_tls_out_pending(const rpc_tls_t *t);
size_t rpc_tls_take_out(rpc_tls_t *t, void *buf, size_t cap);

/* After the handshake: the roles (RPC_ROLE_*) and a name for log lines
 * ("CN=node1" or "cluster key 3f2a..."). */
unsigned rpc_tls_roles(const rpc_tls_t *t);
const char *rpc_tls_identity(const rpc_tls_t *t);

/* Parses a cluster key file. Returns the number of keys (>= 1) or RK_EINVAL
 * with the file and line in err. With keys != NULL, up to max keys are
 * stored (raw bytes, admin flag). Exposed for tests. */
typedef struct rpc_cluster_key {
    uint8_t key[128];
    size_t len;
    bool admin;
    char id[40]; /* identity on the wire: "rk1-" + 32 hex digits of SHA-256 */
} rpc_cluster_key_t;
int rpc_tls_load_keys(const char *path, rpc_cluster_key_t *keys, unsigned max, rk_status_t *err);

#endif /* RPC_TLS_H */
