// An open-loop HTTP/1.1 load generator for the bench's fixed-rate measure (what wrk2 does; wrk2 is
// not packaged for Debian). Request i is due at start + i/rate whether or not earlier requests have
// answered; a timerfd wakes the loop at each due time, so sends leave within microseconds of their
// schedule, and latency is timed from that due time (so a stalled target is charged for the requests
// that queued behind the stall, instead of the load slowing down with it). Native, so the measure
// has no garbage collector of its own: the Node client it replaces put its own pauses in every row.
//
//   openloop -r RATE -d SECONDS -w WARMUP_SECONDS -c CONNECTIONS [-H 'Name: value']... [-o TRACE_FILE] http://HOST:PORT/PATH
//
// Prints one JSON object: requests counted (after the warm-up), errors, req/s, latency quantiles in
// µs, and how late the sends left against their schedule (the generator's own precision).
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 32
#define BUF_SIZE 65536

enum body_mode { BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

struct conn {
  int fd;
  int busy;            // a request is out on it
  int64_t due_ns;      // the due time of that request
  long index;          // its index in the schedule
  size_t sent;         // bytes of the request written so far
  char buf[BUF_SIZE];  // unparsed bytes read
  size_t len;
  int headers_done;
  int status;
  int keep_alive;
  enum body_mode mode;
  long long remaining;  // BODY_LENGTH: body bytes left; CH_DATA: chunk bytes left
  enum chunk_state chunk;
};

static struct sockaddr_storage addr;
static socklen_t addr_len;
static char *request;
static size_t request_len;
static int epfd;
static struct conn *conns;
static int nconns;
static int64_t *latency_ns;  // by schedule index, -1 while unanswered
static int64_t *lag_ns;      // how late each send left
static long answered, errors_counted, total, counted_from;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "openloop: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(void) {
  fprintf(stderr, "usage: openloop -r RATE -d SECONDS -w WARMUP_SECONDS -c CONNECTIONS [-H 'Name: value']... [-o TRACE_FILE] http://HOST:PORT/PATH\n");
  exit(2);
}

static void open_conn(struct conn *c) {
  c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, addr_len) < 0 && errno != EINPROGRESS) die("connect");
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
  c->busy = 0;
  c->len = 0;
}

static void record(struct conn *c, int ok) {
  int64_t t = now_ns();
  latency_ns[c->index] = t - c->due_ns;
  answered++;
  if (!ok && c->index >= counted_from) errors_counted++;
  c->busy = 0;
}

// The connection failed or closed: the request out on it (if any) is an error; reconnect.
static void reset_conn(struct conn *c) {
  if (c->busy) record(c, 0);
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  open_conn(c);
}

static void want_write(struct conn *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void send_more(struct conn *c) {
  while (c->sent < request_len) {
    ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) { want_write(c, 1); return; }
      if (errno == ECONNREFUSED) die("connect");  // nothing listens: no point in retrying
      reset_conn(c);
      return;
    }
    c->sent += (size_t)n;
  }
  want_write(c, 0);
}

static void start_request(struct conn *c, long index, int64_t due) {
  c->busy = 1;
  c->index = index;
  c->due_ns = due;
  c->sent = 0;
  c->headers_done = 0;
  lag_ns[index] = now_ns() - due;
  send_more(c);
}

// Case-insensitive search for a header's value in the header block; returns its start or NULL.
static const char *header_value(const char *head, size_t len, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = head; p + nl + 1 < head + len; p++) {
    if ((p == head || p[-1] == '\n') && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      p += nl + 1;
      while (*p == ' ' || *p == '\t') p++;
      return p;
    }
  }
  return NULL;
}

