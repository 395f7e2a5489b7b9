// Fused CPU loops for the box bias and the grid-biased softmax (paper §5 and §6.2's hot path).
//
// Compiled at first use by indirect_attention/core/native/__init__.py (g++, this machine's
// instruction set) and called through ctypes with raw pointers to contiguous tensors. What lives
// here:
//   - the two-layer ReLU MLP on grid offsets (plain or signed-log coded), forward and backward,
//     one pass per (row, grid point) with the hidden layer in vector registers a block of units
//     at a time and the weight gradients summed there over the row's grid points;
//   - the biased softmax of one chunk of attention logits (rows ⊕ cols bias, key mask, softmax,
//     log-sum-exp), the probabilities recomputed from that log-sum-exp in the backward pass,
//     and the softmax backward with its reduction to the row and column bias gradients, for
//     heads wider than 8 vectors, between PyTorch's (BLAS) matrix products;
//   - for other heads, the whole attention, forward and backward, one head and one chunk of
//     queries at a time: the seven matrix products as register-blocked loops with the bias, the
//     softmax and its gradient applied to each block of logits as it leaves the registers, so
//     that the chunk's logits stay in cache (see "The fused attention" below).
// Denormals are flushed, and float32 probabilities below 2^-64 are 0 (see exp_value).
// Every function exists for float and double; the Python side picks one by the tensor dtype.
//
// Shapes (row-major, contiguous):
//   MLP: anchors (N, R), grid (G), w1 (K, R), b1 (K), w2 (H, K), out and grad_out (N, G, H).
//   Attention chunk: logits (BH, C, Lk) for queries [start, start + C) of Lq, Lk = hgt * wid,
//   rows (BH, Lq, hgt), cols (BH, Lq, wid), mask (B, Lk) additive (0 or -inf) or null,
//   lse and delta (BH, Lq).

#include <algorithm>
#include <atomic>
#include <exception>
#include <type_traits>
#if defined(__SSE__) || defined(__FMA__)
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// While alive, the calling thread flushes denormal results to zero and reads denormal inputs as
// zero (x86 MXCSR FTZ and DAZ): products of small probabilities and small gradients fall in the
// denormal range (below 1.2e-38 in float32), where arithmetic is tens of times slower, here and
// in the BLAS products that read these results; the difference is below 1.2e-38 per element.
struct FlushDenormals {
#if defined(__SSE__)
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// Runs fn(begin, end, worker) over [0, count) split into `threads` contiguous parts, on the
// OpenMP pool (the library is loaded into a process where PyTorch has already loaded its
// libgomp, so both share one pool and neither spins against the other); denormals are flushed.
template <typename Fn>
void parallel_for(int64_t count, int threads, const Fn& fn) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, count));
  if (parts == 1) {
    const FlushDenormals flush;
    fn(0, count, 0);
    return;
  }
  const int64_t step = (count + parts - 1) / parts;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (int64_t worker = 0; worker < parts; ++worker) {
    const FlushDenormals flush;
    const int64_t begin = worker * step, end = std::min(count, begin + step);
    if (begin < end) fn(begin, end, int(worker));
  }
}

// Runs fn(next) once per worker on the OpenMP pool, where next() hands out the indices
// [0, count) one at a time, first come first served (a worker slowed by another process takes
// fewer), then -1; denormals are flushed. An exception in one worker stops the hand-out and is
// rethrown here (none may leave an OpenMP region).
template <typename Fn>
void parallel_dynamic(int64_t count, int threads, const Fn& fn) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, count));
  std::atomic<int64_t> counter{0};
  const auto next = [&]() -> int64_t {
    const int64_t index = counter.fetch_add(1);
    return index < count ? index : -1;
  };
  if (parts == 1) {
    const FlushDenormals flush;
    fn(next);
    return;
  }
  std::exception_ptr error;
#pragma omp parallel num_threads(parts)
  {
    const FlushDenormals flush;
    try {
      fn(next);
    } catch (...) {
#pragma omp critical
      if (!error) error = std::current_exception();
      counter = count;
    }
  }
  if (error) std::rethrow_exception(error);
}

// exp for the softmax in float: Cody-Waite range reduction and a degree-6 polynomial (about
// 1 ulp); written out (rounding by the 1.5·2^23 trick, the power of two from the bits) so that
// the compiler vectorises the softmax loops. Arguments are logits minus the row's maximum (or
// its log-sum-exp), and below ln 2^-64 (probabilities under 5.4e-20, and -inf from the key
// mask) the result is exactly 0. Such a probability moves the row's output by less than 5.4e-20
// of its largest term, far below float32 rounding (6e-8), but left in, its products with small
// gradients fall in the denormal range, where the BLAS products of the backward pass run tens
// of times slower. Float64 keeps every term (std::exp).
inline float exp_value(float x) {
  const float cutoff = -44.3614196f;  // ln 2^-64
  const float magic = 12582912.0f;    // 1.5 * 2^23: adding it rounds to an integer
  const float clamped = x < cutoff ? cutoff : x;
  const float shifted = clamped * 1.44269504088896341f + magic;
  const float n = shifted - magic;
  const float r = (clamped - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t exponent = __builtin_bit_cast(int32_t, shifted) - 0x4B400000;  // = n
  const float power = __builtin_bit_cast(float, (exponent + 127) << 23);
  return x < cutoff ? 0.0f : p * power;
}

inline double exp_value(double x) { return std::exp(x); }

template <typename T>
void transpose(const T* source, int64_t rows, int64_t cols, T* target) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) target[j * rows + i] = source[i * cols + j];
}

// Vectors of the widest size this machine computes on: 64 bytes with AVX-512 (16 floats or
// 8 doubles), else 32 (GCC vector extensions).
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#else
constexpr int kVectorBytes = 32;
#endif

template <typename T>
struct Vector;
template <>
struct Vector<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
};
template <>
struct Vector<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
};

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// x in every lane: one broadcast (x − 0 is x for every x, so the subtraction folds away, where
// V{} + x is computed, in scalar, to turn −0 into +0).
template <typename V, typename T>
inline V broadcast(T x) {
  return x - V{};
}

template <typename V>
inline auto lane_sum(const V& v) {
  auto sum = v[0];
  for (size_t i = 1; i < sizeof(V) / sizeof(v[0]); ++i) sum += v[i];
  return sum;
}

// The sum of a vector's lanes by the machine's shuffles (halves added pairwise), else in order.
inline float tree_sum(const Vector<float>::type& v) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps((__m512)v);
#elif defined(__AVX__)
  const __m256 x = (__m256)v;
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)));
#else
  return lane_sum(v);
#endif
}

inline double tree_sum(const Vector<double>::type& v) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_pd((__m512d)v);
#elif defined(__AVX__)
  const __m256d x = (__m256d)v;
  const __m128d half = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
  return _mm_cvtsd_f64(_mm_add_sd(half, _mm_unpackhi_pd(half, half)));
#else
  return lane_sum(v);
#endif
}

// a * b + c with one rounding.
inline Vector<float>::type fmadd(Vector<float>::type a, Vector<float>::type b,
                                 Vector<float>::type c) {
#if defined(__AVX512F__)
  return (Vector<float>::type)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
  return (Vector<float>::type)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  for (int i = 0; i < kVectorBytes / 4; ++i) c[i] = std::fma(a[i], b[i], c[i]);
  return c;
#endif
}

