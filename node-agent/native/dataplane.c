/*
 * vipwarden-dataplane [PARENT_PID]: the agent's long-running data-path helper (node-agent/dataplane.ts drives it).
 *
 * Address add/replace/delete/list over rtnetlink, gratuitous ARP over an AF_PACKET socket, unsolicited IPv6
 * neighbour advertisements over a raw ICMPv6 socket, in the network namespace it was started in. One process for
 * the agent's life instead of an `ip`, `arping` or `vipwarden-ndsend` per step.
 *
 * Protocol: one request per line on stdin, one answer per line on stdout, in request order. Fields are separated
 * by single spaces; a line is at most 1023 bytes.
 *
 *   request:  ID DEADLINE_NS OP ARGS...
 *   answer:   ID ok [FIELDS...] | ID expired LATE_NS | ID error ERRNO TEXT
 *
 * ID is 1..18 decimal digits, echoed back. DEADLINE_NS is a CLOCK_MONOTONIC time in nanoseconds (the clock of
 * Node's process.hrtime). Requests that act (add, garp, na) must carry one (not 0): CLOCK_MONOTONIC is read
 * immediately before each syscall that acts, and when it is past the deadline that syscall is not made and the
 * answer is `expired` (nothing acted), so that a request decided before a freeze never acts after it. `del` and
 * `list` take 0: removing an address late is always safe, and refusing it would leave the address on.
 *
 *   ping                                        -> ok PID
 *   add IFACE ADDR/PREFIX VALID PREFERRED ANN   -> ok new|existed CHECKED_NS ACKED_NS ANNOUNCED_NS
 *        create (NLM_F_EXCL), or when it exists replace its lifetimes (NLM_F_REPLACE); IPv6 with IFA_F_NODAD.
 *        ANN 1: right after the kernel acknowledged a new address, announce it (IPv4: gratuitous ARP, request and
 *        reply form; IPv6: one unsolicited NA). ANNOUNCED_NS is when the announcement went out (0: none).
 *   del IFACE ADDR/PREFIX                       -> ok deleted|absent
 *   list                                        -> ok [IFNAME/FAMILY/ADDR/PREFIX/VALID/PREFERRED/FLAGS ...]
 *        every address of the namespace; VALID and PREFERRED in seconds, 4294967295 for forever. '/' cannot occur
 *        in an interface name or an address.
 *   garp IFACE ADDR                             -> ok SENT_NS   (one request-form and one reply-form ARP)
 *   na IFACE ADDR                               -> ok SENT_NS   (one unsolicited NA, Override flag, to ff02::1)
 *   fence set|del ...                           -> the fast fence's nf_tables elements (fence.c)
 *
 * garp and na refuse (error EADDRNOTAVAIL) to announce an address that is not configured on IFACE (any more), or
 * is tentative or failed DAD: an announcement still queued when the address left this node would point the
 * neighbours back here while another node holds it.
 *
 * It exits 0 when stdin closes (the agent is gone, or closed it), and is killed with SIGKILL when its parent dies
 * (PR_SET_PDEATHSIG). SIGINT, SIGTERM and SIGHUP are ignored: a terminal's Ctrl-C or systemd's stop signal to the
 * whole control group must not take the helper away while the agent is releasing its addresses on the way out.
 * Needs CAP_NET_ADMIN (addresses) and CAP_NET_RAW (announcements; without it they fail with EPERM, and addresses
 * still work).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fence.h"

#define MAX_LINE 1024
#define MAX_ARGS 8

static int nl = -1;     /* NETLINK_ROUTE, bound once */
static int pkt = -1;    /* AF_PACKET SOCK_DGRAM, protocol 0: sends only, receives nothing */
static int pkt_errno;   /* why there is no packet socket */
static int ioc = -1;    /* for SIOCGIFHWADDR */
static uint32_t seq = 1;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The answer being built for the current request; written out in one piece. Grows for long lists. */
static char *out;
static size_t outlen, outcap;
static int outfull;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + outlen, outcap - outlen, fmt, ap);
    va_end(ap);
    if (n < 0) {
      outfull = 1;
      return;
    }
    if ((size_t)n < outcap - outlen) {
      outlen += (size_t)n;
      return;
    }
    char *bigger = outcap < (64u << 20) ? realloc(out, outcap * 2) : NULL;
    if (!bigger) {
      outfull = 1;
      out[outlen] = '\0';
      return;
    }
    out = bigger;
    outcap *= 2;
  }
}

