// CUDA kernels of the nas CUDA backend: one for each primitive of the CPU backend.
// Compiled at run time with NVRTC (no toolkit at build time). All tensors are f32,
// contiguous, NCHW; sizes are passed as ints. Every kernel is a grid-stride loop or a
// tiled kernel with its launch shape documented beside it.

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// ---------------------------------------------------------------- dropout
// Mask values of a dropout draw, bit for bit cpu::random's: 0 where entry i's bits fall
// below `below`, `keep` elsewhere.
__device__ __forceinline__ unsigned mix32(unsigned x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

extern "C" __global__ void dropout_mask_f32(float* y, long long n, unsigned s0, unsigned s1,
                                            unsigned below, float keep) {
    GRID_STRIDE(i, n) {
        unsigned bits = mix32(mix32(mix32((unsigned)i) ^ s0) ^ s1);
        y[i] = bits < below ? 0.f : keep;
    }
}

// ---------------------------------------------------------------- elementwise
// op: 0 copy, 1 relu, 2 exp, 3 log, 4 sigmoid, 5 tanh, 6 x*a+b, 7 neg
extern "C" __global__ void unary_f32(const float* x, float* y, long long n, int op, float a,
                                     float b) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        float r;
        switch (op) {
            case 1: r = v > 0.f ? v : 0.f; break;
            case 2: r = expf(v); break;
            case 3: r = logf(v); break;
            case 4: r = 1.f / (1.f + expf(-v)); break;
            case 5: r = tanhf(v); break;
            case 6: r = v * a + b; break;
            case 7: r = -v; break;
            default: r = v;
        }
        y[i] = r;
    }
}

// Gradient of a unary op given the input x, output y and output gradient g; accumulates
// into gx. op as in unary_f32.
extern "C" __global__ void unary_backward_f32(const float* x, const float* y, const float* g,
                                              float* gx, long long n, int op, float a) {
    GRID_STRIDE(i, n) {
        float d;
        switch (op) {
            case 1: d = x[i] > 0.f ? g[i] : 0.f; break;
            case 2: d = g[i] * y[i]; break;
            case 3: d = g[i] / x[i]; break;
            case 4: d = g[i] * y[i] * (1.f - y[i]); break;
            case 5: d = g[i] * (1.f - y[i] * y[i]); break;
            case 6: d = g[i] * a; break;
            case 7: d = -g[i]; break;
            default: d = g[i];
        }
        gx[i] += d;
    }
}

// Broadcasting binary op over up to 6 dims (shapes right-aligned, padded with 1).
// op: 0 add, 1 sub, 2 mul, 3 div.
struct Shape {
    int d[6];
};

__device__ inline long long bcast_index(long long i, Shape out, Shape in) {
    long long idx = 0, stride = 1, rem = i;
    long long coord[6];
    for (int k = 5; k >= 0; --k) {
        coord[k] = rem % out.d[k];
        rem /= out.d[k];
    }
    for (int k = 5; k >= 0; --k) {
        long long c = in.d[k] == 1 ? 0 : coord[k];
        idx += c * stride;
        stride *= in.d[k];
    }
    return idx;
}

extern "C" __global__ void binary_f32(const float* a, Shape sa, const float* b, Shape sb,
                                      float* y, Shape sy, long long n, int op) {
    GRID_STRIDE(i, n) {
        float u = a[bcast_index(i, sy, sa)];
        float v = b[bcast_index(i, sy, sb)];
        float r;
        switch (op) {
            case 0: r = u + v; break;
            case 1: r = u - v; break;
            case 2: r = u * v; break;
            default: r = u / v;
        }
        y[i] = r;
    }
}

// Where the values summed into element j of a reduce_to's gx lie: j's coordinates in sx,
// and the span of each axis summed over (1 where sx keeps it).
struct Summed {
    long long coord[6];
    long long span[6];
};

__device__ Summed summed(Shape sy, Shape sx, long long j) {
    Summed t;
    long long rem = j;
    for (int k = 5; k >= 0; --k) {
        t.coord[k] = rem % sx.d[k];
        rem /= sx.d[k];
        t.span[k] = sx.d[k] == 1 ? sy.d[k] : 1;
    }
    return t;
}

