/*
 * vwarpwatch: the view from outside (issue 13): which machines answer ARP for a VIP, every few ms.
 *
 * usage: vwarpwatch -i ifname -s sender_ip [-p period_ms (1..50, default 5)] [-w wait_ms (default 50)]
 *                   [-H heartbeat_ms (default 1000)] [-d max_duration_s (default 3600)] vip...
 *
 * Run inside the client namespace. Every period it sends, on a packet socket bound to ifname, one ARP request per VIP
 * (broadcast, "who has <vip>, tell <sender_ip>") and collects the replies. Each round's requests carry their own
 * sender hardware address, 02:76:<round, 32 bits big-endian>, so a reply (sent by the responder to that address)
 * says which request it answers: two MACs answering one request is two machines answering for the VIP at once, what
 * a client would see as a dual holder, whatever their addresses or fences say. The frames go out with the
 * interface's own MAC as Ethernet source (the bridge never learns the per-round addresses and floods the replies),
 * and the interface is put in promiscuous mode on this socket only to receive them; the kernel's own ARP drops
 * them (PACKET_OTHERHOST), so the client's neighbour table is not touched. sender_ip must be an address nobody
 * uses on the link (the responders' neighbour entry for it is overwritten every round).
 *
 * A round is final wait_ms after its send; it prints, for each VIP whose set of answering MACs differs from its
 * previous round's:
 *
 *   <t_ms> <vip> <round> <mac,mac,...|->         t_ms: CLOCK_MONOTONIC ms of the round's send
 *   <t_ms> - hb <rounds> <late> <late_replies> <max_reply_us>   every heartbeat period
 *   <t_ms> - ready <rounds>                     after the first final round (its sets printed before)
 *   <t_ms> - exit <rounds>
 *
 * late: periods the loop fell behind; late_replies: replies that came after their round was final (not counted).
 * Bounded: exits after max_duration_s, on SIGTERM/SIGINT, or when its parent dies.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_VIPS 64
#define MAX_MACS 8
#define RING 1024

struct answers {
	int n;
	unsigned char mac[MAX_MACS][6];
};

struct round {
	uint32_t no;
	int used;
	double sent;
	struct answers a[MAX_VIPS];
};

static struct round ring[RING];
static struct in_addr vips[MAX_VIPS];
static struct answers last[MAX_VIPS];
static int have_last[MAX_VIPS];
static int nvips;
static volatile sig_atomic_t stop_flag;

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

static int mac_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 6);
}

static int same(const struct answers *x, const struct answers *y)
{
	return x->n == y->n && memcmp(x->mac, y->mac, sizeof(x->mac[0]) * (size_t)x->n) == 0;
}

static void print_round(const struct round *r)
{
	for (int v = 0; v < nvips; v++) {
		struct answers *a = (struct answers *)&r->a[v];
		qsort(a->mac, (size_t)a->n, 6, mac_cmp);
		if (have_last[v] && same(a, &last[v]))
			continue;
		printf("%.3f %s %u ", r->sent, inet_ntoa(vips[v]), r->no);
		if (a->n == 0)
			fputs("-", stdout);
		for (int i = 0; i < a->n; i++)
			printf("%s%02x:%02x:%02x:%02x:%02x:%02x", i ? "," : "", a->mac[i][0], a->mac[i][1], a->mac[i][2],
			       a->mac[i][3], a->mac[i][4], a->mac[i][5]);
		fputc('\n', stdout);
		last[v] = *a;
		have_last[v] = 1;
	}
}

struct arp_frame {
	struct ether_header eth;
	struct ether_arp arp;
} __attribute__((packed));

int main(int argc, char **argv)
{
	long period = 5, wait = 50, hb = 1000, max_s = 3600;
	const char *ifname = NULL, *sender = NULL;
	unsigned long late = 0, late_replies = 0;
	double max_reply_us = 0, start, last_hb, next;
	uint32_t round_no = 0, final_no = 0; /* rounds [final_no, round_no) are open */
	unsigned char own_mac[6];
	struct in_addr sip;
	struct sockaddr_ll ll = {0};
	struct ifreq ifr = {0};
	struct packet_mreq mr = {0};
	int opt, fd, ready = 0;

	while ((opt = getopt(argc, argv, "i:s:p:w:H:d:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 's': sender = optarg; break;
		case 'p': period = strtol(optarg, NULL, 10); break;
		case 'w': wait = strtol(optarg, NULL, 10); break;
		case 'H': hb = strtol(optarg, NULL, 10); break;
		case 'd': max_s = strtol(optarg, NULL, 10); break;
		default: goto usage;
		}
	}
	if (!ifname || !sender || inet_aton(sender, &sip) == 0 || period < 1 || period > 50 || wait < period ||
	    wait > 1000 || (wait / period) + 2 >= RING || hb < 100 || hb > 60000 || max_s < 1 || max_s > 86400 ||
	    optind >= argc || argc - optind > MAX_VIPS || strlen(ifname) >= IFNAMSIZ)
		goto usage;
	for (int i = optind; i < argc; i++)
		if (inet_aton(argv[i], &vips[nvips++]) == 0)
			goto usage;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ARP));
	if (fd < 0) {
		perror("vwarpwatch: socket");
		return 2;
	}
	strcpy(ifr.ifr_name, ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		perror("vwarpwatch: SIOCGIFINDEX");
		return 2;
	}
	{
		struct ifreq h = {0};
		strcpy(h.ifr_name, ifname);
		if (ioctl(fd, SIOCGIFHWADDR, &h) < 0) {
			perror("vwarpwatch: SIOCGIFHWADDR");
			return 2;
		}
		memcpy(own_mac, h.ifr_hwaddr.sa_data, 6);
	}
	ll.sll_family = AF_PACKET;
	ll.sll_protocol = htons(ETH_P_ARP);
	ll.sll_ifindex = ifr.ifr_ifindex;
	if (bind(fd, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
		perror("vwarpwatch: bind");
		return 2;
	}
	mr.mr_ifindex = ifr.ifr_ifindex;
	mr.mr_type = PACKET_MR_PROMISC; /* dropped with the socket */
	if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		perror("vwarpwatch: promiscuous");
		return 2;
	}

	start = last_hb = now_ms();
	next = start;
	while (!stop_flag) {
		double t = now_ms();
		if (t >= next) {
			struct round *r = &ring[round_no % RING];
			struct arp_frame f;
			struct sockaddr_ll to = ll;
			if (r->used && r->no >= final_no) {
				/* the ring is full of open rounds: cannot happen with wait/period < RING; finalize it */
				print_round(r);
				final_no = r->no + 1;
			}
			memset(r, 0, sizeof(*r));
			r->no = round_no;
			r->used = 1;
			r->sent = t;
			memset(&f, 0, sizeof(f));
			memset(f.eth.ether_dhost, 0xff, 6);
			memcpy(f.eth.ether_shost, own_mac, 6);
			f.eth.ether_type = htons(ETHERTYPE_ARP);
			f.arp.arp_hrd = htons(ARPHRD_ETHER);
			f.arp.arp_pro = htons(ETHERTYPE_IP);
			f.arp.arp_hln = 6;
			f.arp.arp_pln = 4;
			f.arp.arp_op = htons(ARPOP_REQUEST);
			f.arp.arp_sha[0] = 0x02;
			f.arp.arp_sha[1] = 0x76;
			f.arp.arp_sha[2] = (unsigned char)(round_no >> 24);
			f.arp.arp_sha[3] = (unsigned char)(round_no >> 16);
			f.arp.arp_sha[4] = (unsigned char)(round_no >> 8);
			f.arp.arp_sha[5] = (unsigned char)round_no;
			memcpy(f.arp.arp_spa, &sip, 4);
			memcpy(to.sll_addr, f.eth.ether_dhost, 6);
			to.sll_halen = 6;
			for (int v = 0; v < nvips; v++) {
				memcpy(f.arp.arp_tpa, &vips[v], 4);
				if (sendto(fd, &f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EAGAIN)
					perror("vwarpwatch: sendto");
			}
			round_no++;
			next += (double)period;
			if (now_ms() > next) {
				late++; /* fell behind: restart the grid from now instead of bursting */
				next = now_ms();
			}
		}
		/* finalize rounds whose wait is over */
		while (final_no < round_no) {
			struct round *r = &ring[final_no % RING];
			if (now_ms() - r->sent < (double)wait)
				break;
			print_round(r);
			final_no++;
			if (!ready) {
				ready = 1;
				printf("%.3f - ready %u\n", now_ms(), round_no);
			}
		}
		if (now_ms() - last_hb >= (double)hb) {
			last_hb = now_ms();
			printf("%.3f - hb %u %lu %lu %.0f\n", last_hb, round_no, late, late_replies, max_reply_us);
			max_reply_us = 0;
		}
		fflush(stdout);
		if (ferror(stdout))
			break; /* reader gone */
		if (now_ms() - start > max_s * 1e3)
			break;
		{
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int ms = (int)(next - now_ms());
			if (ms < 0)
				ms = 0;
			if (poll(&p, 1, ms) < 0 && errno != EINTR)
				break;
		}
		for (;;) {
			struct arp_frame f;
			ssize_t n = recv(fd, &f, sizeof(f), 0);
			uint32_t no;
			struct round *r;
			if (n < 0)
				break;
			if (n < (ssize_t)sizeof(f) || ntohs(f.eth.ether_type) != ETHERTYPE_ARP ||
			    ntohs(f.arp.arp_op) != ARPOP_REPLY || f.arp.arp_tha[0] != 0x02 || f.arp.arp_tha[1] != 0x76 ||
			    memcmp(f.arp.arp_tpa, &sip, 4) != 0)
				continue;
			no = ((uint32_t)f.arp.arp_tha[2] << 24) | ((uint32_t)f.arp.arp_tha[3] << 16) |
			     ((uint32_t)f.arp.arp_tha[4] << 8) | f.arp.arp_tha[5];
			if (no >= round_no || no < final_no) {
				late_replies++;
				continue;
			}
			r = &ring[no % RING];
			if (!r->used || r->no != no)
				continue;
			{
				double us = (now_ms() - r->sent) * 1e3;
				if (us > max_reply_us)
					max_reply_us = us;
			}
			for (int v = 0; v < nvips; v++) {
				struct answers *a = &r->a[v];
				int dup = 0;
				if (memcmp(f.arp.arp_spa, &vips[v], 4) != 0)
					continue;
				for (int i = 0; i < a->n; i++)
					if (memcmp(a->mac[i], f.arp.arp_sha, 6) == 0)
						dup = 1;
				if (!dup && a->n < MAX_MACS)
					memcpy(a->mac[a->n++], f.arp.arp_sha, 6);
			}
		}
	}
	printf("%.3f - exit %u\n", now_ms(), round_no);
	fflush(stdout);
	close(fd);
	return 0;
usage:
	fprintf(stderr, "usage: vwarpwatch -i ifname -s sender_ip [-p period_ms 1..50] [-w wait_ms] [-H heartbeat_ms] "
			"[-d max_duration_s] vip...\n");
	return 64;
}
