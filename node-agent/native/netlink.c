/* rtnetlink: the socket, address requests and their acknowledgements, the address dump. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "dataplane.h"

static int nl = -1; /* NETLINK_ROUTE, bound once */
static uint32_t seq = 1;
static char rbuf[65536];

/* Opens and binds the socket; 0 or -1 (errno set). */
int nl_open(void) {
  nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (nl < 0 || bind(nl, (struct sockaddr *)&sa, sizeof sa) < 0) return -1;
  struct timeval tv = {.tv_sec = 5}; /* never wait for the kernel forever */
  setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return 0;
}

size_t alen(int family) { return family == AF_INET ? 4 : 16; }

void addattr(struct nlreq *r, unsigned short type, const void *data, size_t len) {
  struct rtattr *rta = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(rta->rta_len);
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

typedef void (*msg_fn)(const struct nlmsghdr *h, void *arg);

/*
 * Reads the kernel's answers to request `s` until it ends: with on_msg NULL at its acknowledgement (returns 0 or
 * the errno in it); else at NLMSG_DONE (0) or NLMSG_ERROR (its errno, EIO for none), every other message of the
 * request passed to on_msg. Returns a positive errno when the socket fails (or times out).
 */
static int nl_wait(uint32_t s, msg_fn on_msg, void *arg) {
  for (;;) {
    ssize_t n = recv(nl, rbuf, sizeof rbuf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != s) continue; /* an answer to a request given up on earlier */
      if (h->nlmsg_type == NLMSG_DONE && on_msg) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        return e->error || !on_msg ? -e->error : EIO;
      }
      if (on_msg) on_msg(h, arg);
    }
  }
}

/* Sends a request made by addr_req and waits for its acknowledgement; 0 or a positive errno. */
int nl_request(struct nlreq *r) {
  int err = nl_send(r);
  return err ? err : nl_wait(r->h.nlmsg_seq, NULL, NULL);
}

void addr_req(struct nlreq *r, int type, int flags, const struct addr *a, unsigned ifindex) {
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

struct dumping {
  addr_fn fn;
  void *arg;
  int stop; /* fn asked for no more; the dump is still read to its end */
};

static void dumped(const struct nlmsghdr *h, void *arg) {
  struct dumping *d = arg;
  if (h->nlmsg_type != RTM_NEWADDR || d->stop) return;
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
  if (!mine || (f.family != AF_INET && f.family != AF_INET6)) return;
  memcpy(f.bytes, mine, alen((int)f.family));
  if (d->fn(&f, d->arg)) d->stop = 1;
}

/* Dumps the addresses of `family` (AF_UNSPEC: all), calling fn for each until it returns non-zero; 0 or a
 * positive errno. */
int dump(int family, addr_fn fn, void *arg) {
  struct nlreq r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.a);
  r.h.nlmsg_type = RTM_GETADDR;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  r.h.nlmsg_seq = ++seq;
  r.a.ifa_family = (unsigned char)family;
  int err = nl_send(&r);
  if (err) return err;
  struct dumping d = {fn, arg, 0};
  return nl_wait(r.h.nlmsg_seq, dumped, &d);
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

/* 0 when `a` is configured on ifindex and usable (not tentative, not failed DAD); else a positive errno
 * (EADDRNOTAVAIL). */
int present(const struct addr *a, unsigned ifindex) {
  struct want w = {a, ifindex, 0};
  int err = dump(a->family, match, &w);
  if (err) return err;
  return w.usable ? 0 : EADDRNOTAVAIL;
}
