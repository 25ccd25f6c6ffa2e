/* Netlink for vipsampler: a socket opened inside a named network namespace, and one bounded dump over it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sampler.h"

static char buf[BUF_SIZE];

int open_in_netns(const char *name, int protocol)
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
	sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
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
int dump(struct ns *n, int type, unsigned char family, void (*cb)(struct ns *, struct nlmsghdr *))
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
