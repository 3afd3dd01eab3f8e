/* External engine of tinyml-host: a child process that answers ENGINE_RPC.md requests on fd 3 / fd 4. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, getline, cfmakeraw, aligned_alloc */
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host_engine.h"
#include "tinyml_codec.h"

#define RPC_MAX_TENSORS 16
#define RPC_MAX_KV 48

typedef struct rpc_engine {
  pid_t pid;
  FILE *req;
  FILE *rep;
  int dead;
  int status;
  char *line; /* last reply */
  size_t line_cap;
  int n_in, n_out;
  tinyml_tensor_info in[RPC_MAX_TENSORS], out[RPC_MAX_TENSORS];
  uint8_t *out_data;
  size_t out_len, out_cap;
  char name[64];
  /* op_names: the names of the last load's reply, cut in place */
  char *ops_line;
  size_t ops_cap;
} rpc_engine;

static rpc_engine g_rpc;

static void set_err(tinyml_error *err, tinyml_status status, const char *message) {
  err->status = status;
  snprintf(err->message, sizeof err->message, "%s", message);
}

static void mark_dead(rpc_engine *r) {
  if (r->dead) return;
  r->dead = 1;
  int status = 0;
  if (waitpid(r->pid, &status, 0) == r->pid) r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void dead_error(rpc_engine *r, tinyml_error *err) {
  err->status = TINYML_ST_ENGINE;
  snprintf(err->message, sizeof err->message,
           "external engine exited (status %d); its output is on tinyml-host's stderr", r->status);
}

/* Finish a request (already written up to its last argument) and read the reply; returns 0 on "ok", -1 on
 * "err" or a dead engine, with *err filled. After 0, r->line holds the reply's key=value part. */
static int finish(rpc_engine *r, tinyml_error *err) {
  if (r->dead) {
    dead_error(r, err);
    return -1;
  }
  if (fputc('\n', r->req) == EOF || fflush(r->req) != 0) {
    mark_dead(r);
    dead_error(r, err);
    return -1;
  }
  ssize_t n = getline(&r->line, &r->line_cap, r->rep);
  if (n <= 0) {
    mark_dead(r);
    dead_error(r, err);
    return -1;
  }
  while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r')) r->line[--n] = '\0';
  if (strncmp(r->line, "ok", 2) == 0 && (r->line[2] == '\0' || r->line[2] == ' ')) {
    memmove(r->line, r->line + 2 + (r->line[2] == ' '), strlen(r->line + 2 + (r->line[2] == ' ')) + 1);
    return 0;
  }
  if (strncmp(r->line, "err ", 4) == 0) {
    char *code = r->line + 4;
    char *space = strchr(code, ' ');
    if (space) *space = '\0';
    const char *message = space ? space + 1 : "(no message)";
    err->status = tinyml_status_from_name(code);
    if (err->status == TINYML_OK) {
      /* Not a protocol code (PROTOCOL.md section 2): the host sees engine: <code>: <message>. */
      err->status = TINYML_ST_ENGINE;
      snprintf(err->message, sizeof err->message, "%.40s: %s", code, message);
    } else {
      snprintf(err->message, sizeof err->message, "%s", message);
    }
    return -1;
  }
  err->status = TINYML_ST_ENGINE;
  snprintf(err->message, sizeof err->message, "external engine sent an unparsable reply: %.120s", r->line);
  return -1;
}

static int request(rpc_engine *r, tinyml_error *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!r->dead) vfprintf(r->req, fmt, ap);
  va_end(ap);
  return finish(r, err);
}

/* Value of key in the reply (pointer into r->line, cut at the next space), or NULL. */
static const char *value_of(rpc_engine *r, const char *key, char *out, size_t cap) {
  size_t klen = strlen(key);
  for (char *p = r->line; p && *p;) {
    if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
      const char *v = p + klen + 1;
      size_t n = strcspn(v, " ");
      if (n >= cap) n = cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return out;
    }
    p = strchr(p, ' ');
    if (p) p++;
  }
  return NULL;
}

