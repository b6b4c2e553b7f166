// The rest log-sum-exp of a factored score matrix, fused: lse[b] = log Σ_{i ∉ E_b} e^{clip(U[b] · V[i])} and its
// gradient, without ever writing the [b, n_items] scores. Every distillation loss's one contact with all items is
// this sum (hetcomp_tf/losses.py); at the authors' protocol a step is 750 users × 25k items × dim 6, where XLA's
// matmul + exp + scatter + two gradient matmuls cost ~90 ms on 2 cores and this kernel a fraction of it.
//
// Layout: the items' table is transposed once per call to [dim, n_items] (padded to whole vectors), so the inner
// loops run over contiguous items in GCC vector-extension registers; item tiles run outermost and blocks of four
// user rows share each load. A row's excluded items get kMasked added to their exponents in a per-tile mask.
// Exponentials are powers of 2 (the users' vectors pre-scaled by log2 e); scores are clipped to ±bound and shifted
// by −bound (no max pass, no overflow); sums are accumulated per tile in float lanes, then in double.
// The gradient recomputes the scores (one more pass) instead of storing [b, n_items]: d lse / d s = e^{s − lse}
// on the rest, 0 on excluded items and where the clip is active (TF's clip_by_value passes nothing there).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;

// Items per tile: the gradient's tile of item vectors and of d items stays in L1; the forward, which streams only
// the item vectors, takes longer tiles (fewer per-tile mask updates and lane sums).
constexpr int64_t kGradTile = 512, kForwardTile = 2048;
constexpr float kAbsentLogit = -1e4f;  // a row without rest (losses.py's _ABSENT_LOGIT)

// Vectors of kLanes floats in GCC's vector extension, one register of the build's widest ISA, so one source
// vectorises on every CPU: AVX-512, else AVX(2), else 128 bits (SSE, NEON). Not wider than a register: GCC splits
// a wider vector's arithmetic but turns its selects (the clip, the exponential's range, the gradient's mask) into
// lane-by-lane scalar code, which made the AVX2 build of 16 lanes 3-7x slower than the AVX-512 one.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t IntVec __attribute__((vector_size(kLanes * sizeof(int32_t))));

inline Vec load(const float* p) {  // unaligned
  Vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof(v)); }
inline Vec splat(float x) { return Vec{} + x; }
inline float sum_lanes(Vec v) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps((__m512)v);
#else
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += v[l];
  return sum;
#endif
}

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kMasked = -1e4f;  // a mask's value on excluded items and padding: 2^(x + kMasked) = 0

// 2^x, 0 below −126: x = n + f, |f| ≤ 1/2, a degree-5 polynomial for 2^f (least squares on Chebyshev nodes,
// relative error ~2e-7 in float), times 2^n. Scores enter in log2 units (the users' vectors are pre-scaled by
// log2 e), so no multiply by log2 e is left here. Built without -ffast-math, which would fold the rounding away.
inline Vec exp2_of(Vec x) {
#if defined(__AVX512F__)  // vrndscaleps rounds, vscalefps applies 2^n and flushes far-negative x to 0
  const Vec n = (Vec)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__AVX__)  // vroundps (n out of the exponent's range below −126 is harmless: those lanes end as 0)
  const Vec n = (Vec)_mm256_round_ps((__m256)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const Vec clamped = x < -126.0f ? splat(-126.0f) : x;
  constexpr float kRound = 12582912.0f;  // 1.5 · 2^23: adding and subtracting it rounds to an integer
  const Vec n = (clamped + kRound) - kRound;
#endif
  const Vec f = x - n;
  Vec p = splat(1.326697039e-03f);
  p = p * f + 9.675459746e-03f;
  p = p * f + 5.550742616e-02f;
  p = p * f + 2.402212175e-01f;
  p = p * f + 6.931469492e-01f;
  p = p * f + 1.000000071e+00f;
#if defined(__AVX512F__)
  return (Vec)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
  const Vec scaled = reinterpret_cast<Vec>(reinterpret_cast<IntVec>(p) + (__builtin_convertvector(n, IntVec) << 23));
  return x < -126.0f ? Vec{} : scaled;
#endif
}