// Consumes what is buffered; returns 1 when the response is complete.
static int parse(struct conn *c) {
  if (!c->headers_done) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) {
      if (c->len == BUF_SIZE) { errno = EMSGSIZE; return -1; }
      return 0;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0) { errno = EPROTO; return -1; }
    c->status = atoi(c->buf + 9);
    const char *v = header_value(c->buf, head_len, "connection");
    c->keep_alive = !(v && strncasecmp(v, "close", 5) == 0);
    const char *te = header_value(c->buf, head_len, "transfer-encoding");
    const char *cl = header_value(c->buf, head_len, "content-length");
    if (te && strncasecmp(te, "chunked", 7) == 0) {
      c->mode = BODY_CHUNKED;
      c->chunk = CH_SIZE;
    } else if (cl) {
      c->mode = BODY_LENGTH;
      c->remaining = atoll(cl);
    } else if (c->status == 204 || c->status == 304) {
      c->mode = BODY_LENGTH;
      c->remaining = 0;
    } else {
      c->mode = BODY_UNTIL_CLOSE;
      c->keep_alive = 0;
    }
    memmove(c->buf, c->buf + head_len, c->len - head_len);
    c->len -= head_len;
    c->headers_done = 1;
  }
  if (c->mode == BODY_UNTIL_CLOSE) { c->len = 0; return 0; }
  if (c->mode == BODY_LENGTH) {
    size_t take = c->len < (size_t)c->remaining ? c->len : (size_t)c->remaining;
    c->remaining -= (long long)take;
    memmove(c->buf, c->buf + take, c->len - take);
    c->len -= take;
    return c->remaining == 0;
  }
  for (;;) {  // chunked
    if (c->chunk == CH_DATA) {
      size_t take = c->len < (size_t)c->remaining ? c->len : (size_t)c->remaining;
      c->remaining -= (long long)take;
      memmove(c->buf, c->buf + take, c->len - take);
      c->len -= take;
      if (c->remaining > 0) return 0;
      c->chunk = CH_DATA_CRLF;
    }
    char *eol = memmem(c->buf, c->len, "\r\n", 2);
    if (!eol) {
      if (c->len == BUF_SIZE) { errno = EMSGSIZE; return -1; }
      return 0;
    }
    size_t line = (size_t)(eol - c->buf);
    if (c->chunk == CH_SIZE) {
      c->remaining = strtoll(c->buf, NULL, 16);
      c->chunk = c->remaining == 0 ? CH_TRAILER : CH_DATA;
    } else if (c->chunk == CH_DATA_CRLF) {
      c->chunk = CH_SIZE;
    } else if (line == 0) {  // the empty line that ends the trailer
      memmove(c->buf, eol + 2, c->len - line - 2);
      c->len -= line + 2;
      return 1;
    }
    memmove(c->buf, eol + 2, c->len - line - 2);
    c->len -= line + 2;
  }
}

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
    if (n == 0) {  // closed by the target
      if (c->busy && c->headers_done && c->mode == BODY_UNTIL_CLOSE) record(c, c->status >= 200 && c->status < 300);
      reset_conn(c);
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ECONNREFUSED) die("connect");  // nothing listens: no point in retrying
      reset_conn(c);
      return;
    }
    c->len += (size_t)n;
    if (!c->busy) { reset_conn(c); return; }  // bytes nobody asked for
    int done = parse(c);
    if (done < 0) { reset_conn(c); return; }
    if (done) {
      record(c, c->status >= 200 && c->status < 300);
      if (!c->keep_alive || c->len > 0) { reset_conn(c); return; }
    }
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double quantile_us(int64_t *sorted, long n, double q) {
  if (n == 0) return 0;
  long i = (long)(q * (double)n);
  if (i >= n) i = n - 1;
  return (double)sorted[i] / 1000.0;
}

