/* tinyml-predict / tinyml-predictions (protocol 1.2): run every sample of the staged batch (tinyml-load batch)
 * and keep output 0 of each, then read them back in ranges. How a host streams a data set slice through the
 * board: one upload and one read-back per batch instead of three commands per sample. */
#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"
#include "tinyml_internal.h"

static int need_batch(tinyml_core *core) {
  if (!core->model_loaded) {
    tinyml_fail(core, 1, TINYML_ST_NO_MODEL, "no model is loaded; upload one with tinyml-load model, or tinyml-builtin");
    return 0;
  }
  if (core->batch.in != NULL) return 1;
  tinyml_fail(core, 1, TINYML_ST_NO_UPLOAD, "no batch is staged; upload one with tinyml-load batch LENGTH CRC32");
  return 0;
}

static void predict(tinyml_core *core, tinyml_args *a) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_batch *b = &core->batch;
  uint64_t total = 0;
  uint32_t lo = 0xffffffffu, hi = 0;
  if (a->argc != 1) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-predict (no argument: it runs the staged batch)");
    return;
  }
  if (!need_batch(core)) return;
  b->predicted = 0;
  core->have_results = 0;
  core->n_samples = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    tinyml_error err;
    char prefix[32];
    uint32_t us = 0;
    size_t len = 0;
    memset(&err, 0, sizeof err);
    snprintf(prefix, sizeof prefix, "sample %lu: ", (unsigned long)i);
    if (tinyml_stage_inputs(core, b->in + (size_t)i * b->in_bytes, b->in_bytes, 1) != 0) return;
    if (rt->invoke(rt->ctx, &us, &err) != 0) {
      tinyml_fail_error(core, 1, &err, prefix);
      return;
    }
    const uint8_t *data = rt->output_data(rt->ctx, 0, &len, &err);
    if (data == NULL) {
      tinyml_fail_error(core, 1, &err, prefix);
      return;
    }
    if (len != b->out_bytes) {
      tinyml_fail(core, 1, TINYML_ST_ENGINE, "%soutput 0 is %lu bytes, its tensor %lu", prefix, (unsigned long)len,
                  (unsigned long)b->out_bytes);
      return;
    }
    memcpy(b->out + (size_t)i * b->out_bytes, data, len);
    if (i < core->config.max_runs) core->samples[i] = us;
    total += us;
    if (us < lo) lo = us;
    if (us > hi) hi = us;
  }
  b->predicted = 1;
  core->n_samples = b->n < core->config.max_runs ? b->n : core->config.max_runs;
  core->have_results = 1; /* tinyml-samples: each sample's invoke; tinyml-outputs: the last sample's */
  char total_text[21];
  tinyml_u64_to_dec(total, total_text);
  tinyml_frame(&core->framer, core->io, 'm', "predict-[samples=%lu,total_us=%s,min_us=%lu,max_us=%lu]",
               (unsigned long)b->n, total_text, (unsigned long)lo, (unsigned long)hi);
  tinyml_frame_end(&core->framer, core->io);
}

static void predictions(tinyml_core *core, tinyml_args *a) {
  tinyml_batch *b = &core->batch;
  uint32_t start = 0, count = 0xffffffffu;
  if (a->argc > 3 || (a->argc > 1 && tinyml_parse_u32(a->argv[1], &start) != 0) ||
      (a->argc > 2 && tinyml_parse_u32(a->argv[2], &count) != 0)) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-predictions [START] [COUNT] (decimal samples)");
    return;
  }
  if (!need_batch(core)) return;
  if (!b->predicted) {
    tinyml_fail(core, 1, TINYML_ST_NO_RESULTS, "the staged batch has not run; send tinyml-predict");
    return;
  }
  if (start >= b->n) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "start %lu is past the %lu samples of the batch", (unsigned long)start,
                (unsigned long)b->n);
    return;
  }
  uint32_t end = count > b->n - start ? b->n : start + count;
  for (uint32_t i = start; i < end; i++) {
    const uint8_t *out = b->out + (size_t)i * b->out_bytes;
    for (uint32_t off = 0; off < b->out_bytes; off += TINYML_OUTPUT_BYTES_PER_LINE) {
      char hex[2 * TINYML_OUTPUT_BYTES_PER_LINE + 1];
      uint32_t n = b->out_bytes - off < TINYML_OUTPUT_BYTES_PER_LINE ? b->out_bytes - off : TINYML_OUTPUT_BYTES_PER_LINE;
      tinyml_hex_encode(out + off, n, hex);
      tinyml_frame(&core->framer, core->io, 'm', "prediction-[%lu]-[%lu]-[%s]", (unsigned long)i, (unsigned long)off,
                   hex);
    }
  }
  tinyml_frame_end(&core->framer, core->io);
}

int tinyml_cmd_batch(tinyml_core *core, tinyml_args *a) {
  if (strcmp(a->argv[0], "tinyml-predict") == 0) {
    predict(core, a);
  } else if (strcmp(a->argv[0], "tinyml-predictions") == 0) {
    predictions(core, a);
  } else {
    return 0;
  }
  return 1;
}