inline Vector<double>::type fmadd(Vector<double>::type a, Vector<double>::type b,
                                  Vector<double>::type c) {
#if defined(__AVX512F__)
  return (Vector<double>::type)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
  return (Vector<double>::type)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  for (int i = 0; i < kVectorBytes / 8; ++i) c[i] = std::fma(a[i], b[i], c[i]);
  return c;
#endif
}

// The first layer's pre-activation for one grid point, rounded as PyTorch's CPU addmm (MKL)
// rounds it: one input fma(o0, w0, b1); two inputs fma(o1, w1, o0 * w0) + b1. The ReLU gate
// is a discontinuity of the gradients, so the same rounding keeps every gate where the plain
// path puts it.
template <int R, typename V>
inline V preactivation(const V* offsets, const V* w1, const V& b1) {
  if constexpr (R == 1) {
    return fmadd(offsets[0], w1[0], b1);
  } else {
    return fmadd(offsets[1], w1[1], offsets[0] * w1[0]) + b1;
  }
}

// The MLP's input for a grid point p and an anchor a: s = (p - a) * scale, then, with a log base
// L > 0, the signed log compression sign(s) log2(1 + |s|) / L (paper §5's φ on far offsets),
// in the plain path's order of operations.
template <typename T>
struct OffsetCode {
  T scale, log_base;

  T value(T grid_point, T anchor) const {
    const T s = (grid_point - anchor) * scale;
    if (log_base <= T(0)) return s;
    const T sign = s > T(0) ? T(1) : (s < T(0) ? T(-1) : T(0));
    return sign * std::log2(T(1) + std::abs(s)) / log_base;
  }

  // d value / d anchor; at s = 0 the log code's is 0, as autograd computes it through sign(s).
  T slope(T grid_point, T anchor) const {
    if (log_base <= T(0)) return -scale;
    const T s = (grid_point - anchor) * scale;
    if (s == T(0)) return T(0);
    return -scale / ((T(1) + std::abs(s)) * T(0.693147180559945309) * log_base);
  }
};

// out[n, g, :] = w2 · relu(pre(n, g)); hidden units in vectors of L, two grid points at a time
// so that each w2 load feeds two products.
template <typename T, int R, int H>
void mlp_forward(const T* anchors, int64_t N, const T* grid, int64_t G, const T* w1t,
                 const T* b1, const T* w2, int64_t K, OffsetCode<T> code, T* out, int threads) {
  typedef typename Vector<T>::type V;
  constexpr int L = sizeof(V) / sizeof(T);
  parallel_for(N, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t g = 0; g < G; g += 2) {
        const int64_t g1 = std::min(g + 1, G - 1);  // an odd last point is computed twice
        V off0[R], off1[R];
        for (int r = 0; r < R; ++r) {
          off0[r] = broadcast<V>(code.value(grid[g], anchors[n * R + r]));
          off1[r] = broadcast<V>(code.value(grid[g1], anchors[n * R + r]));
        }
        V acc0[H] = {}, acc1[H] = {};
        for (int64_t k = 0; k < K; k += L) {
          V weight[R];
          for (int r = 0; r < R; ++r) weight[r] = load<V>(w1t + r * K + k);
          const V bias = load<V>(b1 + k);
          const V zero = V{};
          V hidden0 = preactivation<R>(off0, weight, bias);
          V hidden1 = preactivation<R>(off1, weight, bias);
          hidden0 = hidden0 > zero ? hidden0 : zero;
          hidden1 = hidden1 > zero ? hidden1 : zero;
          for (int h = 0; h < H; ++h) {
            const V w = load<V>(w2 + h * K + k);
            acc0[h] = fmadd(hidden0, w, acc0[h]);
            acc1[h] = fmadd(hidden1, w, acc1[h]);
          }
        }
        for (int h = 0; h < H; ++h) {
          out[(n * G + g) * H + h] = tree_sum(acc0[h]);
          out[(n * G + g1) * H + h] = tree_sum(acc1[h]);
        }
      }
    }
  });
}

// Gradients of the MLP. For each row and each vector of hidden units, the loop over grid points
// keeps the weight gradients in registers; they are added to the worker's totals once per row
// (sums over a row's grid points, then over rows, then over workers). With linear offsets the
// anchors' gradient is the grid-summed pre-activation gradient times w1 times -scale; with the
// log code the slope differs per grid point and is applied inside the loop (Log).
template <typename T, int R, int H, bool Log>
void mlp_backward(const T* grad_out, const T* anchors, int64_t N, const T* grid, int64_t G,
                  const T* w1t, const T* b1, const T* w2, int64_t K, OffsetCode<T> code,
                  T* grad_anchors, T* grad_w1t, T* grad_b1, T* grad_w2, int threads) {
  typedef typename Vector<T>::type V;
  constexpr int L = sizeof(V) / sizeof(T);
  const int64_t totals = R * K + K + H * K;  // w1ᵀ, b1, w2
  const int workers = std::max(threads, 1);
  std::vector<T> work(int64_t(workers) * totals, T(0));
  parallel_for(N, threads, [&](int64_t begin, int64_t end, int worker) {
    T* total_w1t = work.data() + worker * totals;
    T* total_b1 = total_w1t + R * K;
    T* total_w2 = total_b1 + K;
    // the row's coded offsets and their slopes, computed once per row instead of once per
    // block of hidden units
    std::vector<T> row_code(2 * G * R);
    T* row_offsets = row_code.data();
    T* row_slopes = row_offsets + G * R;
    for (int64_t n = begin; n < end; ++n) {
      const T* upstream = grad_out + n * G * H;
      for (int64_t g = 0; g < G; ++g) {
        for (int r = 0; r < R; ++r) {
          row_offsets[g * R + r] = code.value(grid[g], anchors[n * R + r]);
          if constexpr (Log) row_slopes[g * R + r] = code.slope(grid[g], anchors[n * R + r]);
        }
      }
      V anchor_sum[R] = {};
      for (int64_t k = 0; k < K; k += L) {
        V weight[R], weight2[H], sum_w1[R] = {}, sum_w2[H] = {}, sum_b1 = {};
        for (int r = 0; r < R; ++r) weight[r] = load<V>(w1t + r * K + k);
        for (int h = 0; h < H; ++h) weight2[h] = load<V>(w2 + h * K + k);
        const V bias = load<V>(b1 + k);
        const V zero = V{};
        for (int64_t g = 0; g < G; ++g) {
          V offsets[R];
          for (int r = 0; r < R; ++r) offsets[r] = broadcast<V>(row_offsets[g * R + r]);
          const V pre = preactivation<R>(offsets, weight, bias);
          const V hidden = pre > zero ? pre : zero;
          V grad_hidden = zero;
          for (int h = 0; h < H; ++h) {
            const V up = broadcast<V>(upstream[g * H + h]);
            grad_hidden = fmadd(up, weight2[h], grad_hidden);
            sum_w2[h] = fmadd(up, hidden, sum_w2[h]);
          }
          const V grad_pre = pre > zero ? grad_hidden : zero;
          sum_b1 += grad_pre;
          for (int r = 0; r < R; ++r) sum_w1[r] = fmadd(grad_pre, offsets[r], sum_w1[r]);
          if constexpr (Log) {
            for (int r = 0; r < R; ++r) {
              const V slope = broadcast<V>(row_slopes[g * R + r]);
              anchor_sum[r] = fmadd(grad_pre, weight[r] * slope, anchor_sum[r]);
            }
          }
        }
        for (int r = 0; r < R; ++r) {
          store(total_w1t + r * K + k, load<V>(total_w1t + r * K + k) + sum_w1[r]);
          if constexpr (!Log) anchor_sum[r] = fmadd(sum_b1, weight[r], anchor_sum[r]);
        }
        store(total_b1 + k, load<V>(total_b1 + k) + sum_b1);
        for (int h = 0; h < H; ++h)
          store(total_w2 + h * K + k, load<V>(total_w2 + h * K + k) + sum_w2[h]);
      }
      for (int r = 0; r < R; ++r) {
        const T sum = lane_sum(anchor_sum[r]);
        grad_anchors[n * R + r] = Log ? sum : -code.scale * sum;  // Log: slopes applied already
      }
    }
  });
  std::fill(grad_w1t, grad_w1t + R * K, T(0));
  std::fill(grad_b1, grad_b1 + K, T(0));
  std::fill(grad_w2, grad_w2 + H * K, T(0));
  for (int worker = 0; worker < workers; ++worker) {
    const T* total = work.data() + worker * totals;
    for (int64_t i = 0; i < R * K; ++i) grad_w1t[i] += total[i];
    for (int64_t i = 0; i < K; ++i) grad_b1[i] += total[R * K + i];
    for (int64_t i = 0; i < H * K; ++i) grad_w2[i] += total[R * K + K + i];
  }
}

