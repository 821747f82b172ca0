/* Built against an installed raftkit with only `pkg-config --cflags --libs raftkit`. */
#include <raftkit/raftkit.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    rk_configuration_t conf;
    char buf[256];
    if (rk_configuration_parse(&conf, "127.0.0.1:8081,127.0.0.1:8082:1/learner", NULL) != 0)
        return 1;
    rk_configuration_format(&conf, buf, sizeof buf);
    if (strcmp(buf, "127.0.0.1:8081,127.0.0.1:8082:1/learner") != 0)
        return 1;
    printf("install-check: ok (%s, %s)\n", buf, rk_strerror(RK_ETIMEDOUT));
    return 0;
}