// min(x, hi) and max(x, lo) lane by lane, as single instructions (GCC keeps a vector ternary a compare and a blend).
inline Vec min_with(Vec x, float hi) {
#if defined(__AVX512F__)
  return (Vec)_mm512_min_ps((__m512)x, _mm512_set1_ps(hi));
#elif defined(__AVX__)
  return (Vec)_mm256_min_ps((__m256)x, _mm256_set1_ps(hi));
#else
  return x < hi ? x : splat(hi);
#endif
}
inline Vec max_with(Vec x, float lo) {
#if defined(__AVX512F__)
  return (Vec)_mm512_max_ps((__m512)x, _mm512_set1_ps(lo));
#elif defined(__AVX__)
  return (Vec)_mm256_max_ps((__m256)x, _mm256_set1_ps(lo));
#else
  return x > lo ? x : splat(lo);
#endif
}

struct Problem {
  int64_t batch, n_items, stride, dim;  // stride: n_items rounded up to whole vectors
  const float* users;            // [batch, dim]
  std::vector<float> items_t;    // [dim, stride], zeros past n_items
  std::vector<int64_t> starts;   // CSR of the excluded items per row: [batch + 1]
  std::vector<int32_t> excluded;
  float bound;
};

// Reads the inputs shared by both ops; an InvalidArgument on bad shapes or ids.
tensorflow::Status read_problem(OpKernelContext* ctx, float bound, Problem* p) {
  const Tensor& users = ctx->input(0);
  const Tensor& items = ctx->input(1);
  const Tensor& rows = ctx->input(2);
  const Tensor& ids = ctx->input(3);
  if (!(users.dims() == 2 && items.dims() == 2 && users.dim_size(1) == items.dim_size(1)))
    return InvalidArgument("users [b, d] and items [n, d] must share d");
  if (!(rows.dims() == 1 && ids.dims() == 1 && rows.dim_size(0) == ids.dim_size(0)))
    return InvalidArgument("excluded rows and items must be vectors of one length");
  p->batch = users.dim_size(0);
  p->n_items = items.dim_size(0);
  p->dim = users.dim_size(1);
  p->users = users.flat<float>().data();
  p->bound = bound;
  const float* v = items.flat<float>().data();
  p->stride = (p->n_items + kLanes - 1) / kLanes * kLanes;
  p->items_t.assign(p->dim * p->stride, 0.0f);
  for (int64_t i = 0; i < p->n_items; ++i)
    for (int64_t k = 0; k < p->dim; ++k) p->items_t[k * p->stride + i] = v[i * p->dim + k];
  const auto r = rows.flat<int32_t>();
  const auto e = ids.flat<int32_t>();
  p->starts.assign(p->batch + 1, 0);
  for (int64_t j = 0; j < r.size(); ++j) {
    if (e(j) < 0) continue;  // padding
    if (!(r(j) >= 0 && r(j) < p->batch && e(j) < p->n_items))
      return InvalidArgument("excluded pair ", j, " = (", r(j), ", ", e(j), ") is outside the ", p->batch,
                             " x ", p->n_items, " scores");
    ++p->starts[r(j) + 1];
  }
  for (int64_t b = 0; b < p->batch; ++b) p->starts[b + 1] += p->starts[b];
  // Each row's items ascending (the passes walk them tile by tile): the pairs bucketed by item (a counting sort,
  // linear: sorting every row's list took ~2 ms of a CiteULike step), then dealt to their rows in that order.
  std::vector<int64_t> by_item(p->n_items + 1, 0);
  for (int64_t j = 0; j < r.size(); ++j)
    if (e(j) >= 0) ++by_item[e(j) + 1];
  for (int64_t i = 0; i < p->n_items; ++i) by_item[i + 1] += by_item[i];
  std::vector<int32_t> pairs_by_item(p->starts[p->batch]);
  for (int64_t j = 0; j < r.size(); ++j)
    if (e(j) >= 0) pairs_by_item[by_item[e(j)]++] = static_cast<int32_t>(j);
  p->excluded.resize(p->starts[p->batch]);
  std::vector<int64_t> fill(p->starts.begin(), p->starts.end() - 1);
  for (const int32_t j : pairs_by_item) p->excluded[fill[r(j)]++] = e(j);
  return tensorflow::OkStatus();
}

