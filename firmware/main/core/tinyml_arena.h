/* How big the tensor arena is made at boot, shared by the board (app_main.cc) and the host build. (How small a
 * model's arena can be, arena_bytes, is the runtime's to measure: tflm_engine.cc.) */
#ifndef TINYML_ARENA_H
#define TINYML_ARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RAM left free beside the arena at boot: the samples buffer, uploads of small inputs, drivers, tasks. */
#define TINYML_ARENA_MARGIN 16384u

/* The arena to allocate at boot: the configured size when the largest free block holds it with
 * TINYML_ARENA_MARGIN to spare, else what the block allows (a multiple of 16), 0 when not even that.
 * tinyml_arena_fit(131072, 90000) == 73616. */
size_t tinyml_arena_fit(size_t configured, size_t largest_free);

#ifdef __cplusplus
}
#endif
#endif
