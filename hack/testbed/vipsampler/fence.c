/*
 * The fence view (-f TABLE): one dump of the fast fence's sets in a namespace per poll, and the gates that changed.
 * The sets are those of node-agent/fence/ruleset.ts in `inet TABLE`: gated4/gated6 (every VIP the node fenced, no
 * timeout) and live4/live6 (the open ones, each with a timeout). A gate is closed while its address is gated and
 * not live; an element whose expiration reads 0 has run out (nf_tables checks the timeout at lookup, so it already
 * gates) even if the kernel's garbage collection has not removed it yet.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "sampler.h"

static char buf[BUF_SIZE];

struct elems {
	unsigned char family;
	struct gate list[MAX_GATES];
	int n;
};

static const struct nlattr *next_attr(const struct nlattr *a, int *len)
{
	*len -= NLA_ALIGN(a->nla_len);
	return (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len));
}

#define FOR_ATTRS(a, start, len)                                                                       \
	for (a = (start); (len) >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && (int)a->nla_len <= (len); \
	     a = next_attr(a, &(len)))
#define ATTR_DATA(a) ((const void *)((const char *)(a) + NLA_HDRLEN))
#define ATTR_LEN(a) ((int)(a)->nla_len - (int)NLA_HDRLEN)

/* One NFTA_LIST_ELEM: its key, unless it has expired. */
static void on_elem(struct elems *e, const struct nlattr *el)
{
	const struct nlattr *a, *k;
	int len = ATTR_LEN(el), klen;
	const unsigned char *key = NULL;
	int keylen = 0, expired = 0;

	FOR_ATTRS(a, ATTR_DATA(el), len) {
		int type = a->nla_type & NLA_TYPE_MASK;
		if (type == NFTA_SET_ELEM_KEY) {
			klen = ATTR_LEN(a);
			FOR_ATTRS(k, ATTR_DATA(a), klen)
				if ((k->nla_type & NLA_TYPE_MASK) == NFTA_DATA_VALUE) {
					key = ATTR_DATA(k);
					keylen = ATTR_LEN(k);
				}
		} else if (type == NFTA_SET_ELEM_EXPIRATION && ATTR_LEN(a) == 8) {
			uint64_t ms;
			memcpy(&ms, ATTR_DATA(a), 8);
			expired = be64toh(ms) == 0;
		}
	}
	if (!key || expired || e->n >= MAX_GATES)
		return;
	if (keylen != (e->family == AF_INET ? 4 : 16))
		return;
	e->list[e->n].family = e->family;
	memcpy(e->list[e->n].a, key, (size_t)keylen);
	e->n++;
}

static void on_msg(struct elems *e, const struct nlmsghdr *h)
{
	const struct nlattr *a, *el;
	int len = (int)h->nlmsg_len - (int)NLMSG_SPACE(sizeof(struct nfgenmsg)), llen;

	if ((h->nlmsg_type & 0xff) != NFT_MSG_NEWSETELEM)
		return;
	FOR_ATTRS(a, (const struct nlattr *)((const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg))), len) {
		if ((a->nla_type & NLA_TYPE_MASK) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		llen = ATTR_LEN(a);
		FOR_ATTRS(el, ATTR_DATA(a), llen)
			if ((el->nla_type & NLA_TYPE_MASK) == NFTA_LIST_ELEM)
				on_elem(e, el);
	}
}

