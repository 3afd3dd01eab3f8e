// The TFLite Micro engine: a MicroInterpreter over the loaded model, an op resolver with the ops common in
// tinyML models (ESP-NN kernels for conv, depthwise conv, fully connected, add, mul, pooling, softmax), per-op
// times through TFLM's MicroProfilerInterface, and errors that say what was needed.
#include "tflm_engine.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "board_platform.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

namespace {

constexpr int kMaxOps = 48;
using Resolver = tflite::MicroMutableOpResolver<kMaxOps>;

// Records begin/end of each op while armed. TFLM's own MicroProfiler keeps 4096 events (~80 KB) and has no
// per-event getters; this keeps what tinyml-ops reports. Disarmed, it costs one branch per op.
class OpTimer : public tflite::MicroProfilerInterface {
 public:
  static constexpr uint32_t kMaxEvents = TINYML_MAX_OPS;

  uint32_t BeginEvent(const char* tag) override {
    if (!armed_ || count_ >= kMaxEvents) return kMaxEvents;
    tags_[count_] = tag;
    begin_[count_] = board_now_us();
    end_[count_] = begin_[count_];
    return count_++;
  }
  void EndEvent(uint32_t handle) override {
    if (handle < count_) end_[handle] = board_now_us();
  }
  void Arm() {
    count_ = 0;
    armed_ = true;
  }
  void Disarm() { armed_ = false; }
  uint32_t count() const { return count_; }
  const char* tag(uint32_t i) const { return tags_[i]; }
  uint32_t us(uint32_t i) const { return static_cast<uint32_t>(end_[i] - begin_[i]); }

