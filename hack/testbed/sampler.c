/*
 * vipsampler: watches which network namespaces hold which addresses, at a fixed short period.
 *
 * usage: vipsampler [-p period_ms (1..20, default 5)] [-H heartbeat_ms (default 1000)]
 *                   [-d max_duration_s (default 3600)] netns...
 *
 * For each named namespace it opens /run/netns/<ns>, setns()s into it, opens a NETLINK_ROUTE socket
 * there (the socket stays bound to that namespace) and returns to its own namespace. Then every
 * period it sends RTM_GETADDR dumps on every socket and prints one line per change:
 *
 *   <t_ms> <ns> add|del <address>/<prefix> <ifname> <lo_ms> <hi_ms>
 *   <t_ms> - hb <polls> <late> <max_poll_us>        every heartbeat period
 *   <t_ms> - ready <polls>                          after the first full poll (initial adds printed before)
 *   <t_ms> - exit <polls>
 *
 * t_ms is CLOCK_MONOTONIC in milliseconds (the clock behind Node's process.hrtime), taken just before the
 * dump that saw the change. The change itself happened between the previous dump of that namespace and
 * this one: after lo_ms (the start of the previous dump) and before hi_ms (the end of this one). Two
 * namespaces are dumped one after the other, never at one instant, so a handover that happens between
 * two rounds looks like an overlap of a few microseconds when judged by t_ms alone; the bounds say what
 * is certain. Addresses are
 * reported whatever the link state: a down or detached interface still shows its addresses.
 * Bounded: exits after max_duration_s, on SIGTERM/SIGINT, or when its parent dies.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_NS 64
#define MAX_ADDR 512
#define MAX_IFS 256
#define BUF_SIZE (64 * 1024)

struct addr {
	unsigned char family;
	unsigned char plen;
	int ifindex;
	unsigned char a[16];
	char label[IFNAMSIZ];
};

struct link {
	int ifindex;
	char name[IFNAMSIZ];
};

struct ns {
	const char *name;
	int sock;
	unsigned seq;
	struct addr cur[MAX_ADDR], prev[MAX_ADDR];
	int ncur, nprev;
	double prev_start; /* start of the previous dump (0: none yet) */
	struct link links[MAX_IFS];
	int nlinks;
};

static struct ns nss[MAX_NS];
static int nns;
static volatile sig_atomic_t stop_flag;
static char buf[BUF_SIZE];

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int open_in_netns(const char *name)
{
	char path[256];
	int self, target, sock;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	int rcvbuf = 1 << 20;

	if (snprintf(path, sizeof path, "/run/netns/%s", name) >= (int)sizeof path || strchr(name, '/')) {
		fprintf(stderr, "vipsampler: bad netns name %s\n", name);
		return -1;
	}
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || target < 0) {
		fprintf(stderr, "vipsampler: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		fprintf(stderr, "vipsampler: setns %s: %s\n", name, strerror(errno));
		return -1;
	}
	sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (setns(self, CLONE_NEWNET) < 0) {
		fprintf(stderr, "vipsampler: setns back: %s\n", strerror(errno));
		exit(2);
	}
	close(self);
	close(target);
	if (sock < 0) {
		fprintf(stderr, "vipsampler: socket in %s: %s\n", name, strerror(errno));
		return -1;
	}
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	return sock;
}

/* Sends a dump request of `type` and calls `cb` for each message; returns 0, or -1 on error / interrupted dump. */
static int dump(struct ns *n, int type, unsigned char family, void (*cb)(struct ns *, struct nlmsghdr *))
{
	struct {
		struct nlmsghdr h;
		union {
			struct ifaddrmsg ifa;
			struct ifinfomsg ifi;
		} u;
	} req;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int rounds, intr = 0;

	memset(&req, 0, sizeof req);
	req.h.nlmsg_type = type;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = ++n->seq;
	if (type == RTM_GETADDR) {
		req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
		req.u.ifa.ifa_family = family;
	} else {
		req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
		req.u.ifi.ifi_family = family;
	}
	if (sendto(n->sock, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	for (rounds = 0; rounds < 10000; rounds++) {
		ssize_t len = recv(n->sock, buf, sizeof buf, 0);
		struct nlmsghdr *h;
		if (len < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_seq != n->seq)
				continue; /* stale answer to an earlier, abandoned request */
			if (h->nlmsg_flags & NLM_F_DUMP_INTR)
				intr = 1;
			if (h->nlmsg_type == NLMSG_DONE)
				return intr ? -1 : 0;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			cb(n, h);
		}
	}
	return -1;
}

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
static int poll_ns(struct ns *n)
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

static void add_ms(struct timespec *ts, long ms)
{
	ts->tv_nsec += (ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

int main(int argc, char **argv)
{
	long period = 5, hb = 1000, max_s = 3600;
	unsigned long polls = 0, late = 0, errors = 0;
	double max_poll_us = 0, start, last_hb;
	struct timespec next;
	int opt, i;

	while ((opt = getopt(argc, argv, "p:H:d:")) != -1) {
		switch (opt) {
		case 'p': period = strtol(optarg, NULL, 10); break;
		case 'H': hb = strtol(optarg, NULL, 10); break;
		case 'd': max_s = strtol(optarg, NULL, 10); break;
		default: goto usage;
		}
	}
	if (period < 1 || period > 20 || hb < 100 || hb > 60000 || max_s < 1 || max_s > 86400 || optind >= argc ||
	    argc - optind > MAX_NS)
		goto usage;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);

	for (i = optind; i < argc; i++) {
		struct ns *n = &nss[nns++];
		n->name = argv[i];
		n->sock = open_in_netns(argv[i]);
		if (n->sock < 0)
			return 2;
	}

	start = last_hb = now_ms();
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop_flag) {
		double t0 = now_ms(), took;
		for (i = 0; i < nns; i++)
			if (poll_ns(&nss[i]) < 0)
				errors++;
		polls++;
		took = (now_ms() - t0) * 1e3;
		if (took > max_poll_us)
			max_poll_us = took;
		if (polls == 1)
			printf("%.3f - ready %lu\n", now_ms(), polls);
		if (now_ms() - last_hb >= (double)hb) {
			last_hb = now_ms();
			printf("%.3f - hb %lu %lu %.0f %lu\n", last_hb, polls, late, max_poll_us, errors);
			max_poll_us = 0;
		}
		fflush(stdout);
		if (ferror(stdout))
			break; /* reader gone */
		if (now_ms() - start > max_s * 1e3)
			break;
		add_ms(&next, period);
		{
			struct timespec nowts;
			clock_gettime(CLOCK_MONOTONIC, &nowts);
			if (nowts.tv_sec > next.tv_sec || (nowts.tv_sec == next.tv_sec && nowts.tv_nsec > next.tv_nsec)) {
				late++; /* fell behind: restart the grid from now instead of bursting */
				next = nowts;
				continue;
			}
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR && !stop_flag)
			;
	}
	printf("%.3f - exit %lu\n", now_ms(), polls);
	fflush(stdout);
	return 0;
usage:
	fprintf(stderr, "usage: vipsampler [-p period_ms 1..20] [-H heartbeat_ms] [-d max_duration_s] netns...\n");
	return 64;
}