// The index into g of the r-th value summed into t's element.
__device__ long long summed_at(const Summed& t, Shape sy, long long r) {
    long long idx = 0, stride = 1;
    for (int k = 5; k >= 0; --k) {
        long long c = t.span[k] > 1 ? r % t.span[k] : t.coord[k];
        if (t.span[k] > 1) r /= t.span[k];
        idx += c * stride;
        stride *= sy.d[k];
    }
    return idx;
}

// The number of values summed into each element of a reduce_to's gx.
__device__ long long summed_count(const Summed& t) {
    long long n = 1;
    for (int k = 0; k < 6; ++k) n *= t.span[k];
    return n;
}

// Sums `g` (shape sy) into `gx` (shape sx, broadcast into sy) times `scale`: the gradient
// of a broadcast operand. For short sums: one thread per element of gx, looping over what
// maps to it.
extern "C" __global__ void reduce_to_f32(const float* g, Shape sy, float* gx, Shape sx,
                                         long long nx, float scale) {
    GRID_STRIDE(j, nx) {
        Summed t = summed(sy, sx, j);
        long long total = summed_count(t);
        float s = 0.f;
        for (long long r = 0; r < total; ++r) s += g[summed_at(t, sy, r)];
        gx[j] += scale * s;
    }
}

// reduce_to_f32 for long sums: one 256-thread block per element of gx (striding over
// them), its threads striding over the values that map to it and then added up.
extern "C" __global__ void reduce_to_lanes_f32(const float* g, Shape sy, float* gx,
                                               Shape sx, long long nx, float scale) {
    __shared__ float part[256];
    for (long long j = blockIdx.x; j < nx; j += gridDim.x) {
        Summed t = summed(sy, sx, j);
        long long total = summed_count(t);
        float s = 0.f;
        for (long long r = threadIdx.x; r < total; r += blockDim.x) s += g[summed_at(t, sy, r)];
        part[threadIdx.x] = s;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) gx[j] += scale * part[0];
        __syncthreads();
    }
}

// Each k x k plane of x written into a zero size x size plane of y (zeroed by the
// caller), tap (a, b) at (off + a*dil, off + b*dil); n = planes * k * k.
extern "C" __global__ void embed_kernel_f32(const float* x, float* y, long long n, int k,
                                            int size, int dil, int off) {
    GRID_STRIDE(i, n) {
        long long plane = i / (k * k);
        int a = (int)(i % (k * k)) / k, b = (int)(i % k);
        y[plane * size * size + (long long)(off + a * dil) * size + off + b * dil] = x[i];
    }
}

// The gradient of embed_kernel_f32: each tap of g's large planes read back into gx;
// n = planes * k * k.
extern "C" __global__ void embed_kernel_backward_f32(const float* g, float* gx, long long n,
                                                     int k, int size, int dil, int off) {
    GRID_STRIDE(i, n) {
        long long plane = i / (k * k);
        int a = (int)(i % (k * k)) / k, b = (int)(i % k);
        gx[i] = g[plane * size * size + (long long)(off + a * dil) * size + off + b * dil];
    }
}

// Copies a block of `len` entries along the middle axis: for every outer index o, the
// `len * inner` values from (o, xstart) of x ([outer, xtotal, inner]) to (o, ystart) of y
// ([outer, ytotal, inner]). Concatenation (one call per part), slicing and a slice's
// gradient (into a zeroed y) are all this copy.
extern "C" __global__ void copy_axis_f32(const float* x, float* y, long long outer,
                                         long long len, long long inner, long long xtotal,
                                         long long xstart, long long ytotal,
                                         long long ystart) {
    long long block = len * inner;
    GRID_STRIDE(i, outer * block) {
        long long o = i / block, r = i % block;
        y[(o * ytotal + ystart) * inner + r] = x[(o * xtotal + xstart) * inner + r];
    }
}

// x permuted: y[i] = x at output position i, whose coordinates (over the output dims,
// padded at the front with 1s) each step their input stride.
struct Perm6 {
    long long n;
    long long dims[6];
    long long strides[6];
};

extern "C" __global__ void permute_f32(Perm6 g, const float* x, float* y) {
    GRID_STRIDE(i, g.n) {
        long long rem = i, src = 0;
        for (int d = 5; d >= 0; --d) {
            src += (rem % g.dims[d]) * g.strides[d];
            rem /= g.dims[d];
        }
        y[i] = x[src];
    }
}

