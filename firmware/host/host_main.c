/* tinyml-host: the firmware's portable core on the host, talking the serial protocol on stdin/stdout or a
 * tty exactly like a board (boot banner, reset reason, framing). Options: ENGINE_RPC.md section 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, getline, cfmakeraw, aligned_alloc */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "host_engine.h"
#include "tinyml_arena.h"
#include "tinyml_codec.h"

typedef struct host_io {
  int in_fd, out_fd;
  uint8_t buf[256];
  size_t pos, len;
  uint8_t garbled[16];
} host_io;

static host_options g_opt;
static host_io g_io;
static tinyml_core g_core;
static tinyml_runtime g_runtime;
static tinyml_platform g_platform;
static char **g_argv;

static int io_read(void *ctx) {
  host_io *io = (host_io *)ctx;
  while (io->pos == io->len) {
    ssize_t n = read(io->in_fd, io->buf, sizeof io->buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1; /* EOF, or EIO once the pty master is closed */
    io->pos = 0;
    io->len = (size_t)n;
  }
  return io->buf[io->pos++];
}

static void write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    len -= (size_t)n;
  }
}

/* --garble-seq: the first transmission of a listed framed line gets one byte changed; the held copy is intact. */
static void io_write(void *ctx, const char *data, size_t len) {
  host_io *io = (host_io *)ctx;
  if (g_opt.n_garble && len > 4 && (data[0] == 'm' || data[0] == 'e') && data[1] == '-' && data[2] == '#') {
    uint32_t seq = (uint32_t)strtoul(data + 3, NULL, 10);
    for (int i = 0; i < g_opt.n_garble; i++) {
      if (g_opt.garble[i] != seq || io->garbled[i]) continue;
      io->garbled[i] = 1;
      char copy[512];
      size_t n = len < sizeof copy ? len : sizeof copy;
      memcpy(copy, data, n);
      size_t at = n / 2; /* inside the body: the CRC must catch it */
      copy[at] = copy[at] == '7' ? '3' : '7';
      write_all(io->out_fd, copy, n);
      return;
    }
  }
  write_all(io->out_fd, data, len);
}

static const tinyml_io kIo = {&g_io, io_read, io_write};

/* --panic-at-invoke: die like a board (a panic line, then a reboot that loses every state). */
static void panic_reboot(void) {
  const char *msg = "Guru Meditation Error: Core  0 panic'ed (simulated by tinyml-host --panic-at-invoke)\r\n";
  write_all(g_io.out_fd, msg, strlen(msg));
  if (g_opt.engine_cmd) rpc_engine_kill();
  int argc = 0;
  while (g_argv[argc]) argc++;
  char **argv = (char **)calloc((size_t)argc + 3, sizeof *argv);
  int n = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(g_argv[i], "--panic-at-invoke") == 0 || strcmp(g_argv[i], "--reset-reason") == 0) {
      i++; /* drop the option and its value */
      continue;
    }
    argv[n++] = g_argv[i];
  }
  argv[n++] = (char *)"--reset-reason";
  argv[n++] = (char *)"panic";
  execv("/proc/self/exe", argv);
  perror("tinyml-host: re-exec after the simulated panic");
  _exit(3);
}

static void usage(void) {
  fprintf(stderr,
          "usage: tinyml-host [--tty PATH] [--engine test | --engine-cmd CMD] [--builtin-model FILE | --no-builtin]\n"
          "                   [--delay-us N] [--max-model-bytes N] [--arena-size N] [--boot-heap N] [--max-runs N]\n"
          "                   [--batch-max N] [--reset-reason NAME] [--garble-seq N[,N...]] [--panic-at-invoke K] [--build ID]\n"
          "See firmware/host/ENGINE_RPC.md.\n");
}

static int number(const char *flag, const char *text, uint32_t *out) {
  if (text == NULL || tinyml_parse_u32(text, out) != 0) {
    fprintf(stderr, "tinyml-host: %s needs a decimal number, got %s\n", flag, text ? text : "nothing");
    return -1;
  }
  return 0;
}

