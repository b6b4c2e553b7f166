// The rest log-sum-exp of a factored score matrix, fused: lse[b] = log Σ_{i ∉ E_b} e^{clip(U[b] · V[i])} and its
// gradient, without ever writing the [b, n_items] scores. Every distillation loss's one contact with all items is
// this sum (hetcomp_tf/losses.py); at the authors' protocol a step is 750 users × 25k items × dim 6, where XLA's
// matmul + exp + scatter + two gradient matmuls cost ~90 ms on 2 cores and this kernel a fraction of it.
//
// Layout: the items' table is transposed once per call to [dim, n_items], so the inner loops run over contiguous
// items and vectorise; a row's excluded items are zeroed in a per-thread float mask that is reset after the row.
// Scores are clipped to ±bound and shifted by −bound (no max pass, no overflow); sums are accumulated in double.
// The gradient recomputes the scores (one more pass) instead of storing [b, n_items]: d lse / d s = e^{s − lse}
// on the rest, 0 on excluded items and where the clip is active (TF's clip_by_value passes nothing there).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;

constexpr int64_t kTile = 512;        // items per inner tile: a tile's scores stay in L1
constexpr float kAbsentLogit = -1e4f;  // a row without rest (losses.py's _ABSENT_LOGIT)

// e^x for x ≤ 0 (x ≥ −87 keeps it normal; below, the result flushes towards 0), as plain arithmetic so that the
// loops around it vectorise: x = n ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r (relative error ~2e-7),
// 2^n built in the exponent bits. Built without -ffast-math, which would fold the rounding away; the two sums over a tile are
// vectorised by `omp simd` reductions instead (-fopenmp-simd: no OpenMP runtime).
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 · 2^23: adding and subtracting it rounds to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof(bits));
  bits += static_cast<int32_t>(n) << 23;
  std::memcpy(&p, &bits, sizeof(bits));
  return p;
}

struct Problem {
  int64_t batch, n_items, dim;
  const float* users;            // [batch, dim]
  std::vector<float> items_t;    // [dim, n_items]
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
  p->items_t.resize(p->dim * p->n_items);
  for (int64_t i = 0; i < p->n_items; ++i)
    for (int64_t k = 0; k < p->dim; ++k) p->items_t[k * p->n_items + i] = v[i * p->dim + k];
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
  p->excluded.resize(p->starts[p->batch]);
  std::vector<int64_t> fill(p->starts.begin(), p->starts.end() - 1);
  for (int64_t j = 0; j < r.size(); ++j)
    if (e(j) >= 0) p->excluded[fill[r(j)]++] = e(j);
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

inline float clip(float x, float bound) {  // ternaries, not std::min/max: their references block vectorisation
  x = x < -bound ? -bound : x;
  return x > bound ? bound : x;
}

constexpr int kBlock = 4;  // user rows per pass over a tile (the loops below are written out for 4)

// One tile's clipped scores of kBlock user rows: s[r][t] = clip(u[r] · V[start + t]), t < len, u [kBlock, dim].
// A compile-time kDim unrolls the dot products into one vectorised pass over the items; kDim = 0 (any other dim)
// makes one pass per row and dimension. Up to dim 8 the four rows share each item vector's loads and their dot
// products are four independent chains (one row alone is bound by the latency of its chain of multiply-adds: dim 6,
// forward 12.5 -> 8.5 ms per CiteULike step on one thread); at dim 16 four rows' operands spill out of the vector
// registers (forward 23 -> 132 ms), so there the rows go one at a time. `omp simd` pins the vectorisation to the
// items: left to itself, GCC vectorises a 16- or 32-long dot product across the dimensions instead, with strided
// gathers (measured 12x slower at dim 16 than at dim 12's generic path).
template <int kDim>
inline void tile_scores(const Problem& p, const float* u, int64_t start, int64_t len, float* const* s) {
  const float* v = p.items_t.data() + start;
  const float bound = p.bound;
  if constexpr (kDim > 0 && kDim <= 8) {
    float *s0 = s[0], *s1 = s[1], *s2 = s[2], *s3 = s[3];
#pragma omp simd
    for (int64_t t = 0; t < len; ++t) {
      float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
      for (int k = 0; k < kDim; ++k) {
        const float x = v[k * p.n_items + t];
        d0 += u[k] * x;
        d1 += u[kDim + k] * x;
        d2 += u[2 * kDim + k] * x;
        d3 += u[3 * kDim + k] * x;
      }
      s0[t] = clip(d0, bound);
      s1[t] = clip(d1, bound);
      s2[t] = clip(d2, bound);
      s3[t] = clip(d3, bound);
    }
  } else if constexpr (kDim > 0) {
    for (int r = 0; r < kBlock; ++r) {
      float* sr = s[r];
      const float* ur = u + r * kDim;
#pragma omp simd
      for (int64_t t = 0; t < len; ++t) {
        float dot = 0.0f;
        for (int k = 0; k < kDim; ++k) dot += ur[k] * v[k * p.n_items + t];
        sr[t] = clip(dot, bound);
      }
    }
  } else {
    for (int r = 0; r < kBlock; ++r) {
      float* sr = s[r];
      for (int64_t t = 0; t < len; ++t) sr[t] = 0.0f;
      for (int64_t k = 0; k < p.dim; ++k)
        for (int64_t t = 0; t < len; ++t) sr[t] += u[r * p.dim + k] * v[k * p.n_items + t];
      for (int64_t t = 0; t < len; ++t) sr[t] = clip(sr[t], bound);
    }
  }
}

// A row's excluded items zeroed in `mask` (all ones outside) for the lifetime of the object.
class RowMask {
 public:
  RowMask(const Problem& p, int64_t row, std::vector<float>* mask) : p_(p), row_(row), mask_(mask) { set(0.0f); }
  ~RowMask() { set(1.0f); }

