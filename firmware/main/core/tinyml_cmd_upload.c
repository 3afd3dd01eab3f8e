/* tinyml-load / tinyml-chunk: the upload state machine (announced length and CRC32, chunks with their own
 * CRC32 and offset, verify at the end, then load the model, stage the input or stage the batch). */
#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"
#include "tinyml_internal.h"

static void abandon(tinyml_core *core) {
  tinyml_release(core, core->upload.buf);
  memset(&core->upload, 0, sizeof core->upload);
}

static int tensor_bytes(tinyml_core *core, int output, uint32_t *bytes) {
  const tinyml_runtime *rt = core->runtime;
  tinyml_tensor_info info;
  tinyml_error err;
  memset(&err, 0, sizeof err);
  if (rt->tensor_info(rt->ctx, output, 0, &info, &err) != 0) {
    tinyml_fail_error(core, 1, &err, "");
    return -1;
  }
  *bytes = info.bytes;
  return 0;
}

/* A batch is whole samples of input tensor 0, and it and its outputs each fit batch-max-bytes. */
static int check_batch(tinyml_core *core, uint32_t length) {
  uint32_t in_bytes = 0, out_bytes = 0, max = core->config.batch_max;
  if (!core->model_loaded) {
    tinyml_fail(core, 1, TINYML_ST_NO_MODEL, "no model is loaded; load one before its batch");
    return -1;
  }
  if (tensor_bytes(core, 0, &in_bytes) != 0 || tensor_bytes(core, 1, &out_bytes) != 0) return -1;
  if (in_bytes == 0 || length % in_bytes != 0) {
    tinyml_fail(core, 1, TINYML_ST_INPUT_SIZE, "a batch is whole samples of input tensor 0 (%lu bytes each), got "
                "%lu bytes", (unsigned long)in_bytes, (unsigned long)length);
    return -1;
  }
  uint32_t n = length / in_bytes;
  if (length > max || (uint64_t)n * out_bytes > max) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "a batch of %lu samples needs %lu input and %lu output bytes, "
                "batch-max-bytes is %lu; send at most %lu samples", (unsigned long)n, (unsigned long)length,
                (unsigned long)((uint64_t)n * out_bytes), (unsigned long)max,
                (unsigned long)(max / (in_bytes > out_bytes ? in_bytes : out_bytes)));
    return -1;
  }
  tinyml_release_batch(core); /* its RAM is needed for the new one */
  return 0;
}

