/*
 * The fast fence's watch: what gates the VIPs this helper fenced must stay where it is.
 *
 * Why: `nft flush ruleset` (the first line of Debian's /etc/nftables.conf, so also `systemctl restart nftables`),
 * `nft delete table`, `nft flush table|chain` or a deleted gated element leave a fenced VIP's address ungated: it
 * answers ARP and carries traffic again, while the controller, trusting the fence, waits only the fence's overhang
 * after the holder's lease ended (0 ms by default), not the address's. So from its first `fence set` the helper
 * listens to nf_tables' notifications (NFNLGRP_NFTABLES). After a transaction (NFT_MSG_NEWGEN) that deleted a
 * table, chain, set or rule of its table, or a gated element it did not delete itself, or when notifications were
 * lost (ENOBUFS), it looks. A chain without its rules ungates every VIP: it deletes the addresses of every VIP it
 * fenced, and until the chains are whole again refuses `fence set` with ENOENT (the agent then loads the table
 * again: node-agent/fence/nft.ts). A VIP missing from a gated set loses its address alone. Either way an `add` of
 * such a VIP is refused until a `fence set` of it put its gate back, so that no address comes back without its
 * gate. Fail closed: an outage on this node, never a second holder; it says so on stderr.
 *
 * The helper lives on after the agent died until the last lifetime it set ended (dataplane.c) and watches meanwhile.
 * What it cannot see: a change while the helper itself is frozen or dead (the address lifetime is then the only
 * fence, docs/design.md "Fast fence", "What it does not cover").
 */
#define _GNU_SOURCE
#include "dataplane.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define WATCH_MAX 1024

/* The rules each chain of the table has (node-agent/fence/ruleset.ts; a test loads it and checks them). */
static const struct {
  uint8_t family;
  const char *chain;
  int rules;
} CHAINS[] = {
    {NFPROTO_INET, "input", 2}, {NFPROTO_INET, "postrouting", 2}, {NFPROTO_ARP, "input", 1}, {NFPROTO_ARP, "output", 1}};
#define NCHAINS (sizeof CHAINS / sizeof CHAINS[0])

static int ms = -1;            /* notifications */
static int qs = -1;            /* queries: the rule dump, element lookups */
static uint32_t own_portid;    /* fence.c's socket: its element deletions are the helper's own */
static char table[33];
static struct entry {
  struct addr a;
  int refused; /* its gate went: no add until a fence set of it put the gate back */
  int now;     /* to be deleted by this fail_closed */
} fenced[WATCH_MAX];
static int nfenced;
static int suspect, broken; /* broken: a chain lost rules; no fence set until the table is whole */
static char wbuf[1 << 16];