 private:
  void set(float value) {
    for (int64_t j = p_.starts[row_]; j < p_.starts[row_ + 1]; ++j) (*mask_)[p_.excluded[j]] = value;
  }
  const Problem& p_;
  int64_t row_;
  std::vector<float>* mask_;
};

// A block of kBlock rows from `first`, clipped to `last`: its user vectors (zeros past `last`) and each real row's
// excluded items zeroed in its own mask while the block lives.
class RowBlock {
 public:
  RowBlock(const Problem& p, int64_t first, int64_t last, std::vector<float>* masks, const bool* keep)
      : u_(kBlock * p.dim, 0.0f) {
    for (int r = 0; r < kBlock && first + r < last; ++r) {
      std::copy(p.users + (first + r) * p.dim, p.users + (first + r + 1) * p.dim, u_.begin() + r * p.dim);
      if (keep[r]) masks_.push_back(std::make_unique<RowMask>(p, first + r, &masks[r]));
    }
  }
  const float* users() const { return u_.data(); }

 private:
  std::vector<float> u_;
  std::vector<std::unique_ptr<RowMask>> masks_;
};

// A thread's buffers for blocks of rows: each row's excluded-item mask (all ones between blocks) and tile scores.
struct BlockBuffers {
  explicit BlockBuffers(int64_t n_items) {
    for (int r = 0; r < kBlock; ++r) masks[r].assign(n_items, 1.0f), scores[r].assign(kTile, 0.0f);
    for (int r = 0; r < kBlock; ++r) rows[r] = scores[r].data();
  }
  BlockBuffers(const BlockBuffers&) = delete;  // `rows` points into `scores`
  BlockBuffers& operator=(const BlockBuffers&) = delete;

  std::vector<float> masks[kBlock], scores[kBlock];
  float* rows[kBlock];
};

template <int kDim>
void forward_rows(const Problem& p, int64_t first, int64_t last, float* lse) {
  BlockBuffers buffers(p.n_items);
  const bool all[kBlock] = {true, true, true, true};
  for (int64_t b0 = first; b0 < last; b0 += kBlock) {
    const RowBlock block(p, b0, last, buffers.masks, all);
    double total[kBlock] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t start = 0; start < p.n_items; start += kTile) {
      const int64_t len = std::min(kTile, p.n_items - start);
      tile_scores<kDim>(p, block.users(), start, len, buffers.rows);
      for (int r = 0; r < kBlock; ++r) {
        const float *m = buffers.masks[r].data() + start, *sr = buffers.rows[r];
        float tile_sum = 0.0f;
#pragma omp simd reduction(+ : tile_sum)
        for (int64_t t = 0; t < len; ++t) tile_sum += m[t] * exp_nonpositive(sr[t] - p.bound);
        total[r] += tile_sum;
      }
    }
    for (int r = 0; r < kBlock && b0 + r < last; ++r)
      lse[b0 + r] = total[r] > 0.0 ? static_cast<float>(std::log(total[r]) + p.bound) : kAbsentLogit;
  }
}

