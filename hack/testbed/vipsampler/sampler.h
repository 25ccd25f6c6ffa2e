/* What the parts of vipsampler share (what it does and prints: main.c). */
#ifndef VIPSAMPLER_H
#define VIPSAMPLER_H

#include <linux/netlink.h>
#include <net/if.h>

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

/* A closed gate of the fast fence (node-agent/fence/ruleset.ts): the address is in gatedN, not in liveN. */
struct gate {
	unsigned char family;
	unsigned char a[16];
};

#define MAX_GATES 512

struct ns {
	const char *name;
	int sock;
	int nfsock; /* NETLINK_NETFILTER, with -f (else -1) */
	struct gate closed[MAX_GATES], prev_closed[MAX_GATES];
	int nclosed, nprev_closed;
	double prev_fence_start; /* start of the previous fence dump (0: none yet) */
	unsigned seq;
	struct addr cur[MAX_ADDR], prev[MAX_ADDR];
	int ncur, nprev;
	double prev_start; /* start of the previous dump (0: none yet) */
	struct link links[MAX_IFS];
	int nlinks;
};

/* main.c */
double now_ms(void);

/* netlink.c: a netlink socket (NETLINK_ROUTE, NETLINK_NETFILTER) in a named namespace, and one dump over it */
int open_in_netns(const char *name, int protocol);
int dump(struct ns *n, int type, unsigned char family, void (*cb)(struct ns *, struct nlmsghdr *));

/* poll.c: one poll of a namespace, its changes printed */
int poll_ns(struct ns *n);

/* fence.c: one poll of a namespace's fence table (-f), its gate changes printed */
int poll_fence(struct ns *n, const char *table);

#endif
