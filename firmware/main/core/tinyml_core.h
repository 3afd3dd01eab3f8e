/* Portable core of the tinyml-bench firmware: serial protocol (firmware/PROTOCOL.md), framing, CRC32,
 * hex decoding, upload state machine and result formatting. No ESP-IDF include: the board glue
 * (app_main.cc: platform, tflm_engine.cc: runtime) and the host program (firmware/host/) plug in a runtime,
 * a platform and an I/O. */
#ifndef TINYML_CORE_H
#define TINYML_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml_frame.h"
#include "tinyml_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TINYML_PROTOCOL_VERSION "1.2"
#define TINYML_FIRMWARE_NAME "tinyml-bench"
#define TINYML_FIRMWARE_VERSION "0.1.0"
#define TINYML_CMD_MAX 1024            /* bytes of one command, without its '%' */
#define TINYML_SAMPLES_PER_LINE 16
#define TINYML_OUTPUT_BYTES_PER_LINE 64
#define TINYML_MAX_OPS 64              /* per-op lines of tinyml-ops */
#define TINYML_MAX_WARMUP 100000u
#define TINYML_MAX_INPUTS 8           /* input tensors whose uploads are staged */

/* A failure of the runtime or the platform: its status (PROTOCOL.md section 2) and a message saying what was
 * needed. */
typedef struct tinyml_error {
  tinyml_status status;
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

/* The arena figures of the loaded model (COORD contract 2: one definition everywhere). */
typedef struct tinyml_arena_figures {
  size_t arena_bytes;     /* smallest arena for which load + AllocateTensors + one Invoke succeed */
  size_t allocated_bytes; /* TFLM arena_used_bytes() after AllocateTensors: never compared with a budget */
  size_t size;            /* the arena the runtime has */
} tinyml_arena_figures;

typedef void (*tinyml_info_emit)(void *arg, const char *key, const char *value);

/* The model runtime (TFLM on a board; the test engine or an external process on the host). Functions
 * returning int return 0 on success, else non-zero with *err filled. */
typedef struct tinyml_runtime {
  void *ctx;
  /* Load a model (the buffer stays valid until unload) and allocate its tensors. */
  int (*load)(void *ctx, const uint8_t *model, size_t len, tinyml_error *err);
  void (*unload)(void *ctx);
  int (*tensor_count)(void *ctx, int output);
  int (*tensor_info)(void *ctx, int output, int index, tinyml_tensor_info *info, tinyml_error *err);
  /* Copy len bytes into input tensor index (data NULL: zeros). The core calls it before every invoke:
   * TFLM's memory planner may reuse an input tensor's bytes for later tensors. */
  int (*set_input)(void *ctx, int index, const uint8_t *data, size_t len, tinyml_error *err);
  /* One inference; *elapsed_us = time of the inference alone, measured by the runtime. */
  int (*invoke)(void *ctx, uint32_t *elapsed_us, tinyml_error *err);
  /* The output tensor's bytes after the last invoke (valid until the next runtime call). */
  const uint8_t *(*output_data)(void *ctx, int index, size_t *len, tinyml_error *err);
  int (*arena)(void *ctx, tinyml_arena_figures *figures, tinyml_error *err);
  /* One profiled inference: per-op times in execution order. */
  int (*profile)(void *ctx, tinyml_op_time *ops, int max_ops, int *n_ops, tinyml_error *err);
  /* Builtin op names of the loaded model's operator codes ("CONV_2D"), for the MLPerf model fingerprint;
   * returns how many were written (at most max). May be NULL. */
  int (*op_names)(void *ctx, const char **names, int max);
} tinyml_runtime;

/* What the board (or the host program) gives around the runtime. */
typedef struct tinyml_platform {
  void *ctx;
  /* Memory for uploads (model, inputs, MLPerf db buffer, samples), 16-byte aligned. NULL when there is no
   * room; then *available holds the largest block that could be had. */
  void *(*alloc)(void *ctx, size_t bytes, size_t *available);
  void (*release)(void *ctx, void *ptr);
  /* The model baked into the image, or NULL (then *len is 0). */
  const uint8_t *(*builtin_model)(void *ctx, size_t *len);
  int (*heap)(void *ctx, size_t *free_bytes, size_t *min_free, size_t *largest, tinyml_error *err);
  /* Microseconds since boot (MLPerf timestamps). */
  uint64_t (*now_us)(void *ctx);
  /* Board info keys (PROTOCOL.md, tinyml-info): emit(arg, key, value) once per key. */
  void (*info)(void *ctx, tinyml_info_emit emit, void *arg);
} tinyml_platform;

/* How the arena was sized at boot (tinyml_arena_fit). configured == 0: the runtime sizes its own arena. */
typedef struct tinyml_arena_plan {
  size_t configured;   /* CONFIG_TINYML_ARENA_SIZE (host: --arena-size) */
  size_t size;         /* what was allocated */
  size_t heap_at_boot; /* the largest free block it was planned against */
} tinyml_arena_plan;

typedef struct tinyml_config {
  const char *reset_reason; /* as in PROTOCOL.md section 3, e.g. "poweron" */
  uint32_t max_runs;        /* samples kept per run; 0 = 1000 */
  uint32_t db_max;          /* MLPerf db buffer limit; 0 = 27648 */
  tinyml_arena_plan arena;
  uint32_t batch_max;       /* bytes of a tinyml-load batch, and of its outputs; 0 = 16384 */
} tinyml_config;

typedef enum { TINYML_UP_NONE = 0, TINYML_UP_MODEL, TINYML_UP_INPUT, TINYML_UP_BATCH } tinyml_upload_target;

typedef struct tinyml_upload {
  tinyml_upload_target target;
  int index;
  uint32_t length;
  uint32_t crc;
  uint32_t received;
  uint8_t *buf;
} tinyml_upload;

/* An uploaded input, kept for the model's life and copied into its tensor before every invoke. */
typedef struct tinyml_staged_input {
  uint8_t *buf; /* NULL: never uploaded, zeros are copied */
  uint32_t len;
  uint32_t crc;
} tinyml_staged_input;

/* A batch of input-0 samples (tinyml-load batch) and, after tinyml-predict, output 0 of each (protocol 1.2). */
typedef struct tinyml_batch {
  uint8_t *in;        /* n samples back to back, in_bytes each; NULL: no batch staged */
  uint8_t *out;       /* n outputs back to back, out_bytes each */
  uint32_t n;
  uint32_t in_bytes;
  uint32_t out_bytes;
  uint32_t crc;       /* of the uploaded bytes */
  int predicted;      /* out holds the outputs of in */
} tinyml_batch;

typedef struct tinyml_core {
  const tinyml_runtime *runtime;
  const tinyml_platform *platform;
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
  const char *mlperf_name; /* "kws01", ... when the model is one of MLPerf Tiny's four, else NULL */
  tinyml_upload upload;
  tinyml_staged_input inputs[TINYML_MAX_INPUTS];
  tinyml_batch batch;
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
int tinyml_core_init(tinyml_core *core, const tinyml_runtime *runtime, const tinyml_platform *platform,
                     const tinyml_io *io, const tinyml_config *config);
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
