/* The MLPerf Tiny device-under-test commands (mlcommons/tiny benchmark/api), plain replies. */
#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"
#include "tinyml_internal.h"

uint32_t tinyml_element_count(const tinyml_tensor_info *info) {
  const char *t = info->type;
  uint32_t width = 1;
  if (strcmp(t, "int16") == 0 || strcmp(t, "float16") == 0) width = 2;
  if (strcmp(t, "int32") == 0 || strcmp(t, "float32") == 0 || strcmp(t, "uint32") == 0) width = 4;
  if (strcmp(t, "int64") == 0 || strcmp(t, "float64") == 0) width = 8;
  return info->bytes / width;
}

double tinyml_dequantize(const tinyml_tensor_info *info, const uint8_t *data, uint32_t i) {
  const char *t = info->type;
  double raw;
  if (strcmp(t, "int8") == 0) {
    raw = (double)(int8_t)data[i];
  } else if (strcmp(t, "int16") == 0) {
    int16_t v;
    memcpy(&v, data + 2 * i, 2);
    raw = v;
  } else if (strcmp(t, "int32") == 0) {
    int32_t v;
    memcpy(&v, data + 4 * i, 4);
    raw = v;
  } else if (strcmp(t, "float32") == 0) {
    float v;
    memcpy(&v, data + 4 * i, 4);
    return v;
  } else {
    raw = data[i];
  }
  if (info->scale == 0.0f) return raw;
  return (raw - info->zero_point) * info->scale;
}

int tinyml_stage_inputs(tinyml_core *core, const uint8_t *input0, size_t len0, int framed) {
  const tinyml_runtime *rt = core->runtime;
  int count = rt->tensor_count(rt->ctx, 0);
  for (int i = 0; i < count; i++) {
    tinyml_error err;
    tinyml_tensor_info info;
    const tinyml_staged_input *staged = i < TINYML_MAX_INPUTS ? &core->inputs[i] : NULL;
    const uint8_t *data = NULL;
    size_t len = 0;
    memset(&err, 0, sizeof err);
    if (input0 != NULL && i == 0) {
      data = input0;
      len = len0;
    } else if (staged != NULL && staged->buf != NULL) {
      data = staged->buf;
      len = staged->len;
    } else if (rt->tensor_info(rt->ctx, 0, i, &info, &err) == 0) {
      len = info.bytes; /* never uploaded: zeros, the same every run */
    } else {
      tinyml_fail_error(core, framed, &err, "");
      return -1;
    }
    if (rt->set_input(rt->ctx, i, data, len, &err) != 0) {
      tinyml_fail_error(core, framed, &err, "");
      return -1;
    }
  }
  return 0;
}

/* One invoke with its inputs copied in first; the copy is outside the runtime's timed window. */
static int invoke(tinyml_core *core, int use_db, int framed, uint32_t *us, const char *what, uint32_t i) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_error err;
  char prefix[48];
  memset(&err, 0, sizeof err);
  if (tinyml_stage_inputs(core, use_db ? core->db : NULL, core->db_len, framed) != 0) return -1;
  if (rt->invoke(rt->ctx, us, &err) != 0) {
    snprintf(prefix, sizeof prefix, "%s %lu: ", what, (unsigned long)i);
    tinyml_fail_error(core, framed, &err, prefix);
    return -1;
  }
  return 0;
}

int tinyml_run(tinyml_core *core, uint32_t runs, uint32_t warmup, int use_db, int framed, uint64_t *lap0,
               uint64_t *lap1) {
  const tinyml_platform *p = core->platform;
  uint32_t us = 0;
  core->have_results = 0;
  core->n_samples = 0;
  tinyml_line(core->io, "m-warmup-start-%lu", (unsigned long)warmup);
  for (uint32_t i = 0; i < warmup; i++) {
    if (invoke(core, use_db, framed, &us, "warm-up run", i) != 0) return -1;
  }
  tinyml_line(core->io, "m-warmup-done");
  tinyml_line(core->io, "m-infer-start-%lu", (unsigned long)runs);
  if (lap0) *lap0 = p->now_us(p->ctx);
  for (uint32_t i = 0; i < runs; i++) {
    if (invoke(core, use_db, framed, &us, "run", i) != 0) return -1;
    if (i < core->config.max_runs) core->samples[i] = us; /* MLPerf infer may run more than are kept */
  }
  if (lap1) *lap1 = p->now_us(p->ctx);
  core->n_samples = runs < core->config.max_runs ? runs : core->config.max_runs;
  core->have_results = 1;
  return 0;
}