// Runs fn.template operator()<R, H>() for R in {1, 2} and H in {1, 2, 4, 8, 16} (each pair is
// compiled separately, with H accumulators in registers); returns false otherwise.
template <typename Fn>
bool dispatch(int64_t R, int64_t H, const Fn& fn) {
  auto heads = [&](auto r) {
    switch (H) {
#define IA_HEADS(h)                                   \
  case h:                                             \
    fn.template operator()<decltype(r)::value, h>(); \
    return true;
      IA_HEADS(1) IA_HEADS(2) IA_HEADS(4) IA_HEADS(8) IA_HEADS(16)
#undef IA_HEADS
      default:
        return false;
    }
  };
  if (R == 1) return heads(std::integral_constant<int, 1>{});
  if (R == 2) return heads(std::integral_constant<int, 2>{});
  return false;
}

template <typename T>
int mlp_forward_any(const T* anchors, int64_t N, int64_t R, const T* grid, int64_t G,
                    const T* w1, const T* b1, const T* w2, int64_t K, int64_t H,
                    OffsetCode<T> code, T* out, int threads) {
  if (K % (kVectorBytes / int64_t(sizeof(T))) != 0) return 1;
  std::vector<T> w1t(R * K);
  transpose(w1, K, R, w1t.data());
  const bool done = dispatch(R, H, [&]<int r, int h>() {
    mlp_forward<T, r, h>(anchors, N, grid, G, w1t.data(), b1, w2, K, code, out, threads);
  });
  return done ? 0 : 1;
}

template <typename T>
int mlp_backward_any(const T* grad_out, const T* anchors, int64_t N, int64_t R, const T* grid,
                     int64_t G, const T* w1, const T* b1, const T* w2, int64_t K, int64_t H,
                     OffsetCode<T> code, T* grad_anchors, T* grad_w1, T* grad_b1, T* grad_w2,
                     int threads) {
  if (K % (kVectorBytes / int64_t(sizeof(T))) != 0) return 1;
  std::vector<T> w1t(R * K), grad_w1t(R * K);
  transpose(w1, K, R, w1t.data());
  const bool done = dispatch(R, H, [&]<int r, int h>() {
    if (code.log_base > T(0))
      mlp_backward<T, r, h, true>(grad_out, anchors, N, grid, G, w1t.data(), b1, w2, K, code,
                                  grad_anchors, grad_w1t.data(), grad_b1, grad_w2, threads);
    else
      mlp_backward<T, r, h, false>(grad_out, anchors, N, grid, G, w1t.data(), b1, w2, K, code,
                                   grad_anchors, grad_w1t.data(), grad_b1, grad_w2, threads);
  });
  if (!done) return 1;
  transpose(grad_w1t.data(), R, K, grad_w1);
  return 0;
}

struct ChunkLayout {
  int64_t BH, heads, C, Lq, start, hgt, wid;
};

// One logit row of the chunk (chunk row m) and what its bias reads: the query's row and column
// biases and, with a key mask, the batch element's additive mask (0 or -inf).
template <typename T>
struct BiasedRow {
  T* x;
  const T* row_bias;
  const T* col_bias;
  const T* key_mask;

  BiasedRow(T* logits, const ChunkLayout& s, int64_t m, const T* rows, const T* cols,
            const T* mask) {
    const int64_t bh = m / s.C, query = bh * s.Lq + s.start + m % s.C;
    x = logits + m * s.hgt * s.wid;
    row_bias = rows + query * s.hgt;
    col_bias = cols + query * s.wid;
    key_mask = mask ? mask + (bh / s.heads) * s.hgt * s.wid : nullptr;
  }
};

// max over the row of logits + bias (+ mask), read only.
template <bool Masked, typename T>
inline T biased_max(const BiasedRow<T>& row, const ChunkLayout& s) {
  T best = -INFINITY;
  for (int64_t r = 0; r < s.hgt; ++r) {
    const T* line = row.x + r * s.wid;
    const T* line_mask = Masked ? row.key_mask + r * s.wid : nullptr;
    const T add = row.row_bias[r];
#pragma omp simd reduction(max : best)
    for (int64_t j = 0; j < s.wid; ++j) {
      T value = line[j] + add + row.col_bias[j];
      if constexpr (Masked) value += line_mask[j];
      best = std::max(best, value);
    }
  }
  return best;
}

// x = exp(logits + bias (+ mask) - shift) in place; returns the row's sum.
template <bool Masked, typename T>
inline T biased_exp(const BiasedRow<T>& row, const ChunkLayout& s, T shift) {
  T sum = 0;
  for (int64_t r = 0; r < s.hgt; ++r) {
    T* line = row.x + r * s.wid;
    const T* line_mask = Masked ? row.key_mask + r * s.wid : nullptr;
    const T add = row.row_bias[r] - shift;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < s.wid; ++j) {
      T value = line[j] + row.col_bias[j] + add;
      if constexpr (Masked) value += line_mask[j];
      line[j] = exp_value(value);
      sum += line[j];
    }
  }
  return sum;
}

