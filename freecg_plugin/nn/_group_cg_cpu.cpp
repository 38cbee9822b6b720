// Fused CPU kernels of the group CG transform (freecg_plugin/nn/group_cg.py).
//
// The transform is the 4-linear form
//
//   F(a, b, W, z) = sum_{n,g,p} sum_{u,v,w} W[g,p,u,v,w]
//                   sum_{(m1,m2,M) in nnz(p)} c * a[n,g,u,s1+m1] * b[n,g,v,s2+m2] * z[n,g,w,s3+M]
//
// over the sparse (CG-weighted) coefficients of each path p. ``forward`` returns dF/dz (the
// transform's output); ``backward`` returns dF/da, dF/db and dF/dW at a given z (the output's
// gradient). Every higher derivative is again one of these (_group_cg_kernel.py).
//
// Layouts (C-contiguous): a [N, G, K, D1], b [N, G, K, D2], z and out [N, G, K, D3],
// W [G, P, K, K, K] (g, p, u, v, w). Paths: int32 [P, 8] = s1, d1, s2, d2, s3, d3 (irreps slice
// starts and sizes), begin, end (its range in both coefficient tables). The coefficient tables
// hold the same entries, int32 [nnz, 4] = m1, m2, M, last + values [nnz], in two orders:
// "by output" sorted by (m1, M, m2), last marking the end of an (m1, M) run; "by b" sorted by
// (m2, m1, M), last marking the end of an m2 run. Sums over a run stay in a register.
//
// Per (atom, group, path), with bt = b transposed ([D2][K], rows over v):
//   BC[m1][M][:] = sum_m2 c bt[m2]                  (one row per CG entry, shared by all u)
//   T[u][M][:]   = sum_m1 a[u][m1] BC[m1][M]        (the coupled pair, rows over v)
//   out[M][:]   += sum_{u,v} T[u][M][v] W[u][v][:]  (the K^3 term; rows over w in registers)
// and for the gradients Q[u][M][:] = sum_w z[w][M] W[u][:][w], dF/da from BC and Q, dF/db from
// sum_u a[u][m1] Q[u][M], dF/dW[u][v][:] += sum_M T[u][M][v] z[:][M].
//
// K (abstract edges per group) and each path's output dimension are compile-time constants, so
// that rows of K lanes are vector registers (GCC vector extensions, any x86/ARM target). Only
// K in {2, 4, 8, 16, 32} and l <= 4 are compiled (freecg_group_cg_supported); other transforms
// use the pure-torch contraction. Atoms are streamed in memory order, the atom range split over
// OpenMP threads (dF/dW summed over per-thread buffers).
//
// No torch headers: compiled by the system C++ compiler in seconds and loaded with ctypes.

#include <algorithm>
#include <cstdint>
#include <omp.h>
#include <vector>

namespace {

constexpr int kMaxDim = 9;  // 2 l + 1 for l <= 4

template <typename T, int K>
struct Lanes {
    typedef T type __attribute__((vector_size(K * sizeof(T)), aligned(sizeof(T))));
};

template <typename T, int K>
inline typename Lanes<T, K>::type load(const T* p) {
    return *reinterpret_cast<const typename Lanes<T, K>::type*>(p);
}

template <typename T, int K>
inline void store(T* p, typename Lanes<T, K>::type v) {
    *reinterpret_cast<typename Lanes<T, K>::type*>(p) = v;
}

struct Problem {
    int64_t n;
    int g, k, d1, d2, d3, paths, threads;
    const int32_t* path_info;
    const int32_t* by_out;  // [nnz, 4], (m1, M, m2) order
    const int32_t* by_b;    // [nnz, 4], (m2, m1, M) order
};

struct Path {
    int s1, d1, s2, d2, s3, d3, begin, end;
};

template <typename T, int K, int D>
struct PathKernel {
    using V = typename Lanes<T, K>::type;

