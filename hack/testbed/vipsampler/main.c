/*
 * vipsampler: watches which network namespaces hold which addresses, at a fixed short period.
 *
 * usage: vipsampler [-p period_ms (1..20, default 5)] [-H heartbeat_ms (default 1000)]
 *                   [-d max_duration_s (default 3600)] [-f fence_table] netns...
 *
 * For each named namespace it opens /run/netns/<ns>, setns()s into it, opens a NETLINK_ROUTE socket
 * there (the socket stays bound to that namespace) and returns to its own namespace. Then every
 * period it sends RTM_GETADDR dumps on every socket and prints one line per change:
 *
 *   <t_ms> <ns> add|del <address>/<prefix> <ifname> <lo_ms> <hi_ms>
 *   <t_ms> <ns> gate closed|open <address> <lo_ms> <hi_ms>          with -f: the fast fence's gate of an address
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
 * With -f TABLE it also dumps the sets of the fast fence's `inet TABLE` (node-agent/fence/ruleset.ts) in every
 * namespace each round: a gate is closed while the address is in gated4/gated6 and not (or only expired) in
 * live4/live6; such an address answers nothing and does not count as held. A namespace without the table has no
 * closed gate. Every address starts open: only changes to closed and back are printed.
 * Bounded: exits after max_duration_s, on SIGTERM/SIGINT, or when its parent dies.
 *
 * This file is the command line and the poll loop; the parts are netlink.c (the sockets, the dump) and poll.c
 * (one poll of a namespace); built from every .c here by hack/testbed/sampler-build.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "sampler.h"

static struct ns nss[MAX_NS];
static int nns;
static volatile sig_atomic_t stop_flag;

double now_ms(void)
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

	const char *table = NULL;

	while ((opt = getopt(argc, argv, "p:H:d:f:")) != -1) {
		switch (opt) {
		case 'p': period = strtol(optarg, NULL, 10); break;
		case 'H': hb = strtol(optarg, NULL, 10); break;
		case 'd': max_s = strtol(optarg, NULL, 10); break;
		case 'f': table = optarg; break;
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
		n->sock = open_in_netns(argv[i], NETLINK_ROUTE);
		n->nfsock = table ? open_in_netns(argv[i], NETLINK_NETFILTER) : -1;
		if (n->sock < 0 || (table && n->nfsock < 0))
			return 2;
	}

	start = last_hb = now_ms();
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop_flag) {
		double t0 = now_ms(), took;
		for (i = 0; i < nns; i++)
			if (poll_ns(&nss[i]) < 0 || (table && poll_fence(&nss[i], table) < 0))
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
	fprintf(stderr,
		"usage: vipsampler [-p period_ms 1..20] [-H heartbeat_ms] [-d max_duration_s] [-f fence_table] netns...\n");
	return 64;
}
