/* libFuzzer target for the pre-handshake path of a TLS port: untrusted bytes
 * fed, in fuzzer-chosen chunks, into a server engine (certificate mode or
 * cluster-key mode) and into a client engine that has sent its ClientHello,
 * through rpc_tls_feed / rpc_tls_handshake / rpc_tls_read and the failure
 * diagnosis; one mode puts a genuine ClientHello first so that the bytes
 * reach the server's later states. The contexts use a certificate made in memory at start-up and a
 * key file written next to the binary's working directory. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rpc/rpc_tls.h"

static rpc_tls_ctx_t *g_cert_srv, *g_key_srv, *g_key_cli;
/* A real ClientHello offering the cluster key: with it in front, the
 * fuzzer's bytes reach the server's later handshake states. */
static uint8_t g_hello[4096];
static size_t g_hello_len;

static void write_pem_files(const char *crt, const char *key)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"peer.raftkit", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, pk, EVP_sha256());
    f = fopen(crt, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key, "w");
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char crt[64], key[64], keys[64];
    rk_status_t err;

    (void)argc;
    (void)argv;
    snprintf(crt, sizeof crt, "fuzz-tls-%d.crt", (int)getpid());
    snprintf(key, sizeof key, "fuzz-tls-%d.key", (int)getpid());
    snprintf(keys, sizeof keys, "fuzz-tls-%d.keys", (int)getpid());
    write_pem_files(crt, key);
    FILE *f = fopen(keys, "w");
    fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
    fclose(f);
    rpc_tls_config_t cc = {.cert = crt, .key = key, .ca = crt, .peer_names = "peer.raftkit"};
    rpc_tls_config_t kc = {.cluster_key_file = keys};
    if (rpc_tls_ctx_new(&cc, true, &g_cert_srv, &err) != 0 ||
        rpc_tls_ctx_new(&kc, true, &g_key_srv, &err) != 0 ||
        rpc_tls_ctx_new(&kc, false, &g_key_cli, &err) != 0) {
        fprintf(stderr, "fuzz_rpc_tls: %s\n", err.msg);
        abort();
    }
    unlink(crt);
    unlink(key);
    unlink(keys);
    rpc_tls_t *c = rpc_tls_new(g_key_cli);
    (void)rpc_tls_handshake(c, &err);
    g_hello_len = rpc_tls_take_out(c, g_hello, sizeof g_hello);
    rpc_tls_free(c);
    return 0;
}

/* Feeds data in chunks whose sizes come from the data itself, advancing
 * the handshake (and reading, should it ever complete) after each. */
static void drive(rpc_tls_t *t, const uint8_t *p, size_t n, unsigned chunk)
{
    rk_status_t why;
    uint8_t out[4096];

    while (n > 0) {
        size_t k = n < chunk ? n : chunk;
        if (rpc_tls_feed(t, p, k) != 0)
            return;
        p += k;
        n -= k;
        int r = rpc_tls_handshake(t, &why);
        while (rpc_tls_take_out(t, out, sizeof out) > 0)
            ;
        if (r < 0)
            return;
        if (r == 1)
            while (rpc_tls_read(t, out, sizeof out, &why) > 0)
                ;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[4096];
    rk_status_t why;

    if (size < 1)
        return 0;
    unsigned chunk = 1 + data[0] * 7u;
    int mode = data[0] % 4;
    data++;
    size--;
    rpc_tls_t *t = rpc_tls_new(mode == 0 ? g_cert_srv : mode == 2 ? g_key_cli : g_key_srv);
    if (t == NULL)
        return 0;
    if (mode == 2) {
        /* the client speaks first: its hello goes nowhere */
        (void)rpc_tls_handshake(t, &why);
        while (rpc_tls_take_out(t, out, sizeof out) > 0)
            ;
    }
    if (mode == 3) {
        /* a genuine hello first, then the fuzzer's bytes */
        (void)rpc_tls_feed(t, g_hello, g_hello_len);
        if (rpc_tls_handshake(t, &why) < 0) {
            rpc_tls_free(t);
            return 0;
        }
        while (rpc_tls_take_out(t, out, sizeof out) > 0)
            ;
    }
    drive(t, data, size, chunk);
    rpc_tls_free(t);
    return 0;
}