static void load(tinyml_core *core, tinyml_args *a) {
  const tinyml_runtime *rt = core->runtime;
  uint32_t length = 0, crc = 0, index = 0;
  int model = a->argc >= 2 && strcmp(a->argv[1], "model") == 0;
  int input = a->argc >= 2 && strcmp(a->argv[1], "input") == 0;
  int batch = a->argc >= 2 && strcmp(a->argv[1], "batch") == 0;
  abandon(core);
  if ((!model && !input && !batch) || a->argc < 4 || a->argc > (input ? 5 : 4) ||
      tinyml_parse_u32(a->argv[2], &length) != 0 || length == 0 || tinyml_parse_hex32(a->argv[3], &crc) != 0 ||
      (a->argc == 5 && tinyml_parse_u32(a->argv[4], &index) != 0)) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT,
                "use tinyml-load model LENGTH CRC32, tinyml-load input LENGTH CRC32 [INDEX] or tinyml-load batch "
                "LENGTH CRC32 (LENGTH >= 1 decimal, CRC32 1-8 hex digits)");
    return;
  }
  if (model) {
    tinyml_unload_model(core); /* its RAM is needed for the new one */
  } else if (batch) {
    if (check_batch(core, length) != 0) return;
  } else {
    tinyml_tensor_info info;
    tinyml_error err;
    memset(&err, 0, sizeof err);
    if (!core->model_loaded) {
      tinyml_fail(core, 1, TINYML_ST_NO_MODEL, "no model is loaded; load one before its input");
      return;
    }
    int count = rt->tensor_count(rt->ctx, 0);
    if ((int)index >= count) {
      tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "input index %lu: the model has %d input(s)", (unsigned long)index,
                  count);
      return;
    }
    if (index >= TINYML_MAX_INPUTS) {
      tinyml_fail(core, 1, TINYML_ST_UNSUPPORTED, "input index %lu: this firmware stages inputs 0..%d only "
                  "(TINYML_MAX_INPUTS)", (unsigned long)index, TINYML_MAX_INPUTS - 1);
      return;
    }
    if (rt->tensor_info(rt->ctx, 0, (int)index, &info, &err) != 0) {
      tinyml_fail_error(core, 1, &err, "");
      return;
    }
    if (info.bytes != length) {
      tinyml_fail(core, 1, TINYML_ST_INPUT_SIZE, "input tensor %lu needs %lu bytes, got %lu", (unsigned long)index,
                  (unsigned long)info.bytes, (unsigned long)length);
      return;
    }
  }
  size_t available = 0;
  uint8_t *buf = (uint8_t *)tinyml_alloc(core, length, &available);
  const char *what = model ? "model" : input ? "input" : "batch";
  if (buf == NULL) {
    tinyml_fail(core, 1, model ? TINYML_ST_MODEL_TOO_BIG : TINYML_ST_NO_ROOM,
                "%s needs %lu bytes, have %lu (largest free block)", what, (unsigned long)length,
                (unsigned long)available);
    return;
  }
  core->upload.target = model ? TINYML_UP_MODEL : input ? TINYML_UP_INPUT : TINYML_UP_BATCH;
  core->upload.index = (int)index;
  core->upload.length = length;
  core->upload.crc = crc;
  core->upload.buf = buf;
  tinyml_frame(&core->framer, core->io, 'm', "load-[target=%s,length=%lu,crc32=%08lx]", what, (unsigned long)length,
               (unsigned long)crc);
  tinyml_frame_end(&core->framer, core->io);
}

/* A verified batch upload: room for its outputs too, then kept until the next batch or model. */
static int stage_batch(tinyml_core *core, uint8_t *buf, uint32_t length, uint32_t crc) {
  uint32_t in_bytes = 0, out_bytes = 0;
  size_t available = 0;
  if (tensor_bytes(core, 0, &in_bytes) != 0 || tensor_bytes(core, 1, &out_bytes) != 0) {
    tinyml_release(core, buf);
    return -1;
  }
  uint32_t n = length / in_bytes;
  uint8_t *out = (uint8_t *)tinyml_alloc(core, (size_t)n * out_bytes, &available);
  if (out == NULL) {
    tinyml_release(core, buf);
    tinyml_fail(core, 1, TINYML_ST_NO_ROOM, "the outputs of a batch of %lu samples need %lu bytes, have %lu (largest "
                "free block); send fewer samples", (unsigned long)n, (unsigned long)n * out_bytes,
                (unsigned long)available);
    return -1;
  }
  core->batch.in = buf;
  core->batch.out = out;
  core->batch.n = n;
  core->batch.in_bytes = in_bytes;
  core->batch.out_bytes = out_bytes;
  core->batch.crc = crc;
  core->batch.predicted = 0;
  tinyml_frame(&core->framer, core->io, 'm', "batch-[samples=%lu,bytes=%lu,crc32=%08lx]", (unsigned long)n,
               (unsigned long)length, (unsigned long)crc);
  return 0;
}

/* The last byte arrived: verify the whole upload, then use it. */
static void finish(tinyml_core *core) {
  tinyml_upload up = core->upload;
  uint32_t crc = tinyml_crc32(0, up.buf, up.length);
  memset(&core->upload, 0, sizeof core->upload); /* the buffer now belongs to this function */
  if (crc != up.crc) {
    tinyml_release(core, up.buf);
    tinyml_fail(core, 1, TINYML_ST_CRC_MISMATCH, "upload of %lu bytes has CRC32 %08lx, announced %08lx; discarded, start "
                "again with tinyml-load", (unsigned long)up.length, (unsigned long)crc, (unsigned long)up.crc);
    return;
  }
  if (up.target == TINYML_UP_MODEL) {
    if (tinyml_load_model(core, up.buf, up.length, 0, 1) != 0 || tinyml_describe_model(core) != 0) return;
  } else if (up.target == TINYML_UP_BATCH) {
    if (stage_batch(core, up.buf, up.length, crc) != 0) return;
  } else {
    /* Kept, not copied once: every invoke gets these bytes again (its tensor may be overwritten by the
     * tensors computed after it). */
    tinyml_staged_input *staged = &core->inputs[up.index];
    tinyml_release(core, staged->buf);
    staged->buf = up.buf;
    staged->len = up.length;
    staged->crc = crc;
    tinyml_frame(&core->framer, core->io, 'm', "input-[index=%d,bytes=%lu,crc32=%08lx]", up.index,
                 (unsigned long)up.length, (unsigned long)crc);
  }
  tinyml_frame_end(&core->framer, core->io);
}