    // BC[m1][M] = sum_m2 c bt[s2+m2]                           (BC [d1][D][K])
    static void couple_b(const Path& p, const int32_t* idx, const T* val, const T* bt, T* bc) {
        std::fill(bc, bc + p.d1 * D * K, T(0));
        V r = {};
        for (int e = p.begin; e < p.end; ++e) {
            const int32_t* i = idx + 4 * e;
            r += val[e] * load<T, K>(bt + (p.s2 + i[1]) * K);
            if (i[3]) {
                store<T, K>(bc + (i[0] * D + i[2]) * K, r);
                r = V{};
            }
        }
    }

    // T[u][M] = sum_m1 a[u][s1+m1] BC[m1][M]                  (a [K][D1], T [K][D][K])
    static void expand_a(const Path& p, int d1_total, const T* a, const T* bc, T* tv) {
        for (int u = 0; u < K; ++u) {
            V r[D] = {};
            const T* au = a + u * d1_total + p.s1;
            for (int m1 = 0; m1 < p.d1; ++m1) {
                const T s = au[m1];
                for (int m = 0; m < D; ++m) r[m] += s * load<T, K>(bc + (m1 * D + m) * K);
            }
            for (int m = 0; m < D; ++m) store<T, K>(tv + (u * D + m) * K, r[m]);
        }
    }

    // acc[M][:] += sum_{u,v} T[u][M][v] W[u][v][:]             (acc [D][K], W [K][K][K])
    static void contract_uv(const T* tv, const T* w, T* acc) {
        V r[D];
        for (int m = 0; m < D; ++m) r[m] = load<T, K>(acc + m * K);
        for (int u = 0; u < K; ++u)
            for (int v = 0; v < K; ++v) {
                const V row = load<T, K>(w + (u * K + v) * K);
                const T* c = tv + u * D * K + v;
                for (int m = 0; m < D; ++m) r[m] += c[m * K] * row;
            }
        for (int m = 0; m < D; ++m) store<T, K>(acc + m * K, r[m]);
    }

    // Q[u][M][:] = sum_w z[w][s3+M] Wt[u][w][:]               (z [K][D3], Wt = W with v, w swapped)
    static void contract_w(const Path& p, int d3_total, const T* z, const T* wt, T* q) {
        for (int u = 0; u < K; ++u) {
            V r[D] = {};
            for (int w = 0; w < K; ++w) {
                const V row = load<T, K>(wt + (u * K + w) * K);
                const T* zw = z + w * d3_total + p.s3;
                for (int m = 0; m < D; ++m) r[m] += zw[m] * row;
            }
            for (int m = 0; m < D; ++m) store<T, K>(q + (u * D + m) * K, r[m]);
        }
    }

    // gat[u][s1+m1][:] += sum_M BC[m1][M] * Q[u][M]            (lanes summed by the caller)
    static void grad_a(const Path& p, int d1_total, const T* bc, const T* q, T* gat) {
        for (int u = 0; u < K; ++u)
            for (int m1 = 0; m1 < p.d1; ++m1) {
                V r = load<T, K>(gat + (u * d1_total + p.s1 + m1) * K);
                for (int m = 0; m < D; ++m) r += load<T, K>(bc + (m1 * D + m) * K) * load<T, K>(q + (u * D + m) * K);
                store<T, K>(gat + (u * d1_total + p.s1 + m1) * K, r);
            }
    }

    // gbt[s2+m2][:] += sum c sum_u a[u][s1+m1] Q[u][M]        (AQ [d1][D][K] scratch)
    static void grad_b(const Path& p, int d1_total, const int32_t* idx, const T* val, const T* a, const T* q, T* aq,
                       T* gbt) {
        for (int m1 = 0; m1 < p.d1; ++m1) {
            V r[D] = {};
            for (int u = 0; u < K; ++u) {
                const T s = a[u * d1_total + p.s1 + m1];
                for (int m = 0; m < D; ++m) r[m] += s * load<T, K>(q + (u * D + m) * K);
            }
            for (int m = 0; m < D; ++m) store<T, K>(aq + (m1 * D + m) * K, r[m]);
        }
        V r = {};
        for (int e = p.begin; e < p.end; ++e) {
            const int32_t* i = idx + 4 * e;
            r += val[e] * load<T, K>(aq + (i[0] * D + i[2]) * K);
            if (i[3]) {
                T* row = gbt + (p.s2 + i[1]) * K;
                store<T, K>(row, load<T, K>(row) + r);
                r = V{};
            }
        }
    }

