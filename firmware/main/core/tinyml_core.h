/* Portable core of the tinyml-bench firmware: serial protocol (firmware/PROTOCOL.md), framing, CRC32,
 * hex decoding, upload state machine and result formatting. No ESP-IDF include: the board glue
 * (app_main.cc, tflm_engine.cc) and the host program (firmware/host/) plug in an engine and an I/O. */
#ifndef TINYML_CORE_H
#define TINYML_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TINYML_PROTOCOL_VERSION "1.0"
#define TINYML_FIRMWARE_NAME "tinyml-bench"
#define TINYML_FIRMWARE_VERSION "0.1.0"
#define TINYML_CMD_MAX 1024            /* bytes of one command, without its '%' */
#define TINYML_SAMPLES_PER_LINE 16
#define TINYML_OUTPUT_BYTES_PER_LINE 64
#define TINYML_MAX_OPS 64              /* per-op lines of tinyml-ops */
#define TINYML_MAX_WARMUP 100000u

/* An engine failure: a protocol error code (PROTOCOL.md section 2) and a message saying what was needed. */
typedef struct tinyml_error {
  char code[24];
  char message[200];
} tinyml_error;

typedef struct tinyml_tensor_info {
  char type[12]; /* "int8", "uint8", "int16", "int32", "float32", ... */
  uint32_t bytes;
  int ndims;
  int32_t dims[6];
  float scale; /* 0 when not quantized */
  int32_t zero_point;
} tinyml_tensor_info;

typedef struct tinyml_op_time {
  char name[32];
  uint32_t us;
} tinyml_op_time;

typedef void (*tinyml_info_emit)(void *arg, const char *key, const char *value);

/* The model runtime and the platform facts it needs. Functions returning int return 0 on success, else
 * non-zero with *err filled. */
typedef struct tinyml_engine {
  void *ctx;
  /* Memory for uploads (model, input, MLPerf db buffer, samples), 16-byte aligned. NULL when there is no
   * room; then *available holds the largest block that could be had. */
  void *(*alloc)(void *ctx, size_t bytes, size_t *available);
  void (*release)(void *ctx, void *ptr);
  /* The model baked into the image, or NULL (then *len is 0). */
  const uint8_t *(*builtin_model)(void *ctx, size_t *len);
  /* Load a model (the buffer stays valid until unload) and allocate its tensors. */
  int (*load)(void *ctx, const uint8_t *model, size_t len, tinyml_error *err);
  void (*unload)(void *ctx);
  int (*tensor_count)(void *ctx, int output);
  int (*tensor_info)(void *ctx, int output, int index, tinyml_tensor_info *info, tinyml_error *err);
  int (*set_input)(void *ctx, int index, const uint8_t *data, size_t len, tinyml_error *err);
  /* One inference; *elapsed_us = time of the inference alone, measured by the engine. */
  int (*invoke)(void *ctx, uint32_t *elapsed_us, tinyml_error *err);
  /* The output tensor's bytes after the last invoke (valid until the next engine call). */
  const uint8_t *(*output_data)(void *ctx, int index, size_t *len, tinyml_error *err);
  int (*arena)(void *ctx, size_t *used, size_t *size, tinyml_error *err);
  /* One profiled inference: per-op times in execution order. */
  int (*profile)(void *ctx, tinyml_op_time *ops, int max_ops, int *n_ops, tinyml_error *err);
  int (*heap)(void *ctx, size_t *free_bytes, size_t *min_free, size_t *largest, tinyml_error *err);
  /* Microseconds since boot (MLPerf timestamps). */
  uint64_t (*now_us)(void *ctx);
  /* Board info keys (PROTOCOL.md, tinyml-info): emit(arg, key, value) once per key. */
  void (*info)(void *ctx, tinyml_info_emit emit, void *arg);
} tinyml_engine;

typedef struct tinyml_config {
  const char *reset_reason; /* as in PROTOCOL.md section 3, e.g. "poweron" */
  uint32_t max_runs;        /* samples kept per run; 0 = 1000 */
  uint32_t db_max;          /* MLPerf db buffer limit; 0 = 27648 */
} tinyml_config;

typedef enum { TINYML_UP_NONE = 0, TINYML_UP_MODEL, TINYML_UP_INPUT } tinyml_upload_target;

typedef struct tinyml_upload {
  tinyml_upload_target target;
  int index;
  uint32_t length;
  uint32_t crc;
  uint32_t received;
  uint8_t *buf;
} tinyml_upload;

typedef struct tinyml_core {
  const tinyml_engine *engine;
  const tinyml_io *io;
  tinyml_config config;
  tinyml_framer framer;
  /* command line buffer */
  char cmd[TINYML_CMD_MAX + 1];
  size_t cmd_len;
  int cmd_overflow;
  /* model */
  int model_loaded;
  int model_builtin;
  uint8_t *model_buf; /* owned upload buffer, NULL for the built-in model */
  uint32_t model_len;
  uint32_t model_crc;
  char model_sha256[65];
  tinyml_upload upload;
  /* MLPerf db staging buffer */
  uint8_t *db;
  uint32_t db_len;
  uint32_t db_pos;
  /* last run */
  uint32_t *samples;
  uint32_t n_samples;
  int have_results;
  tinyml_op_time ops[TINYML_MAX_OPS]; /* here, not on the stack: the ESP main task stack is small */
} tinyml_core;

/* Set up the core; returns 0, or -1 when the samples buffer cannot be allocated. */
int tinyml_core_init(tinyml_core *core, const tinyml_engine *engine, const tinyml_io *io,
                     const tinyml_config *config);
/* Print the boot banner (loading the built-in model first). */
void tinyml_core_boot(tinyml_core *core);
/* Feed one received byte; a complete command is executed and answered before this returns. */
void tinyml_core_feed(tinyml_core *core, char byte);
/* Read bytes from the I/O and feed them until end of input. */
void tinyml_core_run(tinyml_core *core);
/* Execute one command (without its '%'); used by tinyml_core_feed and by tests. */
void tinyml_core_execute(tinyml_core *core, char *command);

#ifdef __cplusplus
}
#endif
#endif