/* Deadline: returns 1 (and writes the `expired` answer) when it has passed. */
static uint64_t checked_at;
static int expired(uint64_t deadline) {
  checked_at = now_ns();
  if (checked_at <= deadline) return 0;
  outlen = 0;
  emit("expired %llu", (unsigned long long)(checked_at - deadline));
  return 1;
}

static int fail(int err, const char *what) {
  outlen = 0;
  emit("error %d %s: %s", err, what, strerror(err));
  return -1;
}

/* ---- rtnetlink ---- */

struct nlreq {
  struct nlmsghdr h;
  struct ifaddrmsg a;
  char attrs[256];
};

static void addattr(struct nlreq *r, unsigned short type, const void *data, size_t len) {
  struct rtattr *rta = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

static char rbuf[65536];

/* Waits for the acknowledgement of `s`: returns 0 or a positive errno. */
static int nl_ack(uint32_t s) {
  for (;;) {
    ssize_t n = recv(nl, rbuf, sizeof rbuf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != s) continue; /* an answer to a request given up on earlier */
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        return -e->error;
      }
    }
  }
}

/* Sends one request; 0 or a positive errno. */
static int nl_send(struct nlreq *r) {
  for (;;) {
    ssize_t n = send(nl, r, r->h.nlmsg_len, 0);
    if (n == (ssize_t)r->h.nlmsg_len) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : EIO;
  }
}

struct addr {
  int family;
  unsigned char bytes[16];
  int prefix;
};

static size_t alen(int family) { return family == AF_INET ? 4 : 16; }

static void addr_req(struct nlreq *r, int type, int flags, const struct addr *a, unsigned ifindex) {
  memset(r, 0, sizeof *r);
  r->h.nlmsg_len = NLMSG_LENGTH(sizeof r->a);
  r->h.nlmsg_type = (unsigned short)type;
  r->h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
  r->h.nlmsg_seq = ++seq;
  r->a.ifa_family = (unsigned char)a->family;
  r->a.ifa_prefixlen = (unsigned char)a->prefix;
  r->a.ifa_index = ifindex;
  r->a.ifa_scope = RT_SCOPE_UNIVERSE;
  addattr(r, IFA_LOCAL, a->bytes, alen(a->family));
  addattr(r, IFA_ADDRESS, a->bytes, alen(a->family));
}

struct found {
  unsigned ifindex, family, prefix, flags, valid, preferred;
  unsigned char bytes[16];
};

typedef int (*addr_fn)(const struct found *f, void *arg);

