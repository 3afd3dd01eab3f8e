/* The tensor arena's two decisions, shared by the board (app_main.cc, tflm_engine.cc) and the host build:
 * how big to make it at boot, and how small a model's arena can be (the one arena figure, arena_bytes). */
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
 * tinyml_arena_fit(131072, 90000) == 73600. */
size_t tinyml_arena_fit(size_t configured, size_t largest_free);

/* Returns 0 when a model loads, allocates its tensors and runs one inference in an arena of `size` bytes. */
typedef int (*tinyml_arena_trial)(void *ctx, size_t size);

/* The smallest size in (fails, fits] for which trial(ctx, size) == 0, by bisection: `fails` must fail and
 * `fits` pass (not re-tried); the answer is the arena figure arena_bytes. Trials: about log2(fits - fails). */
size_t tinyml_arena_bisect(size_t fails, size_t fits, tinyml_arena_trial trial, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