/* MLPerf Tiny v1.x's four models, recognised by their I/O signature and their characteristic ops (not by
 * hash: a re-conversion of the same network gives other bytes). PROTOCOL.md, profile%, states the rule. */
typedef struct mlperf_model {
  const char *name;
  const char *input_dims;  /* int8 input 0 */
  const char *output_dims; /* output 0 */
  const char *required_ops[3];
  const char *forbidden_op;
} mlperf_model;

static const mlperf_model kMlperfModels[] = {
    {"kws01", "1x49x10x1", "1x12", {"CONV_2D", "DEPTHWISE_CONV_2D", NULL}, NULL},
    {"vww01", "1x96x96x3", "1x2", {"CONV_2D", "DEPTHWISE_CONV_2D", NULL}, NULL},
    {"ic01", "1x32x32x3", "1x10", {"CONV_2D", "ADD", NULL}, NULL},
    {"ad01", "1x640", "1x640", {"FULLY_CONNECTED", NULL, NULL}, "CONV_2D"},
};

static int has_op(const char *const *ops, int n, const char *name) {
  for (int i = 0; i < n; i++) {
    if (ops[i] != NULL && strcmp(ops[i], name) == 0) return 1;
  }
  return 0;
}

const char *tinyml_mlperf_model_name(tinyml_core *core) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_tensor_info in, out;
  tinyml_error err;
  const char *ops[TINYML_MAX_OPS];
  char in_dims[64], out_dims[64];
  memset(&err, 0, sizeof err);
  if (rt->op_names == NULL || rt->tensor_count(rt->ctx, 0) != 1 || rt->tensor_count(rt->ctx, 1) != 1 ||
      rt->tensor_info(rt->ctx, 0, 0, &in, &err) != 0 || rt->tensor_info(rt->ctx, 1, 0, &out, &err) != 0 ||
      strcmp(in.type, "int8") != 0) {
    return NULL;
  }
  int n = rt->op_names(rt->ctx, ops, TINYML_MAX_OPS);
  tinyml_format_dims(&in, in_dims, sizeof in_dims);
  tinyml_format_dims(&out, out_dims, sizeof out_dims);
  for (size_t m = 0; m < sizeof kMlperfModels / sizeof kMlperfModels[0]; m++) {
    const mlperf_model *model = &kMlperfModels[m];
    int match = strcmp(in_dims, model->input_dims) == 0 && strcmp(out_dims, model->output_dims) == 0;
    for (int r = 0; match && r < 3 && model->required_ops[r] != NULL; r++) match = has_op(ops, n, model->required_ops[r]);
    if (match && model->forbidden_op != NULL) match = !has_op(ops, n, model->forbidden_op);
    if (match) return model->name;
  }
  return NULL;
}

/* m-results-[...]: output 0 dequantized, as MLPerf Tiny's th_results prints it. */
static void results(tinyml_core *core) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_tensor_info info;
  tinyml_error err;
  size_t len = 0;
  memset(&err, 0, sizeof err);
  if (!core->have_results) {
    tinyml_fail(core, 0, TINYML_ST_NO_RESULTS, "no inference has run yet; send infer N W first");
    return;
  }
  const uint8_t *data = NULL;
  if (rt->tensor_info(rt->ctx, 1, 0, &info, &err) != 0 || (data = rt->output_data(rt->ctx, 0, &len, &err)) == NULL) {
    tinyml_fail_error(core, 0, &err, "");
    return;
  }
  if (len < info.bytes) {
    tinyml_fail(core, 0, TINYML_ST_ENGINE, "output 0 has %lu bytes, its tensor says %lu", (unsigned long)len,
                (unsigned long)info.bytes);
    return;
  }
  uint32_t n = tinyml_element_count(&info);
  char item[32];
  core->io->write(core->io->ctx, "m-results-[", 11);
  for (uint32_t i = 0; i < n; i++) {
    int k = snprintf(item, sizeof item, i ? ",%.6g" : "%.6g", tinyml_dequantize(&info, data, i));
    core->io->write(core->io->ctx, item, (size_t)k);
  }
  core->io->write(core->io->ctx, "]\r\n", 3);
}

/* Whether an MLPerf infer uses the db buffer for input 0 (it is staged before every run, like an upload).
 * Returns 1 (use it), 0 (none loaded: the uploaded inputs), -1 after an error line. */
