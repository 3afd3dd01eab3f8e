/* The deterministic test engine of tinyml-host (ENGINE_RPC.md section 4): the "model" is data, so every
 * protocol path can be driven from a test, including the failures a real TFLM engine reports. */
#include <stdio.h>
#include <string.h>

#include "host_engine.h"

typedef struct test_engine {
  size_t arena_size;
  int loaded;
  uint32_t in_bytes, out_bytes, need;
  uint8_t flags;
  const uint8_t *weights;
  size_t n_weights;
  uint8_t input[255];
  uint8_t output[255];
  uint32_t invokes;
  uint64_t clock_us;
} test_engine;

static test_engine g_test;

static const uint8_t kDefaultModel[] = {'T', 'S', 'T', '1', 16, 4, 0x00, 0x08, 0x00, 0x00, 0x00,
                                        1,   2,   3,   4,   5,  6, 7,    8};

const uint8_t *test_engine_default_model(size_t *len) {
  *len = sizeof kDefaultModel;
  return kDefaultModel;
}

static void set_err(tinyml_error *err, const char *code, const char *message) {
  snprintf(err->code, sizeof err->code, "%s", code);
  snprintf(err->message, sizeof err->message, "%s", message);
}

static int t_load(void *ctx, const uint8_t *model, size_t len, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  t->loaded = 0;
  if (len < 4 || memcmp(model, "TST1", 4) != 0) {
    set_err(err, "bad-model", "not a test model: magic TST1 missing");
    return -1;
  }
  if (len < 12 || model[4] == 0 || model[5] == 0) {
    set_err(err, "bad-model", "test model too short or with empty tensors: needs magic, I, O, need, flags, weights");
    return -1;
  }
  uint32_t need = (uint32_t)model[6] | ((uint32_t)model[7] << 8) | ((uint32_t)model[8] << 16) |
                  ((uint32_t)model[9] << 24);
  if (model[10] & 1u) {
    set_err(err, "unsupported-op", "op TEST_UNSUPPORTED is not in the op resolver");
    return -1;
  }
  if (need > t->arena_size) {
    snprintf(err->code, sizeof err->code, "arena-too-small");
    snprintf(err->message, sizeof err->message, "arena needs at least %lu bytes, have %lu; raise --arena-size",
             (unsigned long)need, (unsigned long)t->arena_size);
    return -1;
  }
  t->in_bytes = model[4];
  t->out_bytes = model[5];
  t->need = need;
  t->flags = model[10];
  t->weights = model + 11;
  t->n_weights = len - 11;
  memset(t->input, 0, sizeof t->input);
  memset(t->output, 0, sizeof t->output);
  t->invokes = 0;
  t->loaded = 1;
  return 0;
}

static void t_unload(void *ctx) { ((test_engine *)ctx)->loaded = 0; }

static int t_tensor_count(void *ctx, int output) {
  (void)output;
  return ((test_engine *)ctx)->loaded ? 1 : 0;
}

static int t_tensor_info(void *ctx, int output, int index, tinyml_tensor_info *info, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  if (!t->loaded || index != 0) {
    set_err(err, "bad-argument", "the test model has one input and one output");
    return -1;
  }
  memset(info, 0, sizeof *info);
  snprintf(info->type, sizeof info->type, "int8");
  info->bytes = output ? t->out_bytes : t->in_bytes;
  info->ndims = 2;
  info->dims[0] = 1;
  info->dims[1] = (int32_t)info->bytes;
  info->scale = output ? 1.0f / 256.0f : 1.0f / 128.0f;
  info->zero_point = output ? -128 : 0;
  return 0;
}

static int t_set_input(void *ctx, int index, const uint8_t *data, size_t len, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  if (!t->loaded || index != 0 || len != t->in_bytes) {
    set_err(err, "input-size", "the test model's input 0 has a different size");
    return -1;
  }
  memcpy(t->input, data, len);
  return 0;
}

static int t_invoke(void *ctx, uint32_t *elapsed_us, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  if (!t->loaded) {
    set_err(err, "no-model", "no model loaded");
    return -1;
  }
  uint32_t n = t->invokes++;
  if ((t->flags & 2u) && n == 2) {
    set_err(err, "invoke-failed", "Invoke() returned 1 (test model flag bit 1)");
    return -1;
  }
  uint32_t acc = 0;
  for (uint32_t i = 0; i < t->in_bytes; i++) acc += (i + 1) * t->input[i];
  for (uint32_t j = 0; j < t->out_bytes; j++) t->output[j] = (uint8_t)(acc + t->weights[j % t->n_weights] + j);
  *elapsed_us = 1000u + 10u * t->out_bytes + n % 5u;
  t->clock_us += *elapsed_us;
  return 0;
}

static const uint8_t *t_output(void *ctx, int index, size_t *len, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  if (!t->loaded || index != 0) {
    set_err(err, "bad-argument", "the test model has one output");
    return NULL;
  }
  *len = t->out_bytes;
  return t->output;
}

static int t_arena(void *ctx, size_t *used, size_t *size, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  (void)err;
  *used = t->loaded ? t->need : 0;
  *size = t->arena_size;
  return 0;
}

static int t_profile(void *ctx, tinyml_op_time *ops, int max_ops, int *n_ops, tinyml_error *err) {
  uint32_t us = 0;
  if (max_ops < 2 || t_invoke(ctx, &us, err) != 0) return -1;
  snprintf(ops[0].name, sizeof ops[0].name, "TEST_MAC");
  ops[0].us = us - 200u;
  snprintf(ops[1].name, sizeof ops[1].name, "TEST_ADD");
  ops[1].us = 200u;
  *n_ops = 2;
  return 0;
}

static uint64_t t_now(void *ctx) { return ((test_engine *)ctx)->clock_us; }

static void t_info(void *ctx, tinyml_info_emit emit, void *arg) {
  (void)ctx;
  emit(arg, "engine", "test");
}

void test_engine_init(tinyml_engine *e, size_t arena_size) {
  memset(&g_test, 0, sizeof g_test);
  g_test.arena_size = arena_size;
  memset(e, 0, sizeof *e);
  e->ctx = &g_test;
  e->load = t_load;
  e->unload = t_unload;
  e->tensor_count = t_tensor_count;
  e->tensor_info = t_tensor_info;
  e->set_input = t_set_input;
  e->invoke = t_invoke;
  e->output_data = t_output;
  e->arena = t_arena;
  e->profile = t_profile;
  e->now_us = t_now;
  e->info = t_info;
}
