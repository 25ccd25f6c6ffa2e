// vipwarden-ndsend: unsolicited IPv6 neighbour advertisements for an address that just moved to this node, so
// that neighbours update their caches at once (RFC 4861 7.2.6) instead of sending to the old node until their
// entry times out. Debian 12 ships no ndsend; this is the part of it that vipwarden needs.
//
//   vipwarden-ndsend -i IFACE [-c COUNT] [-w INTERVAL_MS] [-R] ADDRESS
//
// Sends COUNT advertisements (default 3), INTERVAL_MS apart (default 100), from ADDRESS to ff02::1 (all nodes)
// (ADDRESS must be configured on this node, usable, so added with nodad or after DAD)
// on IFACE, hop limit 255, with the Override flag (and Router with -R), the target ADDRESS and IFACE's link-layer
// address (the packet: native/nd.h). The kernel fills in the ICMPv6 checksum. Needs CAP_NET_RAW.
// Exit 0: all sent; 1: failure; 2: usage.
// Built at first use by node-agent/ndsend.ts (gcc), or ahead of time: gcc -O2 -o vipwarden-ndsend ndsend.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "native/nd.h" // the packet, shared with vipwarden-dataplane

static void usage(void) {
  fprintf(stderr, "usage: vipwarden-ndsend -i IFACE [-c COUNT] [-w INTERVAL_MS] [-R] ADDRESS\n");
  exit(2);
}

static long number(const char *s, long min, long max, const char *what) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !end || *end || v < min || v > max) {
    fprintf(stderr, "vipwarden-ndsend: %s must be %ld..%ld, got %s\n", what, min, max, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *ifname = NULL;
  long count = 3, interval_ms = 100;
  int router = 0, opt;
  while ((opt = getopt(argc, argv, "i:c:w:Rh")) != -1) {
    switch (opt) {
      case 'i': ifname = optarg; break;
      case 'c': count = number(optarg, 1, 100, "count"); break;
      case 'w': interval_ms = number(optarg, 0, 10000, "interval"); break;
      case 'R': router = 1; break;
      default: usage();
    }
  }
  if (!ifname || optind != argc - 1) usage();
  if (strlen(ifname) >= IFNAMSIZ) {
    fprintf(stderr, "vipwarden-ndsend: interface name too long\n");
    return 2;
  }
  struct in6_addr target;
  if (inet_pton(AF_INET6, argv[optind], &target) != 1) {
    fprintf(stderr, "vipwarden-ndsend: not an IPv6 address: %s\n", argv[optind]);
    return 2;
  }
  if (IN6_IS_ADDR_MULTICAST(&target) || IN6_IS_ADDR_UNSPECIFIED(&target)) {
    fprintf(stderr, "vipwarden-ndsend: %s cannot be advertised\n", argv[optind]);
    return 2;
  }
  unsigned ifindex = if_nametoindex(ifname);
  if (!ifindex) {
    fprintf(stderr, "vipwarden-ndsend: no interface %s: %s\n", ifname, strerror(errno));
    return 1;
  }

  // The interface's link-layer address, for the Target Link-Layer Address option.
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strlen(ifname));
  int q = socket(AF_INET6, SOCK_DGRAM, 0);
  if (q < 0 || ioctl(q, SIOCGIFHWADDR, &ifr) < 0) {
    fprintf(stderr, "vipwarden-ndsend: cannot read the hardware address of %s: %s\n", ifname, strerror(errno));
    return 1;
  }
  close(q);
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    fprintf(stderr, "vipwarden-ndsend: %s is not an Ethernet interface\n", ifname);
    return 1;
  }

  int s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
  if (s < 0) {
    fprintf(stderr, "vipwarden-ndsend: raw ICMPv6 socket: %s\n", strerror(errno));
    return 1;
  }
  int hops = 255;  // RFC 4861: receivers drop ND messages with any other hop limit
  if (setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0) {
    fprintf(stderr, "vipwarden-ndsend: setsockopt: %s\n", strerror(errno));
    return 1;
  }
  int loop = 0;
  setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop);
  struct icmp6_filter filter;  // this socket only sends
  ICMP6_FILTER_SETBLOCKALL(&filter);
  setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter);

  // From the advertised address itself. The bind also makes sure that the address is configured here (and not
  // tentative): an advertisement sent after the address left this node (a repeat still in flight at release)
  // would point neighbours back at this node while another one holds the address.
  struct sockaddr_in6 src;
  memset(&src, 0, sizeof src);
  src.sin6_family = AF_INET6;
  src.sin6_addr = target;
  if (IN6_IS_ADDR_LINKLOCAL(&target)) src.sin6_scope_id = ifindex;
  if (bind(s, (struct sockaddr *)&src, sizeof src) < 0) {
    if (errno == EADDRNOTAVAIL)
      fprintf(stderr, "vipwarden-ndsend: %s is not a usable address of this node (absent or tentative)\n", argv[optind]);
    else
      fprintf(stderr, "vipwarden-ndsend: bind: %s\n", strerror(errno));
    return 1;
  }

  struct na_packet pkt;
  na_packet_fill(&pkt, &target, (const unsigned char *)ifr.ifr_hwaddr.sa_data, router);
  struct sockaddr_in6 dst;
  na_all_nodes(&dst, ifindex);

  for (long i = 0; i < count; i++) {
    if (sendto(s, &pkt, sizeof pkt, 0, (struct sockaddr *)&dst, sizeof dst) != (ssize_t)sizeof pkt) {
      fprintf(stderr, "vipwarden-ndsend: sendto: %s\n", strerror(errno));
      return 1;
    }
    if (i + 1 < count && interval_ms > 0) {
      struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
      while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
      }
    }
  }
  close(s);
  return 0;
}
