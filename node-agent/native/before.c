/*
 * vw-before DEADLINE_NS COMMAND [ARGS...]
 *
 * Runs COMMAND (execvp, same stdin/stdout/stderr) only if CLOCK_MONOTONIC has not passed DEADLINE_NS; otherwise
 * exits 75 (EX_TEMPFAIL) without running it.
 *
 * Why: the agent sets a VIP's kernel lifetime from a keepalive answer that is only good until a deadline. If the
 * agent is frozen (SIGSTOP, starved) between its check and the moment `ip` runs, the command must not run late:
 * the VIP may have moved meanwhile. The check has to happen in the process that runs the command, after the fork,
 * because a freeze of the agent does not stop this process. Node and this program read the same clock
 * (process.hrtime is CLOCK_MONOTONIC).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: vw-before DEADLINE_NS COMMAND [ARGS...]\n");
    return 64;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long deadline = strtoull(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != '\0') {
    fprintf(stderr, "vw-before: bad deadline %s\n", argv[1]);
    return 64;
  }
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    perror("vw-before: clock_gettime");
    return 71;
  }
  unsigned long long now = (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
  if (now > deadline) {
    fprintf(stderr, "vw-before: deadline passed %llu us ago; not running %s\n", (now - deadline) / 1000ULL, argv[2]);
    return 75;
  }
  execvp(argv[2], argv + 2);
  perror("vw-before: exec");
  return 127;
}
