/* Announcements of an address that just came to this node: gratuitous ARP over the packet socket (IPv4), one
 * unsolicited neighbour advertisement over a raw ICMPv6 socket (IPv6). Each send is checked against the deadline
 * right before it is made. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dataplane.h"
#include "nd.h"

static int pkt = -1;  /* AF_PACKET SOCK_DGRAM, protocol 0: sends only, receives nothing */
static int pkt_errno; /* why there is no packet socket */
static int ioc = -1;  /* for SIOCGIFHWADDR */

/* Opens the sockets: 0, or -1 (errno set) when there is none for SIOCGIFHWADDR. Without CAP_NET_RAW there is no
 * packet socket: addresses still work, each garp answers with the errno. */
int announce_open(void) {
  pkt = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (pkt < 0) pkt_errno = errno;
  ioc = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  return ioc < 0 ? -1 : 0;
}

static int hwaddr(const char *ifname, unsigned char mac[6]) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strlen(ifname));
  if (ioctl(ioc, SIOCGIFHWADDR, &ifr) < 0) return errno;
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) return EAFNOSUPPORT;
  memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}

struct arp_pkt {
  uint16_t htype, ptype;
  uint8_t hlen, plen;
  uint16_t op;
  uint8_t sha[6], spa[4], tha[6], tpa[4];
} __attribute__((packed));

/* Gratuitous ARP, request form then reply form (as arping -U and -U -P), broadcast. 0, -1 (expired) or errno. */
static int send_garp(const char *ifname, unsigned ifindex, const struct addr *a, uint64_t deadline, uint64_t *sent) {
  if (pkt < 0) return pkt_errno;
  unsigned char mac[6];
  int err = hwaddr(ifname, mac);
  if (err) return err;
  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = (int)ifindex;
  to.sll_halen = 6;
  memset(to.sll_addr, 0xff, 6);
  struct arp_pkt p;
  memset(&p, 0, sizeof p);
  p.htype = htons(ARPHRD_ETHER);
  p.ptype = htons(ETH_P_IP);
  p.hlen = 6;
  p.plen = 4;
  memcpy(p.sha, mac, 6);
  memcpy(p.spa, a->bytes, 4);
  memcpy(p.tpa, a->bytes, 4);
  for (int reply = 0; reply <= 1; reply++) {
    p.op = htons(reply ? ARPOP_REPLY : ARPOP_REQUEST);
    if (reply) memset(p.tha, 0xff, 6);
    if (expired(deadline)) return -1;
    if (sendto(pkt, &p, sizeof p, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof p) return errno;
    if (!reply) *sent = now_ns();
  }
  return 0;
}

/* One unsolicited NA from the address itself: the bind fails for an address that is absent or tentative. */
static int send_na(const char *ifname, unsigned ifindex, const struct addr *a, uint64_t deadline, uint64_t *sent) {
  unsigned char mac[6];
  int err = hwaddr(ifname, mac);
  if (err) return err;
  int s = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (s < 0) return errno;
  int hops = 255, loop = 0; /* RFC 4861: receivers drop ND messages with any other hop limit */
  struct icmp6_filter filter; /* this socket only sends */
  ICMP6_FILTER_SETBLOCKALL(&filter);
  if (setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0 ||
      setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0 ||
      setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0) {
    err = errno;
    close(s);
    return err;
  }
  struct sockaddr_in6 src;
  memset(&src, 0, sizeof src);
  src.sin6_family = AF_INET6;
  memcpy(&src.sin6_addr, a->bytes, 16);
  if (IN6_IS_ADDR_LINKLOCAL(&src.sin6_addr)) src.sin6_scope_id = ifindex;
  if (bind(s, (struct sockaddr *)&src, sizeof src) < 0) {
    err = errno;
    close(s);
    return err;
  }
  struct na_packet p;
  na_packet_fill(&p, a->bytes, mac, 0);
  struct sockaddr_in6 dst;
  na_all_nodes(&dst, ifindex);
  int rc = 0;
  if (expired(deadline)) rc = -1;
  else if (sendto(s, &p, sizeof p, 0, (struct sockaddr *)&dst, sizeof dst) != (ssize_t)sizeof p) rc = errno;
  else *sent = now_ns();
  close(s);
  return rc;
}

/* 0 (sent: when the first packet went out), -1 (expired: the answer is written) or a positive errno. */
int announce(const char *ifname, unsigned ifindex, const struct addr *a, uint64_t deadline, uint64_t *sent) {
  return a->family == AF_INET ? send_garp(ifname, ifindex, a, deadline, sent)
                              : send_na(ifname, ifindex, a, deadline, sent);
}