// A mixed op's output y[i] = sum_j w[j] * xs[j * n + i], its k candidates back to back.
extern "C" __global__ void weighted_sum_f32(const float* xs, const float* w, int k, float* y,
                                            long long n) {
    GRID_STRIDE(i, n) {
        float s = 0.f;
        for (int j = 0; j < k; ++j) s += w[j] * xs[j * n + i];
        y[i] = s;
    }
}


// Its mixing-weight gradients gw[j] = dot(g, x_j): grid (blocks, k), 256 threads; each
// block adds its partial dot product into gw[j], which starts zeroed.
extern "C" __global__ void weighted_sum_backward_weight_f32(const float* xs, const float* g,
                                                            long long n, float* gw) {
    __shared__ float part[256];
    int j = blockIdx.y;
    float s = 0.f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        s += g[i] * xs[j * n + i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(&gw[j], part[0]);
}

// ---------------------------------------------------------------- GEMM
// C[m,n] = A[m,k] x B[k,n] (+ C when acc), with A or B read transposed. 16x16 tiles in
// shared memory; grid (ceil(m/16) * ceil(n/16), 1, batch), x over the tiles row by row
// (x takes 2^31 - 1 blocks, y and z 65,535), block (16, 16). Batched operands are
// strided by m*k, k*n (0 = shared) and m*n.
#define TILE 16
extern "C" __global__ void sgemm_f32(int m, int n, int k, const float* A, int ta,
                                     long long strideA, const float* B, int tb,
                                     long long strideB, float* C, long long strideC, int acc) {
    __shared__ float As[TILE][TILE + 1];
    __shared__ float Bs[TILE][TILE + 1];
    A += blockIdx.z * strideA;
    B += blockIdx.z * strideB;
    C += blockIdx.z * strideC;
    int tiles_n = (n + TILE - 1) / TILE;
    int row = (int)(blockIdx.x / tiles_n) * TILE + threadIdx.y;
    int col = (int)(blockIdx.x % tiles_n) * TILE + threadIdx.x;
    float s = 0.f;
    for (int t = 0; t < k; t += TILE) {
        int ak = t + threadIdx.x, bk = t + threadIdx.y;
        As[threadIdx.y][threadIdx.x] =
            (row < m && ak < k) ? (ta ? A[(long long)ak * m + row] : A[(long long)row * k + ak]) : 0.f;
        Bs[threadIdx.y][threadIdx.x] =
            (bk < k && col < n) ? (tb ? B[(long long)col * k + bk] : B[(long long)bk * n + col]) : 0.f;
        __syncthreads();
#pragma unroll
        for (int q = 0; q < TILE; ++q) s += As[threadIdx.y][q] * Bs[q][threadIdx.x];
        __syncthreads();
    }
    if (row < m && col < n) {
        long long o = (long long)row * n + col;
        C[o] = acc ? C[o] + s : s;
    }
}

// Adds bias[c] to every element of channel c of y ([n, c, hw]) or row element c ([rows, c]
// with hw = 1).
extern "C" __global__ void add_bias_f32(float* y, const float* bias, int c, long long hw,
                                        long long total) {
    GRID_STRIDE(i, total) { y[i] += bias[(i / hw) % c]; }
}

// gb[c] += sum over n and hw of g ([n, c, hw]); one block per channel, 256 threads.
extern "C" __global__ void channel_sum_f32(const float* g, float* gb, int n, int c, long long hw) {
    __shared__ float part[256];
    int ch = blockIdx.x;
    float s = 0.f;
    for (long long i = threadIdx.x; i < (long long)n * hw; i += blockDim.x) {
        long long b = i / hw, p = i % hw;
        s += g[(b * c + ch) * hw + p];
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) gb[ch] += part[0];
}

// ---------------------------------------------------------------- convolution
struct ConvGeom {
    int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow;
};

// col[(c*kh*kw + ki*kw + kj), oy*ow + ox] for one image: the im2col matrix.
extern "C" __global__ void im2col_f32(ConvGeom g, const float* x, float* col) {
    long long total = (long long)g.cin * g.kh * g.kw * g.oh * g.ow;
    GRID_STRIDE(i, total) {
        int ox = (int)(i % g.ow);
        int oy = (int)((i / g.ow) % g.oh);
        int r = (int)(i / ((long long)g.oh * g.ow));
        int kj = r % g.kw, ki = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
        int iy = oy * g.sh - g.ph + ki * g.dh, ix = ox * g.sw - g.pw + kj * g.dw;
        col[i] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? x[((long long)c * g.h + iy) * g.w + ix] : 0.f;
    }
}

// The adjoint of im2col: accumulates col back into gx for one image (one thread per
// input pixel, gathering the taps that read it, so no atomics are needed).
extern "C" __global__ void col2im_f32(ConvGeom g, const float* col, float* gx) {
    long long total = (long long)g.cin * g.h * g.w;
    GRID_STRIDE(i, total) {
        int ix = (int)(i % g.w);
        int iy = (int)((i / g.w) % g.h);
        int c = (int)(i / ((long long)g.h * g.w));
        float s = 0.f;
        for (int ki = 0; ki < g.kh; ++ki) {
            int ty = iy + g.ph - ki * g.dh;
            if (ty < 0 || ty % g.sh) continue;
            int oy = ty / g.sh;
            if (oy >= g.oh) continue;
            for (int kj = 0; kj < g.kw; ++kj) {
                int tx = ix + g.pw - kj * g.dw;
                if (tx < 0 || tx % g.sw) continue;
                int ox = tx / g.sw;
                if (ox >= g.ow) continue;
                long long r = ((long long)c * g.kh + ki) * g.kw + kj;
                s += col[r * g.oh * g.ow + (long long)oy * g.ow + ox];
            }
        }
        gx[i] += s;
    }
}

// Depthwise convolution (groups == cin == cout), all images: one thread per output.
extern "C" __global__ void depthwise_forward_f32(ConvGeom g, const float* x, const float* wt,
                                                 float* y) {
    long long total = (long long)g.n * g.cin * g.oh * g.ow;
    GRID_STRIDE(i, total) {
        int ox = (int)(i % g.ow), oy = (int)((i / g.ow) % g.oh);
        long long plane = i / ((long long)g.oh * g.ow);
        int c = (int)(plane % g.cin);
        const float* xp = x + plane * g.h * g.w;
        float s = 0.f;
        for (int ki = 0; ki < g.kh; ++ki) {
            int iy = oy * g.sh - g.ph + ki * g.dh;
            if (iy < 0 || iy >= g.h) continue;
            for (int kj = 0; kj < g.kw; ++kj) {
                int ix = ox * g.sw - g.pw + kj * g.dw;
                if (ix < 0 || ix >= g.w) continue;
                s += wt[(c * g.kh + ki) * g.kw + kj] * xp[iy * g.w + ix];
            }
        }
        y[i] = s;
    }
}

// Depthwise input gradient: one thread per input pixel, gathering.
extern "C" __global__ void depthwise_backward_input_f32(ConvGeom g, const float* gy,
                                                        const float* wt, float* gx) {
    long long total = (long long)g.n * g.cin * g.h * g.w;
    GRID_STRIDE(i, total) {
        int ix = (int)(i % g.w), iy = (int)((i / g.w) % g.h);
        long long plane = i / ((long long)g.h * g.w);
        int c = (int)(plane % g.cin);
        const float* gp = gy + plane * g.oh * g.ow;
        float s = 0.f;
        for (int ki = 0; ki < g.kh; ++ki) {
            int ty = iy + g.ph - ki * g.dh;
            if (ty < 0 || ty % g.sh || ty / g.sh >= g.oh) continue;
            for (int kj = 0; kj < g.kw; ++kj) {
                int tx = ix + g.pw - kj * g.dw;
                if (tx < 0 || tx % g.sw || tx / g.sw >= g.ow) continue;
                s += wt[(c * g.kh + ki) * g.kw + kj] * gp[(ty / g.sh) * g.ow + tx / g.sw];
            }
        }
        gx[i] += s;
    }
}

// Depthwise weight gradient: one block per (channel, tap), 256 threads reducing over
// images and output pixels.
extern "C" __global__ void depthwise_backward_weight_f32(ConvGeom g, const float* x,
                                                         const float* gy, float* gw) {
    __shared__ float part[256];
    int tap = blockIdx.x % (g.kh * g.kw), c = blockIdx.x / (g.kh * g.kw);
    int ki = tap / g.kw, kj = tap % g.kw;
    float s = 0.f;
    long long per = (long long)g.oh * g.ow;
    for (long long i = threadIdx.x; i < (long long)g.n * per; i += blockDim.x) {
        long long b = i / per;
        int oy = (int)((i % per) / g.ow), ox = (int)(i % g.ow);
        int iy = oy * g.sh - g.ph + ki * g.dh, ix = ox * g.sw - g.pw + kj * g.dw;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
        s += gy[(b * g.cin + c) * per + (long long)oy * g.ow + ox] *
             x[((b * g.cin + c) * g.h + iy) * (long long)g.w + ix];
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) gw[blockIdx.x] += part[0];
}

// ---------------------------------------------------------------- pooling
struct PoolGeom {
    int planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// Max pooling; padding acts as -inf; ties go to the first element in row-major order.
extern "C" __global__ void max_pool_forward_f32(PoolGeom g, const float* x, float* y,
                                                unsigned int* arg) {
    long long total = (long long)g.planes * g.oh * g.ow;
    GRID_STRIDE(i, total) {
        int ox = (int)(i % g.ow), oy = (int)((i / g.ow) % g.oh);
        long long plane = i / ((long long)g.oh * g.ow);
        const float* xp = x + plane * g.h * g.w;
        int y0 = max(oy * g.sh - g.ph, 0), y1 = min(oy * g.sh - g.ph + g.kh, g.h);
        int x0 = max(ox * g.sw - g.pw, 0), x1 = min(ox * g.sw - g.pw + g.kw, g.w);
        float best = -__int_as_float(0x7f800000);
        unsigned int bi = y0 * g.w + x0;
        for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) {
                float v = xp[iy * g.w + ix];
                if (v > best || isnan(v)) {
                    best = v;
                    bi = iy * g.w + ix;
                }
            }
        y[i] = best;
        arg[i] = bi;
    }
}

// Scatters gy to the recorded argmax (gx zeroed by the caller); atomics since windows
// overlap when the stride is below the kernel size. An argmax outside the plane (not
// one the forward wrote) is dropped, as the wgpu kernel's gather never matches it,
// rather than written out of bounds.
extern "C" __global__ void max_pool_backward_f32(PoolGeom g, const float* gy,
                                                 const unsigned int* arg, float* gx) {
    long long total = (long long)g.planes * g.oh * g.ow;
    unsigned int hw = (unsigned int)g.h * (unsigned int)g.w;
    GRID_STRIDE(i, total) {
        long long plane = i / ((long long)g.oh * g.ow);
        unsigned int a = arg[i];
        if (a < hw) atomicAdd(&gx[plane * hw + a], gy[i]);
    }
}

__device__ inline float avg_div(PoolGeom g, int cip, int oy, int ox) {
    int y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
    int y1 = min(y0 + g.kh, g.h + g.ph), x1 = min(x0 + g.kw, g.w + g.pw);
    if (cip) return (float)((y1 - y0) * (x1 - x0));
    return (float)((min(y1, g.h) - max(y0, 0)) * (min(x1, g.w) - max(x0, 0)));
}

extern "C" __global__ void avg_pool_forward_f32(PoolGeom g, int cip, const float* x, float* y) {
    long long total = (long long)g.planes * g.oh * g.ow;
    GRID_STRIDE(i, total) {
        int ox = (int)(i % g.ow), oy = (int)((i / g.ow) % g.oh);
        long long plane = i / ((long long)g.oh * g.ow);
        const float* xp = x + plane * g.h * g.w;
        int y0 = max(oy * g.sh - g.ph, 0), y1 = min(oy * g.sh - g.ph + g.kh, g.h);
        int x0 = max(ox * g.sw - g.pw, 0), x1 = min(ox * g.sw - g.pw + g.kw, g.w);
        float s = 0.f;
        for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) s += xp[iy * g.w + ix];
        y[i] = s / avg_div(g, cip, oy, ox);
    }
}

