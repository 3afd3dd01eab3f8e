/* The tinyml- commands that read state or run the model; framed replies ending in end-[n]. */
#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"
#include "tinyml_internal.h"

#define INFO_VALUE_MAX 160

static void emit_info(void *arg, const char *key, const char *value) {
  tinyml_core *core = (tinyml_core *)arg;
  char clean[INFO_VALUE_MAX + 1];
  size_t n = 0;
  /* CR/LF would end the line early; keep the rest verbatim (the CRC locates the last '*'). */
  for (; value[n] && n < INFO_VALUE_MAX; n++) clean[n] = (value[n] == '\r' || value[n] == '\n') ? ' ' : value[n];
  clean[n] = '\0';
  tinyml_frame(&core->framer, core->io, 'm', "info-%s-[%s]", key, clean);
}

static void emit_number(tinyml_core *core, const char *key, unsigned long value) {
  char text[24];
  snprintf(text, sizeof text, "%lu", value);
  emit_info(core, key, text);
}

static void info(tinyml_core *core) {
  const tinyml_arena_plan *plan = &core->config.arena;
  emit_info(core, "protocol", TINYML_PROTOCOL_VERSION);
  emit_info(core, "firmware", TINYML_FIRMWARE_NAME " " TINYML_FIRMWARE_VERSION);
  emit_info(core, "reset-reason", core->config.reset_reason);
  emit_number(core, "max-runs", (unsigned long)core->config.max_runs);
  emit_number(core, "batch-max-bytes", (unsigned long)core->config.batch_max);
  if (plan->configured) {
    /* The arena as sized at boot: less than configured when the heap was short (tinyml_arena_fit). */
    emit_number(core, "arena-bytes", (unsigned long)plan->size);
    emit_number(core, "arena-configured", (unsigned long)plan->configured);
    emit_number(core, "arena-shortfall", (unsigned long)(plan->configured - plan->size));
  }
  core->platform->info(core->platform->ctx, emit_info, core);
  tinyml_frame_end(&core->framer, core->io);
}

static int need_model(tinyml_core *core) {
  if (core->model_loaded) return 1;
  tinyml_fail(core, 1, TINYML_ST_NO_MODEL, "no model is loaded; upload one with tinyml-load model, or tinyml-builtin");
  return 0;
}

static int need_results(tinyml_core *core) {
  if (core->have_results) return 1;
  tinyml_fail(core, 1, TINYML_ST_NO_RESULTS, "no inference has run since the model was loaded; send tinyml-infer RUNS WARMUP");
  return 0;
}

static void infer(tinyml_core *core, tinyml_args *a) {
  uint32_t runs = 0, warmup = 0;
  if (a->argc != 3 || tinyml_parse_u32(a->argv[1], &runs) != 0 || tinyml_parse_u32(a->argv[2], &warmup) != 0 ||
      runs == 0 || warmup > TINYML_MAX_WARMUP) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-infer RUNS WARMUP with 1 <= RUNS <= %lu, 0 <= WARMUP <= %lu",
                (unsigned long)core->config.max_runs, (unsigned long)TINYML_MAX_WARMUP);
    return;
  }
  if (runs > core->config.max_runs) {
    tinyml_fail(core, 1, TINYML_ST_TOO_MANY_RUNS, "%lu runs asked, this firmware keeps at most %lu samples "
                "(CONFIG_TINYML_MAX_RUNS); split the runs", (unsigned long)runs, (unsigned long)core->config.max_runs);
    return;
  }
  if (!need_model(core) || tinyml_run(core, runs, warmup, 0, 1, NULL, NULL) != 0) return;
  uint64_t total = 0;
  uint32_t lo = 0xffffffffu, hi = 0;
  for (uint32_t i = 0; i < runs; i++) {
    total += core->samples[i];
    if (core->samples[i] < lo) lo = core->samples[i];
    if (core->samples[i] > hi) hi = core->samples[i];
  }
  char total_text[21];
  tinyml_u64_to_dec(total, total_text);
  tinyml_line(core->io, "m-infer-done");
  tinyml_frame(&core->framer, core->io, 'm', "infer-[runs=%lu,warmup=%lu,total_us=%s,min_us=%lu,max_us=%lu]",
               (unsigned long)runs, (unsigned long)warmup, total_text, (unsigned long)lo, (unsigned long)hi);
  tinyml_frame_end(&core->framer, core->io);
}

