/*
 * The fast fence (issue 13) in vipwarden-dataplane: nf_tables set elements over NETLINK_NETFILTER, one batch (one
 * nf_tables transaction) per request. The table, its sets and its rules are loaded by the agent with `nft -f`
 * (node-agent/fence/ruleset.ts); this file only adds and deletes elements, because renewing them must be checked
 * against the request's deadline immediately before the kernel acts, as address renewals are (dataplane.c).
 *
 *   fence set TABLE EXPIRES_NS ADDR[,ADDR...]   (DEADLINE_NS required)  -> ok CHECKED_NS ACKED_NS TIMEOUT_MS
 *        For each address: an element of live4/live6 in `inet TABLE` (and of live4 in `arp TABLE` for IPv4) with
 *        the timeout EXPIRES_NS - now (whole ms, rounded down), and an element of gated4/gated6 (no timeout) in
 *        the same tables. All in one transaction: the gate never exists without a live element, nor the other
 *        way round. CLOCK_MONOTONIC is read immediately before the send; past DEADLINE_NS, or with less than 1 ms
 *        to EXPIRES_NS, nothing is sent and the answer is `expired`. The kernel stamps the elements' start inside
 *        that send (the transaction's jiffies); if the send took longer than FENCE_ACT_NS from the clock reading,
 *        the timeout is set again from a fresh reading, shorter by the last send's time (at most twice), and if
 *        those are slow too the live elements are deleted (the fence closes early: safe) and the answer is
 *        `error ETIME`. Either way an element ends by EXPIRES_NS + FENCE_ACT_NS.
 *   fence del TABLE ADDR[,ADDR...]                                   -> ok
 *        Deletes the addresses' live and gated elements (absent ones are skipped). Never refused for lateness.
 *
 * Every address set is watched (fencewatch.c): when another process removes the table, a chain's rules or a gate,
 * the helper deletes the fenced addresses, and `fence set` answers `error 2` (ENOENT) until the table is whole.
 */
#define _GNU_SOURCE
#include "dataplane.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FENCE_MAX_ADDRS 32
#define FENCE_ACT_NS 20000000ULL /* 20 ms: the most a send may take before its timeout is set again */

static int nfs = -1;
static uint32_t nfseq = 1;
static uint32_t nfs_portid; /* its notifications are the helper's own (fencewatch.c) */

/* The answer, written once per request (answer.c). */
#define ANSWER(...) (answer_reset(), emit(__VA_ARGS__), 0)

struct faddr {
  int family;
  unsigned char bytes[16];
};

/* ---- building a batch (also fencewatch.c's queries; declared in dataplane.h) ---- */

void *nf_put(struct batch *b, size_t n) {
  void *p = b->data + b->len;
  memset(p, 0, NLMSG_ALIGN(n));
  b->len += NLMSG_ALIGN(n);
  return p;
}

size_t nf_msg_begin(struct batch *b, uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
  size_t at = b->len;
  struct nlmsghdr *h = nf_put(b, NLMSG_HDRLEN);
  h->nlmsg_type = type;
  h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
  h->nlmsg_seq = nfseq++;
  struct nfgenmsg *g = nf_put(b, sizeof *g);
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(res_id);
  return at;
}

void nf_msg_end(struct batch *b, size_t at) {
  ((struct nlmsghdr *)(b->data + at))->nlmsg_len = (uint32_t)(b->len - at);
}

void nf_attr(struct batch *b, uint16_t type, const void *data, size_t n) {
  struct nlattr *a = nf_put(b, NLA_HDRLEN + n);
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + n);
  memcpy((char *)a + NLA_HDRLEN, data, n);
}

size_t nf_nest_begin(struct batch *b, uint16_t type) {
  size_t at = b->len;
  struct nlattr *a = nf_put(b, NLA_HDRLEN);
  a->nla_type = (uint16_t)(type | NLA_F_NESTED);
  return at;
}

void nf_nest_end(struct batch *b, size_t at) {
  ((struct nlattr *)(b->data + at))->nla_len = (uint16_t)(b->len - at);
}