// Average-pool input gradient: one thread per input pixel, gathering its windows.
extern "C" __global__ void avg_pool_backward_f32(PoolGeom g, int cip, const float* gy, float* gx) {
    long long total = (long long)g.planes * g.h * g.w;
    GRID_STRIDE(i, total) {
        int ix = (int)(i % g.w), iy = (int)((i / g.w) % g.h);
        long long plane = i / ((long long)g.h * g.w);
        const float* gp = gy + plane * g.oh * g.ow;
        float s = 0.f;
        for (int oy = 0; oy < g.oh; ++oy) {
            int y0 = oy * g.sh - g.ph;
            if (iy < y0 || iy >= y0 + g.kh) continue;
            for (int ox = 0; ox < g.ow; ++ox) {
                int x0 = ox * g.sw - g.pw;
                if (ix < x0 || ix >= x0 + g.kw) continue;
                s += gp[oy * g.ow + ox] / avg_div(g, cip, oy, ox);
            }
        }
        gx[i] += s;
    }
}

// Adaptive average pooling to (oh, ow) with PyTorch's bins.
extern "C" __global__ void adaptive_avg_pool_forward_f32(int planes, int h, int w, int oh,
                                                         int ow, const float* x, float* y) {
    GRID_STRIDE(i, (long long)planes * oh * ow) {
        int ox = (int)(i % ow), oy = (int)((i / ow) % oh);
        long long plane = i / ((long long)oh * ow);
        int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
        int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
        float s = 0.f;
        for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) s += x[(plane * h + iy) * w + ix];
        y[i] = s / (float)((y1 - y0) * (x1 - x0));
    }
}

