/* The platform tinyml-host hands to the core: what surrounds a model on a board -- a RAM budget for uploads,
 * the built-in model, the clock, the debug delay and a simulated panic (around the runtime's invoke), and the
 * board-info keys of the host. The runtime (test or external engine) goes to the core directly. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, getline, cfmakeraw, aligned_alloc */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_engine.h"

#ifndef TINYML_BUILD_ID
#define TINYML_BUILD_ID "unknown"
#endif
#ifndef TINYML_CFLAGS
#define TINYML_CFLAGS "unknown"
#endif

#define MAX_KEYS 48

typedef struct host_wrap {
  int (*inner_invoke)(void *ctx, uint32_t *elapsed_us, tinyml_error *err);
  const host_options *opt;
  int fake_clock;
  int budget_on;
  size_t held, min_free;
  uint64_t fake_clock_us; /* test engine: advances by each invoke's us */
  uint64_t start_ns;
  uint32_t invokes;
  uint8_t *builtin;
  size_t builtin_len;
  char engine_name[80];
  int n_keys;
  char keys[MAX_KEYS][32];
  char values[MAX_KEYS][161];
} host_wrap;

static host_wrap g_wrap;
void (*host_panic_hook)(void) = NULL;

/* A 16-byte header keeps the size, so release() can give it back to the budget. */
static void *w_alloc(void *ctx, size_t bytes, size_t *available) {
  host_wrap *w = (host_wrap *)ctx;
  size_t budget = w->opt->max_model_bytes;
  if (w->budget_on && (w->held > budget || bytes > budget - w->held)) {
    *available = w->held > budget ? 0 : budget - w->held;
    return NULL;
  }
  uint8_t *p = (uint8_t *)aligned_alloc(16, ((bytes + 16 + 15) / 16) * 16);
  if (p == NULL) {
    *available = 0;
    return NULL;
  }
  memcpy(p, &bytes, sizeof bytes);
  memcpy(p + sizeof bytes, &w->budget_on, sizeof w->budget_on);
  if (w->budget_on) {
    w->held += bytes;
    if (budget - w->held < w->min_free) w->min_free = budget - w->held;
  }
  return p + 16;
}

static void w_release(void *ctx, void *ptr) {
  host_wrap *w = (host_wrap *)ctx;
  if (ptr == NULL) return;
  uint8_t *p = (uint8_t *)ptr - 16;
  size_t bytes;
  int counted;
  memcpy(&bytes, p, sizeof bytes);
  memcpy(&counted, p + sizeof bytes, sizeof counted);
  if (counted) w->held -= bytes;
  free(p);
}