static void batch_begin(struct batch *b) {
  b->len = 0;
  b->first = b->last = 0;
  nf_msg_end(b, nf_msg_begin(b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES));
}

static void batch_end(struct batch *b) {
  nf_msg_end(b, nf_msg_begin(b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES));
}

/* One NEWSETELEM or DELSETELEM of `set` in TABLE of `family` with the addresses of `afam` (timeout_ms 0: none). */
static void elems(struct batch *b, int del, uint8_t family, const char *table, const char *set, const struct faddr *a,
                  int n, int afam, uint64_t timeout_ms) {
  int any = 0;
  for (int i = 0; i < n; i++) any |= a[i].family == afam;
  if (!any) return;
  uint16_t type = (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | (del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM));
  size_t m = nf_msg_begin(b, type, (uint16_t)(NLM_F_ACK | (del ? 0 : NLM_F_CREATE)), family, 0);
  struct nlmsghdr *h = (struct nlmsghdr *)(b->data + m);
  if (!b->first) b->first = h->nlmsg_seq;
  b->last = h->nlmsg_seq;
  nf_attr(b, NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
  nf_attr(b, NFTA_SET_ELEM_LIST_SET, set, strlen(set) + 1);
  size_t list = nf_nest_begin(b, NFTA_SET_ELEM_LIST_ELEMENTS);
  for (int i = 0; i < n; i++) {
    if (a[i].family != afam) continue;
    size_t el = nf_nest_begin(b, NFTA_LIST_ELEM);
    size_t key = nf_nest_begin(b, NFTA_SET_ELEM_KEY);
    nf_attr(b, NFTA_DATA_VALUE, a[i].bytes, afam == AF_INET ? 4 : 16);
    nf_nest_end(b, key);
    if (timeout_ms) {
      /* The expiration too: an existing element is updated only when its timeout (in jiffies) changed or an
       * expiration is given. With the timeout alone, a renewal to the same number of jiffies changed nothing, the
       * element ran out at its first end and was absent until a later renewal created it anew: the fence closed
       * several times a second on a healthy holder (test/integration/fence.test.ts "never runs out"). The
       * expiration is the time left, so each renewal ends the element exactly where its proof allows. */
      uint64_t be = htobe64(timeout_ms);
      nf_attr(b, NFTA_SET_ELEM_TIMEOUT, &be, sizeof be);
      nf_attr(b, NFTA_SET_ELEM_EXPIRATION, &be, sizeof be);
    }
    nf_nest_end(b, el);
  }
  nf_nest_end(b, list);
  nf_msg_end(b, m);
}

/* The live elements (with a timeout), or with gated as well. */
static void live_and_gate(struct batch *b, int del, const char *table, const struct faddr *a, int n, uint64_t ms,
                          int gate) {
  elems(b, del, NFPROTO_INET, table, "live4", a, n, AF_INET, ms);
  elems(b, del, NFPROTO_INET, table, "live6", a, n, AF_INET6, ms);
  elems(b, del, NFPROTO_ARP, table, "live4", a, n, AF_INET, ms);
  if (!gate) return;
  elems(b, del, NFPROTO_INET, table, "gated4", a, n, AF_INET, 0);
  elems(b, del, NFPROTO_INET, table, "gated6", a, n, AF_INET6, 0);
  elems(b, del, NFPROTO_ARP, table, "gated4", a, n, AF_INET, 0);
}

static int fsock(void) {
  if (nfs >= 0) return 0;
  nfs = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (nfs < 0) return errno;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  struct timeval tv = {.tv_sec = 5}; /* never wait for the kernel forever */
  socklen_t salen = sizeof sa;
  if (bind(nfs, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      setsockopt(nfs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      getsockname(nfs, (struct sockaddr *)&sa, &salen) < 0) {
    int err = errno;
    close(nfs);
    nfs = -1;
    return err;
  }
  nfs_portid = sa.nl_pid;
  return 0;
}

/* The watch's view of a request's addresses (fencewatch.c). */
static int to_addrs(const struct faddr *a, int n, struct addr *out) {
  for (int i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].family = a[i].family;
    memcpy(out[i].bytes, a[i].bytes, sizeof a[i].bytes);
  }
  return n;
}

/* Fault injection for test/integration/fence.test.ts only: VW_FENCE_TEST_SEND_DELAY_US makes every send this much
 * slower (after the kernel took the batch, before its ack is read), as a loaded machine does. Unset in production. */
static void slow_send_for_tests(void) {
  static long us = -1;
  if (us < 0) {
    const char *e = getenv("VW_FENCE_TEST_SEND_DELAY_US");
    us = e ? strtol(e, NULL, 10) : 0;
    if (us < 0 || us > 1000000) us = 0;
  }
  if (us > 0) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
  }
}

/* Sends a batch (when `deadline`, only if CLOCK_MONOTONIC has not passed it: *checked is when that was read) and
 * waits for every ack. 0, -1 (expired, nothing sent) or the first positive errno. */
static char frbuf[65536];
static int fsend(struct batch *b, uint64_t deadline, uint64_t *checked) {
  if (!b->first) return 0;
  batch_end(b);
  if (deadline) {
    *checked = now_ns();
    if (*checked > deadline) return -1;
  }
  ssize_t sent;
  do sent = send(nfs, b->data, b->len, 0);
  while (sent < 0 && errno == EINTR);
  if (sent != (ssize_t)b->len) return sent < 0 ? errno : EIO;
  slow_send_for_tests();
  int first_err = 0;
  uint32_t seen = 0, want = b->last - b->first + 1;
  while (seen < want) {
    ssize_t n = recv(nfs, frbuf, sizeof frbuf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return first_err ? first_err : errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)frbuf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < b->first || h->nlmsg_seq > b->last) continue;
      seen++;
      int e = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (e && !first_err) first_err = e;
    }
  }
  return first_err;
}