// Rows [first, last): d users into du [b, dim], d items added into dv [dim, n_items] (the chunk's own buffer).
// kBlock rows at a time share each tile's loads and stores of the item vectors and their gradient (the gradient
// pass is bound by those: one load and store of dv per row and dimension otherwise).
template <int kDim>
void backward_rows(const Problem& p, int64_t first, int64_t last, const float* lse, const float* upstream,
                   float* du, float* dv) {
  BlockBuffers buffers(p.n_items);
  std::vector<float> w[kBlock];
  for (int r = 0; r < kBlock; ++r) w[r].assign(kTile, 0.0f);
  std::vector<double> du_rows(kBlock * p.dim);
  const float bound = p.bound;
  for (int64_t b0 = first; b0 < last; b0 += kBlock) {
    bool active[kBlock];  // a row with a gradient: upstream ≠ 0 and some rest
    for (int r = 0; r < kBlock; ++r)
      active[r] = b0 + r < last && upstream[b0 + r] != 0.0f && lse[b0 + r] > kAbsentLogit;
    const RowBlock block(p, b0, last, buffers.masks, active);
    const float* u_block = block.users();
    std::fill(du_rows.begin(), du_rows.end(), 0.0);
    for (int64_t start = 0; start < p.n_items; start += kTile) {
      const int64_t len = std::min(kTile, p.n_items - start);
      tile_scores<kDim>(p, u_block, start, len, buffers.rows);
      for (int r = 0; r < kBlock; ++r) {
        float* wr = w[r].data();
        if (!active[r]) {
          std::fill(wr, wr + len, 0.0f);
          continue;
        }
        const float* m = buffers.masks[r].data() + start;
        const float* sr = buffers.rows[r];
        const float g = upstream[b0 + r], row_lse = lse[b0 + r];  // hoisted: in-loop loads block vectorisation
#pragma omp simd
        for (int64_t t = 0; t < len; ++t) {  // x ≤ 0 on the rest; the cap keeps excluded items' exp finite
          const float inside = (sr[t] > -bound && sr[t] < bound) ? g : 0.0f;
          const float x = sr[t] - row_lse;
          wr[t] = m[t] * inside * exp_nonpositive(x < 0.0f ? x : 0.0f);
        }
      }
      const float *w0 = w[0].data(), *w1 = w[1].data(), *w2 = w[2].data(), *w3 = w[3].data();
      for (int64_t k = 0; k < p.dim; ++k) {
        const float* vk = p.items_t.data() + k * p.n_items + start;
        float* dvk = dv + k * p.n_items + start;
        const float u0 = u_block[k], u1 = u_block[p.dim + k], u2 = u_block[2 * p.dim + k],
                    u3 = u_block[3 * p.dim + k];
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
        for (int64_t t = 0; t < len; ++t) {
          const float v = vk[t];
          a0 += w0[t] * v;
          a1 += w1[t] * v;
          a2 += w2[t] * v;
          a3 += w3[t] * v;
          dvk[t] += w0[t] * u0 + w1[t] * u1 + w2[t] * u2 + w3[t] * u3;
        }
        du_rows[k] += a0;
        du_rows[p.dim + k] += a1;
        du_rows[2 * p.dim + k] += a2;
        du_rows[3 * p.dim + k] += a3;
      }
    }
    for (int r = 0; r < kBlock && b0 + r < last; ++r)
      for (int64_t k = 0; k < p.dim; ++k) du[(b0 + r) * p.dim + k] = static_cast<float>(du_rows[r * p.dim + k]);
  }
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
    std::vector<std::vector<float>> partial(std::max<int64_t>(p.batch, 1));  // a chunk's d items, [dim, n_items]
    int64_t chunks = 0;
    by_dim(p.dim, [&](auto dim) {
      chunks = for_row_chunks(ctx, p.batch, [&](int64_t first, int64_t last, int64_t c) {
        partial[c].assign(p.dim * p.n_items, 0.0f);
        backward_rows<decltype(dim)::value>(p, first, last, lse, upstream, du, partial[c].data());
      });
    });
    float* dv = d_items->flat<float>().data();
    for (int64_t i = 0; i < p.n_items; ++i)
      for (int64_t k = 0; k < p.dim; ++k) {
        float sum = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) sum += partial[c][k * p.n_items + i];
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
