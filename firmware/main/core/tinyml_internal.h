/* Shared between the core's command files; not part of the core's API. */
#ifndef TINYML_INTERNAL_H
#define TINYML_INTERNAL_H

#include "tinyml_core.h"

#define TINYML_MAX_ARGS 8
#define TINYML_CHUNK_MAX (TINYML_CMD_MAX / 2) /* bytes of decoded hex in one command */

typedef struct tinyml_args {
  int argc;
  char *argv[TINYML_MAX_ARGS];
} tinyml_args;

/* An error line: framed (e-#seq-[code: msg]*crc) for tinyml- commands, plain (e-[code: msg]) otherwise. */
void tinyml_fail(tinyml_core *core, int framed, tinyml_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void tinyml_fail_error(tinyml_core *core, int framed, const tinyml_error *err, const char *prefix);

/* Memory of the platform. */
void *tinyml_alloc(tinyml_core *core, size_t bytes, size_t *available);
void tinyml_release(tinyml_core *core, void *ptr);

/* Free the staged batch and its outputs (tinyml-load batch, tinyml-predict). */
void tinyml_release_batch(tinyml_core *core);
/* Unload the model and free its buffer, its staged inputs and its batch. */
void tinyml_unload_model(tinyml_core *core);
/* Load a model (owned: buf was allocated by the core and is released on failure); returns 0 or -1 after
 * sending the error. */
int tinyml_load_model(tinyml_core *core, uint8_t *buf, uint32_t len, int builtin, int framed);
/* The framed model-[...], tensor-[...] and arena-[...] lines. Returns 0 or -1 after an error line. */
int tinyml_describe_model(tinyml_core *core);
/* The framed arena-[...] line of the loaded model. Returns 0 or -1 after an error line. */
int tinyml_arena_line(tinyml_core *core);
/* Dequantized value of element i of a tensor (raw value when not quantized). */
double tinyml_dequantize(const tinyml_tensor_info *info, const uint8_t *data, uint32_t i);
/* Element count of a tensor from its type and byte size. */
uint32_t tinyml_element_count(const tinyml_tensor_info *info);
/* "1x16" */
void tinyml_format_dims(const tinyml_tensor_info *info, char *out, size_t cap);
/* Copy every staged input into its tensor (input0/len0 instead for input 0 when input0 is not NULL: the MLPerf
 * db buffer, a batch sample); zeros for an input never uploaded. Returns 0 or -1 after an error line. */
int tinyml_stage_inputs(tinyml_core *core, const uint8_t *input0, size_t len0, int framed);
/* Run warmup untimed and runs timed invokes, inputs staged before each, keeping samples; returns 0 or -1
 * after an error. */
int tinyml_run(tinyml_core *core, uint32_t runs, uint32_t warmup, int use_db, int framed, uint64_t *lap0,
               uint64_t *lap1);
/* MLPerf Tiny's name of the loaded model ("kws01", "vww01", "ic01", "ad01") or NULL (PROTOCOL.md, profile%). */
const char *tinyml_mlperf_model_name(tinyml_core *core);

int tinyml_cmd_mlperf(tinyml_core *core, tinyml_args *args);   /* 1 when the command was claimed */
int tinyml_cmd_tinyml(tinyml_core *core, tinyml_args *args);   /* 1 when the command was claimed */
int tinyml_cmd_upload(tinyml_core *core, tinyml_args *args);   /* tinyml-load / tinyml-chunk */
int tinyml_cmd_batch(tinyml_core *core, tinyml_args *args);    /* tinyml-predict / tinyml-predictions */

#endif
