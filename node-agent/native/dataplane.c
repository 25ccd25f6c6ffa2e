/*
 * vipwarden-dataplane [PARENT_PID]: the agent's long-running data-path helper (node-agent/dataplane.ts drives it).
 *
 * Address add/replace/delete/list over rtnetlink, gratuitous ARP over an AF_PACKET socket, unsolicited IPv6
 * neighbour advertisements over a raw ICMPv6 socket, in the network namespace it was started in. One process for
 * the agent's life instead of an `ip`, `arping` or `vipwarden-ndsend` per step.
 *
 * Protocol: one request per line on stdin, one answer per line on stdout, in request order. Fields are separated
 * by single spaces; a line is at most 1023 bytes.
 *
 *   request:  ID DEADLINE_NS OP ARGS...
 *   answer:   ID ok [FIELDS...] | ID expired LATE_NS | ID error ERRNO TEXT
 *
 * ID is 1..18 decimal digits, echoed back. DEADLINE_NS is a CLOCK_MONOTONIC time in nanoseconds (the clock of
 * Node's process.hrtime). Requests that act (add, garp, na) must carry one (not 0): CLOCK_MONOTONIC is read
 * immediately before each syscall that acts, and when it is past the deadline that syscall is not made and the
 * answer is `expired` (nothing acted), so that a request decided before a freeze never acts after it. `del` and
 * `list` take 0: removing an address late is always safe, and refusing it would leave the address on.
 *
 *   ping                                        -> ok PID
 *   add IFACE ADDR/PREFIX VALID PREFERRED ANN   -> ok new|existed CHECKED_NS ACKED_NS ANNOUNCED_NS
 *        create (NLM_F_EXCL), or when it exists replace its lifetimes (NLM_F_REPLACE); IPv6 with IFA_F_NODAD.
 *        ANN 1: right after the kernel acknowledged a new address, announce it (IPv4: gratuitous ARP, request and
 *        reply form; IPv6: one unsolicited NA). ANNOUNCED_NS is when the announcement went out (0: none).
 *   del IFACE ADDR/PREFIX                       -> ok deleted|absent
 *   list                                        -> ok [IFNAME/FAMILY/ADDR/PREFIX/VALID/PREFERRED/FLAGS ...]
 *        every address of the namespace; VALID and PREFERRED in seconds, 4294967295 for forever. '/' cannot occur
 *        in an interface name or an address.
 *   garp IFACE ADDR                             -> ok SENT_NS   (one request-form and one reply-form ARP)
 *   na IFACE ADDR                               -> ok SENT_NS   (one unsolicited NA, Override flag, to ff02::1)
 *   fence set|del ...                           -> the fast fence's nf_tables elements (fence.c)
 *
 * garp and na refuse (error EADDRNOTAVAIL) to announce an address that is not configured on IFACE (any more), or
 * is tentative or failed DAD: an announcement still queued when the address left this node would point the
 * neighbours back here while another node holds it.
 *
 * Between requests it deletes an address whose last lifetime set through it has ended (sweep.c: the kernel's own
 * deletion can come seconds late on an idle CPU). When stdin closes (the agent is gone, or closed it) or its parent
 * dies (PR_SET_PDEATHSIG, SIGUSR1) it reads no more requests, waits until every lifetime it set has ended, deletes
 * those addresses that are still there and exits 0; at once when it set none (the agent released them). SIGINT,
 * Once it set a fence element it also watches the fence's table and deletes the fenced addresses when another
 * process removes a part of it (fencewatch.c). SIGINT,
 * SIGTERM and SIGHUP are ignored: a terminal's Ctrl-C or systemd's stop signal to the whole control group must not
 * take the helper away while the agent is releasing its addresses on the way out.
 * Needs CAP_NET_ADMIN (addresses) and CAP_NET_RAW (announcements; without it they fail with EPERM, and addresses
 * still work).
 *
 * This file is the request loop; the other parts are listed in dataplane.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane.h"

#define MAX_LINE 1024
#define MAX_ARGS 8

static void bad_request(void) {
  fprintf(stdout, "- error %d bad request\n", EINVAL);
  fflush(stdout);
}

static void handle(char *line) {
  char *v[MAX_ARGS + 3];
  int n = 0;
  for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
    if (n == MAX_ARGS + 3) {
      n++;
      break;
    }
    v[n++] = t;
  }
  uint64_t id, deadline;
  answer_begin();
  if (n < 3 || n > MAX_ARGS + 3 || strlen(v[0]) > 18 || parse_u64(v[0], &id) || parse_u64(v[1], &deadline)) {
    bad_request();
    return;
  }
  const char *op = v[2];
  char **args = v + 3;
  int nargs = n - 3;
  if (!strcmp(op, "ping")) emit("ok %d", (int)getpid());
  else if (!strcmp(op, "add")) op_add(args, nargs, deadline);
  else if (!strcmp(op, "del")) op_del(args, nargs);
  else if (!strcmp(op, "list")) op_list(nargs);
  else if (!strcmp(op, "garp")) op_announce(args, nargs, deadline, AF_INET);
  else if (!strcmp(op, "na")) op_announce(args, nargs, deadline, AF_INET6);
  else if (!strcmp(op, "fence")) op_fence(args, nargs, deadline);
  else fail(EINVAL, "unknown request");
  answer_write(id);
}

static volatile sig_atomic_t orphaned;
static void on_parent_death(int sig) {
  (void)sig;
  orphaned = 1;
}

/* Waits for stdin (when `input`), the next sweep or a nf_tables notification (fencewatch.c), whichever comes
 * first; 1 when stdin is readable. */