static void samples(tinyml_core *core, tinyml_args *a) {
  uint32_t start = 0, count = 0xffffffffu;
  if (a->argc > 3 || (a->argc > 1 && tinyml_parse_u32(a->argv[1], &start) != 0) ||
      (a->argc > 2 && tinyml_parse_u32(a->argv[2], &count) != 0)) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-samples [START] [COUNT] (decimal)");
    return;
  }
  if (!need_results(core)) return;
  if (start >= core->n_samples) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "start %lu is past the %lu samples held", (unsigned long)start,
                (unsigned long)core->n_samples);
    return;
  }
  uint32_t end = count > core->n_samples - start ? core->n_samples : start + count;
  for (uint32_t i = start; i < end; i += TINYML_SAMPLES_PER_LINE) {
    char values[TINYML_SAMPLES_PER_LINE * 11 + 1];
    size_t used = 0;
    for (uint32_t j = i; j < end && j < i + TINYML_SAMPLES_PER_LINE; j++) {
      used += (size_t)snprintf(values + used, sizeof values - used, j > i ? ",%lu" : "%lu",
                               (unsigned long)core->samples[j]);
    }
    tinyml_frame(&core->framer, core->io, 'm', "samples-[%lu]-[%s]", (unsigned long)i, values);
  }
  tinyml_frame_end(&core->framer, core->io);
}

static int output_lines(tinyml_core *core, int index) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_tensor_info info;
  tinyml_error err;
  size_t len = 0;
  char dims[64];
  memset(&err, 0, sizeof err);
  if (rt->tensor_info(rt->ctx, 1, index, &info, &err) != 0) {
    tinyml_fail_error(core, 1, &err, "");
    return -1;
  }
  const uint8_t *data = rt->output_data(rt->ctx, index, &len, &err);
  if (data == NULL) {
    tinyml_fail_error(core, 1, &err, "");
    return -1;
  }
  tinyml_format_dims(&info, dims, sizeof dims);
  tinyml_frame(&core->framer, core->io, 'm', "output-[%d]-[type=%s,bytes=%lu,dims=%s,scale=%.9g,zero_point=%ld]",
               index, info.type, (unsigned long)len, dims, (double)info.scale, (long)info.zero_point);
  for (size_t off = 0; off < len; off += TINYML_OUTPUT_BYTES_PER_LINE) {
    char hex[2 * TINYML_OUTPUT_BYTES_PER_LINE + 1];
    size_t n = len - off < TINYML_OUTPUT_BYTES_PER_LINE ? len - off : TINYML_OUTPUT_BYTES_PER_LINE;
    tinyml_hex_encode(data + off, n, hex);
    tinyml_frame(&core->framer, core->io, 'm', "output-data-[%d]-[%lu]-[%s]", index, (unsigned long)off, hex);
  }
  return 0;
}

static void outputs(tinyml_core *core, tinyml_args *a) {
  uint32_t index = 0;
  int count = core->model_loaded ? core->runtime->tensor_count(core->runtime->ctx, 1) : 0;
  if (a->argc > 2 || (a->argc == 2 && tinyml_parse_u32(a->argv[1], &index) != 0)) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-outputs [INDEX]");
    return;
  }
  if (!need_model(core) || !need_results(core)) return;
  if (a->argc == 2 && (int)index >= count) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "output index %lu: the model has %d output(s)", (unsigned long)index, count);
    return;
  }
  for (int i = a->argc == 2 ? (int)index : 0; i < (a->argc == 2 ? (int)index + 1 : count); i++) {
    if (output_lines(core, i) != 0) return;
  }
  tinyml_frame_end(&core->framer, core->io);
}

static void ops(tinyml_core *core) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_error err;
  int n = 0;
  memset(&err, 0, sizeof err);
  if (!need_model(core) || tinyml_stage_inputs(core, NULL, 0, 1) != 0) return;
  if (rt->profile(rt->ctx, core->ops, TINYML_MAX_OPS, &n, &err) != 0) {
    tinyml_fail_error(core, 1, &err, "");
    return;
  }
  for (int i = 0; i < n; i++) {
    tinyml_frame(&core->framer, core->io, 'm', "op-[%d]-[%s]-[%lu]", i, core->ops[i].name, (unsigned long)core->ops[i].us);
  }
  tinyml_frame_end(&core->framer, core->io);
}

static void arena(tinyml_core *core) {
  if (need_model(core) && tinyml_arena_line(core) == 0) tinyml_frame_end(&core->framer, core->io);
}