static void percent_decode(char *s) {
  char *w = s;
  for (char *p = s; *p; p++) {
    if (p[0] == '%' && p[1] && p[2]) {
      char hex[3] = {p[1], p[2], 0};
      uint8_t b;
      if (tinyml_hex_decode(hex, 2, &b, NULL) == TINYML_HEX_OK) {
        *w++ = (char)b;
        p += 2;
        continue;
      }
    }
    *w++ = *p;
  }
  *w = '\0';
}

static int parse_tensor(rpc_engine *r, tinyml_tensor_info *info, tinyml_error *err) {
  char v[128];
  memset(info, 0, sizeof *info);
  if (!value_of(r, "type", info->type, sizeof info->type) || !value_of(r, "bytes", v, sizeof v)) {
    set_err(err, TINYML_ST_ENGINE, "external engine's tensor reply lacks type= or bytes=");
    return -1;
  }
  info->bytes = (uint32_t)strtoul(v, NULL, 10);
  if (value_of(r, "dims", v, sizeof v)) {
    for (char *p = v; *p && info->ndims < 6;) {
      info->dims[info->ndims++] = (int32_t)strtol(p, &p, 10);
      if (*p == 'x') p++; else break;
    }
  }
  if (value_of(r, "scale", v, sizeof v)) info->scale = strtof(v, NULL);
  if (value_of(r, "zero_point", v, sizeof v)) info->zero_point = (int32_t)strtol(v, NULL, 10);
  return 0;
}

static int r_load(void *ctx, const uint8_t *model, size_t len, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  char hex[2 * 512 + 1], v[32];
  r->n_in = r->n_out = 0;
  if (!r->dead) {
    fputs("load ", r->req);
    for (size_t off = 0; off < len; off += 512) {
      size_t n = len - off < 512 ? len - off : 512;
      tinyml_hex_encode(model + off, n, hex);
      fputs(hex, r->req);
    }
  }
  if (finish(r, err) != 0) return -1;
  int n_in = value_of(r, "inputs", v, sizeof v) ? atoi(v) : 0;
  int n_out = value_of(r, "outputs", v, sizeof v) ? atoi(v) : 0;
  if (n_in < 0 || n_out < 0 || n_in > RPC_MAX_TENSORS || n_out > RPC_MAX_TENSORS) {
    set_err(err, TINYML_ST_UNSUPPORTED, "tinyml-host handles at most 16 input and 16 output tensors");
    return -1;
  }
  for (int i = 0; i < n_in; i++) {
    if (request(r, err, "tensor in %d", i) != 0 || parse_tensor(r, &r->in[i], err) != 0) return -1;
  }
  for (int i = 0; i < n_out; i++) {
    if (request(r, err, "tensor out %d", i) != 0 || parse_tensor(r, &r->out[i], err) != 0) return -1;
  }
  r->n_in = n_in;
  r->n_out = n_out;
  r->out_len = 0;
  return 0;
}

static void r_unload(void *ctx) {
  rpc_engine *r = (rpc_engine *)ctx;
  r->n_in = r->n_out = 0;
}

static int r_tensor_count(void *ctx, int output) {
  rpc_engine *r = (rpc_engine *)ctx;
  return output ? r->n_out : r->n_in;
}

static int r_tensor_info(void *ctx, int output, int index, tinyml_tensor_info *info, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  if (index < 0 || index >= (output ? r->n_out : r->n_in)) {
    set_err(err, TINYML_ST_BAD_ARGUMENT, "no such tensor");
    return -1;
  }
  *info = output ? r->out[index] : r->in[index];
  return 0;
}