static int parse_list(char *s, struct faddr *a) {
  int n = 0;
  for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (n == FENCE_MAX_ADDRS) return -1;
    memset(&a[n], 0, sizeof a[n]);
    if (inet_pton(AF_INET, t, a[n].bytes) == 1) a[n].family = AF_INET;
    else if (inet_pton(AF_INET6, t, a[n].bytes) == 1) a[n].family = AF_INET6;
    else return -1;
    n++;
  }
  return n;
}

static int table_ok(const char *t) {
  size_t n = strlen(t);
  if (n < 1 || n > 32) return 0;
  for (const char *p = t; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
  return 1;
}

static uint64_t parse_ns(const char *s, int *bad) {
  if (!*s || strlen(s) > 19) *bad = 1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') *bad = 1;
  return *bad ? 0 : strtoull(s, NULL, 10);
}

/* Deletes each address's live elements (and with gates, its gated ones after them), one transaction per set and
 * address, so that an absent one fails alone. */
static int del_each(const char *table, const struct faddr *a, int n, int gates) {
  static const struct {
    uint8_t family;
    const char *set;
    int afam;
  } sets[] = {{NFPROTO_INET, "live4", AF_INET},   {NFPROTO_ARP, "live4", AF_INET},  {NFPROTO_INET, "live6", AF_INET6},
              {NFPROTO_INET, "gated4", AF_INET}, {NFPROTO_ARP, "gated4", AF_INET}, {NFPROTO_INET, "gated6", AF_INET6}};
  static struct batch b;
  for (int i = 0; i < n; i++)
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
      if (sets[s].afam != a[i].family || (!gates && sets[s].set[0] == 'g')) continue;
      batch_begin(&b);
      elems(&b, 1, sets[s].family, table, sets[s].set, &a[i], 1, sets[s].afam, 0);
      int err = fsend(&b, 0, NULL);
      if (err && err != ENOENT) return err;
    }
  return 0;
}