 private:
  bool armed_ = false;
  uint32_t count_ = 0;
  const char* tags_[kMaxEvents] = {};
  uint64_t begin_[kMaxEvents] = {};
  uint64_t end_[kMaxEvents] = {};
};

struct Engine {
  Resolver resolver;
  uint8_t* arena = nullptr;
  size_t arena_size = 0;
  const char* arena_where = "none";
  OpTimer profiler;
  alignas(tflite::MicroInterpreter) uint8_t storage[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter = nullptr;
};

Engine g_engine;

void Fail(tinyml_error* err, const char* code, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void Fail(tinyml_error* err, const char* code, const char* fmt, ...) {
  std::snprintf(err->code, sizeof err->code, "%s", code);
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}

void RegisterOps(Resolver& r) {
  // Each Add* registers one kernel; a model using anything else gets unsupported-op naming the op.
  r.AddAdd();
  r.AddAveragePool2D();
  r.AddBatchMatMul();
  r.AddConcatenation();
  r.AddConv2D();
  r.AddDepthwiseConv2D();
  r.AddDequantize();
  r.AddDiv();
  r.AddExpandDims();
  r.AddFullyConnected();
  r.AddGather();
  r.AddHardSwish();
  r.AddLeakyRelu();
  r.AddLogistic();
  r.AddMaxPool2D();
  r.AddMaximum();
  r.AddMean();
  r.AddMinimum();
  r.AddMul();
  r.AddPack();
  r.AddPad();
  r.AddPadV2();
  r.AddPrelu();
  r.AddQuantize();
  r.AddReduceMax();
  r.AddRelu();
  r.AddRelu6();
  r.AddReshape();
  r.AddResizeNearestNeighbor();
  r.AddRsqrt();
  r.AddShape();
  r.AddSlice();
  r.AddSoftmax();
  r.AddSplit();
  r.AddSplitV();
  r.AddSqueeze();
  r.AddStridedSlice();
  r.AddSub();
  r.AddSum();
  r.AddTanh();
  r.AddTranspose();
  r.AddTransposeConv();
  r.AddUnidirectionalSequenceLSTM();
  r.AddUnpack();
}

void Destroy() {
  if (g_engine.interpreter != nullptr) {
    g_engine.interpreter->~MicroInterpreter();
    g_engine.interpreter = nullptr;
  }
}

// Every op of the model must be in the resolver: say which one is not, before TFLM fails less clearly.
int CheckOps(const tflite::Model* model, tinyml_error* err) {
  const auto* codes = model->operator_codes();
  if (codes == nullptr) return 0;
  for (flatbuffers::uoffset_t i = 0; i < codes->size(); i++) {
    const tflite::OperatorCode* code = codes->Get(i);
    tflite::BuiltinOperator op = tflite::GetBuiltinCode(code);
    if (op == tflite::BuiltinOperator_CUSTOM) {
      const char* name = code->custom_code() != nullptr ? code->custom_code()->c_str() : "(unnamed)";
      if (g_engine.resolver.FindOp(name) == nullptr) {
        Fail(err, "unsupported-op", "custom op %s is not in the firmware's op resolver", name);
        return -1;
      }
    } else if (g_engine.resolver.FindOp(op) == nullptr) {
      Fail(err, "unsupported-op", "op %s (builtin %d) is not in the firmware's op resolver; add it in tflm_engine.cc",
           tflite::EnumNameBuiltinOperator(op), static_cast<int>(op));
      return -1;
    }
  }
  return 0;
}

// The arena was too small: build the model once more in the largest free block to learn what it needs.
size_t ProbeArena(const tflite::Model* model) {
  size_t largest = board_largest_free();
  if (largest <= g_engine.arena_size + 64) return 0;
  size_t got = 0;
  uint8_t* probe = static_cast<uint8_t*>(board_alloc(largest - 64, &got));
  if (probe == nullptr) return 0;
  size_t needed = 0;
  {
    tflite::MicroInterpreter trial(model, g_engine.resolver, probe, largest - 64);
    if (trial.AllocateTensors() == kTfLiteOk) needed = trial.arena_used_bytes();
  }
  board_free(probe);
  return needed;
}

int Load(void*, const uint8_t* data, size_t len, tinyml_error* err) {
  Destroy();
  flatbuffers::Verifier verifier(data, len);
  if (len < 8 || !tflite::VerifyModelBuffer(verifier)) {
    Fail(err, "bad-model", "%u bytes that are not a valid TFLite flatbuffer", static_cast<unsigned>(len));
    return -1;
  }
  const tflite::Model* model = tflite::GetModel(data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    Fail(err, "bad-model", "schema version %u, this TFLite Micro reads %d", static_cast<unsigned>(model->version()),
         TFLITE_SCHEMA_VERSION);
    return -1;
  }
  if (CheckOps(model, err) != 0) return -1;
  g_engine.interpreter = new (g_engine.storage)
      tflite::MicroInterpreter(model, g_engine.resolver, g_engine.arena, g_engine.arena_size, nullptr, &g_engine.profiler);
  if (g_engine.interpreter->AllocateTensors() != kTfLiteOk) {
    Destroy();
    size_t needed = ProbeArena(model);
    if (needed > g_engine.arena_size) {
      Fail(err, "arena-too-small", "arena needs at least %u bytes, have %u; raise CONFIG_TINYML_ARENA_SIZE",
           static_cast<unsigned>(needed), static_cast<unsigned>(g_engine.arena_size));
    } else if (needed == 0) {
      Fail(err, "arena-too-small", "arena needs more than %u bytes (it did not fit in the largest free block, %u "
           "bytes, either); raise CONFIG_TINYML_ARENA_SIZE or add PSRAM", static_cast<unsigned>(g_engine.arena_size),
           static_cast<unsigned>(board_largest_free()));
    } else {
      Fail(err, "bad-model", "AllocateTensors() failed (see the serial log for TFLite Micro's message)");
    }
    return -1;
  }
  return 0;
}

void Unload(void*) { Destroy(); }

int TensorCount(void*, int output) {
  if (g_engine.interpreter == nullptr) return 0;
  return static_cast<int>(output ? g_engine.interpreter->outputs_size() : g_engine.interpreter->inputs_size());
}

const char* TypeName(TfLiteType type) {
  switch (type) {
    case kTfLiteInt8: return "int8";
    case kTfLiteUInt8: return "uint8";
    case kTfLiteInt16: return "int16";
    case kTfLiteInt32: return "int32";
    case kTfLiteInt64: return "int64";
    case kTfLiteFloat32: return "float32";
    case kTfLiteFloat16: return "float16";
    case kTfLiteBool: return "bool";
    default: return "other";
  }
}

TfLiteTensor* Tensor(int output, int index, tinyml_error* err) {
  if (index < 0 || index >= TensorCount(nullptr, output)) {
    Fail(err, "bad-argument", "the model has %d %s tensor(s)", TensorCount(nullptr, output),
         output ? "output" : "input");
    return nullptr;
  }
  return output ? g_engine.interpreter->output(index) : g_engine.interpreter->input(index);
}

int TensorInfo(void*, int output, int index, tinyml_tensor_info* info, tinyml_error* err) {
  TfLiteTensor* t = Tensor(output, index, err);
  if (t == nullptr) return -1;
  std::memset(info, 0, sizeof *info);
  std::snprintf(info->type, sizeof info->type, "%s", TypeName(t->type));
  info->bytes = static_cast<uint32_t>(t->bytes);
  info->ndims = t->dims != nullptr ? (t->dims->size < 6 ? t->dims->size : 6) : 0;
  for (int i = 0; i < info->ndims; i++) info->dims[i] = t->dims->data[i];
  info->scale = t->params.scale;
  info->zero_point = t->params.zero_point;
  return 0;
}

int SetInput(void*, int index, const uint8_t* data, size_t len, tinyml_error* err) {
  TfLiteTensor* t = Tensor(0, index, err);
  if (t == nullptr) return -1;
  if (len != t->bytes) {
    Fail(err, "input-size", "input tensor %d needs %u bytes, got %u", index, static_cast<unsigned>(t->bytes),
         static_cast<unsigned>(len));
    return -1;
  }
  std::memcpy(t->data.raw, data, len);
  return 0;
}

int Invoke(void*, uint32_t* elapsed_us, tinyml_error* err) {
  if (g_engine.interpreter == nullptr) {
    Fail(err, "no-model", "no model is loaded");
    return -1;
  }
  uint64_t start = board_now_us();
  TfLiteStatus status = g_engine.interpreter->Invoke();
  uint64_t end = board_now_us();
  if (status != kTfLiteOk) {
    Fail(err, "invoke-failed", "Invoke() returned %d (see the serial log for TFLite Micro's message)",
         static_cast<int>(status));
    return -1;
  }
  *elapsed_us = static_cast<uint32_t>(end - start);
  return 0;
}

const uint8_t* OutputData(void*, int index, size_t* len, tinyml_error* err) {
  TfLiteTensor* t = Tensor(1, index, err);
  if (t == nullptr) return nullptr;
  *len = t->bytes;
  return t->data.uint8;
}

int Arena(void*, size_t* used, size_t* size, tinyml_error* err) {
  if (g_engine.interpreter == nullptr) {
    Fail(err, "no-model", "no model is loaded");
    return -1;
  }
  *used = g_engine.interpreter->arena_used_bytes();
  *size = g_engine.arena_size;
  return 0;
}

int Profile(void*, tinyml_op_time* ops, int max_ops, int* n_ops, tinyml_error* err) {
  uint32_t us = 0;
  g_engine.profiler.Arm();
  int rc = Invoke(nullptr, &us, err);
  g_engine.profiler.Disarm();
  if (rc != 0) return -1;
  uint32_t n = g_engine.profiler.count();
  *n_ops = static_cast<int>(n < static_cast<uint32_t>(max_ops) ? n : static_cast<uint32_t>(max_ops));
  for (int i = 0; i < *n_ops; i++) {
    std::snprintf(ops[i].name, sizeof ops[i].name, "%s", g_engine.profiler.tag(i) ? g_engine.profiler.tag(i) : "?");
    ops[i].us = g_engine.profiler.us(i);
  }
  return 0;
}

}  // namespace

extern "C" int tflm_engine_init(tinyml_engine* engine, size_t arena_size) {
  RegisterOps(g_engine.resolver);
  g_engine.arena = board_arena_alloc(arena_size, &g_engine.arena_where);
  if (g_engine.arena == nullptr) return -1;
  g_engine.arena_size = arena_size;
  engine->load = Load;
  engine->unload = Unload;
  engine->tensor_count = TensorCount;
  engine->tensor_info = TensorInfo;
  engine->set_input = SetInput;
  engine->invoke = Invoke;
  engine->output_data = OutputData;
  engine->arena = Arena;
  engine->profile = Profile;
  return 0;
}

extern "C" const char* tflm_engine_arena_where(void) { return g_engine.arena_where; }