static int r_set_input(void *ctx, int index, const uint8_t *data, size_t len, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  char hex[2 * 512 + 1];
  static const uint8_t zeros[512];
  if (!r->dead) {
    fprintf(r->req, "set_input %d ", index);
    for (size_t off = 0; off < len; off += 512) {
      size_t n = len - off < 512 ? len - off : 512;
      tinyml_hex_encode(data ? data + off : zeros, n, hex);
      fputs(hex, r->req);
    }
  }
  return finish(r, err);
}

static int r_invoke(void *ctx, uint32_t *elapsed_us, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  char v[32];
  r->out_len = 0;
  if (request(r, err, "invoke") != 0) return -1;
  if (!value_of(r, "us", v, sizeof v)) {
    set_err(err, TINYML_ST_ENGINE, "external engine's invoke reply lacks us=");
    return -1;
  }
  *elapsed_us = (uint32_t)strtoul(v, NULL, 10);
  return 0;
}

static const uint8_t *r_output(void *ctx, int index, size_t *len, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  if (request(r, err, "output %d", index) != 0) return NULL;
  char *hex = strstr(r->line, "hex=");
  if (hex == NULL) {
    set_err(err, TINYML_ST_ENGINE, "external engine's output reply lacks hex=");
    return NULL;
  }
  hex += 4;
  size_t digits = strcspn(hex, " ");
  if (digits / 2 > r->out_cap) {
    free(r->out_data);
    r->out_cap = digits / 2 + 64;
    r->out_data = (uint8_t *)malloc(r->out_cap);
  }
  if (r->out_data == NULL || tinyml_hex_decode(hex, digits, r->out_data, NULL) != TINYML_HEX_OK) {
    set_err(err, TINYML_ST_ENGINE, "external engine's output hex is not valid hex");
    return NULL;
  }
  *len = digits / 2;
  return r->out_data;
}

static int r_arena(void *ctx, tinyml_arena_figures *f, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  char v[32];
  if (request(r, err, "arena") != 0) return -1;
  /* used= is RPC 1's first name of arena_bytes (engines written before arena_bytes= was added). */
  if (!value_of(r, "arena_bytes", v, sizeof v) && !value_of(r, "used", v, sizeof v)) {
    set_err(err, TINYML_ST_ENGINE, "external engine's arena reply lacks arena_bytes=");
    return -1;
  }
  f->arena_bytes = (size_t)strtoull(v, NULL, 10);
  f->allocated_bytes = value_of(r, "arena_allocated_bytes", v, sizeof v) ? (size_t)strtoull(v, NULL, 10) : 0;
  f->size = value_of(r, "size", v, sizeof v) ? (size_t)strtoull(v, NULL, 10) : 0;
  return 0;
}

static int r_profile(void *ctx, tinyml_op_time *ops, int max_ops, int *n_ops, tinyml_error *err) {
  rpc_engine *r = (rpc_engine *)ctx;
  if (request(r, err, "profile") != 0) return -1;
  char *p = strstr(r->line, "ops=");
  *n_ops = 0;
  if (p == NULL) return 0;
  p += 4;
  while (*p && *p != ' ' && *n_ops < max_ops) {
    size_t name_len = strcspn(p, ":, ");
    tinyml_op_time *op = &ops[*n_ops];
    snprintf(op->name, sizeof op->name, "%.*s", (int)(name_len < 31 ? name_len : 31), p);
    p += name_len;
    op->us = 0;
    if (*p == ':') op->us = (uint32_t)strtoul(p + 1, &p, 10);
    (*n_ops)++;
    if (*p == ',') p++;
  }
  return 0;
}

