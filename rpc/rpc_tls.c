/* TLS 1.3 contexts and per-connection engines over memory BIOs (see
 * rpc_tls.h). Everything cryptographic is OpenSSL's: certificate chains and
 * names are checked by its verifier (X509_VERIFY_PARAM hosts on the client,
 * X509_check_host for the server's role decision), cluster keys are TLS 1.3
 * external PSKs, and key ids are SHA-256 digests. What is ours is the
 * translation of a failed handshake into a cause a user can act on.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rpc/rpc_tls.h"

#define MAX_NAMES  16
#define MAX_KEYS   16
#define NAME_FLAGS (X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS)

/* TLS_AES_128_GCM_SHA256, the cipher every external PSK session is tied to. */
static const unsigned char psk_cipher_id[2] = {0x13, 0x01};

struct rpc_tls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl;
    bool server;
    bool psk;
    char *names[MAX_NAMES]; /* peer names */
    unsigned n_names;
    char *admins[MAX_NAMES];
    unsigned n_admins;
    rpc_cluster_key_t *keys;
    unsigned n_keys;
};

struct rpc_tls {
    rpc_tls_ctx_t *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
    bool done;
    bool psk_unknown; /* server: the client offered a key we do not list */
    char unknown_id[40];
    int psk_index; /* server: the listed key the client used; -1 none */
    unsigned roles;
    char identity[96];
};

bool rpc_tls_configured(const rpc_tls_config_t *cfg)
{
    return cfg != NULL &&
           ((cfg->cert != NULL && cfg->cert[0] != '\0') ||
            (cfg->key != NULL && cfg->key[0] != '\0') || (cfg->ca != NULL && cfg->ca[0] != '\0') ||
            (cfg->cluster_key_file != NULL && cfg->cluster_key_file[0] != '\0'));
}

/* The reason of the newest OpenSSL error, or fallback; clears the queue. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : fallback;
}

/* ---- cluster key files ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* Decodes one key (hex when the text is all hex digits, else base64).
 * Returns the length or -1. */
static long decode_key(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s), i;
    bool hex = n % 2 == 0;

    for (i = 0; i < n && hex; i++)
        hex = isxdigit((unsigned char)s[i]) != 0;
    if (hex) {
        if (n / 2 > cap)
            return -1;
        for (i = 0; i < n / 2; i++)
            out[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
        return (long)(n / 2);
    }
    if (n % 4 != 0 || n / 4 * 3 > cap)
        return -1;
    int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts the bytes the padding stands for. */
    if (n >= 1 && s[n - 1] == '=')
        len--;
    if (n >= 2 && s[n - 2] == '=')
        len--;
    return len;
}

static void key_id(rpc_cluster_key_t *k)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hx[] = "0123456789abcdef";

    EVP_Digest(k->key, k->len, md, &mdlen, EVP_sha256(), NULL);
    memcpy(k->id, "rk1-", 4);
    for (unsigned i = 0; i < 16; i++) {
        k->id[4 + 2 * i] = hx[md[i] >> 4];
        k->id[5 + 2 * i] = hx[md[i] & 15];
    }
    k->id[36] = '\0';
}

int rpc_tls_load_keys(const char *path, rpc_cluster_key_t *keys, unsigned max, rk_status_t *err)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    unsigned n = 0, lineno = 0;
    int rc = 0;

    if (f == NULL)
        return rk_status_set(err, RK_EINVAL, "cluster_key_file '%s': %s", path, strerror(errno));
    while (fgets(line, sizeof line, f) != NULL) {
        char *s = line, *e;
        rpc_cluster_key_t k = {0};
        long len;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = rk_status_set(err, RK_EINVAL, "cluster_key_file %s:%u: line too long", path,
                               lineno);
            goto out;
        }
        while (isspace((unsigned char)*s))
            s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        if (strncmp(s, "admin", 5) == 0 && (isspace((unsigned char)s[5]) || s[5] == ':')) {
            k.admin = true;
            s += 6;
            while (isspace((unsigned char)*s))
                s++;
        }
        len = decode_key(s, k.key, sizeof k.key);
        if (len < 0) {
            rc = rk_status_set(err, RK_EINVAL,
                               "cluster_key_file %s:%u: not a hex or base64 key (at most %zu "
                               "bytes)",
                               path, lineno, sizeof k.key);
            goto out;
        }
        if (len < 32) {
            rc = rk_status_set(err, RK_EINVAL,
                               "cluster_key_file %s:%u: key is %ld bytes, needs at least 32 "
                               "(e.g. openssl rand -hex 32)",
                               path, lineno, len);
            goto out;
        }
        k.len = (size_t)len;
        key_id(&k);
        if (keys != NULL && n < max)
            keys[n] = k;
        n++;
        OPENSSL_cleanse(&k, sizeof k);
    }
    if (n == 0)
        rc = rk_status_set(err, RK_EINVAL, "cluster_key_file %s: no key in it", path);