int op_fence(char **v, int n, uint64_t deadline) {
  static struct batch b;
  struct faddr a[FENCE_MAX_ADDRS];
  int bad = 0;
  int set = n == 4 && !strcmp(v[0], "set"), del = n == 3 && !strcmp(v[0], "del");
  if ((!set && !del) || !table_ok(v[1]) || (set && !deadline))
    return ANSWER("error %d fence set TABLE EXPIRES_NS ADDRS (with a deadline) | fence del TABLE ADDRS",
                  EINVAL);
  uint64_t expires = set ? parse_ns(v[2], &bad) : 0;
  int na = parse_list(v[set ? 3 : 2], a);
  if (bad || na < 1) return ANSWER("error %d fence: bad expiry or address list", EINVAL);
  int err = fsock();
  if (err) return ANSWER("error %d netfilter netlink socket: %s", err, strerror(err));
  struct addr wa[FENCE_MAX_ADDRS];
  to_addrs(a, na, wa);
  if (del) {
    err = del_each(v[1], a, na, 1);
    if (!err) fwatch_disarm(v[1], wa, na);
    return err ? ANSWER("error %d DELSETELEM: %s", err, strerror(err)) : ANSWER("ok");
  }
  /* Another process changed the table and the watch deleted the fenced addresses: nothing is set until the table
   * is whole again (ENOENT makes the agent load it again). Then the watch is armed before the send, so that any
   * later change is seen. */
  if (!fwatch_repaired())
    return ANSWER("error %d fence table %s was changed by another process: load it again", ENOENT, v[1]);
  err = fwatch_arm(v[1], nfs_portid, wa, na);
  if (err) return ANSWER("error %d nf_tables notifications: %s", err, strerror(err));
  /* The timeout is computed from a clock reading taken just before the check in fsend, so it can only be longer
   * than what the check allows by the few instructions between them; the check itself is the later reading. */
  uint64_t now = now_ns();
  if (now > deadline) return ANSWER("expired %llu", (unsigned long long)(now - deadline));
  if (expires <= now + 1000000ULL)
    return ANSWER("expired %llu", (unsigned long long)(now + 1000000ULL - expires));
  uint64_t ms = (expires - now) / 1000000ULL, checked = 0;
  batch_begin(&b);
  live_and_gate(&b, 0, v[1], a, na, ms, 1);
  err = fsend(&b, deadline, &checked);
  uint64_t acked = now_ns();
  if (err < 0) return ANSWER("expired %llu", (unsigned long long)(checked - deadline));
  if (err) return ANSWER("error %d NEWSETELEM: %s", err, strerror(err));
  /* The kernel's start stamp lies between the clock reading and the ack: an element may outlive EXPIRES_NS by the
   * time the send took. When that was more than FENCE_ACT_NS, set the timeout again from a fresh reading, shorter
   * by the time the last send took (`cut`): the element then ends by ack + timeout <= EXPIRES_NS + (this send's
   * time - cut), within FENCE_ACT_NS of EXPIRES_NS as long as this send is at most FENCE_ACT_NS slower than the
   * last. An update of the same elements towards EXPIRES_NS: no deadline needed, it extends nothing the proof does
   * not cover. Under load sends are slow alike, so the shortened one is accepted; without the cut the second send
   * was as slow as the first and the fence closed for a round. When two retries are slow too, or one fails, or no
   * whole ms is left, delete the live elements (closes: safe). */
  uint64_t cut = 0;
  for (int retry = 0; acked - now > FENCE_ACT_NS + cut; retry++) {
    uint64_t took = acked - now;
    now = now_ns();
    cut = took;
    int close_it = retry == 2 || expires <= now + cut + 1000000ULL;
    if (!close_it) {
      ms = (expires - now - cut) / 1000000ULL;
      batch_begin(&b);
      live_and_gate(&b, 0, v[1], a, na, ms, 0);
      close_it = fsend(&b, 0, NULL) != 0;
      acked = now_ns();
    }
    if (close_it) {
      batch_begin(&b);
      live_and_gate(&b, 1, v[1], a, na, 0, 0);
      if (fsend(&b, 0, NULL)) del_each(v[1], a, na, 0); /* the gates stay: they keep it closed */
      return ANSWER("error %d fence set took %llu us: closed again", ETIME,
                    (unsigned long long)(took / 1000));
    }
  }
  fwatch_confirm(wa, na);
  return ANSWER("ok %llu %llu %llu", (unsigned long long)checked, (unsigned long long)acked,
                (unsigned long long)ms);
}
