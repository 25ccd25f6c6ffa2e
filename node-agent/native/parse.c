/* The fields of a request: unsigned numbers, addresses (with or without a prefix length), interface names. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"

/* 1..19 decimal digits; 0 or -1. */
int parse_u64(const char *s, uint64_t *v) {
  if (!*s || strlen(s) > 19) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  *v = strtoull(s, NULL, 10);
  return 0;
}

/* "ADDR" (want_prefix 0) or "ADDR/PREFIX"; IPv6 multicast and the unspecified address are refused. 0 or -1. */
int parse_addr(const char *s, int want_prefix, struct addr *a) {
  char buf[64];
  if (strlen(s) >= sizeof buf) return -1;
  strcpy(buf, s);
  char *slash = strchr(buf, '/');
  if (want_prefix != (slash != NULL)) return -1;
  if (slash) *slash = '\0';
  memset(a, 0, sizeof *a);
  if (inet_pton(AF_INET, buf, a->bytes) == 1) a->family = AF_INET;
  else if (inet_pton(AF_INET6, buf, a->bytes) == 1) a->family = AF_INET6;
  else return -1;
  int max = a->family == AF_INET ? 32 : 128;
  a->prefix = max;
  if (slash) {
    uint64_t p;
    if (parse_u64(slash + 1, &p) || p > (uint64_t)max) return -1;
    a->prefix = (int)p;
  }
  if (a->family == AF_INET6 && (a->bytes[0] == 0xff || IN6_IS_ADDR_UNSPECIFIED((struct in6_addr *)a->bytes)))
    return -1;
  return 0;
}

/* The index of an existing interface; 0, EINVAL (not a name) or ENODEV. */
int parse_iface(const char *s, unsigned *ifindex) {
  if (!*s || strlen(s) >= IFNAMSIZ) return EINVAL;
  *ifindex = if_nametoindex(s);
  return *ifindex ? 0 : ENODEV;
}
