// The TFLite Micro engine: a MicroInterpreter over the loaded model, an op resolver with the ops common in
// tinyML models (ESP-NN kernels for conv, depthwise conv, fully connected, add, mul, pooling, softmax), per-op
// times through TFLM's MicroProfilerInterface, and errors that say what was needed.
#include "tflm_engine.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "board_platform.h"
#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/compatibility.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/micro_allocator.h"
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
  const tflite::Model* model = nullptr;
  size_t arena_bytes = 0;      // measured at load (Measure): the one arena figure
  size_t allocated_bytes = 0;  // arena_used_bytes() after AllocateTensors
  // The measuring and checking interpreters (one at a time, never at the same time as `interpreter`).
  alignas(tflite::MicroInterpreter) uint8_t trial_storage[sizeof(tflite::MicroInterpreter)];
};

Engine g_engine;

void Fail(tinyml_error* err, tinyml_status status, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void Fail(tinyml_error* err, tinyml_status status, const char* fmt, ...) {
  err->status = status;
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
        Fail(err, TINYML_ST_UNSUPPORTED_OP, "custom op %s is not in the firmware's op resolver", name);
        return -1;
      }
    } else if (g_engine.resolver.FindOp(op) == nullptr) {
      Fail(err, TINYML_ST_UNSUPPORTED_OP, "op %s (builtin %d) is not in the firmware's op resolver; add it in tflm_engine.cc",
           tflite::EnumNameBuiltinOperator(op), static_cast<int>(op));
      return -1;
    }
  }
  return 0;
}

// The arena a model needs, measured, not searched: an allocator that records the peak of what the arena holds
// (planned tensors, temporaries, persistent data) at every allocation of AllocateTensors. A bisection would
// have to try arenas smaller than the need, and there TFLM can crash instead of failing: a kernel whose Init got
// no persistent buffer dereferences it in Prepare (seen with SOFTMAX on the host build of this file).
//
// One allocation is not counted as it is made: the memory planner borrows all free memory as its scratch
// (MicroAllocator::CommitStaticMemoryPlan) but needs GreedyMemoryPlanner::per_buffer_size() bytes per planned
// buffer of it, so that step counts as what was in use when it began plus that.
class PeakAllocator : public tflite::SingleArenaBufferAllocator {
 public:
  PeakAllocator(uint8_t* buffer, size_t size) : tflite::SingleArenaBufferAllocator(buffer, size), buffer_(buffer) {}
  uint8_t* AllocatePersistentBuffer(size_t size, size_t alignment) override {
    return Note(SingleArenaBufferAllocator::AllocatePersistentBuffer(size, alignment));
  }
  uint8_t* AllocateTemp(size_t size, size_t alignment) override {
    bool all_free = !planning_ && size > 0 && size == GetAvailableMemory(alignment);
    uint8_t* result = SingleArenaBufferAllocator::AllocateTemp(size, alignment);
    if (all_free && result != nullptr) {
      planning_ = true;  // the planner's scratch: counted by planned_peak()
      planner_base_ = static_cast<size_t>(result - buffer_) + GetPersistentUsedBytes();
      return result;
    }
    return Note(result);
  }
  TfLiteStatus ResetTempAllocations() override {
    TfLiteStatus status = SingleArenaBufferAllocator::ResetTempAllocations();
    planning_ = false;
    return status;
  }
  uint8_t* AllocateResizableBuffer(size_t size, size_t alignment) override {
    return Note(SingleArenaBufferAllocator::AllocateResizableBuffer(size, alignment));
  }
  TfLiteStatus ResizeBuffer(uint8_t* buffer, size_t size, size_t alignment) override {
    TfLiteStatus status = SingleArenaBufferAllocator::ResizeBuffer(buffer, size, alignment);
    Note(nullptr);
    return status;
  }
  TfLiteStatus ReserveNonPersistentOverlayMemory(size_t size, size_t alignment) override {
    TfLiteStatus status = SingleArenaBufferAllocator::ReserveNonPersistentOverlayMemory(size, alignment);
    Note(nullptr);
    return status;
  }
  // The peak, with the planner's scratch as the planner needs it for `planned_buffers` buffers.
  size_t peak(int planned_buffers) const {
    size_t planning = planner_base_ + static_cast<size_t>(planned_buffers) * tflite::GreedyMemoryPlanner::per_buffer_size();
    return planning > peak_ ? planning : peak_;
  }

 private:
  uint8_t* Note(uint8_t* result) {
    size_t used = GetUsedBytes();
    if (!planning_ && used > peak_) peak_ = used;
    return result;
  }
  uint8_t* buffer_;
  size_t peak_ = 0;
  size_t planner_base_ = 0;
  bool planning_ = false;
  TF_LITE_REMOVE_VIRTUAL_DELETE
};