extern "C" __global__ void adaptive_avg_pool_backward_f32(int planes, int h, int w, int oh,
                                                          int ow, const float* gy, float* gx) {
    GRID_STRIDE(i, (long long)planes * h * w) {
        int ix = (int)(i % w), iy = (int)((i / w) % h);
        long long plane = i / ((long long)h * w);
        float s = 0.f;
        for (int oy = 0; oy < oh; ++oy) {
            int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
            if (iy < y0 || iy >= y1) continue;
            for (int ox = 0; ox < ow; ++ox) {
                int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
                if (ix < x0 || ix >= x1) continue;
                s += gy[(plane * oh + oy) * ow + ox] / (float)((y1 - y0) * (x1 - x0));
            }
        }
        gx[i] += s;
    }
}

// ---------------------------------------------------------------- batch norm
// Per-channel mean and 1/std of [n, c, hw] (biased variance, two passes in double);
// one block per channel, 256 threads.
extern "C" __global__ void bn_stats_f32(const float* x, int n, int c, long long hw, float eps,
                                        float* mean, float* invstd) {
    __shared__ double part[256];
    int ch = blockIdx.x;
    long long count = (long long)n * hw;
    double s = 0.0;
    for (long long i = threadIdx.x; i < count; i += blockDim.x)
        s += x[((i / hw) * c + ch) * hw + i % hw];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    double mu = part[0] / (double)count;
    __syncthreads();
    double q = 0.0;
    for (long long i = threadIdx.x; i < count; i += blockDim.x) {
        double d = x[((i / hw) * c + ch) * hw + i % hw] - mu;
        q += d * d;
    }
    part[threadIdx.x] = q;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        mean[ch] = (float)mu;
        invstd[ch] = (float)(1.0 / sqrt(part[0] / (double)count + (double)eps));
    }
}

