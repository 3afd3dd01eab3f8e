#include "tinyml_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"
#include "tinyml_internal.h"
#include "tinyml_sha256.h"

int tinyml_core_init(tinyml_core *core, const tinyml_runtime *runtime, const tinyml_platform *platform,
                     const tinyml_io *io, const tinyml_config *config) {
  memset(core, 0, sizeof *core);
  core->runtime = runtime;
  core->platform = platform;
  core->io = io;
  core->config = *config;
  if (core->config.max_runs == 0) core->config.max_runs = 1000;
  if (core->config.db_max == 0) core->config.db_max = 96 * 96 * 3;
  if (core->config.batch_max == 0) core->config.batch_max = 16384;
  if (core->config.reset_reason == NULL) core->config.reset_reason = "unknown";
  tinyml_frame_init(&core->framer);
  size_t available = 0;
  core->samples = (uint32_t *)tinyml_alloc(core, core->config.max_runs * sizeof(uint32_t), &available);
  return core->samples == NULL ? -1 : 0;
}

void *tinyml_alloc(tinyml_core *core, size_t bytes, size_t *available) {
  return core->platform->alloc(core->platform->ctx, bytes, available);
}

void tinyml_release(tinyml_core *core, void *ptr) {
  if (ptr != NULL) core->platform->release(core->platform->ctx, ptr);
}

static void send_error(tinyml_core *core, int framed, tinyml_status status, char *message) {
  /* Messages may quote what was received (an unknown command, a bad hex digit): keep the line ASCII. */
  for (char *p = message; *p; p++) {
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
  }
  if (framed) {
    tinyml_frame(&core->framer, core->io, 'e', "[%s: %s]", tinyml_status_name(status), message);
  } else {
    tinyml_line(core->io, "e-[%s: %s]", tinyml_status_name(status), message);
  }
}

void tinyml_fail(tinyml_core *core, int framed, tinyml_status status, const char *fmt, ...) {
  char message[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  send_error(core, framed, status, message);
}

void tinyml_fail_error(tinyml_core *core, int framed, const tinyml_error *err, const char *prefix) {
  char message[240];
  tinyml_status status = err->status == TINYML_OK ? TINYML_ST_ENGINE : err->status;
  const tinyml_arena_plan *plan = &core->config.arena;
  int n = snprintf(message, sizeof message, "%s%s", prefix ? prefix : "", err->message);
  if (status == TINYML_ST_ARENA_TOO_SMALL && plan->size < plan->configured && n > 0 && (size_t)n < sizeof message) {
    /* The arena is smaller than configured because the heap was short at boot: say so, it is the fix. */
    snprintf(message + n, sizeof message - (size_t)n, " (the arena got %lu of the %lu configured bytes: the "
             "largest free block at boot was %lu)", (unsigned long)plan->size, (unsigned long)plan->configured,
             (unsigned long)plan->heap_at_boot);
  }
  send_error(core, framed, status, message);
}

void tinyml_release_batch(tinyml_core *core) {
  tinyml_release(core, core->batch.in);
  tinyml_release(core, core->batch.out);
  memset(&core->batch, 0, sizeof core->batch);
}

void tinyml_unload_model(tinyml_core *core) {
  if (core->model_loaded) core->runtime->unload(core->runtime->ctx);
  tinyml_release_batch(core);
  tinyml_release(core, core->model_buf);
  for (int i = 0; i < TINYML_MAX_INPUTS; i++) tinyml_release(core, core->inputs[i].buf);
  memset(core->inputs, 0, sizeof core->inputs);
  core->model_buf = NULL;
  core->model_loaded = 0;
  core->model_builtin = 0;
  core->model_len = 0;
  core->mlperf_name = NULL;
  core->have_results = 0;
  core->n_samples = 0;
}

int tinyml_load_model(tinyml_core *core, uint8_t *buf, uint32_t len, int builtin, int framed) {
  tinyml_error err;
  memset(&err, 0, sizeof err);
  tinyml_unload_model(core);
  if (core->runtime->load(core->runtime->ctx, buf, len, &err) != 0) {
    if (!builtin) tinyml_release(core, buf);
    tinyml_fail_error(core, framed, &err, "");
    return -1;
  }
  core->model_loaded = 1;
  core->model_builtin = builtin;
  core->model_buf = builtin ? NULL : buf;
  core->model_len = len;
  core->model_crc = tinyml_crc32(0, buf, len);
  tinyml_sha256_hex(buf, len, core->model_sha256);
  core->mlperf_name = tinyml_mlperf_model_name(core);
  return 0;
}

void tinyml_format_dims(const tinyml_tensor_info *info, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < info->ndims && i < 6 && used < cap; i++) {
    int n = snprintf(out + used, cap - used, i ? "x%ld" : "%ld", (long)info->dims[i]);
    if (n < 0) break;
    used += (size_t)n;
  }
}

static int tensor_lines(tinyml_core *core, int output) {
  const tinyml_runtime *rt = core->runtime;
  int count = rt->tensor_count(rt->ctx, output);
  for (int i = 0; i < count; i++) {
    tinyml_tensor_info info;
    tinyml_error err;
    char dims[64];
    memset(&err, 0, sizeof err);
    if (rt->tensor_info(rt->ctx, output, i, &info, &err) != 0) {
      tinyml_fail_error(core, 1, &err, "");
      return -1;
    }
    tinyml_format_dims(&info, dims, sizeof dims);
    tinyml_frame(&core->framer, core->io, 'm', "tensor-[%s]-[%d]-[type=%s,bytes=%lu,dims=%s,scale=%.9g,zero_point=%ld]",
                 output ? "out" : "in", i, info.type, (unsigned long)info.bytes, dims, (double)info.scale,
                 (long)info.zero_point);
  }
  return 0;
}