alignas(PeakAllocator) uint8_t g_peak_storage[sizeof(PeakAllocator)];

struct Measured {
  bool ok;                // AllocateTensors and one Invoke succeeded in the buffer
  size_t arena_bytes;     // peak use rounded up to TFLM's 16-byte alignment: the smallest arena that works
  size_t allocated_bytes; // what stays allocated after AllocateTensors (arena_used_bytes())
};

// The model in `size` bytes of `buf` (16-byte aligned), laid out as MicroInterpreter(model, ops, arena, size)
// lays it out: the allocator object, then the greedy planner, then the MicroAllocator, in the arena's tail.
Measured Measure(const tflite::Model* model, uint8_t* buf, size_t size) {
  Measured m = {false, 0, 0};
  size &= ~static_cast<size_t>(15);  // an aligned tail: the layout of any 16-multiple arena
  auto* memory = ::new (g_peak_storage) PeakAllocator(buf, size);
  memory->AllocatePersistentBuffer(sizeof(tflite::SingleArenaBufferAllocator), alignof(tflite::SingleArenaBufferAllocator));
  uint8_t* planner_buf = memory->AllocatePersistentBuffer(sizeof(tflite::GreedyMemoryPlanner), alignof(tflite::GreedyMemoryPlanner));
  auto* planner = planner_buf != nullptr ? ::new (planner_buf) tflite::GreedyMemoryPlanner() : nullptr;
  tflite::MicroAllocator* allocator = planner != nullptr ? tflite::MicroAllocator::Create(memory, planner) : nullptr;
  if (allocator != nullptr) {
    auto* trial = ::new (g_engine.trial_storage) tflite::MicroInterpreter(model, g_engine.resolver, allocator);
    m.ok = trial->AllocateTensors() == kTfLiteOk;
    m.allocated_bytes = trial->arena_used_bytes();
    m.ok = m.ok && trial->Invoke() == kTfLiteOk;
    trial->~MicroInterpreter();
  }
  m.arena_bytes = (memory->peak(planner != nullptr ? planner->GetBufferCount() : 0) + 15) & ~static_cast<size_t>(15);
  memory->~PeakAllocator();
  return m;
}

// One ordinary interpreter in `size` bytes of `buf`: AllocateTensors and one Invoke.
bool Works(const tflite::Model* model, uint8_t* buf, size_t size) {
  auto* trial = ::new (g_engine.trial_storage) tflite::MicroInterpreter(model, g_engine.resolver, buf, size);
  bool ok = trial->AllocateTensors() == kTfLiteOk && trial->Invoke() == kTfLiteOk;
  trial->~MicroInterpreter();
  return ok;
}

int Build(const tflite::Model* model) {
  g_engine.interpreter = ::new (g_engine.storage)
      tflite::MicroInterpreter(model, g_engine.resolver, g_engine.arena, g_engine.arena_size, nullptr, &g_engine.profiler);
  if (g_engine.interpreter->AllocateTensors() == kTfLiteOk) return 0;
  Destroy();
  return -1;
}

// AllocateTensors failed in the arena: measure the need in the largest free block (D4 of issue 13: what
// arena_used_bytes() of a generous trial says leaves out AllocateTensors' temporaries).
void ArenaTooSmall(const tflite::Model* model, tinyml_error* err) {
  const unsigned have = static_cast<unsigned>(g_engine.arena_size);
  size_t largest = board_largest_free();
  size_t got = 0;
  uint8_t* probe = largest > g_engine.arena_size + 64 ? static_cast<uint8_t*>(board_alloc(largest - 64, &got)) : nullptr;
  if (probe == nullptr) {
    Fail(err, TINYML_ST_ARENA_TOO_SMALL, "arena needs more than %u bytes (no larger free block to measure it in: %u "
         "bytes); raise CONFIG_TINYML_ARENA_SIZE or add PSRAM", have, static_cast<unsigned>(largest));
    return;
  }
  Measured m = Measure(model, probe, largest - 64);
  board_free(probe);
  if (m.ok) {
    Fail(err, TINYML_ST_ARENA_TOO_SMALL, "arena needs at least %u bytes, have %u; raise CONFIG_TINYML_ARENA_SIZE",
         static_cast<unsigned>(m.arena_bytes), have);
  } else {
    Fail(err, TINYML_ST_ARENA_TOO_SMALL, "AllocateTensors() failed in the %u-byte arena and in a %u-byte trial "
         "arena (the largest free block): the model needs more, or TFLite Micro rejected it (serial log)", have,
         static_cast<unsigned>(largest - 64));
  }
}