out:
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    return rc != 0 ? rc : (int)n;
}

/* ---- PSK callbacks ---- */

static SSL_SESSION *psk_session(SSL *ssl, const rpc_cluster_key_t *k)
{
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, psk_cipher_id);
    SSL_SESSION *sess = cipher != NULL ? SSL_SESSION_new() : NULL;

    if (sess == NULL)
        return NULL;
    if (!SSL_SESSION_set1_master_key(sess, k->key, k->len) ||
        !SSL_SESSION_set_cipher(sess, cipher) ||
        !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
        SSL_SESSION_free(sess);
        return NULL;
    }
    return sess;
}

/* Client: offers the first key of the file. */
static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                      SSL_SESSION **sess)
{
    rpc_tls_t *t = SSL_get_app_data(ssl);
    const rpc_cluster_key_t *k = &t->ctx->keys[0];
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, psk_cipher_id);

    *sess = NULL;
    *id = NULL;
    *idlen = 0;
    if (cipher == NULL || (md != NULL && md != SSL_CIPHER_get_handshake_digest(cipher)))
        return 1; /* after a HelloRetryRequest for another hash: no PSK */
    *sess = psk_session(ssl, k);
    if (*sess == NULL)
        return 0;
    *id = (const unsigned char *)k->id;
    *idlen = strlen(k->id);
    return 1;
}

/* Server: finds the key the client named among the listed ones. */
static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    rpc_tls_t *t = SSL_get_app_data(ssl);
    rpc_tls_ctx_t *ctx = t->ctx;

    *sess = NULL;
    for (unsigned i = 0; i < ctx->n_keys; i++) {
        if (strlen(ctx->keys[i].id) == idlen && memcmp(ctx->keys[i].id, id, idlen) == 0) {
            *sess = psk_session(ssl, &ctx->keys[i]);
            if (*sess == NULL)
                return 0;
            t->psk_index = (int)i;
            return 1;
        }
    }
    t->psk_unknown = true;
    snprintf(t->unknown_id, sizeof t->unknown_id, "%.*s", (int)(idlen < 36 ? idlen : 36), id);
    for (char *p = t->unknown_id; *p; p++)
        if (!isprint((unsigned char)*p))
            *p = '?';
    return 1;
}

/* ---- contexts ---- */