static int open_sockets(void) {
  ms = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  qs = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  struct sockaddr_nl group = {.nl_family = AF_NETLINK, .nl_groups = 1u << (NFNLGRP_NFTABLES - 1)};
  struct timeval tv = {.tv_sec = 5};
  int big = 8 << 20;
  if (ms < 0 || qs < 0 || bind(ms, (struct sockaddr *)&group, sizeof group) < 0 ||
      bind(qs, (struct sockaddr *)&sa, sizeof sa) < 0 || setsockopt(qs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    int err = errno;
    if (ms >= 0) close(ms);
    if (qs >= 0) close(qs);
    ms = qs = -1;
    return err ? err : EIO;
  }
  if (setsockopt(ms, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
    setsockopt(ms, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  return 0;
}

static int same_addr(const struct addr *a, int family, const unsigned char *bytes) {
  return a->family == family && !memcmp(a->bytes, bytes, alen(family));
}

int fwatch_arm(const char *t, uint32_t portid, const struct addr *a, int n) {
  if (ms < 0) {
    int err = open_sockets();
    if (err) return err;
  }
  own_portid = portid;
  if (strcmp(table, t)) {
    snprintf(table, sizeof table, "%s", t);
    nfenced = 0;
  }
  for (int i = 0; i < n; i++) {
    int known = 0;
    for (int j = 0; j < nfenced && !known; j++) known = same_addr(&fenced[j].a, a[i].family, a[i].bytes);
    if (!known && nfenced < WATCH_MAX) fenced[nfenced++] = (struct entry){a[i], 0, 0};
  }
  return 0;
}

void fwatch_confirm(const struct addr *a, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < nfenced; j++)
      if (same_addr(&fenced[j].a, a[i].family, a[i].bytes)) fenced[j].refused = 0;
}

void fwatch_disarm(const char *t, const struct addr *a, int n) {
  if (strcmp(table, t)) return;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < nfenced; j++)
      if (same_addr(&fenced[j].a, a[i].family, a[i].bytes)) {
        fenced[j] = fenced[--nfenced];
        break;
      }
}

int fwatch_fd(void) { return ms; }

int fwatch_refuses(int family, const unsigned char *bytes) {
  for (int j = 0; j < nfenced; j++)
    if (same_addr(&fenced[j].a, family, bytes)) return broken || fenced[j].refused;
  return 0;
}

/* ---- queries ---- */

/* A query in `q` (built with fence.c's nf_* builders), one message. */
static struct batch q;

static size_t qbegin(uint16_t msg, uint16_t flags, uint8_t family) {
  q.len = 0;
  return nf_msg_begin(&q, (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | msg), flags, family, 0);
}

/* The first attribute of `type` (a string) in a nf_tables message, or NULL. */
static const char *str_attr(const struct nlmsghdr *h, uint16_t type) {
  int len = (int)h->nlmsg_len - (int)NLMSG_SPACE(sizeof(struct nfgenmsg));
  const struct nlattr *a = (const struct nlattr *)((const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
  while (len >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && (int)a->nla_len <= len) {
    if ((a->nla_type & NLA_TYPE_MASK) == type) {
      const char *s = (const char *)a + NLA_HDRLEN;
      size_t n = a->nla_len - NLA_HDRLEN;
      return n > 0 && s[n - 1] == '\0' ? s : NULL;
    }
    len -= (int)NLA_ALIGN(a->nla_len);
    a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len));
  }
  return NULL;
}

/* Ends the query begun at `m`, sends it and reads to its end: each message of the answer passed to fn. 0, or a
 * positive errno. */
static int query(size_t m, void (*fn)(const struct nlmsghdr *, void *), void *arg) {
  nf_msg_end(&q, m);
  uint32_t s = ((struct nlmsghdr *)(q.data + m))->nlmsg_seq;
  ssize_t sent;
  do sent = send(qs, q.data, q.len, 0);
  while (sent < 0 && errno == EINTR);
  if (sent != (ssize_t)q.len) return sent < 0 ? errno : EIO;
  static char rb[1 << 16];
  for (;;) {
    ssize_t n = recv(qs, rb, sizeof rb, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)rb; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != s) continue;
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (fn) fn(h, arg);
    }
  }
}

struct counts {
  uint8_t family;
  int n[NCHAINS];
};

static void count_rule(const struct nlmsghdr *h, void *arg) {
  struct counts *c = arg;
  const char *chain = str_attr(h, NFTA_RULE_CHAIN);
  if (!chain) return;
  for (size_t i = 0; i < NCHAINS; i++)
    if (CHAINS[i].family == c->family && !strcmp(CHAINS[i].chain, chain)) c->n[i]++;
}

/* What a chain is missing, or NULL when every chain has its rules. */
static const char *check_rules(char *why, size_t cap) {
  for (uint8_t fam = NFPROTO_INET;; fam = NFPROTO_ARP) {
    struct counts c = {fam, {0}};
    size_t m = qbegin(NFT_MSG_GETRULE, NLM_F_DUMP, fam);
    nf_attr(&q, NFTA_RULE_TABLE, table, strlen(table) + 1);
    int err = query(m, count_rule, &c);
    if (err && err != ENOENT) return snprintf(why, cap, "rule dump failed: %s", strerror(err)), why;
    for (size_t i = 0; i < NCHAINS; i++)
      if (CHAINS[i].family == fam && c.n[i] < CHAINS[i].rules)
        return snprintf(why, cap, "%s %s chain %s has %d of its %d rules", fam == NFPROTO_INET ? "inet" : "arp",
                        table, CHAINS[i].chain, c.n[i], CHAINS[i].rules),
               why;
    if (fam == NFPROTO_ARP) break;
  }
  return NULL;
}

