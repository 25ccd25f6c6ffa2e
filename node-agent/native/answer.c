/* The answer to the current request, built in one buffer and written out in one piece; the deadline check. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane.h"

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Grows for long lists. */
static char *out;
static size_t outlen, outcap;
static int outfull;

int answer_init(void) {
  outcap = 16384;
  out = malloc(outcap);
  return out ? 0 : -1;
}

/* A new request: an empty answer. */
void answer_begin(void) {
  outlen = 0;
  outfull = 0;
}

/* Drops what was written so far (an answer that replaces it follows). */
void answer_reset(void) { outlen = 0; }

/* 1 when a part of the answer did not fit. */
int answer_full(void) { return outfull; }

void emit(const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + outlen, outcap - outlen, fmt, ap);
    va_end(ap);
    if (n < 0) {
      outfull = 1;
      return;
    }
    if ((size_t)n < outcap - outlen) {
      outlen += (size_t)n;
      return;
    }
    char *bigger = outcap < (64u << 20) ? realloc(out, outcap * 2) : NULL;
    if (!bigger) {
      outfull = 1;
      out[outlen] = '\0';
      return;
    }
    out = bigger;
    outcap *= 2;
  }
}

void answer_write(uint64_t id) {
  fprintf(stdout, "%llu %.*s\n", (unsigned long long)id, (int)outlen, out);
  fflush(stdout);
}

/* Deadline: returns 1 (and writes the `expired` answer) when it has passed. */
uint64_t checked_at;
int expired(uint64_t deadline) {
  checked_at = now_ns();
  if (checked_at <= deadline) return 0;
  outlen = 0;
  emit("expired %llu", (unsigned long long)(checked_at - deadline));
  return 1;
}

int fail(int err, const char *what) {
  outlen = 0;
  emit("error %d %s: %s", err, what, strerror(err));
  return -1;
}