static int split_names(const char *list, char **out, unsigned *n, const char *what,
                       rk_status_t *err)
{
    const char *p = list;

    *n = 0;
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (len > 0) {
            if (*n == MAX_NAMES)
                return rk_status_set(err, RK_EINVAL, "%s: more than %d names", what, MAX_NAMES);
            out[*n] = strndup(p, len);
            if (out[*n] == NULL)
                return rk_status_set(err, RK_ENOMEM, "out of memory");
            (*n)++;
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

static void ctx_free(rpc_tls_ctx_t *c)
{
    SSL_CTX_free(c->ssl);
    for (unsigned i = 0; i < c->n_names; i++)
        free(c->names[i]);
    for (unsigned i = 0; i < c->n_admins; i++)
        free(c->admins[i]);
    if (c->keys != NULL) {
        OPENSSL_cleanse(c->keys, MAX_KEYS * sizeof *c->keys);
        free(c->keys);
    }
    free(c);
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static int load_certs(rpc_tls_ctx_t *c, const rpc_tls_config_t *cfg, rk_status_t *err)
{
    if (!set(cfg->cert) || !set(cfg->key) || !set(cfg->ca))
        return rk_status_set(err, RK_EINVAL,
                             "TLS needs tls_cert, tls_key and tls_ca together (missing %s)",
                             !set(cfg->cert)  ? "tls_cert"
                             : !set(cfg->key) ? "tls_key"
                                              : "tls_ca");
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cfg->cert) != 1)
        return rk_status_set(err, RK_EINVAL, "tls_cert '%s': %s", cfg->cert,
                             ssl_reason("cannot load"));
    if (SSL_CTX_use_PrivateKey_file(c->ssl, cfg->key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            return rk_status_set(err, RK_EINVAL, "tls_key '%s' does not match tls_cert '%s'",
                                 cfg->key, cfg->cert);
        }
        return rk_status_set(err, RK_EINVAL, "tls_key '%s': %s", cfg->key,
                             ssl_reason("cannot load"));
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1)
        return rk_status_set(err, RK_EINVAL, "tls_key '%s' does not match tls_cert '%s'", cfg->key,
                             cfg->cert);
    if (SSL_CTX_load_verify_locations(c->ssl, cfg->ca, NULL) != 1)
        return rk_status_set(err, RK_EINVAL, "tls_ca '%s': %s", cfg->ca, ssl_reason("cannot load"));
    if (c->server) {
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        return 0;
    }
    /* The client checks the server's names with OpenSSL's verifier: the
     * handshake fails unless the certificate carries one of them. */
    if (c->n_names == 0)
        return rk_status_set(err, RK_EINVAL,
                             "tls_peer_names is required: the names a server's certificate must "
                             "carry");
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_hostflags(vp, NAME_FLAGS);
    for (unsigned i = 0; i < c->n_names; i++)
        if ((i == 0 ? X509_VERIFY_PARAM_set1_host(vp, c->names[i], 0)
                    : X509_VERIFY_PARAM_add1_host(vp, c->names[i], 0)) != 1)
            return rk_status_set(err, RK_EINVAL, "tls_peer_names: bad name '%s'", c->names[i]);
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    return 0;
}

int rpc_tls_ctx_new(const rpc_tls_config_t *cfg, bool server, rpc_tls_ctx_t **out, rk_status_t *err)
{
    rpc_tls_ctx_t *c;
    int rc;

    *out = NULL;
    if (!rpc_tls_configured(cfg))
        return 0;
    if (set(cfg->cluster_key_file) && (set(cfg->cert) || set(cfg->key) || set(cfg->ca)))
        return rk_status_set(err, RK_EINVAL,
                             "cluster_key_file and tls_cert/tls_key/tls_ca exclude each other: "
                             "choose one");
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return rk_status_set(err, RK_ENOMEM, "out of memory");
    atomic_init(&c->refs, 1);
    c->server = server;
    c->psk = set(cfg->cluster_key_file);
    rc = split_names(cfg->peer_names, c->names, &c->n_names, "tls_peer_names", err);
    if (rc == 0)
        rc = split_names(cfg->admin_names, c->admins, &c->n_admins, "tls_admin_names", err);
    if (rc != 0)
        goto fail;
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (c->ssl == NULL) {
        rc = rk_status_set(err, RK_ENOMEM, "SSL_CTX_new: %s", ssl_reason("failed"));
        goto fail;
    }
    /* TLS 1.3 only; no session tickets (each connection authenticates in
     * full, and a node's connections live long). */
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c->ssl, TLS1_3_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c->ssl, 0);
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
    /* Buffers stay allocated (about 34 KiB per connection): releasing
     * them after each record costs a malloc/free pair per message. */
    if (c->psk) {
        c->keys = calloc(MAX_KEYS, sizeof *c->keys);
        if (c->keys == NULL) {
            rc = rk_status_set(err, RK_ENOMEM, "out of memory");
            goto fail;
        }
        rc = rpc_tls_load_keys(cfg->cluster_key_file, c->keys, MAX_KEYS, err);
        if (rc < 0)
            goto fail;
        if (rc > MAX_KEYS) {
            rc = rk_status_set(err, RK_EINVAL, "cluster_key_file %s: more than %d keys",
                               cfg->cluster_key_file, MAX_KEYS);
            goto fail;
        }
        c->n_keys = (unsigned)rc;
        rc = 0;
        /* A PSK is bound to a hash: offer only the suites using its SHA-256,
         * or the server picks SHA-384 and skips the key. */
        SSL_CTX_set_ciphersuites(c->ssl, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
        if (server) {
            SSL_CTX_set_psk_find_session_callback(c->ssl, psk_find_cb);
            SSL_CTX_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
        } else {
            SSL_CTX_set_psk_use_session_callback(c->ssl, psk_use_cb);
            /* No CA is loaded: a server that answers with a certificate
             * instead of the key fails verification. */
            SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        }
    } else {
        rc = load_certs(c, cfg, err);
        if (rc != 0)
            goto fail;
    }
    *out = c;
    return 0;

fail:
    ctx_free(c);
    ERR_clear_error();
    return rc;
}

void rpc_tls_ctx_ref(rpc_tls_ctx_t *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
}

void rpc_tls_ctx_unref(rpc_tls_ctx_t *ctx)
{
    if (ctx != NULL && atomic_fetch_sub(&ctx->refs, 1) == 1)
        ctx_free(ctx);
}

/* ---- connections ---- */

rpc_tls_t *rpc_tls_new(rpc_tls_ctx_t *ctx)
{
    rpc_tls_t *t = calloc(1, sizeof *t);

    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    /* An empty read BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_app_data(t->ssl, t);
    if (ctx->server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    rpc_tls_ctx_ref(ctx);
    t->ctx = ctx;
    t->psk_index = -1;
    snprintf(t->identity, sizeof t->identity, "?");
    return t;
}

void rpc_tls_free(rpc_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    rpc_tls_ctx_unref(t->ctx);
    free(t);
}

int rpc_tls_feed(rpc_tls_t *t, const void *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        int w = BIO_write(t->rbio, p, chunk);
        if (w <= 0)
            return RK_ENOMEM;
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *verify_cause(long vr, const char *whose, char *buf, size_t len)
{
    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(buf, len, "the %s certificate has expired", whose);
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(buf, len, "the %s certificate is not yet valid", whose);
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
        snprintf(buf, len, "the %s certificate carries none of the names in tls_peer_names", whose);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        snprintf(buf, len, "the %s certificate is signed by an unknown CA (not in tls_ca)", whose);
        break;
    default:
        snprintf(buf, len, "the %s certificate was refused: %s", whose,
                 X509_verify_cert_error_string(vr));
    }
    return buf;
}

/* Why the handshake failed, in words that name what to fix. */
static void diagnose(rpc_tls_t *t, rk_status_t *why)
{
    rpc_tls_ctx_t *ctx = t->ctx;
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    int reason = e != 0 ? ERR_GET_REASON(e) : 0;
    char buf[RK_STATUS_MSG_MAX];

    if (ctx->psk && ctx->server && t->psk_unknown) {
        rk_status_set(why, RK_EPERM,
                      "wrong cluster key: the client's key (id %s) is not in cluster_key_file",
                      t->unknown_id);
    } else if (ctx->psk && ctx->server && t->psk_index < 0) {
        rk_status_set(why, RK_EPERM, "the client offered no cluster key (%s)",
                      ssl_reason("no key"));
    } else if (ctx->psk && !ctx->server && reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) {
        rk_status_set(why, RK_EPERM,
                      "wrong cluster key: the server does not list our key (id %s) in its "
                      "cluster_key_file",
                      ctx->keys[0].id);
    } else if (vr != X509_V_OK) {
        rk_status_set(why, RK_EPERM, "%s",
                      verify_cause(vr, ctx->server ? "client's" : "server's", buf, sizeof buf));
    } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        rk_status_set(why, RK_EPERM,
                      "the client sent no certificate (it needs tls_cert and tls_key)");
    } else if (reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA) {
        rk_status_set(why, RK_EPERM, "the peer refused our certificate: unknown CA");
    } else if (reason == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED) {
        rk_status_set(why, RK_EPERM, "the peer refused our certificate: expired or not yet valid");
    } else if (reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
               reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
               reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) {
        rk_status_set(why, RK_EPERM, "the peer refused our credentials (%s; see its log)",
                      ERR_reason_error_string(e));
    } else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_UNSUPPORTED_PROTOCOL ||
               reason == SSL_R_PACKET_LENGTH_TOO_LONG || reason == SSL_R_HTTP_REQUEST ||
               reason == SSL_R_RECORD_LENGTH_MISMATCH) {
        rk_status_set(why, RK_EPERM, "the peer does not speak TLS 1.3 (%s)",
                      ERR_reason_error_string(e));
    } else {
        rk_status_set(why, RK_EPERM, "%s", ssl_reason("TLS handshake failed"));
    }
    ERR_clear_error();
}