static void chunk(tinyml_core *core, tinyml_args *a) {
  tinyml_upload *up = &core->upload;
  uint32_t offset = 0, crc = 0;
  uint8_t bytes[TINYML_CHUNK_MAX];
  if (up->target == TINYML_UP_NONE) {
    tinyml_fail(core, 1, TINYML_ST_NO_UPLOAD, "no upload in progress; announce one with tinyml-load model|input LENGTH CRC32");
    return;
  }
  if (a->argc != 4 || tinyml_parse_u32(a->argv[1], &offset) != 0 || tinyml_parse_hex32(a->argv[3], &crc) != 0) {
    tinyml_fail(core, 1, TINYML_ST_BAD_ARGUMENT, "use tinyml-chunk OFFSET HEX CRC32 (decimal offset, CRC32 1-8 hex digits)");
    return;
  }
  size_t digits = strlen(a->argv[2]), bad = 0;
  int rc = tinyml_hex_decode(a->argv[2], digits, bytes, &bad);
  if (rc == TINYML_HEX_BAD) {
    tinyml_fail(core, 1, TINYML_ST_BAD_HEX, "invalid hex digit '%c' at position %lu of the chunk", a->argv[2][bad],
                (unsigned long)bad);
    return;
  }
  if (rc == TINYML_HEX_ODD) {
    tinyml_fail(core, 1, TINYML_ST_ODD_HEX, "odd number of hex digits (%lu) in the chunk; two digits per byte",
                (unsigned long)digits);
    return;
  }
  uint32_t n = (uint32_t)(digits / 2);
  if (offset > up->received) {
    tinyml_fail(core, 1, TINYML_ST_BAD_OFFSET, "chunk offset %lu is past the %lu bytes received so far; send offset %lu",
                (unsigned long)offset, (unsigned long)up->received, (unsigned long)up->received);
    return;
  }
  if ((uint64_t)offset + n > up->length) {
    tinyml_fail(core, 1, TINYML_ST_PAST_END, "chunk of %lu bytes at offset %lu goes past the announced length %lu",
                (unsigned long)n, (unsigned long)offset, (unsigned long)up->length);
    return;
  }
  uint32_t got = tinyml_crc32(0, bytes, n);
  if (got != crc) {
    tinyml_fail(core, 1, TINYML_ST_CHUNK_CRC, "chunk at offset %lu has CRC32 %08lx, the command says %08lx; send it again",
                (unsigned long)offset, (unsigned long)got, (unsigned long)crc);
    return;
  }
  memcpy(up->buf + offset, bytes, n);
  if (offset + n > up->received) up->received = offset + n;
  tinyml_frame(&core->framer, core->io, 'm', "chunk-[offset=%lu,bytes=%lu,received=%lu,length=%lu]",
               (unsigned long)offset, (unsigned long)n, (unsigned long)up->received, (unsigned long)up->length);
  if (up->received == up->length) {
    finish(core);
  } else {
    tinyml_frame_end(&core->framer, core->io);
  }
}

int tinyml_cmd_upload(tinyml_core *core, tinyml_args *a) {
  if (strcmp(a->argv[0], "tinyml-load") == 0) {
    load(core, a);
  } else if (strcmp(a->argv[0], "tinyml-chunk") == 0) {
    chunk(core, a);
  } else {
    return 0;
  }
  return 1;
}