// logits (BH, C, Lk) of q·kᵀ/√Dh -> exp(logits + bias - max), unnormalised, in place; per
// query, lse = max + log(sum) and inverse = 1 / sum (the caller scales P·v by it).
template <typename T>
void softmax_forward(T* logits, const T* rows, const T* cols, const T* mask, ChunkLayout s,
                     T* lse, T* inverse, int threads) {
  parallel_for(s.BH * s.C, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t m = begin; m < end; ++m) {
      const BiasedRow<T> row(logits, s, m, rows, cols, mask);
      const T best = mask ? biased_max<true>(row, s) : biased_max<false>(row, s);
      const T sum = mask ? biased_exp<true>(row, s, best) : biased_exp<false>(row, s, best);
      const int64_t query = (m / s.C) * s.Lq + s.start + m % s.C;
      lse[query] = best + std::log(sum);
      inverse[query] = T(1) / sum;
    }
  });
}

// Backward pass, step 1: the probabilities again, from the logits and the saved log-sum-exp.
template <typename T>
void softmax_recompute(T* logits, const T* rows, const T* cols, const T* mask, ChunkLayout s,
                       const T* lse, int threads) {
  parallel_for(s.BH * s.C, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t m = begin; m < end; ++m) {
      const BiasedRow<T> row(logits, s, m, rows, cols, mask);
      const T shift = lse[(m / s.C) * s.Lq + s.start + m % s.C];
      if (mask)
        biased_exp<true>(row, s, shift);
      else
        biased_exp<false>(row, s, shift);
    }
  });
}

// Backward pass, step 2: grad (BH, C, Lk) holds dO·vᵀ on entry and P ∘ (dO·vᵀ − δ) on exit;
// its sums over each grid row and column go to grad_rows (BH, Lq, hgt) and grad_cols
// (BH, Lq, wid) at the chunk's queries.
template <typename T>
void softmax_backward(T* grad, const T* probs, const T* delta, ChunkLayout s, T* grad_rows,
                      T* grad_cols, int threads) {
  const int64_t keys = s.hgt * s.wid;
  parallel_for(s.BH * s.C, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t m = begin; m < end; ++m) {
      const int64_t bh = m / s.C, c = m % s.C;
      const int64_t query = bh * s.Lq + s.start + c;
      T* g = grad + m * keys;
      const T* p = probs + m * keys;
      const T d = delta[query];
      T* col_sum = grad_cols + query * s.wid;
      T* row_sum = grad_rows + query * s.hgt;
      std::fill(col_sum, col_sum + s.wid, T(0));
      for (int64_t r = 0; r < s.hgt; ++r) {
        T* line = g + r * s.wid;
        const T* line_p = p + r * s.wid;
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < s.wid; ++j) {
          line[j] = line_p[j] * (line[j] - d);
          sum += line[j];
          col_sum[j] += line[j];
        }
        row_sum[r] = sum;
      }
    }
  });
}


// ---- The fused attention: register-blocked products around the biased softmax ----------------
//
// One head at a time (each worker takes whole heads as it becomes free, so its key and value
// gradients need no reduction across workers and the results do not depend on the thread
// count), a chunk of C queries at a time. The chunk's (C, Lk) logits live in a per-worker
// buffer that stays in L2 (32 × 4096 floats = 512 KiB), and the five products of the backward
// pass and the two of the forward pass run here as register-blocked loops
// (a block of rows × a few vectors of accumulators, one broadcast and one fma per element), with
// the bias, the exponential and the softmax gradient applied as each block leaves the registers.
// Sizes are padded inside: the chunk's rows to a multiple of kRowBlock, the keys to a multiple
// of kKeyBlock (padded keys get bias -inf, so probability 0), head widths to whole vectors
// (zeros), so every inner loop runs on whole register blocks.

constexpr int64_t kRowBlock = 8;
constexpr int64_t kKeyBlock = 64;

inline int64_t round_up(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

// a * b + c: one fused rounding where the machine has FMA, else a product and a sum (the
// portable build: a software fma per lane would be far slower than the two operations).
template <typename V>
inline V mul_add(const V& a, const V& b, const V& c) {
#if defined(__FMA__) || defined(__AVX512F__)
  return fmadd(a, b, c);
#else
  return a * b + c;
#endif
}

// exp of each lane: exp_value's range reduction, polynomial and cut-off (results below ln 2^-64
// are 0), evaluated with fused multiply-adds (results within an ulp of exp_value's).
inline Vector<float>::type exp_vector(Vector<float>::type x) {
  typedef Vector<float>::type V;
  const V cutoff = broadcast<V>(-44.3614196f), magic = broadcast<V>(12582912.0f);
  const V clamped = x < cutoff ? cutoff : x;
  const V shifted = mul_add(clamped, broadcast<V>(1.44269504088896341f), magic);
  const V n = shifted - magic;
  const V r = mul_add(n, broadcast<V>(2.12194440e-4f),
                      mul_add(n, broadcast<V>(-0.693359375f), clamped));
  V p = broadcast<V>(1.9875691500e-4f);
  p = mul_add(p, r, broadcast<V>(1.3981999507e-3f));
  p = mul_add(p, r, broadcast<V>(8.3334519073e-3f));
  p = mul_add(p, r, broadcast<V>(4.1665795894e-2f));
  p = mul_add(p, r, broadcast<V>(1.6666665459e-1f));
  p = mul_add(p, r, broadcast<V>(5.0000001201e-1f));
  p = mul_add(p, r * r, r) + 1.0f;
#if defined(__AVX512F__)
  const V scaled = (V)_mm512_scalef_ps((__m512)p, (__m512)n);  // p · 2^n in one instruction
#else
  typedef int32_t VI __attribute__((vector_size(kVectorBytes)));
  const VI exponent = (VI)shifted - 0x4B400000;  // = n
  const V scaled = p * (V)((exponent + 127) << 23);
#endif
  return x < cutoff ? V{} : scaled;
}

inline Vector<double>::type exp_vector(Vector<double>::type x) {
  for (int i = 0; i < kVectorBytes / 8; ++i) x[i] = std::exp(x[i]);
  return x;
}

// (Cp, D) · (D, Nk), b given as bt (D, Nk), for two such products at once (a second one with
// D2 = 0 is skipped): for each block of RB rows and NB vectors of keys the sums over d stay in
// registers, then first(m, j, sums) receives row m's NB vectors of results (keys j .. j + NB·L),
// and after the second product of the same block (its operands still in L1), second(m, j, sums).
// Cp % RB == 0, Nk % (NB · L) == 0.
template <typename T, int RB, int NB, typename First, typename Second>
inline void product_rows_keys(const T* a, int64_t D, const T* bt, const T* a2, int64_t D2,
                              const T* bt2, int64_t Nk, int64_t Cp, const First& first,
                              const Second& second) {
  typedef typename Vector<T>::type V;
  constexpr int L = sizeof(V) / sizeof(T);
  auto block = [&](const T* left, int64_t depth, const T* right, int64_t m0, int64_t j0,
                   const auto& epilogue) {
    V sum[RB][NB] = {};
    for (int64_t d = 0; d < depth; ++d) {
      V b[NB];
#pragma GCC unroll 16
      for (int n = 0; n < NB; ++n) b[n] = load<V>(right + d * Nk + j0 + n * L);
#pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) {
        const V x = broadcast<V>(left[(m0 + r) * depth + d]);
#pragma GCC unroll 16
        for (int n = 0; n < NB; ++n) sum[r][n] = fmadd(x, b[n], sum[r][n]);
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) epilogue(m0 + r, j0, sum[r]);
  };
  for (int64_t j0 = 0; j0 < Nk; j0 += NB * L) {
    for (int64_t m0 = 0; m0 < Cp; m0 += RB) {
      block(a, D, bt, m0, j0, first);
      if (D2 > 0) block(a2, D2, bt2, m0, j0, second);
    }
  }
}

// (Cp, Nk) · (Nk, DP · L): for each block of RB rows the DP vectors of each row's result stay in
// registers over all keys; epilogue(m, values) receives row m's DP · L results.
template <typename T, int RB, int DP, typename Epilogue>
inline void product_rows_values(const T* p, int64_t Nk, const T* v, int64_t Cp,
                                const Epilogue& epilogue) {
  typedef typename Vector<T>::type V;
  constexpr int L = sizeof(V) / sizeof(T);
  for (int64_t m0 = 0; m0 < Cp; m0 += RB) {
    V sum[RB][DP] = {};
    for (int64_t j = 0; j < Nk; ++j) {
      V x[DP];
      #pragma GCC unroll 16
      for (int n = 0; n < DP; ++n) x[n] = load<V>(v + j * DP * L + n * L);
      #pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) {
        const V weight = broadcast<V>(p[(m0 + r) * Nk + j]);
        #pragma GCC unroll 16
        for (int n = 0; n < DP; ++n) sum[r][n] = fmadd(weight, x[n], sum[r][n]);
      }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      T values[DP * L];
      #pragma GCC unroll 16
      for (int n = 0; n < DP; ++n) store(values + n * L, sum[r][n]);
      epilogue(m0 + r, values);
    }
  }
}