// Runs fn(first_row, last_row, worker) on as many contiguous row chunks as the op's pool has threads.
template <typename Fn>
int64_t for_row_chunks(OpKernelContext* ctx, int64_t batch, Fn fn) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(pool->NumThreads(), batch));
  pool->ParallelFor(chunks,
                    tensorflow::thread::ThreadPool::SchedulingParams(
                        tensorflow::thread::ThreadPool::SchedulingStrategy::kFixedBlockSize, std::nullopt, 1),
                    [&](int64_t first, int64_t last) {
                      for (int64_t c = first; c < last; ++c)
                        fn(batch * c / chunks, batch * (c + 1) / chunks, c);
                    });
  return chunks;
}

constexpr int kRows = 4;  // user rows per block: they share each load of an item vector and of its d items

// A chunk of rows [first, first + rows), padded to whole blocks, with its users' vectors in log2 units (× log2 e,
// so that the exponentials are powers of 2; zeros on the padding rows).
struct Chunk {
  Chunk(const Problem& p, int64_t first, int64_t last)
      : first(first), rows(last - first), padded((rows + kRows - 1) / kRows * kRows) {
    scaled.assign(padded * p.dim, 0.0f);
    for (int64_t j = 0; j < rows * p.dim; ++j) scaled[j] = p.users[first * p.dim + j] * kLog2e;
  }
  int64_t first, rows, padded;
  std::vector<float> scaled;
};

// kRows × dim values of a block: a local array for a compile-time dim (kept in registers), a vector otherwise.
template <int kDim, typename T>
struct PerRow {
  explicit PerRow(int64_t dim) {  // zeros
    if constexpr (kDim == 0) values.resize(kRows * dim);
  }
  PerRow(const T* values_of_block, int64_t dim) : PerRow(dim) {
    std::copy(values_of_block, values_of_block + values.size(), values.begin());
  }
  T& operator[](int64_t j) { return values[j]; }
  const T& operator[](int64_t j) const { return values[j]; }
  const T* data() const { return values.data(); }
  std::conditional_t<(kDim > 0), std::array<T, kRows * (kDim > 0 ? kDim : 1)>, std::vector<T>> values{};
};

// A block's masks over one item tile, added to its rows' exponents: kMasked on a row's excluded items and on the
// stride's padding, 0 elsewhere. Tiles are visited in order, so a cursor per row walks its sorted excluded items.
class TileMasks {
 public:
  TileMasks(const Problem& p, const Chunk& chunk, int64_t tile) : p_(p), chunk_(chunk), cursor_(chunk.padded, 0) {
    std::copy(p.starts.begin() + chunk.first, p.starts.begin() + chunk.first + chunk.rows, cursor_.begin());
    for (auto& mask : masks_) mask.assign(tile, 0.0f);
  }
  // Masks block b0's rows in the tile [start, end): their excluded items there, and the padding (the last tile's
  // only, so it is never unmasked).
  void set(int64_t b0, int64_t start, int64_t end) {
    for (int r = 0; r < kRows; ++r) {
      std::vector<float>& mask = masks_[r];
      for (int64_t i = std::max(start, p_.n_items); i < end; ++i) mask[i - start] = kMasked;
      const int64_t row_end = b0 + r < chunk_.rows ? p_.starts[chunk_.first + b0 + r + 1] : 0;
      for (tile_end_[r] = cursor_[b0 + r]; tile_end_[r] < row_end && p_.excluded[tile_end_[r]] < end; ++tile_end_[r])
        mask[p_.excluded[tile_end_[r]] - start] = kMasked;
    }
  }
  // Unmasks what `set` masked (but the padding), moving the rows' cursors past this tile.
  void reset(int64_t b0, int64_t start) {
    for (int r = 0; r < kRows; ++r) {
      for (int64_t j = cursor_[b0 + r]; j < tile_end_[r]; ++j) masks_[r][p_.excluded[j] - start] = 0.0f;
      cursor_[b0 + r] = tile_end_[r];
    }
  }
  const float* row(int r) const { return masks_[r].data(); }