// y = (x - mean) * invstd * gamma + beta.
extern "C" __global__ void bn_apply_f32(const float* x, const float* mean, const float* invstd,
                                        const float* gamma, const float* beta, int c,
                                        long long hw, float* y, long long total) {
    GRID_STRIDE(i, total) {
        int ch = (int)((i / hw) % c);
        y[i] = (x[i] - mean[ch]) * invstd[ch] * gamma[ch] + beta[ch];
    }
}

// Running statistics after a batch (PyTorch's update, the variance unbiased), in place.
extern "C" __global__ void bn_running_f32(const float* mean, const float* invstd, float* rm,
                                          float* rv, int c, long long count, float m,
                                          float eps) {
    GRID_STRIDE(ch, c) {
        float unbias = count > 1 ? (float)count / (float)(count - 1) : 1.f;
        float is = invstd[ch];
        float v = fmaxf(1.f / (is * is) - eps, 0.f) * unbias;
        rm[ch] = (1.f - m) * rm[ch] + m * mean[ch];
        rv[ch] = (1.f - m) * rv[ch] + m * v;
    }
}

// Per-channel sums of g and g * xhat (for the backward), in double as the CPU sums them;
// one block per channel.
extern "C" __global__ void bn_backward_sums_f32(const float* x, const float* g, const float* mean,
                                                const float* invstd, int n, int c, long long hw,
                                                float* sum_g, float* sum_gx) {
    __shared__ double pa[256];
    __shared__ double pb[256];
    int ch = blockIdx.x;
    double a = 0.0, b = 0.0;
    for (long long i = threadIdx.x; i < (long long)n * hw; i += blockDim.x) {
        long long o = ((i / hw) * c + ch) * hw + i % hw;
        a += g[o];
        b += g[o] * (x[o] - mean[ch]) * invstd[ch];
    }
    pa[threadIdx.x] = a;
    pb[threadIdx.x] = b;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
            pa[threadIdx.x] += pa[threadIdx.x + w];
            pb[threadIdx.x] += pb[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        sum_g[ch] = (float)pa[0];
        sum_gx[ch] = (float)pb[0];
    }
}

