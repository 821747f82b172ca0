/* Linked into build/tests/kv-server-pl, the kv-server that `make jepsen`
 * runs when its faults include powerloss: when RAFTKIT_POWERLOSS_DIR names
 * the node's log directory (DATA/log), every write to its LMDB file and
 * journal is logged as unsynced until an fdatasync covers it
 * (tests/storage/powerloss.c). After a kill -9, `powerloss-cut cut DIR SEED`
 * plays the power cut on what the process left. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/storage/powerloss.h"

__attribute__((constructor)) static void powerloss_begin(void)
{
    const char *dir = getenv("RAFTKIT_POWERLOSS_DIR");
    if (dir == NULL || dir[0] == '\0')
        return;
    if (pl_child_begin(dir) != 0) {
        fprintf(stderr, "kv-server-pl: cannot track writes under %s\n", dir);
        _exit(70);
    }
}
