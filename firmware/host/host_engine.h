/* tinyml-host: the runtimes it can run (the test engine, an external engine process) and the host platform
 * (RAM budget, built-in model, clock, debug delay, simulated panic, board info). */
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
  size_t boot_heap;          /* 0: unlimited; else the largest free block the arena is planned against */
  uint32_t max_runs;
  uint32_t batch_max; /* bytes of a tinyml-load batch (0: the core's default) */
  const char *reset_reason;
  const char *build;
  uint32_t garble[16];
  int n_garble;
  uint32_t panic_at_invoke;  /* 0: never */
} host_options;

/* Test engine (ENGINE_RPC.md section 4) with an arena of arena_size bytes. */
void test_engine_init(tinyml_runtime *runtime, size_t arena_size);
/* The test engine's default built-in model. */
const uint8_t *test_engine_default_model(size_t *len);

/* External engine (ENGINE_RPC.md sections 2-3). Returns 0, or -1 with a message on stderr. */
int rpc_engine_init(tinyml_runtime *runtime, const char *command);
void rpc_engine_shutdown(void);          /* bye, wait up to 5 s, then kill */
void rpc_engine_kill(void);              /* at once (simulated panic) */
const char *rpc_engine_name(void);       /* from the hello reply */
void rpc_engine_info(tinyml_info_emit emit, void *arg); /* the engine's info keys */

/* The host platform. It also wraps runtime->invoke (the one call it adds to: delay, panic, fake clock). */
int host_platform_init(tinyml_platform *platform, tinyml_runtime *runtime, const host_options *options,
                       const char *engine_name);
/* After the core's own start-up allocations: from now on allocations count against the budget. */
void host_platform_start_budget(void);
/* Called at the simulated panic: set by host_main to re-exec itself. */
extern void (*host_panic_hook)(void);

#endif