static bool names_match(X509 *cert, char *const *names, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (X509_check_host(cert, names[i], 0, NAME_FLAGS, NULL) == 1)
            return true;
    return false;
}

/* The handshake is complete: decide who the peer is. */
static int authenticate(rpc_tls_t *t, rk_status_t *why)
{
    rpc_tls_ctx_t *ctx = t->ctx;

    if (ctx->psk) {
        /* An external PSK session counts as resumed: a peer that completed
         * the handshake with a certificate instead holds no key of ours. */
        if (!SSL_session_reused(t->ssl))
            return rk_status_set(why, RK_EPERM, "the peer did not authenticate with a cluster key");
        if (!ctx->server) {
            t->roles = RPC_ROLE_ALL;
            snprintf(t->identity, sizeof t->identity, "cluster key");
            return 1;
        }
        const rpc_cluster_key_t *k = &ctx->keys[t->psk_index];
        t->roles = RPC_ROLE_CLIENT | (k->admin ? RPC_ROLE_ADMIN : RPC_ROLE_PEER);
        snprintf(t->identity, sizeof t->identity, "%scluster key %s", k->admin ? "admin " : "",
                 k->id);
        return 1;
    }
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert == NULL) /* cannot happen with FAIL_IF_NO_PEER_CERT; refuse anyway */
        return rk_status_set(why, RK_EPERM, "the peer presented no certificate");
    char cn[64] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    snprintf(t->identity, sizeof t->identity, "CN=%s", cn[0] ? cn : "?");
    if (!ctx->server) {
        t->roles = RPC_ROLE_ALL;
        return 1;
    }
    t->roles = RPC_ROLE_CLIENT;
    if (names_match(cert, ctx->names, ctx->n_names))
        t->roles |= RPC_ROLE_PEER;
    if (names_match(cert, ctx->admins, ctx->n_admins))
        t->roles |= RPC_ROLE_ADMIN;
    return 1;
}

