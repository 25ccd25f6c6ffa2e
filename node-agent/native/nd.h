/*
 * The unsolicited neighbour advertisement (RFC 4861 7.2.6) that vipwarden-dataplane (announce.c) and
 * vipwarden-ndsend (../ndsend.c) send: Override flag, the target address and the interface's link-layer address,
 * to ff02::1 (all nodes) on the interface. The kernel fills in the ICMPv6 checksum.
 * Header-only, so that ndsend.c still builds alone: gcc -O2 -o vipwarden-ndsend ndsend.c
 */
#ifndef VIPWARDEN_ND_H
#define VIPWARDEN_ND_H

#include <arpa/inet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>

struct na_packet {
  struct nd_neighbor_advert na;
  struct nd_opt_hdr opt;
  unsigned char lladdr[6];
} __attribute__((packed));

static inline void na_packet_fill(struct na_packet *p, const void *target, const unsigned char mac[6], int router) {
  memset(p, 0, sizeof *p);
  p->na.nd_na_type = ND_NEIGHBOR_ADVERT;
  p->na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE | (router ? ND_NA_FLAG_ROUTER : 0);
  memcpy(&p->na.nd_na_target, target, 16);
  p->opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
  p->opt.nd_opt_len = 1; /* in units of 8 octets */
  memcpy(p->lladdr, mac, 6);
}

/* ff02::1 on ifindex. */
static inline void na_all_nodes(struct sockaddr_in6 *dst, unsigned ifindex) {
  memset(dst, 0, sizeof *dst);
  dst->sin6_family = AF_INET6;
  inet_pton(AF_INET6, "ff02::1", &dst->sin6_addr);
  dst->sin6_scope_id = ifindex;
}

#endif