// out (Nk, DP · L) += (Cp, Nk)ᵀ · (Cp, DP · L): for each block of KB keys the sums over the
// chunk's rows stay in registers, then are added to out.
template <typename T, int KB, int DP>
inline void product_keys_rows(const T* p, int64_t Nk, const T* g, int64_t Cp, T* out) {
  typedef typename Vector<T>::type V;
  constexpr int L = sizeof(V) / sizeof(T);
  for (int64_t j0 = 0; j0 < Nk; j0 += KB) {
    V sum[KB][DP] = {};
    for (int64_t m = 0; m < Cp; ++m) {
      V x[DP];
      #pragma GCC unroll 16
      for (int n = 0; n < DP; ++n) x[n] = load<V>(g + m * DP * L + n * L);
      #pragma GCC unroll 16
      for (int kk = 0; kk < KB; ++kk) {
        const V weight = broadcast<V>(p[m * Nk + j0 + kk]);
        #pragma GCC unroll 16
        for (int n = 0; n < DP; ++n) sum[kk][n] = fmadd(weight, x[n], sum[kk][n]);
      }
    }
    #pragma GCC unroll 16
    for (int kk = 0; kk < KB; ++kk)
      #pragma GCC unroll 16
      for (int n = 0; n < DP; ++n) {
        T* target = out + (j0 + kk) * DP * L + n * L;
        store(target, load<V>(target) + sum[kk][n]);
      }
  }
}

// Runs fn.template operator()<B, DP>() with DP = vectors per row (1 to 8) and B the rows (or
// keys) per register block that fits DP: 8, 4 or 2 (all divide kRowBlock and kKeyBlock).
template <typename Fn>
void dispatch_width(int64_t DP, const Fn& fn) {
  switch (DP) {
    case 1: fn.template operator()<8, 1>(); break;
    case 2: fn.template operator()<8, 2>(); break;
    case 3: fn.template operator()<4, 3>(); break;
    case 4: fn.template operator()<4, 4>(); break;
    case 5: fn.template operator()<2, 5>(); break;
    case 6: fn.template operator()<2, 6>(); break;
    case 7: fn.template operator()<2, 7>(); break;
    default: fn.template operator()<2, 8>(); break;
  }
}

template <typename T>
constexpr int64_t lanes() { return kVectorBytes / int64_t(sizeof(T)); }

template <typename T>
bool attention_covers(int64_t Dh, int64_t Dv) {
  return Dh > 0 && Dv > 0 && Dh <= 8 * lanes<T>() && Dv <= 8 * lanes<T>();
}

struct AttentionSizes {
  int64_t BH, heads, Lq, hgt, wid, Dh, Dv, chunk;
};

// One head's padded copies and one chunk's buffers, per worker.
template <typename T>
struct HeadWork {
  int64_t Lk, Nk, Dhp, Dvp, Cmax;
  std::vector<T> k_t, v_pad, k_pad, v_t, grad_k, grad_v, logits, grad_logits, q_pad, g_pad, lse,
      delta;
  // the grid row and the column of the first key of each vector of keys (an integer division
  // per vector would cost as much as the vector's share of the products)
  std::vector<int64_t> key_row, key_col;

  HeadWork(const AttentionSizes& s, bool backward) {
    Lk = s.hgt * s.wid;
    Nk = round_up(Lk, kKeyBlock);
    Dhp = round_up(s.Dh, lanes<T>());
    Dvp = round_up(s.Dv, lanes<T>());
    Cmax = round_up(std::min(s.chunk, s.Lq), kRowBlock);
    for (int64_t j = 0; j < Nk; j += lanes<T>()) {
      key_row.push_back(j / s.wid);
      key_col.push_back(j % s.wid);
    }
    k_t.resize(Dhp * Nk);
    logits.resize(Cmax * Nk);
    q_pad.resize(Cmax * Dhp);
    lse.resize(Cmax);
    if (backward) {
      v_t.resize(Dvp * Nk);
      grad_k.resize(Nk * Dhp);
      grad_v.resize(Nk * Dvp);
      grad_logits.resize(Cmax * Nk);
      g_pad.resize(Cmax * Dvp);
      delta.resize(Cmax);
    }
  }
};

// source (N, D) row-major into target (rows ≥ N, Dp) or, transposed, (Dp, cols ≥ N); zeros
// elsewhere.
template <typename T>
void pad_rows(const T* source, int64_t N, int64_t D, T* target, int64_t Dp, int64_t rows) {
  std::fill(target, target + rows * Dp, T(0));
  for (int64_t i = 0; i < N; ++i) std::copy(source + i * D, source + (i + 1) * D, target + i * Dp);
}

// source (N, D) as a (rows, Dp) matrix: itself where no padding is needed, else a padded copy
// in target.
template <typename T>
const T* padded_rows(const T* source, int64_t N, int64_t D, std::vector<T>& target, int64_t Dp,
                     int64_t rows) {
  if (N == rows && D == Dp) return source;
  target.resize(rows * Dp);
  pad_rows(source, N, D, target.data(), Dp, rows);
  return target.data();
}

template <typename T>
void pad_transposed(const T* source, int64_t N, int64_t D, T* target, int64_t Dp, int64_t cols) {
  if (N != cols || D != Dp) std::fill(target, target + Dp * cols, T(0));
  constexpr int64_t step = 16;  // a block of source rows stays in L1 while its columns are written
  int64_t i0 = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    // 16 rows' element d in one gather (the rows are D apart; the offsets fit in 32 bits for
    // the sizes served here)
    if (16 * D < (int64_t(1) << 31)) {
      const __m512i offsets = _mm512_mullo_epi32(
          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
          _mm512_set1_epi32(int32_t(D)));
      for (; i0 + step <= N; i0 += step)
        for (int64_t d = 0; d < D; ++d)
          _mm512_storeu_ps(target + d * cols + i0,
                           _mm512_i32gather_ps(offsets, source + i0 * D + d, 4));
    }
  }