int main(int argc, char **argv) {
  double rate = 0, duration = 0, warmup = 0;
  int opt;
  char *headers[MAX_HEADERS];
  int nheaders = 0;
  const char *trace = NULL;
  while ((opt = getopt(argc, argv, "r:d:w:c:H:o:")) != -1) {
    switch (opt) {
      case 'o': trace = optarg; break;
      case 'r': rate = atof(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 'w': warmup = atof(optarg); break;
      case 'c': nconns = atoi(optarg); break;
      case 'H':
        if (nheaders == MAX_HEADERS) usage();
        headers[nheaders++] = optarg;
        break;
      default: usage();
    }
  }
  if (optind != argc - 1 || rate <= 0 || duration <= 0 || warmup < 0 || nconns <= 0) usage();
  const char *url = argv[optind];
  if (strncmp(url, "http://", 7) != 0) usage();
  char host[256], port[16] = "80";
  const char *hp = url + 7, *path = strchr(hp, '/');
  if (!path) path = "/";
  size_t hl = (size_t)(path - hp);
  if (path == hp || hl >= sizeof host) usage();
  memcpy(host, hp, hl);
  host[hl] = 0;
  char *colon = strrchr(host, ':');
  if (colon) {
    snprintf(port, sizeof port, "%s", colon + 1);
    *colon = 0;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(host, port, &hints, &ai) != 0) { fprintf(stderr, "openloop: cannot resolve %s\n", host); return 2; }
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  addr_len = ai->ai_addrlen;
  freeaddrinfo(ai);

  // The request: a Host header unless one was given.
  size_t cap = 256 + strlen(path) + strlen(host);
  for (int i = 0; i < nheaders; i++) cap += strlen(headers[i]) + 2;
  request = malloc(cap);
  int has_host = 0;
  for (int i = 0; i < nheaders; i++) if (strncasecmp(headers[i], "host:", 5) == 0) has_host = 1;
  size_t n = (size_t)snprintf(request, cap, "GET %s HTTP/1.1\r\n", *path ? path : "/");
  if (!has_host) n += (size_t)snprintf(request + n, cap - n, "Host: %s:%s\r\n", host, port);
  for (int i = 0; i < nheaders; i++) n += (size_t)snprintf(request + n, cap - n, "%s\r\n", headers[i]);
  n += (size_t)snprintf(request + n, cap - n, "\r\n");
  request_len = n;

  prctl(PR_SET_TIMERSLACK, 1UL);  // wake at the due time, not up to 50 µs after it
  total = (long)(rate * (duration + warmup));
  counted_from = (long)(rate * warmup);
  latency_ns = malloc(sizeof *latency_ns * (size_t)total);
  lag_ns = malloc(sizeof *lag_ns * (size_t)total);
  if (!latency_ns || !lag_ns) die("malloc");
  for (long i = 0; i < total; i++) latency_ns[i] = -1;

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  conns = calloc((size_t)nconns, sizeof *conns);
  if (!conns) die("calloc");
  for (int i = 0; i < nconns; i++) open_conn(&conns[i]);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (tfd < 0) die("timerfd_create");
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) < 0) die("epoll_ctl timer");

  const double interval_ns = 1e9 / rate;
  const int64_t start = now_ns() + 1000000;  // first send 1 ms from now: the connections are open by then
  const int64_t deadline = start + (int64_t)((duration + warmup + 30) * 1e9);
  long next = 0;  // the next request to send, in schedule order (some may wait for a free connection)
  int armed = 0;
  int rr = 0;
  struct epoll_event evs[64];
  while (answered < total && now_ns() < deadline) {
    int64_t t = now_ns();
    // Send every request that is due, each on a free connection; the rest wait, and their latency,
    // timed from the due time, counts the wait.
    while (next < total) {
      int64_t due = start + (int64_t)((double)next * interval_ns);
      if (due > t) break;
      struct conn *c = NULL;
      for (int k = 0; k < nconns; k++) {
        struct conn *cand = &conns[(rr + k) % nconns];
        if (!cand->busy) { c = cand; rr = (rr + k + 1) % nconns; break; }
      }
      if (!c) break;
      start_request(c, next, due);
      next++;
    }
    if (next < total && !armed) {
      int64_t due = start + (int64_t)((double)next * interval_ns);
      if (due > t) {
        struct itimerspec its = {.it_value = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL}};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        armed = 1;
      }
    }
    int ready = epoll_wait(epfd, evs, 64, 100);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < ready; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timerfd");
        armed = 0;
        continue;
      }
      if (evs[i].events & EPOLLOUT) {
        if (c->busy) send_more(c);
        else want_write(c, 0);
      }
      if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
  }
  int64_t end = now_ns();

  // Requests never answered by the deadline are errors, timed at the deadline.
  long counted = total - counted_from, unanswered = 0;
  for (long i = counted_from; i < total; i++) {
    if (latency_ns[i] < 0) {
      latency_ns[i] = end - (start + (int64_t)((double)i * interval_ns));
      unanswered++;
    }
  }
  for (long i = next; i < total; i++) lag_ns[i] = end - (start + (int64_t)((double)i * interval_ns));
  if (trace) {  // every counted request in schedule order: due time from the start and latency, in µs
    FILE *f = fopen(trace, "w");
    if (!f) die("fopen");
    for (long i = counted_from; i < total; i++) fprintf(f, "%.1f %.1f\n", (double)i * interval_ns / 1000.0, (double)latency_ns[i] / 1000.0);
    fclose(f);
  }
  int64_t *lat = latency_ns + counted_from, *lag = lag_ns + counted_from;
  qsort(lat, (size_t)counted, sizeof *lat, cmp_i64);
  qsort(lag, (size_t)counted, sizeof *lag, cmp_i64);
  double elapsed_s = (double)(end - start) / 1e9 - warmup;
  printf("{\"requests\":%ld,\"errors\":%ld,\"unanswered\":%ld,\"rps\":%.1f,\"p50us\":%.1f,\"p90us\":%.1f,\"p99us\":%.1f,\"p999us\":%.1f,\"maxUs\":%.1f,"
         "\"sendLagP50us\":%.1f,\"sendLagP99us\":%.1f,\"sendLagMaxUs\":%.1f}\n",
         counted, errors_counted + unanswered, unanswered, (double)counted / elapsed_s, quantile_us(lat, counted, 0.5), quantile_us(lat, counted, 0.9),
         quantile_us(lat, counted, 0.99), quantile_us(lat, counted, 0.999), quantile_us(lat, counted, 1.0), quantile_us(lag, counted, 0.5),
         quantile_us(lag, counted, 0.99), quantile_us(lag, counted, 1.0));
  return 0;
}