static int wait_input(int input) {
  uint64_t next = sweep_next();
  struct timespec ts, *timeout = NULL;
  if (next) {
    uint64_t now = now_ns(), d = next > now ? next - now : 0;
    ts.tv_sec = (time_t)(d / 1000000000ULL);
    ts.tv_nsec = (long)(d % 1000000000ULL);
    timeout = &ts;
  }
  struct pollfd p[2] = {{.fd = input ? 0 : -1, .events = POLLIN}, {.fd = fwatch_fd(), .events = POLLIN}};
  int rc = ppoll(p, 2, timeout, NULL);
  if (rc > 0 && p[1].revents) fwatch_read();
  sweep_due(now_ns());
  return rc > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
}

int main(int argc, char **argv) {
  /* Outlives the agent only as long as a lifetime it set has not ended (sweep.c): SIGUSR1 when the parent goes, and
   * a check for a parent gone before the prctl. Requests still queued then are never read. */
  signal(SIGUSR1, on_parent_death);
  prctl(PR_SET_PDEATHSIG, SIGUSR1);
  if (argc > 1 && getppid() != (pid_t)atol(argv[1])) return 1;
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  /* Best effort: no page fault (a disk read under memory pressure) between a deadline check and its syscall. */
  mlockall(MCL_CURRENT);

  if (nl_open() < 0) {
    perror("vipwarden-dataplane: netlink");
    return 1;
  }
  if (announce_open() < 0) {
    perror("vipwarden-dataplane: socket");
    return 1;
  }
  if (answer_init() < 0) return 1;

  char line[MAX_LINE];
  size_t len = 0;
  int skipping = 0; /* the rest of a line that was too long, already refused */
  int input = 1;
  for (;;) {
    if (orphaned) input = 0;
    if (!input && !tracking()) return 0;
    if (!wait_input(input) || orphaned) continue;
    ssize_t got = read(0, line + len, sizeof line - 1 - len);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      if (len && !skipping) bad_request(); /* cut off by EOF */
      input = 0;
      continue;
    }
    len += (size_t)got;
    char *start = line, *nl;
    while ((nl = memchr(start, '\n', (size_t)(line + len - start)))) {
      *nl = '\0';
      if (skipping) skipping = 0;
      else handle(start);
      start = nl + 1;
    }
    len -= (size_t)(start - line);
    memmove(line, start, len);
    if (len == sizeof line - 1) {
      /* Too long: refuse it once and skip to the end of the line. */
      if (!skipping) bad_request();
      skipping = 1;
      len = 0;
    }
  }
}