#endif
  for (; i0 < N; i0 += step) {
    const int64_t i1 = std::min(N, i0 + step);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t i = i0; i < i1; ++i) target[d * cols + i] = source[i * D + d];
  }
}

// The chunk's bias rows ⊕ cols (+ mask) into logits (Cp, Nk): padded keys -inf, padded rows 0.
template <typename T>
void fill_bias(T* logits, const AttentionSizes& s, int64_t Nk, int64_t query0, int64_t C,
               int64_t Cp, const T* rows, const T* cols, const T* key_mask) {
  const int64_t Lk = s.hgt * s.wid;
  for (int64_t m = 0; m < Cp; ++m) {
    T* line = logits + m * Nk;
    if (m < C) {
      const T* row_bias = rows + (query0 + m) * s.hgt;
      const T* col_bias = cols + (query0 + m) * s.wid;
      for (int64_t r = 0; r < s.hgt; ++r) {
        T* cells = line + r * s.wid;
        const T add = row_bias[r];
        if (key_mask) {
          const T* cells_mask = key_mask + r * s.wid;
#pragma omp simd
          for (int64_t c = 0; c < s.wid; ++c) cells[c] = add + col_bias[c] + cells_mask[c];
        } else {
#pragma omp simd
          for (int64_t c = 0; c < s.wid; ++c) cells[c] = add + col_bias[c];
        }
      }
    } else {
      std::fill(line, line + Lk, T(0));
    }
    std::fill(line + Lk, line + Nk, T(-INFINITY));
  }
}

// The bias of a vector of L keys of one chunk row, read straight from rows, cols and the mask
// where each vector lies within one grid row (wid % L == 0: no (C, Lk) bias is written), else
// from the (C, Nk) buffer fill_bias wrote. Padded keys get -inf, padded rows 0.
template <typename T>
struct ChunkBias {
  typedef typename Vector<T>::type V;
  const T *rows, *cols, *key_mask, *filled;
  const int64_t *key_row, *key_col;  // per vector of keys (HeadWork)
  int64_t hgt, wid, Lk, Nk, query0, C;

  bool direct() const { return filled == nullptr; }

  V at(int64_t m, int64_t j) const {
    if (!direct()) return load<V>(filled + m * Nk + j);
    if (j >= Lk) return V{} - T(INFINITY);
    if (m >= C) return V{};
    const int64_t query = query0 + m, vector = j / lanes<T>();
    V value = rows[query * hgt + key_row[vector]] + load<V>(cols + query * wid + key_col[vector]);
    if (key_mask) value += load<V>(key_mask + j);
    return value;
  }

  // The bias of NB vectors of keys from j0, as at() gives them; where they lie in one grid row
  // of a real query, the row's bias and the column pointer are looked up once.
  template <int NB>
  void block(int64_t m, int64_t j0, V* values) const {
    constexpr int L = lanes<T>();
    if (direct() && m < C && j0 + NB * L <= Lk && key_col[j0 / L] + NB * L <= wid) {
      const int64_t query = query0 + m;
      const T row_bias = rows[query * hgt + key_row[j0 / L]];
      const T* col_bias = cols + query * wid + key_col[j0 / L];
#pragma GCC unroll 16
      for (int n = 0; n < NB; ++n) {
        values[n] = row_bias + load<V>(col_bias + n * L);
        if (key_mask) values[n] += load<V>(key_mask + j0 + n * L);
      }
      return;
    }
#pragma GCC unroll 16
    for (int n = 0; n < NB; ++n) values[n] = at(m, j0 + n * L);
  }
};

// Where each vector of keys lies within one grid row, the chunk's bias is read in place;
// otherwise it is written into buffer first.
template <typename T>
ChunkBias<T> chunk_bias(T* buffer, const HeadWork<T>& w, const AttentionSizes& s, int64_t query0,
                        int64_t C, int64_t Cp, const T* rows, const T* cols, const T* key_mask) {
  const bool direct = s.wid % lanes<T>() == 0;
  if (!direct) fill_bias(buffer, s, w.Nk, query0, C, Cp, rows, cols, key_mask);
  return ChunkBias<T>{rows,          cols,          key_mask, direct ? nullptr : buffer,
                      w.key_row.data(), w.key_col.data(), s.hgt, s.wid,
                      s.hgt * s.wid, w.Nk,          query0,   C};
}

// Forward: out (BH, Lq, Dv) and lse (BH, Lq) from q (BH, Lq, Dh), k (BH, Lk, Dh), v (BH, Lk, Dv),
// rows (BH, Lq, hgt), cols (BH, Lq, wid), mask (B, Lk) additive or null.
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, const T* rows, const T* cols,
                       const T* mask, AttentionSizes s, T scale, T* out, T* lse, int threads) {
  typedef typename Vector<T>::type V;
  constexpr int L = lanes<T>();
  parallel_dynamic(s.BH, threads, [&](const auto& next) {
    HeadWork<T> w(s, false);
    std::vector<V> best(w.Cmax);
    std::vector<T> inverse(w.Cmax);
    for (int64_t bh = next(); bh >= 0; bh = next()) {
      pad_transposed(k + bh * w.Lk * s.Dh, w.Lk, s.Dh, w.k_t.data(), w.Dhp, w.Nk);
      const T* v_rows = padded_rows(v + bh * w.Lk * s.Dv, w.Lk, s.Dv, w.v_pad, w.Dvp, w.Nk);
      const T* key_mask = mask ? mask + (bh / s.heads) * w.Lk : nullptr;
      for (int64_t start = 0; start < s.Lq; start += s.chunk) {
        const int64_t C = std::min(s.chunk, s.Lq - start), Cp = round_up(C, kRowBlock);
        const int64_t query0 = bh * s.Lq + start;
        T* logits = w.logits.data();
        std::fill(w.q_pad.begin(), w.q_pad.end(), T(0));
        for (int64_t m = 0; m < C; ++m)
          for (int64_t d = 0; d < s.Dh; ++d)
            w.q_pad[m * w.Dhp + d] = q[(query0 + m) * s.Dh + d] * scale;
        const ChunkBias<T> bias =
            chunk_bias(logits, w, s, query0, C, Cp, rows, cols, key_mask);
        std::fill(best.begin(), best.end(), V{} - T(INFINITY));
        constexpr int NB = 4;
        product_rows_keys<T, 4, NB>(
            w.q_pad.data(), w.Dhp, w.k_t.data(), nullptr, 0, nullptr, w.Nk, Cp,
            [&](int64_t m, int64_t j0, const V* sums) {
              V top = best[m], biases[NB];
              bias.template block<NB>(m, j0, biases);
#pragma GCC unroll 16
              for (int n = 0; n < NB; ++n) {
                const int64_t j = j0 + n * L;
                const V x = sums[n] + biases[n];
                store(logits + m * w.Nk + j, x);
                top = x > top ? x : top;
              }
              best[m] = top;
            },
            [](int64_t, int64_t, const V*) {});
        for (int64_t m = 0; m < Cp; ++m) {
          T* line = logits + m * w.Nk;
          if (m >= C) {
            std::fill(line, line + w.Nk, T(0));
            continue;
          }
          T top = best[m][0];
          for (int i = 1; i < L; ++i) top = std::max(top, best[m][i]);
          V sums = {};
          for (int64_t j = 0; j < w.Nk; j += L) {
            const V x = exp_vector(load<V>(line + j) - top);
            store(line + j, x);
            sums += x;
          }
          const T total = lane_sum(sums);
          lse[query0 + m] = top + std::log(total);
          inverse[m] = T(1) / total;
        }
        dispatch_width(w.Dvp / L, [&]<int RB, int DP>() {
          product_rows_values<T, RB, DP>(logits, w.Nk, v_rows, Cp,
                                         [&](int64_t m, const T* values) {
                                           if (m >= C) return;
                                           T* target = out + (query0 + m) * s.Dv;
                                           for (int64_t d = 0; d < s.Dv; ++d)
                                             target[d] = values[d] * inverse[m];
                                         });
        });
      }
    }
  });
}

