/* The deterministic test engine of tinyml-host (ENGINE_RPC.md section 4): the "model" is data, so every
 * protocol path can be driven from a test, including the failures a real TFLM runtime reports and the way
 * TFLM's memory planner overwrites an input tensor during an invoke. */
#include <stdio.h>
#include <string.h>

#include "host_engine.h"

#define FLAG_UNSUPPORTED_OP 1u
#define FLAG_THIRD_INVOKE_FAILS 2u
#define FLAG_CLOBBERS_INPUT 4u  /* invoke overwrites the input tensor, as TFLM reusing its arena slot */
#define FLAG_TEMPORARIES 8u     /* allocated bytes leave out 1/8 of the need, as arena_used_bytes() does */
#define PROBE_ARENA (16u << 20) /* the "largest free block" of the generous trial */

typedef struct test_engine {
  size_t arena_size;
  int loaded;
  uint32_t in_bytes, out_bytes, need;
  uint8_t flags;
  const uint8_t *weights;
  size_t n_weights;
  size_t arena_bytes;
  uint8_t input[255];
  uint8_t output[255];
  uint32_t invokes;
} test_engine;

static test_engine g_test;

static const uint8_t kDefaultModel[] = {'T', 'S', 'T', '1', 16, 4, 0x00, 0x08, 0x00, 0x00, 0x00,
                                        1,   2,   3,   4,   5,  6, 7,    8};

const uint8_t *test_engine_default_model(size_t *len) {
  *len = sizeof kDefaultModel;
  return kDefaultModel;
}

static void set_err(tinyml_error *err, tinyml_status status, const char *message) {
  err->status = status;
  snprintf(err->message, sizeof err->message, "%s", message);
}

static size_t allocated(const test_engine *t) { return (t->flags & FLAG_TEMPORARIES) ? t->need - t->need / 8 : t->need; }

static int t_load(void *ctx, const uint8_t *model, size_t len, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  t->loaded = 0;
  if (len < 4 || memcmp(model, "TST1", 4) != 0) {
    set_err(err, TINYML_ST_BAD_MODEL, "not a test model: magic TST1 missing");
    return -1;
  }
  if (len < 12 || model[4] == 0 || model[5] == 0) {
    set_err(err, TINYML_ST_BAD_MODEL, "test model too short or with empty tensors: needs magic, I, O, need, flags, weights");
    return -1;
  }
  t->need = (uint32_t)model[6] | ((uint32_t)model[7] << 8) | ((uint32_t)model[8] << 16) | ((uint32_t)model[9] << 24);
  t->flags = model[10];
  if (t->flags & FLAG_UNSUPPORTED_OP) {
    set_err(err, TINYML_ST_UNSUPPORTED_OP, "op TEST_UNSUPPORTED is not in the op resolver");
    return -1;
  }
  if (t->need > t->arena_size) {
    /* As tflm_engine.cc: the need measured in a trial arena as large as the largest free block. */
    err->status = TINYML_ST_ARENA_TOO_SMALL;
    if (t->need <= PROBE_ARENA) {
      snprintf(err->message, sizeof err->message, "arena needs at least %lu bytes, have %lu; raise --arena-size",
               (unsigned long)t->need, (unsigned long)t->arena_size);
    } else {
      snprintf(err->message, sizeof err->message, "arena needs more than %lu bytes (the largest trial arena), have %lu",
               (unsigned long)PROBE_ARENA, (unsigned long)t->arena_size);
    }
    return -1;
  }
  t->in_bytes = model[4];
  t->out_bytes = model[5];
  t->weights = model + 11;
  t->n_weights = len - 11;
  t->arena_bytes = t->need; /* what tflm_engine.cc measures: the peak the arena held */
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
    set_err(err, TINYML_ST_BAD_ARGUMENT, "the test model has one input and one output");
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
    set_err(err, TINYML_ST_INPUT_SIZE, "the test model's input 0 has a different size");
    return -1;
  }
  if (data == NULL) {
    memset(t->input, 0, len);
  } else {
    memcpy(t->input, data, len);
  }
  return 0;
}

static int t_invoke(void *ctx, uint32_t *elapsed_us, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  if (!t->loaded) {
    set_err(err, TINYML_ST_NO_MODEL, "no model loaded");
    return -1;
  }
  uint32_t n = t->invokes++;
  if ((t->flags & FLAG_THIRD_INVOKE_FAILS) && n == 2) {
    set_err(err, TINYML_ST_INVOKE_FAILED, "Invoke() returned 1 (test model flag bit 1)");
    return -1;
  }
  uint32_t acc = 0;
  for (uint32_t i = 0; i < t->in_bytes; i++) acc += (i + 1) * t->input[i];
  for (uint32_t j = 0; j < t->out_bytes; j++) t->output[j] = (uint8_t)(acc + t->weights[j % t->n_weights] + j);
  if (t->flags & FLAG_CLOBBERS_INPUT) {
    for (uint32_t i = 0; i < t->in_bytes; i++) t->input[i] = (uint8_t)(t->output[i % t->out_bytes] ^ 0xa5u);
  }
  *elapsed_us = 1000u + 10u * t->out_bytes + n % 5u;
  return 0;
}

static const uint8_t *t_output(void *ctx, int index, size_t *len, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  if (!t->loaded || index != 0) {
    set_err(err, TINYML_ST_BAD_ARGUMENT, "the test model has one output");
    return NULL;
  }
  *len = t->out_bytes;
  return t->output;
}

static int t_arena(void *ctx, tinyml_arena_figures *f, tinyml_error *err) {
  test_engine *t = (test_engine *)ctx;
  (void)err;
  f->arena_bytes = t->loaded ? t->arena_bytes : 0;
  f->allocated_bytes = t->loaded ? allocated(t) : 0;
  f->size = t->arena_size;
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

static int t_op_names(void *ctx, const char **names, int max) {
  (void)ctx;
  if (max < 2) return 0;
  names[0] = "TEST_MAC";
  names[1] = "TEST_ADD";
  return 2;
}

void test_engine_init(tinyml_runtime *rt, size_t arena_size) {
  memset(&g_test, 0, sizeof g_test);
  g_test.arena_size = arena_size;
  memset(rt, 0, sizeof *rt);
  rt->ctx = &g_test;
  rt->load = t_load;
  rt->unload = t_unload;
  rt->tensor_count = t_tensor_count;
  rt->tensor_info = t_tensor_info;
  rt->set_input = t_set_input;
  rt->invoke = t_invoke;
  rt->output_data = t_output;
  rt->arena = t_arena;
  rt->profile = t_profile;
  rt->op_names = t_op_names;
}