    // gW[u][v][:] += sum_M T[u][M][v] zt[s3+M][:]             (zt [D3][K])
    static void grad_w(const Path& p, const T* tv, const T* zt, T* gw) {
        V zr[D];
        for (int m = 0; m < D; ++m) zr[m] = load<T, K>(zt + (p.s3 + m) * K);
        for (int u = 0; u < K; ++u)
            for (int v = 0; v < K; ++v) {
                T* row = gw + (u * K + v) * K;
                V r = load<T, K>(row);
                const T* c = tv + u * D * K + v;
                for (int m = 0; m < D; ++m) r += c[m * K] * zr[m];
                store<T, K>(row, r);
            }
    }
};

// Calls PathKernel<T, K, d>::fn(args...) for the path's output dimension d.
#define FREECG_BY_DIM(d, fn, ...)                                  \
    switch (d) {                                                    \
        case 1: PathKernel<T, K, 1>::fn(__VA_ARGS__); break;        \
        case 3: PathKernel<T, K, 3>::fn(__VA_ARGS__); break;        \
        case 5: PathKernel<T, K, 5>::fn(__VA_ARGS__); break;        \
        case 7: PathKernel<T, K, 7>::fn(__VA_ARGS__); break;        \
        default: PathKernel<T, K, 9>::fn(__VA_ARGS__); break;       \
    }

template <typename T, int K>
struct Kernel {
    const Problem& pr;
    const T* val_out;  // values in "by output" order
    const T* val_b;    // values in "by b" order

    Path path(int p) const {
        const int32_t* i = pr.path_info + 8 * p;
        return Path{i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7]};
    }

    static void transpose(const T* x, int d, T* xt) {  // x [K][d] -> xt [d][K]
        for (int u = 0; u < K; ++u)
            for (int m = 0; m < d; ++m) xt[m * K + u] = x[u * d + m];
    }

    void forward(const T* a, const T* b, const T* W, T* out, int64_t n0, int64_t n1) const {
        const int G = pr.g;
        std::vector<T> bt(pr.d2 * K), bc(kMaxDim * kMaxDim * K), tv(K * kMaxDim * K), acc(pr.d3 * K);
        for (int64_t n = n0; n < n1; ++n) {
            for (int g = 0; g < G; ++g) {
                const T* Wg = W + int64_t(g) * pr.paths * K * K * K;
                const int64_t blk = n * G + g;
                const T* ab = a + blk * K * pr.d1;
                transpose(b + blk * K * pr.d2, pr.d2, bt.data());
                std::fill(acc.begin(), acc.end(), T(0));
                for (int pi = 0; pi < pr.paths; ++pi) {
                    const Path p = path(pi);
                    FREECG_BY_DIM(p.d3, couple_b, p, pr.by_out, val_out, bt.data(), bc.data())
                    FREECG_BY_DIM(p.d3, expand_a, p, pr.d1, ab, bc.data(), tv.data())
                    FREECG_BY_DIM(p.d3, contract_uv, tv.data(), Wg + int64_t(pi) * K * K * K, acc.data() + p.s3 * K)
                }
                T* ob = out + blk * K * pr.d3;
                for (int w = 0; w < K; ++w)
                    for (int m = 0; m < pr.d3; ++m) ob[w * pr.d3 + m] = acc[m * K + w];
            }
        }
    }