/* Whether `a` is in its gated sets (inet, and arp for IPv4): 0, or the errno of the lookup (ENOENT: not). */
static int gated(const struct addr *a) {
  for (int arp = 0; arp <= (a->family == AF_INET); arp++) {
    const char *set = a->family == AF_INET ? "gated4" : "gated6";
    size_t m = qbegin(NFT_MSG_GETSETELEM, NLM_F_ACK, arp ? NFPROTO_ARP : NFPROTO_INET);
    nf_attr(&q, NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
    nf_attr(&q, NFTA_SET_ELEM_LIST_SET, set, strlen(set) + 1);
    size_t list = nf_nest_begin(&q, NFTA_SET_ELEM_LIST_ELEMENTS);
    size_t el = nf_nest_begin(&q, NFTA_LIST_ELEM);
    size_t key = nf_nest_begin(&q, NFTA_SET_ELEM_KEY);
    nf_attr(&q, NFTA_DATA_VALUE, a->bytes, alen(a->family));
    nf_nest_end(&q, key);
    nf_nest_end(&q, el);
    nf_nest_end(&q, list);
    int err = query(m, NULL, NULL);
    if (err) return err;
  }
  return 0;
}

/* ---- failing closed ---- */

static int fenced_found(const struct found *f, void *arg) {
  struct {
    struct found list[WATCH_MAX];
    int n;
  } *hits = arg;
  for (int j = 0; j < nfenced; j++)
    if (fenced[j].now && same_addr(&fenced[j].a, (int)f->family, f->bytes) && hits->n < WATCH_MAX)
      hits->list[hits->n++] = *f;
  return 0;
}

/* Deletes, on every interface, the addresses of the entries marked `now`, which from now on are refused. */
static void fail_closed(const char *why) {
  static struct {
    struct found list[WATCH_MAX];
    int n;
  } hits;
  hits.n = 0;
  dump(AF_UNSPEC, fenced_found, &hits);
  int deleted = 0, vips = 0;
  for (int j = 0; j < nfenced; j++)
    if (fenced[j].now) {
      fenced[j].refused = 1;
      fenced[j].now = 0;
      vips++;
    }
  for (int i = 0; i < hits.n; i++) {
    struct addr a = {.family = (int)hits.list[i].family, .prefix = (int)hits.list[i].prefix};
    memcpy(a.bytes, hits.list[i].bytes, alen(a.family));
    struct nlreq r;
    addr_req(&r, RTM_DELADDR, 0, &a, hits.list[i].ifindex);
    if (!nl_request(&r)) deleted++;
  }
  fprintf(stderr,
          "vipwarden-dataplane: fence table %s changed by another process (%s): %d VIP%s ungated, %d address%s "
          "deleted\n",
          table, why, vips, vips == 1 ? "" : "s", deleted, deleted == 1 ? "" : "es");
}

int fwatch_repaired(void) {
  char why[160];
  if (broken && check_rules(why, sizeof why)) return 0;
  broken = 0;
  return 1;
}

/* After a change to the table by someone else: a chain without its rules ungates every VIP; a missing gate, its
 * VIP (another helper's deletion of a VIP this one fenced earlier is one, and harmless: that address is gone). */
static void look(void) {
  char why[160];
  const char *missing = check_rules(why, sizeof why);
  if (missing) {
    broken = 1;
    for (int j = 0; j < nfenced; j++) fenced[j].now = 1;
    fail_closed(missing);
    return;
  }
  int any = 0;
  for (int j = 0; j < nfenced; j++) {
    if (fenced[j].refused) continue;
    int err = gated(&fenced[j].a);
    if (!err) continue;
    fenced[j].now = 1;
    if (!any) {
      char ip[64] = "?";
      inet_ntop(fenced[j].a.family, fenced[j].a.bytes, ip, sizeof ip);
      snprintf(why, sizeof why, "%s lost its gate: %s", ip, strerror(err));
    }
    any++;
  }
  if (any) fail_closed(why);
}

void fwatch_read(void) {
  if (ms < 0) return;
  int due = 0;
  for (;;) {
    ssize_t n = recv(ms, wbuf, sizeof wbuf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) { /* notifications were lost: look */
        suspect = due = 1;
        continue;
      }
      break;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)wbuf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if ((h->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) continue;
      int msg = h->nlmsg_type & 0xff;
      if (msg == NFT_MSG_NEWGEN) {
        due |= suspect;
        continue;
      }
      const struct nfgenmsg *g = NLMSG_DATA(h);
      if (g->nfgen_family != NFPROTO_INET && g->nfgen_family != NFPROTO_ARP) continue;
      int del = msg == NFT_MSG_DELTABLE || msg == NFT_MSG_DELCHAIN || msg == NFT_MSG_DELRULE || msg == NFT_MSG_DELSET;
      if (msg == NFT_MSG_DELSETELEM && h->nlmsg_pid != own_portid) {
        const char *set = str_attr(h, NFTA_SET_ELEM_LIST_SET);
        del = set && !strncmp(set, "gated", 5);
      }
      if (!del) continue;
      const char *t = str_attr(h, 1); /* NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,SET_ELEM_LIST_TABLE} */
      if (t && !strcmp(t, table)) suspect = 1;
    }
  }
  if (!due) return;
  suspect = 0;
  if (nfenced > 0) look();
}