 private:
  const Problem& p_;
  const Chunk& chunk_;
  std::vector<int64_t> cursor_;  // each row's next excluded item
  std::vector<float> masks_[kRows];
  int64_t tile_end_[kRows];
};

// d[r] = u[r] · V[t, t + kLanes) + offset[r] for a block's rows: one load of each item vector serves every row, and
// the rows' multiply-add chains are independent (one row alone waits on the latency of its chain). A compile-time
// kDim unrolls the dimensions; kDim = 0 loops over the runtime dim.
template <int kDim>
inline void dots(const float* items, int64_t stride, int64_t dim, const float* u, const float (&offset)[kRows],
                 Vec (&d)[kRows]) {
  if constexpr (kDim > 0) dim = kDim;
  for (int r = 0; r < kRows; ++r) d[r] = splat(offset[r]);
  for (int64_t k = 0; k < dim; ++k) {
    const Vec x = load(items + k * stride);
    for (int r = 0; r < kRows; ++r) d[r] += u[r * dim + k] * x;
  }
}

// Both passes run item tiles outermost: a tile's item vectors (and its slice of d items) stay in L1 while every
// block of the chunk's rows passes over them. With rows outermost, d items went through L2 once per block, ~40 bytes
// per score, and bound the gradient.
template <int kDim>
void forward_rows(const Problem& p, int64_t first, int64_t last, float* lse) {
  const Chunk chunk(p, first, last);
  TileMasks masks(p, chunk, kForwardTile);
  const float* const items = p.items_t.data();
  const int64_t stride = p.stride;
  const float top = -p.bound * kLog2e, lowest = -2.0f * p.bound * kLog2e;  // (s − bound) log2 e lies in between
  const float shift[kRows] = {top, top, top, top};
  std::vector<double> total(chunk.padded, 0.0);
  for (int64_t start = 0; start < stride; start += kForwardTile) {
    const int64_t end = std::min(start + kForwardTile, stride);
    for (int64_t b0 = 0; b0 < chunk.rows; b0 += kRows) {
      masks.set(b0, start, end);
      const PerRow<kDim, float> u(chunk.scaled.data() + b0 * p.dim, p.dim);
      Vec sum[kRows] = {};  // a tile's sum in float lanes, the row's total in double
      for (int64_t t = start; t < end; t += kLanes) {
        Vec d[kRows];  // (s − bound) log2 e before the clip
        dots<kDim>(items + t, stride, p.dim, u.data(), shift, d);
        for (int r = 0; r < kRows; ++r)
          sum[r] += exp2_of(max_with(min_with(d[r], 0.0f), lowest) + load(masks.row(r) + (t - start)));
      }
      for (int r = 0; r < kRows; ++r) total[b0 + r] += sum_lanes(sum[r]);
      masks.reset(b0, start);
    }
  }
  for (int64_t i = 0; i < chunk.rows; ++i)
    lse[first + i] = total[i] > 0.0 ? static_cast<float>(std::log(total[i]) + p.bound) : kAbsentLogit;
}

