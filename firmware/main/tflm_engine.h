/* The TFLite Micro runtime of the board firmware: tinyml_runtime (core/tinyml_core.h) on a MicroInterpreter. */
#ifndef TINYML_TFLM_ENGINE_H
#define TINYML_TFLM_ENGINE_H

#include <stddef.h>

#include "tinyml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill the runtime (load, tensors, set_input, invoke, outputs, arena, profile, op names) and allocate the arena
 * of arena_size bytes (sized by the caller with tinyml_arena_fit). Returns 0, or -1 when it could not be
 * allocated: the runtime then has no arena and every model load answers arena-too-small. */
int tflm_engine_init(tinyml_runtime *runtime, size_t arena_size);
/* Where the arena went: "internal" or "psram". */
const char *tflm_engine_arena_where(void);

#ifdef __cplusplus
}
#endif
#endif