static int parse_options(int argc, char **argv) {
  g_opt.max_model_bytes = 4u << 20;
  g_opt.arena_size = 65536;
  g_opt.max_runs = 1000;
  g_opt.reset_reason = "poweron";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint32_t n = 0;
    if (strcmp(a, "--no-builtin") == 0) {
      g_opt.no_builtin = 1;
      continue;
    }
    if (v == NULL) {
      usage();
      return -1;
    }
    i++;
    if (strcmp(a, "--tty") == 0) {
      g_opt.tty = v;
    } else if (strcmp(a, "--engine") == 0) {
      if (strcmp(v, "test") != 0) {
        fprintf(stderr, "tinyml-host: --engine takes only 'test'; use --engine-cmd for an external engine\n");
        return -1;
      }
    } else if (strcmp(a, "--engine-cmd") == 0) {
      g_opt.engine_cmd = v;
    } else if (strcmp(a, "--builtin-model") == 0) {
      g_opt.builtin_path = v;
    } else if (strcmp(a, "--reset-reason") == 0) {
      g_opt.reset_reason = v;
    } else if (strcmp(a, "--build") == 0) {
      g_opt.build = v;
    } else if (strcmp(a, "--garble-seq") == 0) {
      for (char *p = (char *)v; *p && g_opt.n_garble < 16;) {
        g_opt.garble[g_opt.n_garble++] = (uint32_t)strtoul(p, &p, 10);
        if (*p == ',') p++; else break;
      }
    } else if (number(a, v, &n) != 0) {
      return -1;
    } else if (strcmp(a, "--delay-us") == 0) {
      g_opt.delay_us = n;
    } else if (strcmp(a, "--max-model-bytes") == 0) {
      g_opt.max_model_bytes = n;
    } else if (strcmp(a, "--arena-size") == 0) {
      g_opt.arena_size = n;
    } else if (strcmp(a, "--boot-heap") == 0) {
      g_opt.boot_heap = n;
    } else if (strcmp(a, "--batch-max") == 0 && n > 0) {
      g_opt.batch_max = n;
    } else if (strcmp(a, "--max-runs") == 0 && n > 0) {
      g_opt.max_runs = n;
    } else if (strcmp(a, "--panic-at-invoke") == 0) {
      g_opt.panic_at_invoke = n;
    } else {
      usage();
      return -1;
    }
  }
  return 0;
}

static int open_tty(const char *path) {
  int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "tinyml-host: cannot open --tty %s: %s\n", path, strerror(errno));
    return -1;
  }
  struct termios t;
  if (tcgetattr(fd, &t) == 0) {
    cfmakeraw(&t); /* no echo, no CR/LF translation: the bytes a UART would carry */
    tcsetattr(fd, TCSANOW, &t);
  }
  return fd;
}

int main(int argc, char **argv) {
  g_argv = argv;
  if (parse_options(argc, argv) != 0) return 2;
  g_io.in_fd = 0;
  g_io.out_fd = 1;
  if (g_opt.tty) {
    int fd = open_tty(g_opt.tty);
    if (fd < 0) return 2;
    g_io.in_fd = g_io.out_fd = fd;
  }
  char name[96];
  tinyml_config config = {g_opt.reset_reason, g_opt.max_runs, 0, {0, 0, 0}, g_opt.batch_max};
  if (g_opt.engine_cmd) {
    if (rpc_engine_init(&g_runtime, g_opt.engine_cmd) != 0) return 2;
    snprintf(name, sizeof name, "external:%s", rpc_engine_name());
  } else {
    /* The test engine's arena is sized as a board sizes its own (tinyml_arena_fit), against --boot-heap. */
    size_t heap = g_opt.boot_heap ? g_opt.boot_heap : g_opt.arena_size + TINYML_ARENA_MARGIN;
    config.arena.configured = g_opt.arena_size;
    config.arena.size = tinyml_arena_fit(g_opt.arena_size, heap);
    config.arena.heap_at_boot = heap;
    test_engine_init(&g_runtime, config.arena.size);
    snprintf(name, sizeof name, "test");
  }
  if (host_platform_init(&g_platform, &g_runtime, &g_opt, name) != 0) return 2;
  host_panic_hook = panic_reboot;
  if (tinyml_core_init(&g_core, &g_runtime, &g_platform, &kIo, &config) != 0) {
    fprintf(stderr, "tinyml-host: no memory for %lu samples\n", (unsigned long)g_opt.max_runs);
    return 2;
  }
  host_platform_start_budget();
  tinyml_core_boot(&g_core);
  tinyml_core_run(&g_core);
  if (g_opt.engine_cmd) rpc_engine_shutdown();
  return 0;
}
