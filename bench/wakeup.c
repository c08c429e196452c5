// The machine's own cost of waking a process on another core, which every proxy pinned away from
// its client and upstream pays four times per request at one connection (bench/RESULTS.md, "Added
// latency at one connection"). Two processes ping-pong one byte over a socketpair, each pinned to
// a CPU, with a 200 us pause before each round trip so the other side is asleep, as a proxy's
// peers are at one connection. By hand:
//   cc -O2 -o /tmp/wakeup bench/wakeup.c && /tmp/wakeup 0 1 3000 && /tmp/wakeup 1 1 3000
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    perror("sched_setaffinity");
    exit(1);
  }
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <cpu of the caller> <cpu of the answerer> <round trips>\n", argv[0]);
    return 2;
  }
  int a = atoi(argv[1]), b = atoi(argv[2]), n = atoi(argv[3]);
  if (n < 100) n = 100;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("socketpair");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 1;
  }
  if (child == 0) {
    close(sv[0]);
    pin(b);
    char c;
    for (int i = 0; i < n; i++) {
      if (read(sv[1], &c, 1) != 1 || write(sv[1], &c, 1) != 1) return 1;
    }
    return 0;
  }
  // Only the child holds the other end, so its exit (a failed pin) ends the parent's read.
  close(sv[1]);
  signal(SIGPIPE, SIG_IGN);
  pin(a);
  double *rtt = malloc(n * sizeof(double));
  char c = 'x';
  for (int i = 0; i < n; i++) {
    usleep(200);
    double t = now_us();
    if (write(sv[0], &c, 1) != 1 || read(sv[0], &c, 1) != 1) {
      fprintf(stderr, "the answering process stopped after %d round trips\n", i);
      waitpid(child, NULL, 0);
      return 1;
    }
    rtt[i] = now_us() - t;
  }
  waitpid(child, NULL, 0);
  qsort(rtt, n, sizeof(double), by_value);
  printf("cpu %d <-> cpu %d: round trip p50 %.1f us, p90 %.1f us, p99 %.1f us (%d round trips)\n", a, b, rtt[n / 2], rtt[n * 9 / 10], rtt[n * 99 / 100], n);
  free(rtt);
  return 0;
}