/* Dumps the addresses of `family` (AF_UNSPEC: all), calling fn for each; 0 or a positive errno. */
static int dump(int family, addr_fn fn, void *arg) {
  struct nlreq r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.a);
  r.h.nlmsg_type = RTM_GETADDR;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  r.h.nlmsg_seq = ++seq;
  r.a.ifa_family = (unsigned char)family;
  int err = nl_send(&r);
  if (err) return err;
  int stop = 0;
  for (;;) {
    ssize_t n = recv(nl, rbuf, sizeof rbuf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != r.h.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        return e->error ? -e->error : EIO;
      }
      if (h->nlmsg_type != RTM_NEWADDR || stop) continue;
      struct ifaddrmsg *ifa = NLMSG_DATA(h);
      struct found f;
      memset(&f, 0, sizeof f);
      f.ifindex = ifa->ifa_index;
      f.family = ifa->ifa_family;
      f.prefix = ifa->ifa_prefixlen;
      f.flags = ifa->ifa_flags;
      f.valid = f.preferred = 0xFFFFFFFFu;
      const void *local = NULL, *address = NULL;
      int len = (int)IFA_PAYLOAD(h);
      for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFA_LOCAL) local = RTA_DATA(a);
        else if (a->rta_type == IFA_ADDRESS) address = RTA_DATA(a);
        else if (a->rta_type == IFA_FLAGS && RTA_PAYLOAD(a) >= 4) memcpy(&f.flags, RTA_DATA(a), 4);
        else if (a->rta_type == IFA_CACHEINFO && RTA_PAYLOAD(a) >= sizeof(struct ifa_cacheinfo)) {
          const struct ifa_cacheinfo *ci = RTA_DATA(a);
          f.valid = ci->ifa_valid;
          f.preferred = ci->ifa_prefered;
        }
      }
      const void *mine = local ? local : address;
      if (!mine || (f.family != AF_INET && f.family != AF_INET6)) continue;
      memcpy(f.bytes, mine, alen((int)f.family));
      if (fn(&f, arg)) stop = 1; /* keep reading to NLMSG_DONE */
    }
  }
}

struct want {
  const struct addr *a;
  unsigned ifindex;
  int usable;
};

static int match(const struct found *f, void *arg) {
  struct want *w = arg;
  if (f->ifindex != w->ifindex || (int)f->family != w->a->family) return 0;
  if (memcmp(f->bytes, w->a->bytes, alen(w->a->family)) != 0) return 0;
  w->usable = !(f->flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED));
  return 1;
}

/* 0 when `a` is configured on ifindex and usable; else a positive errno (EADDRNOTAVAIL). */
static int present(const struct addr *a, unsigned ifindex) {
  struct want w = {a, ifindex, 0};
  int err = dump(a->family, match, &w);
  if (err) return err;
  return w.usable ? 0 : EADDRNOTAVAIL;
}

/* ---- announcements ---- */

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
  struct {
    struct nd_neighbor_advert na;
    struct nd_opt_hdr opt;
    unsigned char lladdr[6];
  } __attribute__((packed)) p;
  memset(&p, 0, sizeof p);
  p.na.nd_na_type = ND_NEIGHBOR_ADVERT;
  p.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
  memcpy(&p.na.nd_na_target, a->bytes, 16);
  p.opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
  p.opt.nd_opt_len = 1; /* in units of 8 octets */
  memcpy(p.lladdr, mac, 6);
  struct sockaddr_in6 dst;
  memset(&dst, 0, sizeof dst);
  dst.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "ff02::1", &dst.sin6_addr);
  dst.sin6_scope_id = ifindex;
  int rc = 0;
  if (expired(deadline)) rc = -1;
  else if (sendto(s, &p, sizeof p, 0, (struct sockaddr *)&dst, sizeof dst) != (ssize_t)sizeof p) rc = errno;
  else *sent = now_ns();
  close(s);
  return rc;
}

static int announce(const char *ifname, unsigned ifindex, const struct addr *a, uint64_t deadline, uint64_t *sent) {
  return a->family == AF_INET ? send_garp(ifname, ifindex, a, deadline, sent)
                              : send_na(ifname, ifindex, a, deadline, sent);
}

/* ---- requests ---- */

static int parse_u64(const char *s, uint64_t *v) {
  if (!*s || strlen(s) > 19) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  *v = strtoull(s, NULL, 10);
  return 0;
}