// Rows [first, last): d users into du [b, dim], d items added into dv [dim, stride] (the chunk's own buffer).
// d lse / d s = e^{s − lse} on the rest, 0 on excluded items and where the clip is active.
template <int kDim>
void backward_rows(const Problem& p, int64_t first, int64_t last, const float* lse, const float* upstream,
                   float* du, float* __restrict dv) {
  const Chunk chunk(p, first, last);
  TileMasks masks(p, chunk, kGradTile);
  const int64_t dim = p.dim, stride = p.stride;
  const float* const items = p.items_t.data();  // locals, not members: the stores to dv cannot alias them
  // Per row, in log2 units: the weight |g| e^{s − lse} is 2^{s log2 e + offset}, offset = log2 |g| − lse log2 e,
  // and the clip is inactive where low < s log2 e + offset < high. g's sign goes onto the users for d items and
  // onto d users at the end; a row without a gradient (g = 0, or no rest) has sign 0, and so do padding rows.
  std::vector<float> sign(chunk.padded, 0.0f), offset(chunk.padded, kMasked), low(chunk.padded, 0.0f),
      high(chunk.padded, 0.0f), signed_users(chunk.padded * dim, 0.0f);
  for (int64_t i = 0; i < chunk.rows; ++i) {
    const float g = upstream[first + i];
    if (g == 0.0f || !(lse[first + i] > kAbsentLogit)) continue;
    sign[i] = g < 0.0f ? -1.0f : 1.0f;
    offset[i] = std::log2(std::fabs(g)) - lse[first + i] * kLog2e;
    low[i] = -p.bound * kLog2e + offset[i];
    high[i] = p.bound * kLog2e + offset[i];
    for (int64_t k = 0; k < dim; ++k) signed_users[i * dim + k] = sign[i] * p.users[(first + i) * dim + k];
  }
  std::vector<double> du_rows(chunk.padded * dim, 0.0);
  for (int64_t start = 0; start < stride; start += kGradTile) {
    const int64_t end = std::min(start + kGradTile, stride);
    for (int64_t b0 = 0; b0 < chunk.rows; b0 += kRows) {
      if (std::all_of(&sign[b0], &sign[b0] + kRows, [](float s) { return s == 0.0f; })) continue;
      masks.set(b0, start, end);
      const PerRow<kDim, float> u(chunk.scaled.data() + b0 * dim, dim), signed_u(signed_users.data() + b0 * dim, dim);
      float off[kRows], lo[kRows], hi[kRows];
      std::copy(&offset[b0], &offset[b0] + kRows, off);
      std::copy(&low[b0], &low[b0] + kRows, lo);
      std::copy(&high[b0], &high[b0] + kRows, hi);
      const Vec zero{};
      PerRow<kDim, Vec> lanes(dim);  // d users' lanes over the tile
      for (int64_t t = start; t < end; t += kLanes) {
        Vec d[kRows], w[kRows];  // w = |d lse / d s| = 2^{d + mask} where the clip is inactive
        dots<kDim>(items + t, stride, dim, u.data(), off, d);
        for (int r = 0; r < kRows; ++r)
          w[r] = ((d[r] > lo[r]) & (d[r] < hi[r])) ? exp2_of(d[r] + load(masks.row(r) + (t - start))) : zero;
        for (int64_t k = 0; k < dim; ++k) {
          const Vec x = load(items + k * stride + t);
          Vec dvk = load(dv + k * stride + t);
          for (int r = 0; r < kRows; ++r) {
            lanes[r * dim + k] += w[r] * x;
            dvk += w[r] * signed_u[r * dim + k];
          }
          store(dv + k * stride + t, dvk);
        }
      }
      for (int64_t j = 0; j < kRows * dim; ++j) du_rows[b0 * dim + j] += sign[b0 + j / dim] * sum_lanes(lanes[j]);
      masks.reset(b0, start);
    }
  }
  for (int64_t i = 0; i < chunk.rows; ++i)
    for (int64_t k = 0; k < dim; ++k) du[(first + i) * dim + k] = static_cast<float>(du_rows[i * dim + k]);
}

