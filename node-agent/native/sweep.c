/*
 * The lifetimes this helper set, and the sweep that deletes an address once the last lifetime set on it has ended.
 *
 * Why: the kernel's own deletion of an expired address runs in a per-namespace delayed work that is *deferrable*
 * since Linux 6.13 (net/ipv4/devinet.c, net/ipv6/addrconf.c: INIT_DEFERRABLE_WORK(&net->ipv{4,6}.addr_chk_work)).
 * A deferrable timer does not wake an idle CPU: the deletion waits, past the bound of its own code, until that CPU
 * wakes for something else (docs/design.md, "How late the kernel deletes an expired address"). The helper's wait is
 * a ppoll timeout (an hrtimer, which does wake the CPU), so while the helper runs the address goes at its end
 * within a few ms. That covers the faults that stop the agent and leave its helper: a frozen or hung agent, and an
 * agent that died (the helper then lives on until its last lifetime ended; dataplane.c).
 *
 * Only deletes, and only what no later request renewed: an add or replace through this helper moves the end, a
 * del drops it. Before deleting, the kernel's remaining valid lifetime is read: an address someone else set again
 * (a new agent's helper, after this agent died) has some left and is left alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "dataplane.h"

#define MAX_TRACKED 4096
/* Past its end by more than `jiffies` can lag (one tick: 10 ms at HZ=100), so that the kernel's remaining lifetime,
 * (jiffies - tstamp) / HZ against valid_lft, reads 0 for an address that nobody renewed. */
#define SWEEP_AFTER_NS 20000000ULL

struct tracked {
  unsigned ifindex;
  struct addr a;
  uint64_t end; /* CLOCK_MONOTONIC ns */
};

static struct tracked tracked[MAX_TRACKED];
static int ntracked;

static int same(const struct tracked *t, unsigned ifindex, const struct addr *a) {
  return t->ifindex == ifindex && t->a.family == a->family && !memcmp(t->a.bytes, a->bytes, alen(a->family));
}

static void drop_at(int i) { tracked[i] = tracked[--ntracked]; }

void track_set(unsigned ifindex, const struct addr *a, uint64_t acked, uint64_t valid_s) {
  uint64_t end = acked + valid_s * 1000000000ULL + SWEEP_AFTER_NS;
  for (int i = 0; i < ntracked; i++)
    if (same(&tracked[i], ifindex, a)) {
      tracked[i].a = *a;
      tracked[i].end = end;
      return;
    }
  if (ntracked == MAX_TRACKED) return; /* the kernel's worker stays the backstop for the rest */
  tracked[ntracked++] = (struct tracked){ifindex, *a, end};
}

void track_drop(unsigned ifindex, const struct addr *a) {
  for (int i = 0; i < ntracked; i++)
    if (same(&tracked[i], ifindex, a)) {
      drop_at(i);
      return;
    }
}

int tracking(void) { return ntracked; }

uint64_t sweep_next(void) {
  uint64_t next = 0;
  for (int i = 0; i < ntracked; i++)
    if (!next || tracked[i].end < next) next = tracked[i].end;
  return next;
}

struct left {
  const struct tracked *t;
  int found;
  unsigned valid;
};

static int remaining(const struct found *f, void *arg) {
  struct left *l = arg;
  if (f->ifindex != l->t->ifindex || (int)f->family != l->t->a.family) return 0;
  if (memcmp(f->bytes, l->t->a.bytes, alen(l->t->a.family)) != 0) return 0;
  l->found = 1;
  l->valid = f->valid;
  return 1;
}

int sweep_due(uint64_t now) {
  int deleted = 0;
  for (int i = 0; i < ntracked;) {
    struct tracked t = tracked[i];
    if (t.end > now) {
      i++;
      continue;
    }
    drop_at(i);
    struct left l = {&t, 0, 0};
    if (dump(t.a.family, remaining, &l) || !l.found || l.valid != 0) continue; /* gone, or set again */
    struct nlreq r;
    addr_req(&r, RTM_DELADDR, 0, &t.a, t.ifindex);
    if (!nl_request(&r)) deleted++;
  }
  return deleted;
}