/* "ADDR" (want_prefix 0) or "ADDR/PREFIX" */
static int parse_addr(const char *s, int want_prefix, struct addr *a) {
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

static int parse_iface(const char *s, unsigned *ifindex) {
  if (!*s || strlen(s) >= IFNAMSIZ) return EINVAL;
  *ifindex = if_nametoindex(s);
  return *ifindex ? 0 : ENODEV;
}

static int op_add(char **v, int n, uint64_t deadline) {
  struct addr a;
  unsigned ifindex;
  uint64_t valid, preferred, ann;
  if (n != 5 || parse_addr(v[1], 1, &a) || parse_u64(v[2], &valid) || parse_u64(v[3], &preferred) ||
      parse_u64(v[4], &ann) || valid < 1 || valid >= 0xFFFFFFFFu || preferred > valid || ann > 1 || !deadline)
    return fail(EINVAL, "add IFACE ADDR/PREFIX VALID PREFERRED 0|1 with a deadline");
  int err = parse_iface(v[0], &ifindex);
  if (err) return fail(err, v[0]);
  struct nlreq r;
  struct ifa_cacheinfo ci = {.ifa_prefered = (uint32_t)preferred, .ifa_valid = (uint32_t)valid};
  /* First try to create it (nothing happens when it exists), to learn whether it is new. */
  int created = 1;
  for (int attempt = 0; attempt < 2; attempt++) {
    addr_req(&r, RTM_NEWADDR, attempt == 0 ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_CREATE | NLM_F_REPLACE, &a, ifindex);
    /* No duplicate address detection for a VIP: it moves on purpose, and DAD would delay it by a second. */
    if (a.family == AF_INET6) r.a.ifa_flags = IFA_F_NODAD;
    addattr(&r, IFA_CACHEINFO, &ci, sizeof ci);
    if (expired(deadline)) return -1;
    err = nl_send(&r);
    if (!err) err = nl_ack(r.h.nlmsg_seq);
    if (err != EEXIST || attempt) break;
    created = 0;
  }
  uint64_t acked = now_ns(), checked = checked_at, sent = 0;
  if (err) return fail(err, "RTM_NEWADDR");
  if (created && ann) {
    int rc = announce(v[0], ifindex, &a, deadline, &sent);
    if (rc) sent = 0; /* the address is there; the announcer's burst follows anyway */
  }
  outlen = 0;
  emit("ok %s %llu %llu %llu", created ? "new" : "existed", (unsigned long long)checked,
       (unsigned long long)acked, (unsigned long long)sent);
  return 0;
}

static int op_del(char **v, int n) {
  struct addr a;
  unsigned ifindex;
  if (n != 2 || parse_addr(v[1], 1, &a)) return fail(EINVAL, "del IFACE ADDR/PREFIX");
  int err = parse_iface(v[0], &ifindex);
  if (err == ENODEV) { /* no interface, no address on it */
    emit("ok absent");
    return 0;
  }
  if (err) return fail(err, v[0]);
  struct nlreq r;
  addr_req(&r, RTM_DELADDR, 0, &a, ifindex);
  err = nl_send(&r);
  if (!err) err = nl_ack(r.h.nlmsg_seq);
  if (err && err != EADDRNOTAVAIL) return fail(err, "RTM_DELADDR");
  emit("ok %s", err ? "absent" : "deleted");
  return 0;
}

struct names {
  unsigned index[64];
  char name[64][IFNAMSIZ];
  int n;
};

static int list_one(const struct found *f, void *arg) {
  struct names *c = arg;
  const char *name = NULL;
  for (int i = 0; i < c->n; i++)
    if (c->index[i] == f->ifindex) name = c->name[i];
  char tmp[IFNAMSIZ];
  if (!name) {
    if (!if_indextoname(f->ifindex, tmp)) return 0; /* gone meanwhile */
    if (c->n < 64) {
      c->index[c->n] = f->ifindex;
      memcpy(c->name[c->n++], tmp, IFNAMSIZ);
    }
    name = tmp;
  }
  char text[INET6_ADDRSTRLEN];
  inet_ntop((int)f->family, f->bytes, text, sizeof text);
  emit(" %s/%d/%s/%u/%u/%u/%u", name, f->family == AF_INET ? 4 : 6, text, f->prefix, f->valid, f->preferred,
       f->flags);
  return 0;
}

static int op_list(int n) {
  if (n != 0) return fail(EINVAL, "list");
  struct names c = {.n = 0};
  emit("ok");
  int err = dump(AF_UNSPEC, list_one, &c);
  if (err) return fail(err, "RTM_GETADDR");
  if (outfull) return fail(E2BIG, "list");
  return 0;
}

static int op_announce(char **v, int n, uint64_t deadline, int family) {
  struct addr a;
  unsigned ifindex;
  if (n != 2 || parse_addr(v[1], 0, &a) || a.family != family || !deadline)
    return fail(EINVAL, family == AF_INET ? "garp IFACE IPV4 with a deadline" : "na IFACE IPV6 with a deadline");
  int err = parse_iface(v[0], &ifindex);
  if (err) return fail(err, v[0]);
  err = present(&a, ifindex);
  if (err) return fail(err, "not a usable address of this interface (absent or tentative)");
  uint64_t sent = 0;
  int rc = announce(v[0], ifindex, &a, deadline, &sent);
  if (rc < 0) return -1; /* expired */
  if (rc) return fail(rc, family == AF_INET ? "sending ARP" : "sending NA");
  outlen = 0;
  emit("ok %llu", (unsigned long long)sent);
  return 0;
}

static void handle(char *line) {
  char *v[MAX_ARGS + 3];
  int n = 0;
  for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
    if (n == MAX_ARGS + 3) {
      n++;
      break;
    }
    v[n++] = t;
  }
  uint64_t id, deadline;
  outlen = 0;
  outfull = 0;
  if (n < 3 || n > MAX_ARGS + 3 || strlen(v[0]) > 18 || parse_u64(v[0], &id) || parse_u64(v[1], &deadline)) {
    fprintf(stdout, "- error %d bad request\n", EINVAL);
    fflush(stdout);
    return;
  }
  const char *op = v[2];
  char **args = v + 3;
  int nargs = n - 3;
  if (!strcmp(op, "ping")) emit("ok %d", (int)getpid());
  else if (!strcmp(op, "add")) op_add(args, nargs, deadline);
  else if (!strcmp(op, "del")) op_del(args, nargs);
  else if (!strcmp(op, "list")) op_list(nargs);
  else if (!strcmp(op, "garp")) op_announce(args, nargs, deadline, AF_INET);
  else if (!strcmp(op, "na")) op_announce(args, nargs, deadline, AF_INET6);
  else if (!strcmp(op, "fence")) outlen = fence_op(args, nargs, deadline, out, outcap); /* fence.c */
  else fail(EINVAL, "unknown request");
  fprintf(stdout, "%llu %.*s\n", (unsigned long long)id, (int)outlen, out);
  fflush(stdout);
}

