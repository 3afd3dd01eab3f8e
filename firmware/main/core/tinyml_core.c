#include "tinyml_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"
#include "tinyml_internal.h"
#include "tinyml_sha256.h"

int tinyml_core_init(tinyml_core *core, const tinyml_engine *engine, const tinyml_io *io,
                     const tinyml_config *config) {
  memset(core, 0, sizeof *core);
  core->engine = engine;
  core->io = io;
  core->config = *config;
  if (core->config.max_runs == 0) core->config.max_runs = 1000;
  if (core->config.db_max == 0) core->config.db_max = 96 * 96 * 3;
  if (core->config.reset_reason == NULL) core->config.reset_reason = "unknown";
  tinyml_frame_init(&core->framer);
  size_t available = 0;
  core->samples = (uint32_t *)engine->alloc(engine->ctx, core->config.max_runs * sizeof(uint32_t), &available);
  return core->samples == NULL ? -1 : 0;
}

void tinyml_fail(tinyml_core *core, int framed, const char *code, const char *fmt, ...) {
  char message[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  /* Messages may quote what was received (an unknown command, a bad hex digit): keep the line ASCII. */
  for (char *p = message; *p; p++) {
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
  }
  if (framed) {
    tinyml_frame(&core->framer, core->io, 'e', "[%s: %s]", code, message);
  } else {
    tinyml_line(core->io, "e-[%s: %s]", code, message);
  }
}

void tinyml_fail_engine(tinyml_core *core, int framed, const tinyml_error *err, const char *prefix) {
  const char *code = err->code[0] ? err->code : "engine";
  tinyml_fail(core, framed, code, "%s%s", prefix ? prefix : "", err->message);
}

void tinyml_unload_model(tinyml_core *core) {
  if (core->model_loaded) core->engine->unload(core->engine->ctx);
  if (core->model_buf) core->engine->release(core->engine->ctx, core->model_buf);
  core->model_buf = NULL;
  core->model_loaded = 0;
  core->model_builtin = 0;
  core->model_len = 0;
  core->have_results = 0;
  core->n_samples = 0;
}

int tinyml_load_model(tinyml_core *core, uint8_t *buf, uint32_t len, int builtin, int framed) {
  tinyml_error err;
  memset(&err, 0, sizeof err);
  tinyml_unload_model(core);
  if (core->engine->load(core->engine->ctx, buf, len, &err) != 0) {
    if (!builtin) core->engine->release(core->engine->ctx, buf);
    tinyml_fail_engine(core, framed, &err, "");
    return -1;
  }
  core->model_loaded = 1;
  core->model_builtin = builtin;
  core->model_buf = builtin ? NULL : buf;
  core->model_len = len;
  core->model_crc = tinyml_crc32(0, buf, len);
  tinyml_sha256_hex(buf, len, core->model_sha256);
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
  const tinyml_engine *e = core->engine;
  int count = e->tensor_count(e->ctx, output);
  for (int i = 0; i < count; i++) {
    tinyml_tensor_info info;
    tinyml_error err;
    char dims[64];
    memset(&err, 0, sizeof err);
    if (e->tensor_info(e->ctx, output, i, &info, &err) != 0) {
      tinyml_fail_engine(core, 1, &err, "");
      return -1;
    }
    tinyml_format_dims(&info, dims, sizeof dims);
    tinyml_frame(&core->framer, core->io, 'm', "tensor-[%s]-[%d]-[type=%s,bytes=%lu,dims=%s,scale=%.9g,zero_point=%ld]",
                 output ? "out" : "in", i, info.type, (unsigned long)info.bytes, dims, (double)info.scale,
                 (long)info.zero_point);
  }
  return 0;
}

int tinyml_describe_model(tinyml_core *core) {
  const tinyml_engine *e = core->engine;
  if (!core->model_loaded) {
    tinyml_fail(core, 1, "no-model", "no model is loaded; upload one with tinyml-load model, or tinyml-builtin");
    return -1;
  }
  tinyml_frame(&core->framer, core->io, 'm', "model-[source=%s,bytes=%lu,crc32=%08lx,sha256=%s]",
               core->model_builtin ? "builtin" : "uploaded", (unsigned long)core->model_len,
               (unsigned long)core->model_crc, core->model_sha256);
  if (tensor_lines(core, 0) != 0 || tensor_lines(core, 1) != 0) return -1;
  size_t used = 0, size = 0;
  tinyml_error err;
  memset(&err, 0, sizeof err);
  if (e->arena(e->ctx, &used, &size, &err) != 0) {
    tinyml_fail_engine(core, 1, &err, "");
    return -1;
  }
  tinyml_frame(&core->framer, core->io, 'm', "arena-[used=%lu,size=%lu]", (unsigned long)used, (unsigned long)size);
  return 0;
}

void tinyml_core_boot(tinyml_core *core) {
  const tinyml_engine *e = core->engine;
  size_t len = 0;
  const uint8_t *builtin = e->builtin_model ? e->builtin_model(e->ctx, &len) : NULL;
  tinyml_line(core->io, "m-boot-[%s %s]", TINYML_FIRMWARE_NAME, TINYML_FIRMWARE_VERSION);
  tinyml_line(core->io, "m-tinyml-protocol-[%s]", TINYML_PROTOCOL_VERSION);
  tinyml_line(core->io, "m-reset-reason-[%s]", core->config.reset_reason);
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
    tinyml_fail(core, framed, "unknown-command", "Unknown command: %s (help%% lists the commands)", args.argv[0]);
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
    tinyml_line(core->io, "e-[too-long: command longer than %d bytes discarded; send at most %d bytes before %%]",
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