/* Builtin op names of the model: `op_names` -> `ok names=CONV_2D,ADD`; an engine without it gives none. */
static int r_op_names(void *ctx, const char **names, int max) {
  rpc_engine *r = (rpc_engine *)ctx;
  tinyml_error err;
  char *list = NULL;
  if (request(r, &err, "op_names") != 0 || (list = strstr(r->line, "names=")) == NULL) return 0;
  size_t need = strlen(list + 6) + 1;
  if (need > r->ops_cap) {
    free(r->ops_line);
    r->ops_cap = need + 64;
    r->ops_line = (char *)malloc(r->ops_cap);
    if (r->ops_line == NULL) {
      r->ops_cap = 0;
      return 0;
    }
  }
  memcpy(r->ops_line, list + 6, need);
  r->ops_line[strcspn(r->ops_line, " ")] = '\0';
  int n = 0;
  for (char *p = r->ops_line; *p && n < max;) {
    names[n++] = p;
    p += strcspn(p, ",");
    if (*p == ',') *p++ = '\0';
  }
  return n;
}

void rpc_engine_info(tinyml_info_emit emit, void *arg) {
  rpc_engine *r = &g_rpc;
  tinyml_error err;
  if (request(r, &err, "info") != 0) return;
  for (char *p = r->line; p && *p;) {
    char *next = strchr(p, ' ');
    if (next) *next++ = '\0';
    char *eq = strchr(p, '=');
    if (eq) {
      *eq = '\0';
      percent_decode(eq + 1);
      emit(arg, p, eq + 1);
    }
    p = next;
  }
}

int rpc_engine_init(tinyml_runtime *rt, const char *command) {
  int to_child[2], from_child[2];
  memset(&g_rpc, 0, sizeof g_rpc);
  signal(SIGPIPE, SIG_IGN); /* a dead engine shows as EPIPE on write, not a dead tinyml-host */
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
    perror("tinyml-host: pipe");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("tinyml-host: fork");
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    /* Move the pipe ends above 9 first, so dup2 onto 3 and 4 never collides with them. */
    int in = fcntl(to_child[0], F_DUPFD, 10), out = fcntl(from_child[1], F_DUPFD, 10);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(2, 1);
    dup2(in, 3);
    dup2(out, 4);
    setenv("TINYML_RPC_IN", "3", 1);
    setenv("TINYML_RPC_OUT", "4", 1);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    perror("tinyml-host: exec /bin/sh");
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  g_rpc.pid = pid;
  g_rpc.req = fdopen(to_child[1], "w");
  g_rpc.rep = fdopen(from_child[0], "r");
  memset(rt, 0, sizeof *rt);
  rt->ctx = &g_rpc;
  rt->load = r_load;
  rt->unload = r_unload;
  rt->tensor_count = r_tensor_count;
  rt->tensor_info = r_tensor_info;
  rt->set_input = r_set_input;
  rt->invoke = r_invoke;
  rt->output_data = r_output;
  rt->arena = r_arena;
  rt->profile = r_profile;
  rt->op_names = r_op_names;
  tinyml_error err;
  char name[64];
  if (request(&g_rpc, &err, "hello 1") != 0) {
    fprintf(stderr, "tinyml-host: external engine failed the handshake: %s: %s\n", tinyml_status_name(err.status),
            err.message);
    return -1;
  }
  snprintf(g_rpc.name, sizeof g_rpc.name, "%s", value_of(&g_rpc, "name", name, sizeof name) ? name : "unnamed");
  percent_decode(g_rpc.name);
  return 0;
}

const char *rpc_engine_name(void) { return g_rpc.name; }

void rpc_engine_kill(void) {
  rpc_engine *r = &g_rpc;
  if (r->dead) return;
  kill(-r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  r->dead = 1;
}

void rpc_engine_shutdown(void) {
  rpc_engine *r = &g_rpc;
  tinyml_error err;
  if (!r->dead) {
    request(r, &err, "bye");
    fclose(r->req);
    r->req = NULL;
    for (int i = 0; i < 50; i++) { /* up to 5 s */
      if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
        r->dead = 1;
        break;
      }
      struct timespec ts = {0, 100000000};
      nanosleep(&ts, NULL);
    }
    if (!r->dead) {
      kill(-r->pid, SIGKILL);
      waitpid(r->pid, NULL, 0);
      r->dead = 1;
    }
  }
}
