/* tinyml-host: the engines it can run (test, external) and the wrapper that adds what a board has
 * around its engine (RAM budget, built-in model, debug delay, simulated panic, board info). */
#ifndef TINYML_HOST_ENGINE_H
#define TINYML_HOST_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml_core.h"

typedef struct host_options {
  const char *tty;
  const char *engine_cmd;    /* NULL: test engine */
  const char *builtin_path;  /* NULL: the engine's default */
  int no_builtin;
  uint32_t delay_us;
  size_t max_model_bytes;
  size_t arena_size;
  uint32_t max_runs;
  const char *reset_reason;
  const char *build;
  uint32_t garble[16];
  int n_garble;
  uint32_t panic_at_invoke;  /* 0: never */
} host_options;

/* Test engine (ENGINE_RPC.md section 4). */
void test_engine_init(tinyml_engine *engine, size_t arena_size);
/* The test engine's default built-in model. */
const uint8_t *test_engine_default_model(size_t *len);

/* External engine (ENGINE_RPC.md sections 2-3). Returns 0, or -1 with a message on stderr. */
int rpc_engine_init(tinyml_engine *engine, const char *command);
void rpc_engine_shutdown(tinyml_engine *engine);        /* bye, wait up to 5 s, then kill */
void rpc_engine_kill(tinyml_engine *engine);            /* at once (simulated panic) */
const char *rpc_engine_name(const tinyml_engine *engine); /* from the hello reply */

/* The engine the core sees: inner engine plus RAM budget, built-in model, delay, panic and info. */
int host_engine_init(tinyml_engine *outer, const tinyml_engine *inner, const host_options *options,
                     const char *engine_name);
/* After the core's own start-up allocations: from now on allocations count against the budget. */
void host_engine_start_budget(tinyml_engine *outer);
/* Called at the simulated panic: set by host_main to re-exec itself. */
extern void (*host_panic_hook)(void);

#endif