int rpc_tls_handshake(rpc_tls_t *t, rk_status_t *why)
{
    int r;

    if (t->done)
        return 1;
    ERR_clear_error();
    r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        r = authenticate(t, why);
        t->done = r == 1;
        return r;
    }
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        diagnose(t, why);
        return RK_EPERM;
    }
}

long rpc_tls_read(rpc_tls_t *t, void *buf, size_t cap, rk_status_t *why)
{
    int r;

    ERR_clear_error();
    r = SSL_read(t->ssl, buf, cap > (1u << 30) ? 1 << 30 : (int)cap);
    if (r > 0)
        return r;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return rk_status_set(why, RK_EUNREACHABLE, "peer closed the TLS session");
    default:
        return rk_status_set(why, RK_EPROTO, "TLS record error: %s", ssl_reason("unknown"));
    }
}

int rpc_tls_write(rpc_tls_t *t, const void *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        ERR_clear_error();
        int w = SSL_write(t->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return RK_EPROTO;
        }
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

size_t rpc_tls_out_pending(const rpc_tls_t *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t rpc_tls_take_out(rpc_tls_t *t, void *buf, size_t cap)
{
    int r = BIO_read(t->wbio, buf, cap > (1u << 30) ? 1 << 30 : (int)cap);
    return r > 0 ? (size_t)r : 0;
}

unsigned rpc_tls_roles(const rpc_tls_t *t)
{
    return t->done ? t->roles : 0;
}

const char *rpc_tls_identity(const rpc_tls_t *t)
{
    return t->identity;
}
