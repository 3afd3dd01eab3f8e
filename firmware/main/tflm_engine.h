/* The TFLite Micro engine of the board firmware: tinyml_engine (core/tinyml_core.h) on a MicroInterpreter. */
#ifndef TINYML_TFLM_ENGINE_H
#define TINYML_TFLM_ENGINE_H

#include <stddef.h>

#include "tinyml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill engine's model functions (load, tensors, invoke, outputs, arena, profile). Allocates the arena of
 * arena_size bytes; returns 0, or -1 when there is no room for it. The caller fills the platform functions
 * (alloc, release, builtin_model, heap, now_us, info). */
int tflm_engine_init(tinyml_engine *engine, size_t arena_size);
/* Where the arena went: "internal" or "psram". */
const char *tflm_engine_arena_where(void);

#ifdef __cplusplus
}
#endif
#endif