int Load(void*, const uint8_t* data, size_t len, tinyml_error* err) {
  Destroy();
  g_engine.model = nullptr;
  flatbuffers::Verifier verifier(data, len);
  if (len < 8 || !tflite::VerifyModelBuffer(verifier)) {
    Fail(err, TINYML_ST_BAD_MODEL, "%u bytes that are not a valid TFLite flatbuffer", static_cast<unsigned>(len));
    return -1;
  }
  const tflite::Model* model = tflite::GetModel(data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    Fail(err, TINYML_ST_BAD_MODEL, "schema version %u, this TFLite Micro reads %d",
         static_cast<unsigned>(model->version()), TFLITE_SCHEMA_VERSION);
    return -1;
  }
  if (CheckOps(model, err) != 0) return -1;
  if (g_engine.arena == nullptr) {
    Fail(err, TINYML_ST_ARENA_TOO_SMALL, "the firmware has no tensor arena; lower CONFIG_TINYML_ARENA_SIZE");
    return -1;
  }
  if (Build(model) != 0) {
    ArenaTooSmall(model, err);
    return -1;
  }
  // The one arena figure, measured in the arena itself (it fits: AllocateTensors just passed there), then checked
  // with an ordinary interpreter of exactly that size; both only ever use arenas the model fits.
  Destroy();
  Measured m = Measure(model, g_engine.arena, g_engine.arena_size);
  g_engine.allocated_bytes = m.allocated_bytes;
  g_engine.arena_bytes = m.ok && Works(model, g_engine.arena, m.arena_bytes) ? m.arena_bytes : g_engine.arena_size;
  if (Build(model) != 0) {  // it allocated a moment ago in the same arena
    Fail(err, TINYML_ST_BAD_MODEL, "AllocateTensors() failed on the second allocation (serial log)");
    return -1;
  }
  g_engine.model = model;
  return 0;
}

void Unload(void*) {
  Destroy();
  g_engine.model = nullptr;
}

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
    Fail(err, TINYML_ST_BAD_ARGUMENT, "the model has %d %s tensor(s)", TensorCount(nullptr, output),
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
    Fail(err, TINYML_ST_INPUT_SIZE, "input tensor %d needs %u bytes, got %u", index, static_cast<unsigned>(t->bytes),
         static_cast<unsigned>(len));
    return -1;
  }
  if (data == nullptr) {
    std::memset(t->data.raw, 0, len);
  } else {
    std::memcpy(t->data.raw, data, len);
  }
  return 0;
}

int Invoke(void*, uint32_t* elapsed_us, tinyml_error* err) {
  if (g_engine.interpreter == nullptr) {
    Fail(err, TINYML_ST_NO_MODEL, "no model is loaded");
    return -1;
  }
  uint64_t start = board_now_us();
  TfLiteStatus status = g_engine.interpreter->Invoke();
  uint64_t end = board_now_us();
  if (status != kTfLiteOk) {
    Fail(err, TINYML_ST_INVOKE_FAILED, "Invoke() returned %d (see the serial log for TFLite Micro's message)",
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

int Arena(void*, tinyml_arena_figures* f, tinyml_error* err) {
  if (g_engine.interpreter == nullptr) {
    Fail(err, TINYML_ST_NO_MODEL, "no model is loaded");
    return -1;
  }
  f->arena_bytes = g_engine.arena_bytes;
  f->allocated_bytes = g_engine.allocated_bytes;
  f->size = g_engine.arena_size;
  return 0;
}

int OpNames(void*, const char** names, int max) {
  const auto* codes = g_engine.model != nullptr ? g_engine.model->operator_codes() : nullptr;
  int n = 0;
  for (flatbuffers::uoffset_t i = 0; codes != nullptr && i < codes->size() && n < max; i++) {
    const tflite::OperatorCode* code = codes->Get(i);
    tflite::BuiltinOperator op = tflite::GetBuiltinCode(code);
    names[n++] = op == tflite::BuiltinOperator_CUSTOM ? "CUSTOM" : tflite::EnumNameBuiltinOperator(op);
  }
  return n;
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

extern "C" int tflm_engine_init(tinyml_runtime* runtime, size_t arena_size) {
  RegisterOps(g_engine.resolver);
  runtime->ctx = &g_engine;
  runtime->load = Load;
  runtime->unload = Unload;
  runtime->tensor_count = TensorCount;
  runtime->tensor_info = TensorInfo;
  runtime->set_input = SetInput;
  runtime->invoke = Invoke;
  runtime->output_data = OutputData;
  runtime->arena = Arena;
  runtime->profile = Profile;
  runtime->op_names = OpNames;
  g_engine.arena = arena_size > 0 ? board_arena_alloc(arena_size, &g_engine.arena_where) : nullptr;
  if (g_engine.arena == nullptr) return -1;
  g_engine.arena_size = arena_size;
  return 0;
}

extern "C" const char* tflm_engine_arena_where(void) { return g_engine.arena_where; }