int tinyml_arena_line(tinyml_core *core) {
  const tinyml_runtime *rt = core->runtime;
  const tinyml_arena_plan *plan = &core->config.arena;
  tinyml_arena_figures f;
  tinyml_error err;
  memset(&f, 0, sizeof f);
  memset(&err, 0, sizeof err);
  if (rt->arena(rt->ctx, &f, &err) != 0) {
    tinyml_fail_error(core, 1, &err, "");
    return -1;
  }
  size_t configured = plan->configured ? plan->configured : f.size;
  /* used= is protocol 1.0's name of arena_bytes, kept for 1.0 hosts. */
  tinyml_frame(&core->framer, core->io, 'm',
               "arena-[used=%lu,size=%lu,arena_bytes=%lu,arena_allocated_bytes=%lu,configured=%lu,shortfall=%lu]",
               (unsigned long)f.arena_bytes, (unsigned long)f.size, (unsigned long)f.arena_bytes,
               (unsigned long)f.allocated_bytes, (unsigned long)configured,
               (unsigned long)(configured > f.size ? configured - f.size : 0));
  return 0;
}

int tinyml_describe_model(tinyml_core *core) {
  if (!core->model_loaded) {
    tinyml_fail(core, 1, TINYML_ST_NO_MODEL, "no model is loaded; upload one with tinyml-load model, or tinyml-builtin");
    return -1;
  }
  tinyml_frame(&core->framer, core->io, 'm', "model-[source=%s,bytes=%lu,crc32=%08lx,sha256=%s]",
               core->model_builtin ? "builtin" : "uploaded", (unsigned long)core->model_len,
               (unsigned long)core->model_crc, core->model_sha256);
  if (tensor_lines(core, 0) != 0 || tensor_lines(core, 1) != 0) return -1;
  return tinyml_arena_line(core);
}

void tinyml_core_boot(tinyml_core *core) {
  const tinyml_platform *p = core->platform;
  const tinyml_arena_plan *plan = &core->config.arena;
  size_t len = 0;
  const uint8_t *builtin = p->builtin_model ? p->builtin_model(p->ctx, &len) : NULL;
  tinyml_line(core->io, "m-boot-[%s %s]", TINYML_FIRMWARE_NAME, TINYML_FIRMWARE_VERSION);
  tinyml_line(core->io, "m-tinyml-protocol-[%s]", TINYML_PROTOCOL_VERSION);
  tinyml_line(core->io, "m-reset-reason-[%s]", core->config.reset_reason);
  if (plan->size < plan->configured) {
    /* The protocol comes up anyway: a host that sees this knows why models need less arena than configured. */
    tinyml_line(core->io, "m-arena-[size=%lu,configured=%lu,shortfall=%lu,heap=%lu]", (unsigned long)plan->size,
                (unsigned long)plan->configured, (unsigned long)(plan->configured - plan->size),
                (unsigned long)plan->heap_at_boot);
  }
  if (builtin != NULL && len > 0) tinyml_load_model(core, (uint8_t *)builtin, (uint32_t)len, 1, 0);
  tinyml_line(core->io, "m-model-[%s]", core->model_loaded ? "builtin" : "none");
  tinyml_line(core->io, "m-timestamp-mode-performance");
  tinyml_line(core->io, "m-init-done");
  tinyml_line(core->io, "m-ready");
}

static void split_args(char *command, tinyml_args *args) {
  args->argc = 0;
  char *p = command;
  while (*p && args->argc < TINYML_MAX_ARGS) {
    while (*p == ' ' || *p == '\t') *p++ = '\0';
    if (!*p) break;
    args->argv[args->argc++] = p;
    while (*p && *p != ' ' && *p != '\t') p++;
  }
  /* Extra words are glued to the last argument so they fail its parsing rather than vanish. */
}

void tinyml_core_execute(tinyml_core *core, char *command) {
  tinyml_args args;
  split_args(command, &args);
  tinyml_frame_begin(&core->framer);
  if (args.argc > 0 && !tinyml_cmd_mlperf(core, &args) && !tinyml_cmd_tinyml(core, &args)) {
    int framed = strncmp(args.argv[0], "tinyml-", 7) == 0;
    tinyml_fail(core, framed, TINYML_ST_UNKNOWN_COMMAND, "Unknown command: %s (help%% lists the commands)", args.argv[0]);
  }
  tinyml_line(core->io, "m-ready");
}

void tinyml_core_feed(tinyml_core *core, char byte) {
  if (byte == '\r' || byte == '\n') return;
  if (byte != '%') {
    if (core->cmd_len < TINYML_CMD_MAX) {
      core->cmd[core->cmd_len++] = byte;
    } else {
      core->cmd_overflow = 1;
    }
    return;
  }
  if (core->cmd_overflow) {
    tinyml_fail(core, 0, TINYML_ST_TOO_LONG, "command longer than %d bytes discarded; send at most %d bytes before %%",
                TINYML_CMD_MAX, TINYML_CMD_MAX);
    tinyml_line(core->io, "m-ready");
  } else {
    core->cmd[core->cmd_len] = '\0';
    tinyml_core_execute(core, core->cmd);
  }
  core->cmd_len = 0;
  core->cmd_overflow = 0;
}

void tinyml_core_run(tinyml_core *core) {
  for (;;) {
    int c = core->io->read_byte(core->io->ctx);
    if (c < 0) return;
    tinyml_core_feed(core, (char)c);
  }
}
