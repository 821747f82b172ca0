/* powerloss-cut: the power cut of `make jepsen`'s powerloss fault, on the log
 * directory of a node that build/tests/kv-server-pl ran with
 * RAFTKIT_POWERLOSS_DIR (tests/jepsen/powerloss_node.c).
 *
 *   powerloss-cut init DIR       before a start: what is in DIR now is on the
 *                                disk (the shadow copies start from it)
 *   powerloss-cut cut DIR SEED   after a kill -9: each page written but not
 *                                synced survives or not (SEED decides)
 *
 * Prints one line; exit 0, 1 on an I/O error, 2 on bad arguments. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/storage/powerloss.h"

static uint64_t state;

static uint64_t splitmix(void)
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "init") == 0) {
        if (pl_init(argv[2]) != 0) {
            fprintf(stderr, "powerloss-cut: init %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        printf("powerloss-cut: %s is on the disk\n", argv[2]);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "cut") == 0) {
        char *end;
        errno = 0;
        state = strtoull(argv[3], &end, 10);
        if (errno != 0 || *end != '\0' || end == argv[3]) {
            fprintf(stderr, "powerloss-cut: SEED '%s' is not a number\n", argv[3]);
            return 2;
        }
        unsigned lost = 0, kept = 0;
        if (pl_power_loss(argv[2], splitmix, &lost, &kept) != 0) {
            fprintf(stderr, "powerloss-cut: cut %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        printf("powerloss-cut: %s: %u unsynced pages lost, %u kept\n", argv[2], lost, kept);
        return 0;
    }
    fprintf(stderr, "usage: powerloss-cut init DIR | powerloss-cut cut DIR SEED\n");
    return 2;
}
