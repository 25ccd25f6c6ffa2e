/*
 * What the parts of vipwarden-dataplane share (the protocol is described in dataplane.c):
 *   dataplane.c  the request loop: reads a line, dispatches it, writes the answer
 *   answer.c     the answer being built, the deadline check and the error answer
 *   parse.c      the request's fields: numbers, addresses, interface names
 *   ops.c        one function per request (add, del, list, garp, na)
 *   netlink.c    rtnetlink: the socket, address requests, the address dump
 *   announce.c   gratuitous ARP over the packet socket, unsolicited NA (the packet in nd.h, shared with ndsend.c)
 *   fence.c      the fast fence's nf_tables set elements (node-agent/fence/)
 *   fencewatch.c fails closed when another process removes what gates the fenced VIPs (nft flush ruleset)
 *   sweep.c      the lifetimes it set, and the deletion of an address whose lifetime ended (the kernel's is late)
 */
#ifndef VIPWARDEN_DATAPLANE_H
#define VIPWARDEN_DATAPLANE_H

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stddef.h>
#include <stdint.h>

/* An address of a request: the family (AF_INET or AF_INET6), its bytes and a prefix length. */
struct addr {
  int family;
  unsigned char bytes[16];
  int prefix;
};

/* An address as the kernel reports it. */
struct found {
  unsigned ifindex, family, prefix, flags, valid, preferred;
  unsigned char bytes[16];
};

/* A RTM_NEWADDR, RTM_DELADDR or RTM_GETADDR request with room for its attributes. */
struct nlreq {
  struct nlmsghdr h;
  struct ifaddrmsg a;
  char attrs[256];
};

/* answer.c */
uint64_t now_ns(void);
int answer_init(void);
void answer_begin(void);
void answer_reset(void);
void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int answer_full(void);
void answer_write(uint64_t id);
extern uint64_t checked_at; /* when expired() last read the clock */
int expired(uint64_t deadline);
int fail(int err, const char *what);

/* parse.c */
int parse_u64(const char *s, uint64_t *v);
int parse_addr(const char *s, int want_prefix, struct addr *a);
int parse_iface(const char *s, unsigned *ifindex);

/* netlink.c */
size_t alen(int family);
int nl_open(void);
void addattr(struct nlreq *r, unsigned short type, const void *data, size_t len);
void addr_req(struct nlreq *r, int type, int flags, const struct addr *a, unsigned ifindex);
int nl_request(struct nlreq *r);
typedef int (*addr_fn)(const struct found *f, void *arg);
int dump(int family, addr_fn fn, void *arg);
int present(const struct addr *a, unsigned ifindex);

/* announce.c */
int announce_open(void);
int announce(const char *ifname, unsigned ifindex, const struct addr *a, uint64_t deadline, uint64_t *sent);

/* ops.c */
int op_add(char **v, int n, uint64_t deadline);
int op_del(char **v, int n);
int op_list(int n);
int op_announce(char **v, int n, uint64_t deadline, int family);

/* sweep.c: track_set after an add or replace was acknowledged at `acked` with `valid_s`; track_drop after a del;
 * sweep_next: the earliest end (0: none); sweep_due: deletes what ended by `now`, returns how many. */
void track_set(unsigned ifindex, const struct addr *a, uint64_t acked, uint64_t valid_s);
void track_drop(unsigned ifindex, const struct addr *a);
int tracking(void);
uint64_t sweep_next(void);
int sweep_due(uint64_t now);

/* fence.c */
int op_fence(char **v, int n, uint64_t deadline);

/* fence.c: nf_tables messages built into a buffer (an nf_tables batch, or fencewatch.c's queries). nf_msg_begin
 * starts a message of `type` (with NLM_F_REQUEST) and returns its offset for nf_msg_end; nf_nest_begin and
 * nf_nest_end likewise for a nested attribute. */
struct batch {
  char data[16384];
  size_t len;
  uint32_t first, last; /* seq of the first and last message that asks for an ack */
};
void *nf_put(struct batch *b, size_t n);
size_t nf_msg_begin(struct batch *b, uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id);
void nf_msg_end(struct batch *b, size_t at);
void nf_attr(struct batch *b, uint16_t type, const void *data, size_t n);
size_t nf_nest_begin(struct batch *b, uint16_t type);
void nf_nest_end(struct batch *b, size_t at);

/* fencewatch.c: fwatch_arm before a fence set (opens the notification socket the first time; 0 or an errno);
 * fwatch_disarm after a fence del; fwatch_fd: the socket to poll (-1: none yet); fwatch_read: reads what it has and
 * fails closed when the table lost a part; fwatch_refuses: an add of this address must wait for the table;
 * fwatch_repaired: 1 when nothing is wrong (any more). */
int fwatch_arm(const char *table, uint32_t portid, const struct addr *a, int n);
void fwatch_confirm(const struct addr *a, int n); /* after the fence set of `a` succeeded: its gate is back */
void fwatch_disarm(const char *table, const struct addr *a, int n);
int fwatch_fd(void);
void fwatch_read(void);
int fwatch_refuses(int family, const unsigned char *bytes);
int fwatch_repaired(void);

#endif