static int check_db(tinyml_core *core) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_tensor_info info;
  tinyml_error err;
  memset(&err, 0, sizeof err);
  if (core->db_len == 0) return 0;
  if (core->db_pos != core->db_len) {
    tinyml_fail(core, 0, TINYML_ST_INPUT_SIZE, "db holds %lu of the %lu announced bytes; send the rest with db <hex>",
                (unsigned long)core->db_pos, (unsigned long)core->db_len);
    return -1;
  }
  if (rt->tensor_info(rt->ctx, 0, 0, &info, &err) != 0) {
    tinyml_fail_error(core, 0, &err, "");
    return -1;
  }
  if (info.bytes != core->db_len) {
    tinyml_fail(core, 0, TINYML_ST_INPUT_SIZE, "input tensor 0 needs %lu bytes, db holds %lu",
                (unsigned long)info.bytes, (unsigned long)core->db_len);
    return -1;
  }
  return 1;
}

static void infer(tinyml_core *core, tinyml_args *a) {
  uint32_t runs = 1, warmup = 10;
  /* No cap on N: an MLPerf runner picks N for a 10 s window; only the first max_runs samples are kept. */
  if ((a->argc > 1 && (tinyml_parse_u32(a->argv[1], &runs) != 0 || runs == 0)) ||
      (a->argc > 2 && (tinyml_parse_u32(a->argv[2], &warmup) != 0 || warmup > TINYML_MAX_WARMUP)) || a->argc > 3) {
    tinyml_fail(core, 0, TINYML_ST_BAD_ARGUMENT, "infer N [W] needs N >= 1 and 0 <= W <= %lu",
                (unsigned long)TINYML_MAX_WARMUP);
    return;
  }
  if (!core->model_loaded) {
    tinyml_fail(core, 0, TINYML_ST_NO_MODEL, "no model is loaded; upload one with tinyml-load model, or tinyml-builtin");
    return;
  }
  uint64_t lap0 = 0, lap1 = 0;
  int use_db = check_db(core);
  if (use_db < 0 || tinyml_run(core, runs, warmup, use_db, 0, &lap0, &lap1) != 0) return;
  tinyml_line(core->io, "m-lap-us-%lu", (unsigned long)(uint32_t)lap0);
  tinyml_line(core->io, "m-lap-us-%lu", (unsigned long)(uint32_t)lap1);
  tinyml_line(core->io, "m-infer-done");
  results(core);
}

static void db_print(tinyml_core *core, tinyml_args *a) {
  uint32_t count = core->db_len, offset = 0;
  if ((a->argc > 2 && tinyml_parse_u32(a->argv[2], &count) != 0) ||
      (a->argc > 3 && tinyml_parse_u32(a->argv[3], &offset) != 0)) {
    tinyml_fail(core, 0, TINYML_ST_BAD_ARGUMENT, "db print [N] [offset] takes decimal numbers");
    return;
  }
  if (offset > core->db_len) offset = core->db_len;
  if (count > core->db_len - offset) count = core->db_len - offset;
  char line[8 * 3 + 16];
  for (uint32_t i = 0; i < count; i += 8) {
    size_t used = (size_t)snprintf(line, sizeof line, "m-buffer");
    for (uint32_t j = i; j < count && j < i + 8; j++) {
      used += (size_t)snprintf(line + used, sizeof line - used, "-%02x", core->db[offset + j]);
    }
    tinyml_line(core->io, "%s", line);
  }
}

static void db(tinyml_core *core, tinyml_args *a) {
  if (a->argc < 2) {
    tinyml_fail(core, 0, TINYML_ST_BAD_ARGUMENT, "db needs a subcommand: load N, print, or hex data");
  } else if (strcmp(a->argv[1], "load") == 0) {
    uint32_t n = 0;
    if (a->argc != 3 || tinyml_parse_u32(a->argv[2], &n) != 0 || n == 0 || n > core->config.db_max) {
      tinyml_fail(core, 0, TINYML_ST_BAD_ARGUMENT, "db load needs a byte count from 1 to %lu", (unsigned long)core->config.db_max);
      return;
    }
    tinyml_release(core, core->db);
    core->db_len = core->db_pos = 0;
    size_t available = 0;
    core->db = (uint8_t *)tinyml_alloc(core, n, &available);
    if (core->db == NULL) {
      tinyml_fail(core, 0, TINYML_ST_NO_ROOM, "db load %lu: no room, have %lu bytes (largest free block)", (unsigned long)n,
                  (unsigned long)available);
      return;
    }
    core->db_len = n;
    tinyml_line(core->io, "m-[Expecting %lu bytes]", (unsigned long)n);
  } else if (strcmp(a->argv[1], "print") == 0) {
    db_print(core, a);
  } else {
    uint8_t bytes[TINYML_CHUNK_MAX];
    size_t digits = strlen(a->argv[1]), bad = 0;
    if (a->argc != 2) {
      tinyml_fail(core, 0, TINYML_ST_BAD_ARGUMENT, "db <hex> takes one word of hex digits");
      return;
    }
    if (core->db_len == 0) {
      tinyml_fail(core, 0, TINYML_ST_NO_UPLOAD, "no db buffer; send db load N first");
      return;
    }
    int rc = tinyml_hex_decode(a->argv[1], digits, bytes, &bad);
    if (rc == TINYML_HEX_BAD) {
      tinyml_fail(core, 0, TINYML_ST_BAD_HEX, "invalid hex digit '%c' at position %lu", a->argv[1][bad], (unsigned long)bad);
      return;
    }
    if (rc == TINYML_HEX_ODD) {
      tinyml_fail(core, 0, TINYML_ST_ODD_HEX, "odd number of hex digits (%lu); two digits per byte", (unsigned long)digits);
      return;
    }
    if (core->db_pos + digits / 2 > core->db_len) {
      tinyml_fail(core, 0, TINYML_ST_PAST_END, "%lu bytes at offset %lu go past the announced %lu bytes",
                  (unsigned long)(digits / 2), (unsigned long)core->db_pos, (unsigned long)core->db_len);
      return;
    }
    memcpy(core->db + core->db_pos, bytes, digits / 2);
    core->db_pos += (uint32_t)(digits / 2);
    if (core->db_pos == core->db_len) tinyml_line(core->io, "m-load-done");
  }
}