static const uint8_t *w_builtin(void *ctx, size_t *len) {
  host_wrap *w = (host_wrap *)ctx;
  *len = w->builtin_len;
  return w->builtin;
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The runtime's invoke plus the host's additions; ctx is the runtime's. */
static int w_invoke(void *ctx, uint32_t *us, tinyml_error *e) {
  host_wrap *w = &g_wrap;
  w->invokes++;
  if (w->opt->panic_at_invoke != 0 && w->invokes == w->opt->panic_at_invoke && host_panic_hook) host_panic_hook();
  uint32_t extra = 0;
  if (w->opt->delay_us && w->fake_clock) {
    extra = w->opt->delay_us; /* test engine: exact, so tests can assert on it */
  } else if (w->opt->delay_us) {
    uint64_t t0 = monotonic_ns();
    struct timespec ts = {(time_t)(w->opt->delay_us / 1000000u), (long)(w->opt->delay_us % 1000000u) * 1000L};
    nanosleep(&ts, NULL);
    extra = (uint32_t)((monotonic_ns() - t0) / 1000u); /* a real delay inside the timed window */
  }
  if (w->inner_invoke(ctx, us, e) != 0) return -1;
  *us += extra;
  w->fake_clock_us += *us;
  return 0;
}

static int w_heap(void *ctx, size_t *free_bytes, size_t *min_free, size_t *largest, tinyml_error *e) {
  host_wrap *w = (host_wrap *)ctx;
  (void)e;
  *free_bytes = w->opt->max_model_bytes - w->held;
  *min_free = w->min_free;
  *largest = *free_bytes;
  return 0;
}

/* Test engine: the fake clock (exact, for tests); external engine: CLOCK_MONOTONIC since start. */
static uint64_t w_now(void *ctx) {
  host_wrap *w = (host_wrap *)ctx;
  return w->fake_clock ? w->fake_clock_us : (monotonic_ns() - w->start_ns) / 1000u;
}

static void collect(void *arg, const char *key, const char *value) {
  host_wrap *w = (host_wrap *)arg;
  int i = 0;
  while (i < w->n_keys && strcmp(w->keys[i], key) != 0) i++;
  if (i == w->n_keys) {
    if (w->n_keys == MAX_KEYS) return;
    w->n_keys++;
    snprintf(w->keys[i], sizeof w->keys[i], "%s", key);
  }
  snprintf(w->values[i], sizeof w->values[i], "%s", value);
}

static void w_info(void *ctx, tinyml_info_emit emit, void *arg) {
  host_wrap *w = (host_wrap *)ctx;
  char number[32];
  w->n_keys = 0;
  collect(w, "build", w->opt->build ? w->opt->build : TINYML_BUILD_ID);
  collect(w, "chip", "host-sim");
  collect(w, "compiler", "gcc " __VERSION__);
  collect(w, "cflags", TINYML_CFLAGS);
  snprintf(number, sizeof number, "%lu", (unsigned long)(w->opt->max_model_bytes - w->held));
  collect(w, "max-model-bytes", number);
  collect(w, "heap-free", number);
  if (w->opt->engine_cmd) rpc_engine_info(collect, w); /* may replace the host's keys (chip, ...) */
#ifdef TINYML_HOST_CHIP
  /* A TEST build of the real core standing in for a board of that chip (tests/firmware_host.py
   * build_host_as): it reports the chip (and clock) a board would, while the engine still runs on the host.
   * Never a release build: the sim reports chip host-sim. */
  collect(w, "chip", TINYML_HOST_CHIP);
#ifdef TINYML_HOST_CPU_MHZ
  collect(w, "cpu-mhz", TINYML_HOST_CPU_MHZ);
#endif
#endif
  collect(w, "engine", w->engine_name); /* what actually runs, whatever the engine calls itself */
  for (int i = 0; i < w->n_keys; i++) emit(arg, w->keys[i], w->values[i]);
}

static int read_file(const char *path, uint8_t **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  size_t cap = 65536, n = 0;
  uint8_t *buf = (uint8_t *)malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) buf = (uint8_t *)realloc(buf, cap *= 2);
  }
  fclose(f);
  if (buf == NULL) return -1;
  *data = buf;
  *len = n;
  return 0;
}

int host_platform_init(tinyml_platform *platform, tinyml_runtime *runtime, const host_options *opt,
                       const char *engine_name) {
  host_wrap *w = &g_wrap;
  memset(w, 0, sizeof *w);
  w->opt = opt;
  w->fake_clock = opt->engine_cmd == NULL;
  w->min_free = opt->max_model_bytes;
  w->start_ns = monotonic_ns();
  snprintf(w->engine_name, sizeof w->engine_name, "%s", engine_name);
  if (opt->builtin_path && !opt->no_builtin) {
    if (read_file(opt->builtin_path, &w->builtin, &w->builtin_len) != 0) {
      fprintf(stderr, "tinyml-host: cannot read the built-in model %s\n", opt->builtin_path);
      return -1;
    }
  } else if (!opt->no_builtin && w->fake_clock) {
    w->builtin = (uint8_t *)test_engine_default_model(&w->builtin_len);
  }
  w->inner_invoke = runtime->invoke;
  runtime->invoke = w_invoke;
  memset(platform, 0, sizeof *platform);
  platform->ctx = w;
  platform->alloc = w_alloc;
  platform->release = w_release;
  platform->builtin_model = w_builtin;
  platform->heap = w_heap;
  platform->now_us = w_now;
  platform->info = w_info;
  return 0;
}

void host_platform_start_budget(void) { g_wrap.budget_on = 1; }
