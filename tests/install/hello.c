/* Built against an installed raftkit with only `pkg-config --cflags --libs raftkit`
 * (shared library), and again against the installed libraftkit.a. It defines
 * functions named like raftkit internals: linking and calling them must reach
 * these, which holds only while the library keeps its internal names to itself. */
#include <raftkit/raftkit.h>
#include <stdio.h>
#include <string.h>

int buf_new(int x);
int journal_open(int x);
int buf_new(int x)
{
    return x + 1;
}
int journal_open(int x)
{
    return x + 2;
}

int main(void)
{
    rk_configuration_t conf;
    char buf[256];
    if (rk_configuration_parse(&conf, "127.0.0.1:8081,127.0.0.1:8082:1/learner", NULL) != 0)
        return 1;
    rk_configuration_format(&conf, buf, sizeof buf);
    if (strcmp(buf, "127.0.0.1:8081,127.0.0.1:8082:1/learner") != 0)
        return 1;
    if (buf_new(1) != 2 || journal_open(1) != 3)
        return 1;
    printf("install-check: ok (%s, %s)\n", buf, rk_strerror(RK_ETIMEDOUT));
    return 0;
}
