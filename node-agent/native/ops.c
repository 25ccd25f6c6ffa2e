/* One function per request (the protocol is described in dataplane.c). Each writes its answer (answer.c) and
 * returns 0, or -1 when the answer is an error or `expired`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include "dataplane.h"

int op_add(char **v, int n, uint64_t deadline) {
  struct addr a;
  unsigned ifindex;
  uint64_t valid, preferred, ann;
  if (n != 5 || parse_addr(v[1], 1, &a) || parse_u64(v[2], &valid) || parse_u64(v[3], &preferred) ||
      parse_u64(v[4], &ann) || valid < 1 || valid >= 0xFFFFFFFFu || preferred > valid || ann > 1 || !deadline)
    return fail(EINVAL, "add IFACE ADDR/PREFIX VALID PREFERRED 0|1 with a deadline");
  int err = parse_iface(v[0], &ifindex);
  if (err) return fail(err, v[0]);
  /* Its gate was removed by another process (fencewatch.c): not without the gate. */
  if (fwatch_refuses(a.family, a.bytes)) return fail(ENOENT, "fence table changed by another process");
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
    err = nl_request(&r);
    if (err != EEXIST || attempt) break;
    created = 0;
  }
  uint64_t acked = now_ns(), checked = checked_at, sent = 0;
  if (err) return fail(err, "RTM_NEWADDR");
  track_set(ifindex, &a, acked, valid);
  if (created && ann) {
    int rc = announce(v[0], ifindex, &a, deadline, &sent);
    if (rc) sent = 0; /* the address is there; the announcer's burst follows anyway */
  }
  answer_reset();
  emit("ok %s %llu %llu %llu", created ? "new" : "existed", (unsigned long long)checked,
       (unsigned long long)acked, (unsigned long long)sent);
  return 0;
}

int op_del(char **v, int n) {
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
  err = nl_request(&r);
  if (err && err != EADDRNOTAVAIL) return fail(err, "RTM_DELADDR");
  track_drop(ifindex, &a);
  emit("ok %s", err ? "absent" : "deleted");
  return 0;
}

/* The names of the interfaces seen so far in one list, so that each is looked up once. */
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

int op_list(int n) {
  if (n != 0) return fail(EINVAL, "list");
  struct names c = {.n = 0};
  emit("ok");
  int err = dump(AF_UNSPEC, list_one, &c);
  if (err) return fail(err, "RTM_GETADDR");
  if (answer_full()) return fail(E2BIG, "list");
  return 0;
}

int op_announce(char **v, int n, uint64_t deadline, int family) {
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
  answer_reset();
  emit("ok %llu", (unsigned long long)sent);
  return 0;
}
