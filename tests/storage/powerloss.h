/* Power-loss simulation for the storage crash test (see powerloss.c). */
#ifndef RAFTKIT_TESTS_STORAGE_POWERLOSS_H
#define RAFTKIT_TESTS_STORAGE_POWERLOSS_H

#include <stdint.h>

/* In the parent, once the environment in dir exists (created and synced
 * outside the simulation: a power cut while LMDB creates a brand-new file is
 * not covered) and no child runs: the shadow starts as a copy of it. */
int pl_init(const char *dir);

/* In the child, before opening the environment in dir: from now on, writes
 * to dir/data.mdb, dir/journal.wal and dir/journal.ckpt are logged until
 * synced. Returns 0 or -1. */
int pl_child_begin(const char *dir);

/* In the parent, after the child died: every page written but not synced
 * independently survives or not (rnd decides); counts go to *lost, *kept.
 * Returns 0 or -1 (I/O error). */
int pl_power_loss(const char *dir, uint64_t (*rnd)(void), unsigned *lost, unsigned *kept);

/* Removes the simulation's side files of dir. */
void pl_remove(const char *dir);

#endif /* RAFTKIT_TESTS_STORAGE_POWERLOSS_H */