// gx += gamma * invstd * (g - sum_g/m - xhat * sum_gx/m), with m = n * hw.
extern "C" __global__ void bn_backward_input_f32(const float* x, const float* g, const float* mean,
                                                 const float* invstd, const float* gamma,
                                                 const float* sum_g, const float* sum_gx, int c,
                                                 long long hw, float m, float* gx, long long total) {
    GRID_STRIDE(i, total) {
        int ch = (int)((i / hw) % c);
        float xhat = (x[i] - mean[ch]) * invstd[ch];
        gx[i] += gamma[ch] * invstd[ch] * (g[i] - sum_g[ch] / m - xhat * sum_gx[ch] / m);
    }
}

// ---------------------------------------------------------------- softmax, NLL
// Log-softmax of each row of [rows, cols]; one warp-sized block per row is enough for the
// class counts NAS uses; 128 threads.
extern "C" __global__ void log_softmax_f32(const float* x, float* y, int rows, int cols) {
    __shared__ float red[128];
    int r = blockIdx.x;
    const float* xr = x + (long long)r * cols;
    float m = -__int_as_float(0x7f800000);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
    red[threadIdx.x] = m;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + w]);
        __syncthreads();
    }
    m = red[0];
    __syncthreads();
    float s = 0.f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s += expf(xr[j] - m);
    red[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    float lse = m + logf(red[0]);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) y[(long long)r * cols + j] = xr[j] - lse;
}

// gx += g - exp(y) * sum(g) per row (the log-softmax backward); one block per row.
extern "C" __global__ void log_softmax_backward_f32(const float* y, const float* g, float* gx,
                                                    int rows, int cols) {
    __shared__ float red[128];
    int r = blockIdx.x;
    float s = 0.f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s += g[(long long)r * cols + j];
    red[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    s = red[0];
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        long long o = (long long)r * cols + j;
        gx[o] += g[o] - expf(y[o]) * s;
    }
}

// Mean negative log-likelihood into loss[0] (one block of 256 threads).
extern "C" __global__ void nll_f32(const float* logp, const unsigned int* t, int rows, int cols,
                                   float* loss) {
    __shared__ float red[256];
    float s = 0.f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) s -= logp[(long long)r * cols + t[r]];
    red[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) loss[0] = red[0] / (float)rows;
}

extern "C" __global__ void nll_backward_f32(const unsigned int* t, float g, int rows, int cols,
                                            float* gx) {
    GRID_STRIDE(r, rows) { gx[r * (long long)cols + t[r]] -= g / (float)rows; }
}

// ---------------------------------------------------------------- optimisers
// PyTorch SGD (dampening 0): v = mu v + (g + wd w) (v = d on the first step), w -= lr v
// (or lr (d + mu v) with Nesterov).
extern "C" __global__ void sgd_f32(float* w, const float* g, float* v, long long n, float lr,
                                   float mu, float wd, int nesterov, int first) {
    GRID_STRIDE(i, n) {
        float d = g[i] + wd * w[i];
        if (mu == 0.f) {
            w[i] -= lr * d;
            continue;
        }
        float vv = first ? d : mu * v[i] + d;
        v[i] = vv;
        w[i] -= lr * (nesterov ? d + mu * vv : vv);
    }
}

// Adam / AdamW step t (1-based) with bias correction.
extern "C" __global__ void adam_f32(float* w, const float* g, float* m, float* v, long long n,
                                    float lr, float b1, float b2, float eps, float wd,
                                    int decoupled, int t) {
    GRID_STRIDE(i, n) {
        float gi = g[i];
        if (decoupled) w[i] -= lr * wd * w[i];
        else gi += wd * w[i];
        m[i] = b1 * m[i] + (1.f - b1) * gi;
        v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
        float mh = m[i] / (1.f - powf(b1, (float)t));
        float vh = v[i] / (1.f - powf(b2, (float)t));
        w[i] -= lr * mh / (sqrtf(vh) + eps);
    }
}