    // Wt [G, P, K, w, v]: W with (v, w) swapped; gw: this thread's [G, P, K, K, K] buffer.
    void backward(const T* a, const T* b, const T* Wt, const T* z, bool need_a, bool need_b, bool need_w, T* ga,
                  T* gb, T* gw, int64_t n0, int64_t n1) const {
        const int G = pr.g;
        const bool need_q = need_a || need_b, need_bc = need_a || need_w;
        std::vector<T> bt(pr.d2 * K), zt(pr.d3 * K), bc(kMaxDim * kMaxDim * K), tv(K * kMaxDim * K),
            q(K * kMaxDim * K), aq(kMaxDim * kMaxDim * K), gat(K * pr.d1 * K), gbt(pr.d2 * K);
        for (int64_t n = n0; n < n1; ++n) {
            for (int g = 0; g < G; ++g) {
                const int64_t blk = n * G + g;
                const T* ab = a + blk * K * pr.d1;
                const T* zb = z + blk * K * pr.d3;
                transpose(b + blk * K * pr.d2, pr.d2, bt.data());
                if (need_w) transpose(zb, pr.d3, zt.data());
                std::fill(gat.begin(), gat.end(), T(0));
                std::fill(gbt.begin(), gbt.end(), T(0));
                for (int pi = 0; pi < pr.paths; ++pi) {
                    const Path p = path(pi);
                    const int64_t wofs = (int64_t(g) * pr.paths + pi) * K * K * K;
                    if (need_bc) FREECG_BY_DIM(p.d3, couple_b, p, pr.by_out, val_out, bt.data(), bc.data())
                    if (need_q) FREECG_BY_DIM(p.d3, contract_w, p, pr.d3, zb, Wt + wofs, q.data())
                    if (need_a) FREECG_BY_DIM(p.d3, grad_a, p, pr.d1, bc.data(), q.data(), gat.data())
                    if (need_b)
                        FREECG_BY_DIM(p.d3, grad_b, p, pr.d1, pr.by_b, val_b, ab, q.data(), aq.data(), gbt.data())
                    if (need_w) {
                        FREECG_BY_DIM(p.d3, expand_a, p, pr.d1, ab, bc.data(), tv.data())
                        FREECG_BY_DIM(p.d3, grad_w, p, tv.data(), zt.data(), gw + wofs)
                    }
                }
                if (need_a) {
                    T* gab = ga + blk * K * pr.d1;
                    for (int i = 0; i < K * pr.d1; ++i) {
                        T sum = 0;
                        for (int v = 0; v < K; ++v) sum += gat[i * K + v];
                        gab[i] = sum;
                    }
                }
                if (need_b) {
                    T* gbb = gb + blk * K * pr.d2;
                    for (int v = 0; v < K; ++v)
                        for (int m = 0; m < pr.d2; ++m) gbb[v * pr.d2 + m] = gbt[m * K + v];
                }
            }
        }
    }
};

int thread_count(const Problem& pr) {
    return int(std::max<int64_t>(1, std::min<int64_t>(pr.threads, pr.n)));
}

// Split [0, n) over OpenMP threads. Loaded into a torch process, libgomp.so.1 is torch's own, so
// these threads are torch's intra-op pool (no second pool competing for the cores).
template <typename Body>
void parallel_atoms(int64_t n, int threads, Body body) {
    const int64_t chunk = (n + threads - 1) / threads;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        const int64_t n0 = std::min(n, t * chunk), n1 = std::min(n, n0 + chunk);
        if (n0 < n1) body(t, n0, n1);
    }
}

template <typename T, int K>
void run_forward(const Problem& pr, const T* val_out, const T* val_b, const T* a, const T* b, const T* W, T* out) {
    const Kernel<T, K> kernel{pr, val_out, val_b};
    parallel_atoms(pr.n, thread_count(pr), [&](int, int64_t n0, int64_t n1) { kernel.forward(a, b, W, out, n0, n1); });
}

template <typename T, int K>
void run_backward(const Problem& pr, const T* val_out, const T* val_b, const T* a, const T* b, const T* W,
                  const T* z, int flags, T* ga, T* gb, T* gw) {
    const Kernel<T, K> kernel{pr, val_out, val_b};
    const bool need_a = flags & 1, need_b = flags & 2, need_w = flags & 4;
    const int64_t blocks = int64_t(pr.g) * pr.paths, wsize = blocks * K * K * K;
    std::vector<T> Wt(need_a || need_b ? wsize : 0);
    for (int64_t i = 0; i < (need_a || need_b ? blocks * K : 0); ++i)  // i = (g, p, u)
        for (int v = 0; v < K; ++v)
            for (int w = 0; w < K; ++w) Wt[(i * K + w) * K + v] = W[(i * K + v) * K + w];
    const int threads = thread_count(pr);
    std::vector<std::vector<T>> gw_local(need_w ? threads : 0, std::vector<T>(wsize, T(0)));
    parallel_atoms(pr.n, threads, [&](int t, int64_t n0, int64_t n1) {
        kernel.backward(a, b, Wt.data(), z, need_a, need_b, need_w, ga, gb, need_w ? gw_local[t].data() : nullptr, n0,
                        n1);
    });
    if (need_w) {
        std::fill(gw, gw + wsize, T(0));
        for (const auto& buf : gw_local)
            for (int64_t i = 0; i < wsize; ++i) gw[i] += buf[i];
    }
}