static const char *const kHelp[] = {
    TINYML_FIRMWARE_NAME " " TINYML_FIRMWARE_VERSION ", protocol " TINYML_PROTOCOL_VERSION,
    "help                : this list",
    "name                : m-name-dut-[...]",
    "profile             : firmware and model names",
    "timestamp           : m-lap-us-<us since boot>",
    "db load N           : stage N input bytes",
    "db HH[HH]*          : input bytes as hex",
    "db print [N] [off]  : show staged bytes",
    "infer N [W=10]      : N timed inferences after W warm-ups (staged input first)",
    "results             : output 0, dequantized",
    "tinyml-version      : protocol version",
    "tinyml-info         : board info",
    "tinyml-load model|input|batch LEN CRC32 [INDEX] : announce an upload",
    "tinyml-chunk OFFSET HEX CRC32 : upload bytes",
    "tinyml-builtin      : load the built-in model",
    "tinyml-model        : loaded model, tensors, arena",
    "tinyml-infer RUNS WARMUP : timed runs, samples kept",
    "tinyml-samples [START] [COUNT] : per-run microseconds",
    "tinyml-outputs [INDEX] : raw output bytes and quantization",
    "tinyml-predict      : run every sample of the staged batch",
    "tinyml-predictions [START] [COUNT] : output 0 of each batch sample",
    "tinyml-arena        : arena figures and size",
    "tinyml-ops          : per-op microseconds (one profiled run)",
    "tinyml-heap         : free heap",
    "tinyml-resend SEQ [COUNT] : send framed lines again",
};

int tinyml_cmd_mlperf(tinyml_core *core, tinyml_args *a) {
  const char *name = a->argv[0];
  if (strcmp(name, "name") == 0) {
    tinyml_line(core->io, "m-name-dut-[%s]", TINYML_FIRMWARE_NAME);
  } else if (strcmp(name, "profile") == 0) {
    tinyml_line(core->io, "m-profile-[%s %s]", TINYML_FIRMWARE_NAME, TINYML_FIRMWARE_VERSION);
    if (!core->model_loaded) {
      tinyml_line(core->io, "m-model-[none]");
    } else if (core->mlperf_name != NULL) {
      tinyml_line(core->io, "m-model-[%s]", core->mlperf_name); /* what an MLPerf Tiny runner expects */
    } else if (core->model_builtin) {
      tinyml_line(core->io, "m-model-[builtin]");
    } else {
      tinyml_line(core->io, "m-model-[uploaded-%.16s]", core->model_sha256);
    }
  } else if (strcmp(name, "help") == 0) {
    for (size_t i = 0; i < sizeof kHelp / sizeof kHelp[0]; i++) tinyml_line(core->io, "%s", kHelp[i]);
  } else if (strcmp(name, "timestamp") == 0) {
    tinyml_line(core->io, "m-lap-us-%lu", (unsigned long)(uint32_t)core->platform->now_us(core->platform->ctx));
  } else if (strcmp(name, "db") == 0) {
    db(core, a);
  } else if (strcmp(name, "infer") == 0) {
    infer(core, a);
  } else if (strcmp(name, "results") == 0) {
    results(core);
  } else {
    return 0;
  }
  return 1;
}