// Backward: the gradients of q, k, v (their shapes) and of rows and cols, from grad_out
// (BH, Lq, Dv), the forward pass's lse and delta = rowsum(grad_out ∘ out) (BH, Lq).
template <typename T>
void attention_backward(const T* grad_out, const T* q, const T* k, const T* v, const T* rows,
                        const T* cols, const T* mask, const T* lse, const T* delta,
                        AttentionSizes s, T scale, T* grad_q, T* grad_k, T* grad_v,
                        T* grad_rows, T* grad_cols, int threads) {
  typedef typename Vector<T>::type V;
  constexpr int L = lanes<T>();
  parallel_dynamic(s.BH, threads, [&](const auto& next) {
    HeadWork<T> w(s, true);
    for (int64_t bh = next(); bh >= 0; bh = next()) {
      const T* k_head = k + bh * w.Lk * s.Dh;
      pad_transposed(k_head, w.Lk, s.Dh, w.k_t.data(), w.Dhp, w.Nk);
      const T* k_rows = padded_rows(k_head, w.Lk, s.Dh, w.k_pad, w.Dhp, w.Nk);
      pad_transposed(v + bh * w.Lk * s.Dv, w.Lk, s.Dv, w.v_t.data(), w.Dvp, w.Nk);
      std::fill(w.grad_k.begin(), w.grad_k.end(), T(0));
      std::fill(w.grad_v.begin(), w.grad_v.end(), T(0));
      const T* key_mask = mask ? mask + (bh / s.heads) * w.Lk : nullptr;
      for (int64_t start = 0; start < s.Lq; start += s.chunk) {
        const int64_t C = std::min(s.chunk, s.Lq - start), Cp = round_up(C, kRowBlock);
        const int64_t query0 = bh * s.Lq + start;
        T* probs = w.logits.data();
        T* grad_logits = w.grad_logits.data();
        std::fill(w.q_pad.begin(), w.q_pad.end(), T(0));
        std::fill(w.g_pad.begin(), w.g_pad.end(), T(0));
        for (int64_t m = 0; m < Cp; ++m) {
          const bool real = m < C;
          w.lse[m] = real ? lse[query0 + m] : T(INFINITY);  // padded rows: probability 0
          w.delta[m] = real ? delta[query0 + m] : T(0);
          if (!real) continue;
          for (int64_t d = 0; d < s.Dh; ++d)
            w.q_pad[m * w.Dhp + d] = q[(query0 + m) * s.Dh + d] * scale;
          for (int64_t d = 0; d < s.Dv; ++d)
            w.g_pad[m * w.Dvp + d] = grad_out[(query0 + m) * s.Dv + d];
        }
        // P = exp(q·kᵀ/√Dh + bias − lse) and d logits = P ∘ (dO·vᵀ − δ), block by block as
        // the sums leave the registers, with (where the bias is read in place and a block of
        // keys lies within one grid row) the bias gradients: d logits summed over each grid row
        // and each grid column
        const ChunkBias<T> bias =
            chunk_bias(probs, w, s, query0, C, Cp, rows, cols, key_mask);
        constexpr int NB = 4;
        const bool sums_inline = bias.direct() && s.wid % (NB * L) == 0;
        if (sums_inline) {
          for (int64_t m = 0; m < C; ++m) {
            std::fill_n(grad_rows + (query0 + m) * s.hgt, s.hgt, T(0));
            std::fill_n(grad_cols + (query0 + m) * s.wid, s.wid, T(0));
          }
        }
        product_rows_keys<T, 4, NB>(
            w.q_pad.data(), w.Dhp, w.k_t.data(), w.g_pad.data(), w.Dvp, w.v_t.data(), w.Nk, Cp,
            [&](int64_t m, int64_t j0, const V* sums) {
              const T shift = w.lse[m];
              V biases[NB];
              bias.template block<NB>(m, j0, biases);
#pragma GCC unroll 16
              for (int n = 0; n < NB; ++n) {
                const int64_t j = j0 + n * L;
                store(probs + m * w.Nk + j, exp_vector(sums[n] + biases[n] - shift));
              }
            },
            [&](int64_t m, int64_t j0, const V* sums) {
              const T d = w.delta[m];
              V grads[NB];
#pragma GCC unroll 16
              for (int n = 0; n < NB; ++n) {
                const int64_t j = j0 + n * L;
                grads[n] = load<V>(probs + m * w.Nk + j) * (sums[n] - d);
                store(grad_logits + m * w.Nk + j, grads[n]);
              }
              if (!sums_inline || m >= C || j0 >= w.Lk) return;
              const int64_t query = query0 + m;
              T* col_sum = grad_cols + query * s.wid + w.key_col[j0 / L];
              V total = {};
#pragma GCC unroll 16
              for (int n = 0; n < NB; ++n) {
                store(col_sum + n * L, load<V>(col_sum + n * L) + grads[n]);
                total += grads[n];
              }
              grad_rows[query * s.hgt + w.key_row[j0 / L]] += tree_sum(total);
            });
        // otherwise the bias gradients in a pass of their own
        for (int64_t m = 0; m < C && !sums_inline; ++m) {
          const T* line = grad_logits + m * w.Nk;
          T* col_sum = grad_cols + (query0 + m) * s.wid;
          T* row_sum = grad_rows + (query0 + m) * s.hgt;
          std::fill(col_sum, col_sum + s.wid, T(0));
          for (int64_t r = 0; r < s.hgt; ++r) {
            const T* cells = line + r * s.wid;
            T total = 0;
#pragma omp simd reduction(+ : total)
            for (int64_t c = 0; c < s.wid; ++c) {
              total += cells[c];
              col_sum[c] += cells[c];
            }
            row_sum[r] = total;
          }
        }
        dispatch_width(w.Dvp / L, [&]<int B, int DP>() {
          product_keys_rows<T, B, DP>(probs, w.Nk, w.g_pad.data(), Cp, w.grad_v.data());
        });
        dispatch_width(w.Dhp / L, [&]<int B, int DP>() {
          product_rows_values<T, B, DP>(grad_logits, w.Nk, k_rows, Cp,
                                        [&](int64_t m, const T* values) {
                                          if (m >= C) return;
                                          T* target = grad_q + (query0 + m) * s.Dh;
                                          for (int64_t d = 0; d < s.Dh; ++d)
                                            target[d] = values[d] * scale;
                                        });
          product_keys_rows<T, B, DP>(grad_logits, w.Nk, w.q_pad.data(), Cp, w.grad_k.data());
        });
      }
      for (int64_t j = 0; j < w.Lk; ++j) {
        std::copy_n(w.grad_k.data() + j * w.Dhp, s.Dh, grad_k + (bh * w.Lk + j) * s.Dh);
        std::copy_n(w.grad_v.data() + j * w.Dvp, s.Dv, grad_v + (bh * w.Lk + j) * s.Dv);
      }
    }
  });
}

}  // namespace