int main(int argc, char **argv) {
  /* Dies with the agent: SIGKILL when the parent goes, and a check for a parent gone before the prctl. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc > 1 && getppid() != (pid_t)atol(argv[1])) return 1;
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  /* Best effort: no page fault (a disk read under memory pressure) between a deadline check and its syscall. */
  mlockall(MCL_CURRENT);

  nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (nl < 0 || bind(nl, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("vipwarden-dataplane: netlink");
    return 1;
  }
  struct timeval tv = {.tv_sec = 5}; /* never wait for the kernel forever */
  setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  /* Without CAP_NET_RAW there is no packet socket: addresses still work, each garp answers with the errno. */
  pkt = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (pkt < 0) pkt_errno = errno;
  ioc = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ioc < 0) {
    perror("vipwarden-dataplane: socket");
    return 1;
  }

  outcap = 16384;
  out = malloc(outcap);
  if (!out) return 1;

  char line[MAX_LINE];
  while (fgets(line, sizeof line, stdin)) {
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n') {
      /* Too long (or cut off by EOF): skip to the end of the line and refuse it. */
      int c = 0;
      if (len == sizeof line - 1)
        while ((c = getchar()) != EOF && c != '\n') {
        }
      fprintf(stdout, "- error %d bad request\n", EINVAL);
      fflush(stdout);
      if (c == EOF) break;
      continue;
    }
    line[len - 1] = '\0';
    handle(line);
  }
  return 0;
}