static void heap(tinyml_core *core) {
  const tinyml_platform *p = core->platform;
  tinyml_error err;
  size_t free_bytes = 0, min_free = 0, largest = 0;
  memset(&err, 0, sizeof err);
  if (p->heap(p->ctx, &free_bytes, &min_free, &largest, &err) != 0) {
    tinyml_fail_error(core, 1, &err, "");
    return;
  }
  tinyml_frame(&core->framer, core->io, 'm', "heap-[free=%lu,min_free=%lu,largest=%lu]", (unsigned long)free_bytes,
               (unsigned long)min_free, (unsigned long)largest);
  tinyml_frame_end(&core->framer, core->io);
}

static void resend(tinyml_core *core, tinyml_args *a) {
  uint32_t seq = 0, count = 1, oldest = 0, newest = 0;
  if (a->argc < 2 || a->argc > 3 || tinyml_parse_u32(a->argv[1], &seq) != 0 || seq == 0 ||
      (a->argc == 3 && (tinyml_parse_u32(a->argv[2], &count) != 0 || count == 0 || count > TINYML_RESEND_LINES))) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-resend SEQ [COUNT] with SEQ >= 1, 1 <= COUNT <= %d",
                TINYML_RESEND_LINES);
    return;
  }
  for (uint32_t i = 0; i < count; i++) {
    uint32_t s = seq + i;
    if (tinyml_frame_resend(&core->framer, core->io, s) == 0) continue;
    int any = tinyml_frame_held(&core->framer, &oldest, &newest) == 0;
    if (any && s > newest) {
      tinyml_fail(core, 1, TINYML_ST_RESEND_GONE, "line %lu was not sent yet; the last sent is %lu", (unsigned long)s,
                  (unsigned long)newest);
    } else if (any) {
      tinyml_fail(core, 1, TINYML_ST_RESEND_GONE, "line %lu is no longer held; held are %lu..%lu; re-issue the read command",
                  (unsigned long)s, (unsigned long)oldest, (unsigned long)newest);
    } else {
      tinyml_fail(core, 1, TINYML_ST_RESEND_GONE, "line %lu was not sent yet; no framed line was sent since boot",
                  (unsigned long)s);
    }
    return;
  }
}

int tinyml_cmd_tinyml(tinyml_core *core, tinyml_args *a) {
  const char *name = a->argv[0];
  if (strncmp(name, "tinyml-", 7) != 0) return 0;
  if (tinyml_cmd_upload(core, a) || tinyml_cmd_batch(core, a)) return 1;
  if (strcmp(name, "tinyml-version") == 0) {
    tinyml_frame(&core->framer, core->io, 'm', "protocol-[%s]", TINYML_PROTOCOL_VERSION);
    tinyml_frame(&core->framer, core->io, 'm', "firmware-[%s %s]", TINYML_FIRMWARE_NAME, TINYML_FIRMWARE_VERSION);
    tinyml_frame_end(&core->framer, core->io);
  } else if (strcmp(name, "tinyml-info") == 0) {
    info(core);
  } else if (strcmp(name, "tinyml-builtin") == 0) {
    size_t len = 0;
    const tinyml_platform *p = core->platform;
    const uint8_t *model = p->builtin_model ? p->builtin_model(p->ctx, &len) : NULL;
    if (model == NULL || len == 0) {
      tinyml_fail(core, 1, TINYML_ST_NO_MODEL, "this firmware has no built-in model; upload one with tinyml-load model");
    } else if (tinyml_load_model(core, (uint8_t *)model, (uint32_t)len, 1, 1) == 0 && tinyml_describe_model(core) == 0) {
      tinyml_frame_end(&core->framer, core->io);
    }
  } else if (strcmp(name, "tinyml-model") == 0) {
    if (tinyml_describe_model(core) == 0) tinyml_frame_end(&core->framer, core->io);
  } else if (strcmp(name, "tinyml-infer") == 0) {
    infer(core, a);
  } else if (strcmp(name, "tinyml-samples") == 0) {
    samples(core, a);
  } else if (strcmp(name, "tinyml-outputs") == 0) {
    outputs(core, a);
  } else if (strcmp(name, "tinyml-arena") == 0) {
    arena(core);
  } else if (strcmp(name, "tinyml-ops") == 0) {
    ops(core);
  } else if (strcmp(name, "tinyml-heap") == 0) {
    heap(core);
  } else if (strcmp(name, "tinyml-resend") == 0) {
    resend(core, a);
  } else {
    return 0;
  }
  return 1;
}