Problem problem(const int64_t* dims, const int32_t* path_info, const int32_t* by_out, const int32_t* by_b) {
    // dims: n, g, k, d1, d2, d3, paths, threads
    return Problem{dims[0], int(dims[1]), int(dims[2]), int(dims[3]), int(dims[4]), int(dims[5]), int(dims[6]),
                   int(dims[7]), path_info, by_out, by_b};
}

#define FREECG_BY_K(k, call) \
    switch (k) {             \
        case 2: {            \
            constexpr int K = 2; call; break; } \
        case 4: {            \
            constexpr int K = 4; call; break; } \
        case 8: {            \
            constexpr int K = 8; call; break; } \
        case 16: {           \
            constexpr int K = 16; call; break; } \
        case 32: {           \
            constexpr int K = 32; call; break; } \
        default: return 1;   \
    }

template <typename T>
int forward(const int64_t* dims, const int32_t* paths, const int32_t* by_out, const T* val_out, const int32_t* by_b,
            const T* val_b, const T* a, const T* b, const T* W, T* out) {
    const Problem pr = problem(dims, paths, by_out, by_b);
    FREECG_BY_K(pr.k, (run_forward<T, K>(pr, val_out, val_b, a, b, W, out)))
    return 0;
}

template <typename T>
int backward(const int64_t* dims, const int32_t* paths, const int32_t* by_out, const T* val_out, const int32_t* by_b,
             const T* val_b, const T* a, const T* b, const T* W, const T* z, int flags, T* ga, T* gb, T* gw) {
    const Problem pr = problem(dims, paths, by_out, by_b);
    FREECG_BY_K(pr.k, (run_backward<T, K>(pr, val_out, val_b, a, b, W, z, flags, ga, gb, gw)))
    return 0;
}

}  // namespace

extern "C" {

// 1 when K abstract edges per group and irreps up to dimension max_dim (2 l + 1) are compiled.
int freecg_group_cg_supported(int k, int max_dim) {
    return (k == 2 || k == 4 || k == 8 || k == 16 || k == 32) && max_dim <= kMaxDim;
}

int freecg_group_cg_forward_f32(const int64_t* dims, const int32_t* paths, const int32_t* by_out, const float* val_out,
                                const int32_t* by_b, const float* val_b, const float* a, const float* b, const float* W,
                                float* out) {
    return forward<float>(dims, paths, by_out, val_out, by_b, val_b, a, b, W, out);
}

int freecg_group_cg_forward_f64(const int64_t* dims, const int32_t* paths, const int32_t* by_out,
                                const double* val_out, const int32_t* by_b, const double* val_b, const double* a,
                                const double* b, const double* W, double* out) {
    return forward<double>(dims, paths, by_out, val_out, by_b, val_b, a, b, W, out);
}

int freecg_group_cg_backward_f32(const int64_t* dims, const int32_t* paths, const int32_t* by_out,
                                 const float* val_out, const int32_t* by_b, const float* val_b, const float* a,
                                 const float* b, const float* W, const float* z, int flags, float* ga, float* gb,
                                 float* gw) {
    return backward<float>(dims, paths, by_out, val_out, by_b, val_b, a, b, W, z, flags, ga, gb, gw);
}

int freecg_group_cg_backward_f64(const int64_t* dims, const int32_t* paths, const int32_t* by_out,
                                 const double* val_out, const int32_t* by_b, const double* val_b, const double* a,
                                 const double* b, const double* W, const double* z, int flags, double* ga, double* gb,
                                 double* gw) {
    return backward<double>(dims, paths, by_out, val_out, by_b, val_b, a, b, W, z, flags, ga, gb, gw);
}

}  // extern "C"
