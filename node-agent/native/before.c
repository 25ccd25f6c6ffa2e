/*
 * vw-before DEADLINE_NS COMMAND [ARGS...]
 *
 * Reads its standard input to the end, then runs COMMAND (execvp) with that input, only if CLOCK_MONOTONIC has
 * not passed DEADLINE_NS by then; otherwise exits 75 (EX_TEMPFAIL) without running it.
 *
 * Why: the agent sets a VIP's kernel lifetime from a keepalive answer that is only good until a deadline. If the
 * agent is frozen (SIGSTOP, starved) after deciding but before the command acts, the command must not act late:
 * the VIP may have moved meanwhile. The check has to happen in this process, after all of the command's input has
 * arrived (the agent writes `ip -batch` lines to a pipe: a frozen agent would otherwise hand them over late), and
 * a freeze of the agent does not stop this process or the command it becomes. Node and this program read the same
 * clock (process.hrtime is CLOCK_MONOTONIC).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int copy_stdin_to_memfd(void) {
  int fd = memfd_create("vw-before-input", MFD_CLOEXEC);
  if (fd < 0) return -1;
  char buf[65536];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      off += w;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) return -1;
  return fd;
}

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
  int in = copy_stdin_to_memfd();
  if (in < 0 || dup2(in, 0) != 0) {
    perror("vw-before: reading standard input");
    return 71;
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