// Status codes of every exported function: 0 done, 1 sizes the compiled MLP does not cover
// (the caller asks ia_mlp_covers first, so 1 is a caller's bug), 2 an exception (out of memory);
// an exception must not cross the C boundary into Python.
#define IA_EXPORT extern "C" __attribute__((visibility("default")))
#define IA_GUARD(body)     \
  try {                    \
    body                   \
  } catch (...) {          \
    return 2;              \
  }

// Whether the compiled MLP serves R anchors, K hidden units and H outputs of type T.
template <typename T>
int mlp_covers(int64_t R, int64_t K, int64_t H) {
  const bool heads = H == 1 || H == 2 || H == 4 || H == 8 || H == 16;
  return (R == 1 || R == 2) && heads && K > 0 && K % (kVectorBytes / int64_t(sizeof(T))) == 0;
}

#define IA_DEFINE(T, SUFFIX)                                                                    \
  IA_EXPORT int ia_mlp_covers_##SUFFIX(int64_t R, int64_t K, int64_t H) {                       \
    return mlp_covers<T>(R, K, H);                                                              \
  }                                                                                             \
  IA_EXPORT int ia_mlp_forward_##SUFFIX(const T* anchors, int64_t N, int64_t R, const T* grid,  \
                                        int64_t G, const T* w1, const T* b1, const T* w2,       \
                                        int64_t K, int64_t H, double scale, double log_base,    \
                                        T* out, int threads) {                                  \
    IA_GUARD(return mlp_forward_any<T>(anchors, N, R, grid, G, w1, b1, w2, K, H,                \
                                       OffsetCode<T>{T(scale), T(log_base)}, out, threads);)    \
  }                                                                                             \
  IA_EXPORT int ia_mlp_backward_##SUFFIX(                                                       \
      const T* grad_out, const T* anchors, int64_t N, int64_t R, const T* grid, int64_t G,      \
      const T* w1, const T* b1, const T* w2, int64_t K, int64_t H, double scale,                \
      double log_base, T* grad_anchors, T* grad_w1, T* grad_b1, T* grad_w2, int threads) {      \
    IA_GUARD(return mlp_backward_any<T>(grad_out, anchors, N, R, grid, G, w1, b1, w2, K, H,     \
                                        OffsetCode<T>{T(scale), T(log_base)}, grad_anchors,     \
                                        grad_w1, grad_b1, grad_w2, threads);)                   \
  }                                                                                             \
  IA_EXPORT int ia_softmax_forward_##SUFFIX(T* logits, const T* rows, const T* cols,           \
                                            const T* mask, int64_t BH, int64_t heads,           \
                                            int64_t C, int64_t Lq, int64_t start, int64_t hgt,  \
                                            int64_t wid, T* lse, T* inverse, int threads) {     \
    IA_GUARD(softmax_forward<T>(logits, rows, cols, mask,                                       \
                                ChunkLayout{BH, heads, C, Lq, start, hgt, wid}, lse, inverse,   \
                                threads);                                                       \
             return 0;)                                                                         \
  }                                                                                             \
  IA_EXPORT int ia_softmax_recompute_##SUFFIX(T* logits, const T* rows, const T* cols,         \
                                               const T* mask, int64_t BH, int64_t heads,        \
                                               int64_t C, int64_t Lq, int64_t start,            \
                                               int64_t hgt, int64_t wid, const T* lse,          \
                                               int threads) {                                   \
    IA_GUARD(softmax_recompute<T>(logits, rows, cols, mask,                                     \
                                  ChunkLayout{BH, heads, C, Lq, start, hgt, wid}, lse,          \
                                  threads);                                                     \
             return 0;)                                                                         \
  }                                                                                             \
  IA_EXPORT int ia_attention_covers_##SUFFIX(int64_t Dh, int64_t Dv) {                         \
    return attention_covers<T>(Dh, Dv);                                                         \
  }                                                                                             \
  IA_EXPORT int ia_attention_forward_##SUFFIX(                                                  \
      const T* q, const T* k, const T* v, const T* rows, const T* cols, const T* mask,          \
      int64_t BH, int64_t heads, int64_t Lq, int64_t hgt, int64_t wid, int64_t Dh, int64_t Dv,  \
      int64_t chunk, double scale, T* out, T* lse, int threads) {                               \
    if (!attention_covers<T>(Dh, Dv) || chunk <= 0) return 1;                                   \
    IA_GUARD(attention_forward<T>(q, k, v, rows, cols, mask,                                    \
                                  AttentionSizes{BH, heads, Lq, hgt, wid, Dh, Dv, chunk},       \
                                  T(scale), out, lse, threads);                                 \
             return 0;)                                                                         \
  }                                                                                             \
  IA_EXPORT int ia_attention_backward_##SUFFIX(                                                 \
      const T* grad_out, const T* q, const T* k, const T* v, const T* rows, const T* cols,      \
      const T* mask, const T* lse, const T* delta, int64_t BH, int64_t heads, int64_t Lq,       \
      int64_t hgt, int64_t wid, int64_t Dh, int64_t Dv, int64_t chunk, double scale,            \
      T* grad_q, T* grad_k, T* grad_v, T* grad_rows, T* grad_cols, int threads) {               \
    if (!attention_covers<T>(Dh, Dv) || chunk <= 0) return 1;                                   \
    IA_GUARD(attention_backward<T>(grad_out, q, k, v, rows, cols, mask, lse, delta,             \
                                   AttentionSizes{BH, heads, Lq, hgt, wid, Dh, Dv, chunk},      \
                                   T(scale), grad_q, grad_k, grad_v, grad_rows, grad_cols,      \
                                   threads);                                                    \
             return 0;)                                                                         \
  }                                                                                             \
  IA_EXPORT int ia_softmax_backward_##SUFFIX(T* grad, const T* probs, const T* delta,          \
                                              int64_t BH, int64_t heads, int64_t C, int64_t Lq, \
                                              int64_t start, int64_t hgt, int64_t wid,          \
                                              T* grad_rows, T* grad_cols, int threads) {        \
    IA_GUARD(softmax_backward<T>(grad, probs, delta,                                            \
                                 ChunkLayout{BH, heads, C, Lq, start, hgt, wid}, grad_rows,     \
                                 grad_cols, threads);                                           \
             return 0;)                                                                         \
  }

IA_DEFINE(float, f32)
IA_DEFINE(double, f64)