// fn.template operator()<kDim>() for the student's dim: unrolled for the common small ones, generic otherwise (an
// unrolled 32- or 64-long dot product per item runs out of vector registers: measured 4-5x slower than generic).
template <typename Fn>
void by_dim(int64_t dim, Fn&& fn) {
  switch (dim) {
    case 6: return fn(std::integral_constant<int, 6>());
    case 8: return fn(std::integral_constant<int, 8>());
    case 16: return fn(std::integral_constant<int, 16>());
    default: return fn(std::integral_constant<int, 0>());
  }
}

// Both ops read the clip bound |s| ≤ bound from their attr.
class BoundOp : public OpKernel {
 public:
  explicit BoundOp(OpKernelConstruction* ctx) : OpKernel(ctx) { OP_REQUIRES_OK(ctx, ctx->GetAttr("bound", &bound_)); }

 protected:
  float bound_;
};

class RestLogsumexpOp : public BoundOp {
 public:
  using BoundOp::BoundOp;

  void Compute(OpKernelContext* ctx) override {
    Problem p;
    OP_REQUIRES_OK(ctx, read_problem(ctx, bound_, &p));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({p.batch}), &out));
    float* lse = out->flat<float>().data();
    by_dim(p.dim, [&](auto dim) {
      for_row_chunks(ctx, p.batch, [&](int64_t first, int64_t last, int64_t) {
        forward_rows<decltype(dim)::value>(p, first, last, lse);
      });
    });
  }
};

class RestLogsumexpGradOp : public BoundOp {
 public:
  using BoundOp::BoundOp;

  void Compute(OpKernelContext* ctx) override {
    Problem p;
    OP_REQUIRES_OK(ctx, read_problem(ctx, bound_, &p));
    const float* lse = ctx->input(4).flat<float>().data();
    const float* upstream = ctx->input(5).flat<float>().data();
    Tensor* d_users = nullptr;
    Tensor* d_items = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({p.batch, p.dim}), &d_users));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({p.n_items, p.dim}), &d_items));
    float* du = d_users->flat<float>().data();
    std::vector<std::vector<float>> partial(std::max<int64_t>(p.batch, 1));  // a chunk's d items, [dim, stride]
    int64_t chunks = 0;
    by_dim(p.dim, [&](auto dim) {
      chunks = for_row_chunks(ctx, p.batch, [&](int64_t first, int64_t last, int64_t c) {
        partial[c].assign(p.dim * p.stride, 0.0f);
        backward_rows<decltype(dim)::value>(p, first, last, lse, upstream, du, partial[c].data());
      });
    });
    float* dv = d_items->flat<float>().data();
    for (int64_t i = 0; i < p.n_items; ++i)
      for (int64_t k = 0; k < p.dim; ++k) {
        float sum = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) sum += partial[c][k * p.stride + i];
        dv[i * p.dim + k] = sum;
      }
  }
};

}  // namespace

REGISTER_OP("HetcompRestLogsumexp")
    .Input("users: float")
    .Input("items: float")
    .Input("excluded_rows: int32")
    .Input("excluded_items: int32")
    .Attr("bound: float")
    .Output("lse: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Vector(c->Dim(c->input(0), 0)));
      return tensorflow::OkStatus();
    });

REGISTER_OP("HetcompRestLogsumexpGrad")
    .Input("users: float")
    .Input("items: float")
    .Input("excluded_rows: int32")
    .Input("excluded_items: int32")
    .Input("lse: float")
    .Input("upstream: float")
    .Attr("bound: float")
    .Output("d_users: float")
    .Output("d_items: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return tensorflow::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("HetcompRestLogsumexp").Device(DEVICE_CPU), RestLogsumexpOp);
REGISTER_KERNEL_BUILDER(Name("HetcompRestLogsumexpGrad").Device(DEVICE_CPU), RestLogsumexpGradOp);
