/* The fast fence's requests of vipwarden-dataplane (fence.c; node-agent/fence/ drives them). */
#ifndef VIPWARDEN_FENCE_H
#define VIPWARDEN_FENCE_H
#include <stddef.h>
#include <stdint.h>

/*
 * Handles `fence set TABLE EXPIRES_NS ADDR[,ADDR...]` (needs DEADLINE_NS) and `fence del TABLE ADDR[,ADDR...]`.
 * Writes the answer (without id) into out (cap bytes): "ok ...", "expired LATE_NS" or "error ERRNO TEXT".
 * Returns its length.
 */
size_t fence_op(char **v, int n, uint64_t deadline, char *out, size_t cap);

#endif
