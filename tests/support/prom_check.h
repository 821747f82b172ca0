/* A strict checker for the Prometheus text exposition format 0.0.4, for
 * tests: stricter than Prometheus itself where raftkit promises more (every
 * family has HELP and TYPE before its samples). */
#ifndef RAFTKIT_TESTS_PROM_CHECK_H
#define RAFTKIT_TESTS_PROM_CHECK_H

#include <stddef.h>

/* Checks text; returns 0, or -1 with a message naming the line in err. */
int prom_check(const char *text, char *err, size_t errlen);

/* The value of the sample whose line starts with "name{labels}" exactly as
 * given (e.g. "raftkit_term{group=\"g\",peer=\"127.0.0.1:1\"}"); returns 0
 * and sets *out, or -1 when absent. */
int prom_sample(const char *text, const char *name_and_labels, double *out);

#endif /* RAFTKIT_TESTS_PROM_CHECK_H */
