/* One poll of one namespace: dump its addresses, compare with the previous dump, print each change. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "sampler.h"

static void on_addr(struct ns *n, struct nlmsghdr *h)
{
	struct ifaddrmsg *ifa = NLMSG_DATA(h);
	struct rtattr *rta;
	int rlen;
	const void *local = NULL, *address = NULL;
	const char *label = NULL;
	struct addr *a;

	if (h->nlmsg_type != RTM_NEWADDR || n->ncur >= MAX_ADDR)
		return;
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return;
	rlen = IFA_PAYLOAD(h);
	for (rta = IFA_RTA(ifa); RTA_OK(rta, rlen); rta = RTA_NEXT(rta, rlen)) {
		if (rta->rta_type == IFA_LOCAL)
			local = RTA_DATA(rta);
		else if (rta->rta_type == IFA_ADDRESS)
			address = RTA_DATA(rta);
		else if (rta->rta_type == IFA_LABEL)
			label = RTA_DATA(rta);
	}
	if (!local)
		local = address; /* IPv6, and IPv4 without a peer, carry IFA_ADDRESS only or both equal */
	if (!local)
		return;
	a = &n->cur[n->ncur++];
	memset(a, 0, sizeof *a);
	a->family = ifa->ifa_family;
	a->plen = ifa->ifa_prefixlen;
	a->ifindex = (int)ifa->ifa_index;
	memcpy(a->a, local, ifa->ifa_family == AF_INET ? 4 : 16);
	if (label)
		snprintf(a->label, sizeof a->label, "%s", label);
}

static void on_link(struct ns *n, struct nlmsghdr *h)
{
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	struct rtattr *rta;
	int rlen;

	if (h->nlmsg_type != RTM_NEWLINK || n->nlinks >= MAX_IFS)
		return;
	rlen = IFLA_PAYLOAD(h);
	for (rta = IFLA_RTA(ifi); RTA_OK(rta, rlen); rta = RTA_NEXT(rta, rlen)) {
		if (rta->rta_type == IFLA_IFNAME) {
			n->links[n->nlinks].ifindex = ifi->ifi_index;
			snprintf(n->links[n->nlinks].name, IFNAMSIZ, "%s", (char *)RTA_DATA(rta));
			n->nlinks++;
			return;
		}
	}
}

static const char *ifname(struct ns *n, const struct addr *a, int refreshed)
{
	int i;
	if (a->label[0] && a->family == AF_INET)
		return a->label;
	for (i = 0; i < n->nlinks; i++)
		if (n->links[i].ifindex == a->ifindex)
			return n->links[i].name;
	if (!refreshed)
		return NULL;
	return "?";
}

static int same(const struct addr *x, const struct addr *y)
{
	return x->family == y->family && x->plen == y->plen && x->ifindex == y->ifindex &&
	       memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16) == 0;
}

static int contains(const struct addr *set, int count, const struct addr *a)
{
	int i;
	for (i = 0; i < count; i++)
		if (same(&set[i], a))
			return 1;
	return 0;
}

static void print_change(struct ns *n, double t, double hi, const char *what, const struct addr *a, int *refreshed)
{
	char txt[INET6_ADDRSTRLEN];
	const char *name;

	inet_ntop(a->family, a->a, txt, sizeof txt);
	name = ifname(n, a, *refreshed);
	if (!name) {
		n->nlinks = 0;
		if (dump(n, RTM_GETLINK, AF_UNSPEC, on_link) < 0)
			n->nlinks = 0;
		*refreshed = 1;
		name = ifname(n, a, 1);
	}
	printf("%.3f %s %s %s/%u %s %.3f %.3f\n", t, n->name, what, txt, a->plen, name, n->prev_start ? n->prev_start : t,
	       hi);
}

/* One poll of one namespace; returns the number of changes printed, or -1 when the dump failed. */
int poll_ns(struct ns *n)
{
	int i, changes = 0, refreshed = 0, tries;
	double t, hi;

	for (tries = 0; tries < 3; tries++) {
		n->ncur = 0;
		t = now_ms();
		if (dump(n, RTM_GETADDR, AF_UNSPEC, on_addr) == 0)
			break;
	}
	if (tries == 3)
		return -1;
	hi = now_ms();
	for (i = 0; i < n->nprev; i++)
		if (!contains(n->cur, n->ncur, &n->prev[i])) {
			print_change(n, t, hi, "del", &n->prev[i], &refreshed);
			changes++;
		}
	for (i = 0; i < n->ncur; i++)
		if (!contains(n->prev, n->nprev, &n->cur[i])) {
			print_change(n, t, hi, "add", &n->cur[i], &refreshed);
			changes++;
		}
	memcpy(n->prev, n->cur, sizeof(struct addr) * (size_t)n->ncur);
	n->nprev = n->ncur;
	n->prev_start = t;
	return changes;
}
