/* Helpers shared by the TLS test suites: a scratch directory under BUILD
 * holding the certificates of tools/make-certs.sh, paths into it and small
 * files written there. Header-only: included (after cmocka.h) by
 * test_rpc_tls.c, test_node_tls.c and test_admin_tls.c. */
#ifndef TLS_TEST_UTIL_H
#define TLS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

static char tls_dir[512];

/* tls_dir/name; the result stays valid for the next 15 calls. */
static __attribute__((unused)) const char *tls_path(const char *name)
{
    static char p[16][600];
    static unsigned i;
    char *out = p[i++ % 16];
    snprintf(out, sizeof p[0], "%s/%s", tls_dir, name);
    return out;
}

static __attribute__((unused)) void tls_write_file(const char *name, const char *text)
{
    FILE *f = fopen(tls_path(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Creates BUILD/tag-XXXXXX and the certificates in it (make-certs.sh with
 * args, e.g. "--test"). Returns 0 or -1, for a cmocka group setup. */
static __attribute__((unused)) int tls_dir_setup(const char *tag, const char *args)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[1200];
    snprintf(tls_dir, sizeof tls_dir, "%s/%s-XXXXXX", build, tag);
    if (mkdtemp(tls_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof cmd, "tools/make-certs.sh %s %s >/dev/null", tls_dir, args);
    return system(cmd) == 0 ? 0 : -1;
}

static __attribute__((unused)) int tls_dir_teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif /* TLS_TEST_UTIL_H */