static void put_attr(char *req, unsigned short type, const char *s)
{
	struct nlmsghdr *h = (struct nlmsghdr *)req;
	struct nlattr *a = (struct nlattr *)(req + NLMSG_ALIGN(h->nlmsg_len));
	size_t n = strlen(s) + 1;
	a->nla_type = type;
	a->nla_len = (unsigned short)(NLA_HDRLEN + n);
	memcpy((char *)a + NLA_HDRLEN, s, n);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* Dumps `set` of `inet table` into e; 0 (an absent table or set: empty), or -1. */
static int dump_set(struct ns *n, const char *table, const char *set, struct elems *e)
{
	char req[256];
	struct nlmsghdr *h = (struct nlmsghdr *)req;
	struct nfgenmsg *g;
	int rounds, intr = 0;

	memset(req, 0, sizeof req);
	h->nlmsg_len = NLMSG_LENGTH(sizeof *g);
	h->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	h->nlmsg_seq = ++n->seq;
	g = NLMSG_DATA(h);
	g->nfgen_family = NFPROTO_INET;
	g->version = NFNETLINK_V0;
	put_attr(req, NFTA_SET_ELEM_LIST_TABLE, table);
	put_attr(req, NFTA_SET_ELEM_LIST_SET, set);
	if (send(n->nfsock, req, h->nlmsg_len, 0) < 0)
		return -1;
	for (rounds = 0; rounds < 10000; rounds++) {
		ssize_t len = recv(n->nfsock, buf, sizeof buf, 0);
		struct nlmsghdr *m;
		if (len < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (m = (struct nlmsghdr *)buf; NLMSG_OK(m, (size_t)len); m = NLMSG_NEXT(m, len)) {
			if (m->nlmsg_seq != n->seq)
				continue;
			if (m->nlmsg_flags & NLM_F_DUMP_INTR)
				intr = 1;
			if (m->nlmsg_type == NLMSG_DONE)
				return intr ? -1 : 0;
			if (m->nlmsg_type == NLMSG_ERROR) {
				int err = -((struct nlmsgerr *)NLMSG_DATA(m))->error;
				return err == ENOENT || err == 0 ? 0 : -1;
			}
			on_msg(e, m);
		}
	}
	return -1;
}

static int has(const struct gate *list, int count, const struct gate *g)
{
	int i;
	for (i = 0; i < count; i++)
		if (list[i].family == g->family && !memcmp(list[i].a, g->a, g->family == AF_INET ? 4 : 16))
			return 1;
	return 0;
}

static void print_gate(struct ns *n, double t, double hi, const char *what, const struct gate *g)
{
	char txt[INET6_ADDRSTRLEN];
	inet_ntop(g->family, g->a, txt, sizeof txt);
	printf("%.3f %s gate %s %s %.3f %.3f\n", t, n->name, what, txt, n->prev_fence_start ? n->prev_fence_start : t,
	       hi);
}

int poll_fence(struct ns *n, const char *table)
{
	static struct elems gated, live;
	static const char *sets[2][2] = { { "gated4", "live4" }, { "gated6", "live6" } };
	double t = now_ms(), hi;
	int f, i, changes = 0;

	n->nclosed = 0;
	for (f = 0; f < 2; f++) {
		gated.family = live.family = f ? AF_INET6 : AF_INET;
		gated.n = live.n = 0;
		if (dump_set(n, table, sets[f][0], &gated) < 0)
			return -1;
		if (gated.n && dump_set(n, table, sets[f][1], &live) < 0)
			return -1;
		for (i = 0; i < gated.n; i++)
			if (!has(live.list, live.n, &gated.list[i]) && n->nclosed < MAX_GATES)
				n->closed[n->nclosed++] = gated.list[i];
	}
	hi = now_ms();
	for (i = 0; i < n->nprev_closed; i++)
		if (!has(n->closed, n->nclosed, &n->prev_closed[i])) {
			print_gate(n, t, hi, "open", &n->prev_closed[i]);
			changes++;
		}
	for (i = 0; i < n->nclosed; i++)
		if (!has(n->prev_closed, n->nprev_closed, &n->closed[i])) {
			print_gate(n, t, hi, "closed", &n->closed[i]);
			changes++;
		}
	memcpy(n->prev_closed, n->closed, sizeof(struct gate) * (size_t)n->nclosed);
	n->nprev_closed = n->nclosed;
	n->prev_fence_start = t;
	return changes;
}
