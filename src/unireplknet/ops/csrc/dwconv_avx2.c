/* Kernels for UniRepLKNet's training step on x86-64 CPUs with AVX2 + FMA: the Dilated Reparam Block's
 * depthwise convolutions (with their BatchNorm statistics and backward), and fused GELU + GRN and
 * BatchNorm passes over channels-last activations (at the end of this file).
 *
 * Layout: every activation is channels-last (N x H x W x C, pixel stride C floats), C a multiple of 8;
 * weights are k x k x C. Inputs of a convolution are zero-bordered buffers: the caller passes a pointer to
 * the first tap of output pixel (0, 0), so output (oh, ow) reads x[oh + ki*r][ow + kj*r]. Each kernel takes
 * the valid-data window of that buffer (rows/cols [lo, hi) relative to the pointer) and skips taps that
 * read only the zero border. Parallel over OpenMP threads (the process's libgomp, shared with PyTorch).
 * Built and loaded by unireplknet.ops.native (ctypes); every entry point is plain C.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))
#define MAXB 12 /* kernel taps per weight-gradient register block */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
/* first t >= 0 with base + t*r >= lo (r > 0) */
static int first_tap(int base, int lo, int r) { int d = lo - base; return d <= 0 ? 0 : (d + r - 1) / r; }
/* one past the last t with base + t*r < hi */
static int end_tap(int base, int hi, int r) { int d = hi - base; return d <= 0 ? 0 : (d + r - 1) / r; }

/* ------------------------------------------------------------------------------------------ forward */
/* One tap row ki of an output block of NB pixels: yb[j] (+)= sum_kj w[kj] * xr[j + kj*r] (8 channels).
   load: start from yb's values (else from zero). Output-row-stationary loops keep one input row, one
   weight row and the output row in L1. (fwd_full* over a one-row range computes the same, but measured ~10%
   slower on 13x13 at 160 x 28^2, so the row sweep keeps these.) */
AI void fwd_row8(const float* xr, int C, float* yb, const float* wr, int r, int kj0, int kj1, int load,
                 const int NB) {
    __m256 acc[8];
    for (int j = 0; j < NB; j++) acc[j] = load ? _mm256_loadu_ps(yb + (int64_t)j * C) : _mm256_setzero_ps();
    for (int kj = kj0; kj < kj1; kj++) {
        const __m256 wv = _mm256_loadu_ps(wr + (int64_t)kj * C);
        const float* xp = xr + (int64_t)kj * r * C;
        for (int j = 0; j < NB; j++) acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp + (int64_t)j * C), acc[j]);
    }
    for (int j = 0; j < NB; j++) _mm256_storeu_ps(yb + (int64_t)j * C, acc[j]);
}

/* The same for 16 channels (two vectors: a whole 64-byte cache line of each pixel). */
AI void fwd_row16(const float* xr, int C, float* yb, const float* wr, int r, int kj0, int kj1, int load,
                  const int NB) {
    __m256 a0[6], a1[6];
    for (int j = 0; j < NB; j++) {
        a0[j] = load ? _mm256_loadu_ps(yb + (int64_t)j * C) : _mm256_setzero_ps();
        a1[j] = load ? _mm256_loadu_ps(yb + (int64_t)j * C + 8) : _mm256_setzero_ps();
    }
    for (int kj = kj0; kj < kj1; kj++) {
        const __m256 w0 = _mm256_loadu_ps(wr + (int64_t)kj * C), w1 = _mm256_loadu_ps(wr + (int64_t)kj * C + 8);
        const float* xp = xr + (int64_t)kj * r * C;
        for (int j = 0; j < NB; j++) {
            a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp + (int64_t)j * C), a0[j]);
            a1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp + (int64_t)j * C + 8), a1[j]);
        }
    }
    for (int j = 0; j < NB; j++) {
        _mm256_storeu_ps(yb + (int64_t)j * C, a0[j]);
        _mm256_storeu_ps(yb + (int64_t)j * C + 8, a1[j]);
    }
}

/* All tap rows of an output block in registers (small kernels, or a band of input rows that fits L1). */
AI void fwd_full8(const float* xb, int64_t xsh, int C, float* yb, const float* w, int k, int r,
                  int ki0, int ki1, int kj0, int kj1, int load, const int NB) {
    __m256 acc[8];
    for (int j = 0; j < NB; j++) acc[j] = load ? _mm256_loadu_ps(yb + (int64_t)j * C) : _mm256_setzero_ps();
    for (int ki = ki0; ki < ki1; ki++) {
        const float* xr = xb + (int64_t)ki * r * xsh;
        const float* wr = w + (int64_t)ki * k * C;
        for (int kj = kj0; kj < kj1; kj++) {
            const __m256 wv = _mm256_loadu_ps(wr + (int64_t)kj * C);
            const float* xp = xr + (int64_t)kj * r * C;
            for (int j = 0; j < NB; j++) acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp + (int64_t)j * C), acc[j]);
        }
    }
    for (int j = 0; j < NB; j++) _mm256_storeu_ps(yb + (int64_t)j * C, acc[j]);
}

AI void fwd_full16(const float* xb, int64_t xsh, int C, float* yb, const float* w, int k, int r,
                   int ki0, int ki1, int kj0, int kj1, int load, const int NB) {
    __m256 a0[6], a1[6];
    for (int j = 0; j < NB; j++) {
        a0[j] = load ? _mm256_loadu_ps(yb + (int64_t)j * C) : _mm256_setzero_ps();
        a1[j] = load ? _mm256_loadu_ps(yb + (int64_t)j * C + 8) : _mm256_setzero_ps();
    }
    for (int ki = ki0; ki < ki1; ki++) {
        const float* xr = xb + (int64_t)ki * r * xsh;
        const float* wr = w + (int64_t)ki * k * C;
        for (int kj = kj0; kj < kj1; kj++) {
            const __m256 w0 = _mm256_loadu_ps(wr + (int64_t)kj * C), w1 = _mm256_loadu_ps(wr + (int64_t)kj * C + 8);
            const float* xp = xr + (int64_t)kj * r * C;
            for (int j = 0; j < NB; j++) {
                a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp + (int64_t)j * C), a0[j]);
                a1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp + (int64_t)j * C + 8), a1[j]);
            }
        }
    }
    for (int j = 0; j < NB; j++) {
        _mm256_storeu_ps(yb + (int64_t)j * C, a0[j]);
        _mm256_storeu_ps(yb + (int64_t)j * C + 8, a1[j]);
    }
}

AI void add_pd(double* dst, __m256 v) {
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    _mm256_storeu_pd(dst, _mm256_add_pd(_mm256_loadu_pd(dst), lo));
    _mm256_storeu_pd(dst + 4, _mm256_add_pd(_mm256_loadu_pd(dst + 4), hi));
}

/* y[n][oh][ow] (+)= sum_{ki,kj} w[ki][kj] * x[n][oh+ki*r][ow+kj*r]  (x: buffer pointer at the first tap).
 * x rows/cols holding data: [row_lo, row_hi) x [col_lo, col_hi) relative to the pointer (zeros outside).
 * stats (may be NULL): nthreads x 2 x C doubles, per-thread sums of y and y^2 (written, not accumulated). */
void urlk_dw_fwd(const float* x, int64_t xsn, int64_t xsh, int row_lo, int row_hi, int col_lo, int col_hi,
                 float* y, int64_t ysn, int64_t ysh, int N, int H, int W, int C,
                 const float* w, int k, int r, int accumulate, double* stats, int nthreads) {
    const int cw = C % 16 == 0 ? 16 : 8; /* channels per work unit */
    const int cb = C / cw;
    const int pb = cw == 16 ? 6 : 8;     /* output pixels per register block */
    const int64_t units = (int64_t)N * cb;
    /* Loop order (measured on Zen 3, 32 KiB L1): when the band of k input rows one output row reads
       outgrows ~24 KiB, sweep one tap row at a time over the output row (it stays in L1) */
    const int64_t band = (int64_t)k * (W + (int64_t)(k - 1) * r) * cw * (int64_t)sizeof(float);
    const int row_stationary = band > 24 * 1024;
    if (stats) memset(stats, 0, sizeof(double) * 2 * C * nthreads);
#pragma omp parallel num_threads(nthreads)
    {
        double* st = stats ? stats + (int64_t)2 * C * omp_get_thread_num() : NULL;
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            const int c0 = (int)(u % cb) * cw;
            const int n = (int)(u / cb);
            const float* wc = w + c0;
            for (int oh = 0; oh < H; oh++) {
                const int ki0 = first_tap(oh, row_lo, r), ki1 = clampi(end_tap(oh, row_hi, r), ki0, k);
                float* yrow = y + n * ysn + (int64_t)oh * ysh + c0;
                if (ki0 >= ki1 && !accumulate)
                    for (int ow = 0; ow < W; ow++) memset(yrow + (int64_t)ow * C, 0, sizeof(float) * cw);
                const float* xrow0 = x + n * xsn + (int64_t)oh * xsh + c0;
                if (!row_stationary) { /* every tap row of a block in registers */
                    for (int ow = 0; ow < W; ow += pb) {
                        const int nb = W - ow < pb ? W - ow : pb;
                        /* taps some pixel of [ow, ow+nb) reads inside the data columns */
                        const int kj0 = first_tap(ow + nb - 1, col_lo, r);
                        const int kj1 = clampi(end_tap(ow, col_hi, r), kj0, k);
                        const float* xb = xrow0 + (int64_t)ow * C;
                        float* yb = yrow + (int64_t)ow * C;
                        if (ki0 >= ki1) continue;
                        if (cw == 16) {
                            switch (nb) {
#define CASE(v) case v: fwd_full16(xb, xsh, C, yb, wc, k, r, ki0, ki1, kj0, kj1, accumulate, v); break;
                                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
                                default: break;
                            }
                        } else {
                            switch (nb) {
#define CASE(v) case v: fwd_full8(xb, xsh, C, yb, wc, k, r, ki0, ki1, kj0, kj1, accumulate, v); break;
                                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
                                default: break;
                            }
                        }
                    }
                } else for (int ki = ki0; ki < ki1; ki++) { /* one tap row at a time over the whole output row */
                    const int load = ki > ki0 || accumulate;
                    const float* xrow = xrow0 + (int64_t)ki * r * xsh;
                    const float* wr = wc + (int64_t)ki * k * C;
                    for (int ow = 0; ow < W; ow += pb) {
                        const int nb = W - ow < pb ? W - ow : pb;
                        const int kj0 = first_tap(ow + nb - 1, col_lo, r);
                        const int kj1 = clampi(end_tap(ow, col_hi, r), kj0, k);
                        const float* xb = xrow + (int64_t)ow * C;
                        float* yb = yrow + (int64_t)ow * C;
                        if (cw == 16) {
                            switch (nb) {
#define CASE(v) case v: fwd_row16(xb, C, yb, wr, r, kj0, kj1, load, v); break;
                                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
                                default: break;
                            }
                        } else {
                            switch (nb) {
#define CASE(v) case v: fwd_row8(xb, C, yb, wr, r, kj0, kj1, load, v); break;
                                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
                                default: break;
                            }
                        }
                    }
                }
                if (st) { /* per-channel sums of the finished output row (still in L1) */
                    for (int c = 0; c < cw; c += 8) {
                        __m256 sv = _mm256_setzero_ps(), ssv = _mm256_setzero_ps();
                        for (int ow = 0; ow < W; ow++) {
                            const __m256 v = _mm256_loadu_ps(yrow + (int64_t)ow * C + c);
                            sv = _mm256_add_ps(sv, v);
                            ssv = _mm256_fmadd_ps(v, v, ssv);
                        }
                        add_pd(st + c0 + c, sv);
                        add_pd(st + C + c0 + c, ssv);
                    }
                }
            }
        }
    }
}

/* -------------------------------------------------------------------------------- weight gradient */
AI void wg_block(const float* xs, int64_t xsh, const float* ds, int64_t dsh, int C, int r, int ki,
                 int kj0, int oh0, int oh1, int ow0, int ow1, float* out, const int KB) {
    __m256 acc[MAXB];
    for (int j = 0; j < KB; j++) acc[j] = _mm256_setzero_ps();
    for (int oh = oh0; oh < oh1; oh++) {
        const float* xr = xs + (int64_t)(oh + ki * r) * xsh + (int64_t)kj0 * r * C;
        const float* dr = ds + (int64_t)oh * dsh;
        for (int ow = ow0; ow < ow1; ow++) {
            const __m256 dv = _mm256_loadu_ps(dr + (int64_t)ow * C);
            const float* xp = xr + (int64_t)ow * C;
            for (int j = 0; j < KB; j++) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + (int64_t)j * r * C), dv, acc[j]);
        }
    }
    for (int j = 0; j < KB; j++) {
        float* o = out + (int64_t)(kj0 + j) * C;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[j]));
    }
}


#define MAXB16 6 /* kernel taps per 16-channel weight-gradient register block */
AI void wg_block16(const float* xs, int64_t xsh, const float* ds, int64_t dsh, int C, int r, int ki,
                   int kj0, int oh0, int oh1, int ow0, int ow1, float* out, const int KB) {
    __m256 a0[MAXB16], a1[MAXB16];
    for (int j = 0; j < KB; j++) { a0[j] = _mm256_setzero_ps(); a1[j] = _mm256_setzero_ps(); }
    for (int oh = oh0; oh < oh1; oh++) {
        const float* xr = xs + (int64_t)(oh + ki * r) * xsh + (int64_t)kj0 * r * C;
        const float* dr = ds + (int64_t)oh * dsh;
        for (int ow = ow0; ow < ow1; ow++) {
            const __m256 d0 = _mm256_loadu_ps(dr + (int64_t)ow * C), d1 = _mm256_loadu_ps(dr + (int64_t)ow * C + 8);
            const float* xp = xr + (int64_t)ow * C;
            for (int j = 0; j < KB; j++) {
                a0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + (int64_t)j * r * C), d0, a0[j]);
                a1[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + (int64_t)j * r * C + 8), d1, a1[j]);
            }
        }
    }
    for (int j = 0; j < KB; j++) {
        float* o = out + (int64_t)(kj0 + j) * C;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a0[j]));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a1[j]));
    }
}

/* gw[ki][kj] = sum_{n,oh,ow} x[n][oh+ki*r][ow+kj*r] * dy[n][oh][ow]  (x as in urlk_dw_fwd).
 * part: nthreads x k x k x C floats of per-thread partial sums; the caller adds them up. */
void urlk_dw_wgrad(const float* x, int64_t xsn, int64_t xsh, int row_lo, int row_hi, int col_lo, int col_hi,
                   const float* dy, int64_t dsn, int64_t dsh, int N, int H, int W, int C,
                   float* part, int k, int r, int nthreads) {
    const int cw = C % 16 == 0 ? 16 : 8; /* channels per work unit */
    const int cb = C / cw;
    const int maxb = cw == 16 ? MAXB16 : MAXB;
    const int64_t units = (int64_t)N * cb;
    const int64_t kkc = (int64_t)k * k * C;
    const int nblocks = (k + maxb - 1) / maxb, step = (k + nblocks - 1) / nblocks;
    /* output rows per pass: as many as keep the pass's input rows and output-gradient rows within ~64 KiB (L1 plus what the prefetchers keep coming) */
    const int64_t xrow = (int64_t)(W + (k - 1) * r) * cw * (int64_t)sizeof(float), drow = (int64_t)W * cw * (int64_t)sizeof(float);
    const int64_t fit = (64 * 1024 - (int64_t)(k - 1) * r * xrow) / (xrow + drow);
    const int row_step = fit < 1 ? 1 : (fit > H ? H : (int)fit);
    memset(part, 0, sizeof(float) * kkc * nthreads);
#pragma omp parallel num_threads(nthreads)
    {
        float* mine = part + kkc * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            const int c0 = (int)(u % cb) * cw;
            const int n = (int)(u / cb);
            const float* xs = x + n * xsn + c0;
            const float* ds = dy + n * dsn + c0;
            /* rows [oh_a, oh_b) per pass, so that the rows a pass reads stay in L1 (L2 bandwidth bounds the
               kernel otherwise); within a pass, all its rows per (tap row, tap block): few register flushes */
            for (int oh_a = 0; oh_a < H; oh_a += row_step) {
                const int oh_b = oh_a + row_step < H ? oh_a + row_step : H;
                for (int ki = 0; ki < k; ki++) {
                    /* output rows whose tap row ki reads data */
                    const int oh0 = clampi(row_lo - ki * r, oh_a, oh_b), oh1 = clampi(row_hi - ki * r, oh0, oh_b);
                    if (oh0 >= oh1) continue;
                    float* out = mine + (int64_t)ki * k * C + c0;
                    for (int kj0 = 0; kj0 < k; kj0 += step) { /* k taps in near-equal blocks */
                        const int kb = k - kj0 < step ? k - kj0 : step;
                        /* output columns where some tap of [kj0, kj0+kb) reads data */
                        const int ow0 = clampi(col_lo - (kj0 + kb - 1) * r, 0, W);
                        const int ow1 = clampi(col_hi - kj0 * r, ow0, W);
                        if (ow0 >= ow1) continue;
                        if (cw == 16) {
                            switch (kb) {
#define CASE(v) case v: wg_block16(xs, xsh, ds, dsh, C, r, ki, kj0, oh0, oh1, ow0, ow1, out, v); break;
                                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
                                default: break;
                            }
                        } else {
                            switch (kb) {
#define CASE(v) case v: wg_block(xs, xsh, ds, dsh, C, r, ki, kj0, oh0, oh1, ow0, ow1, out, v); break;
                                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
#undef CASE
                                default: break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------- element-wise parts */
/* out[p] = b + sum_i a[i] * y_i[p] over P pixels (all N x H x W x C contiguous); a: nb x C, b: C. */
void urlk_combine(float* out, const float* const* ys, int nb, const float* a, const float* b,
                  int64_t P, int C, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        float* o = out + p * C;
        for (int c = 0; c < C; c += 8) {
            __m256 v = _mm256_loadu_ps(b + c);
            for (int i = 0; i < nb; i++)
                v = _mm256_fmadd_ps(_mm256_loadu_ps(a + (int64_t)i * C + c), _mm256_loadu_ps(ys[i] + p * C + c), v);
            _mm256_storeu_ps(o + c, v);
        }
    }
}

/* Per-thread partial sums: part[t] = [sum g (C), sum g*y_0 (C), ..., sum g*y_{nb-1} (C)] in double. */
void urlk_dots(const float* g, const float* const* ys, int nb, int64_t P, int C, double* part, int nthreads) {
    const int64_t width = (int64_t)(nb + 1) * C;
    memset(part, 0, sizeof(double) * width * nthreads);
    const int64_t chunk = 64; /* pixels summed in float before the double accumulators */
    const int64_t nchunks = (P + chunk - 1) / chunk;
#pragma omp parallel num_threads(nthreads)
    {
        double* mine = part + width * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t q = 0; q < nchunks; q++) {
            const int64_t p0 = q * chunk, p1 = p0 + chunk < P ? p0 + chunk : P;
            for (int c = 0; c < C; c += 8) {
                __m256 sg = _mm256_setzero_ps();
                for (int64_t p = p0; p < p1; p++) sg = _mm256_add_ps(sg, _mm256_loadu_ps(g + p * C + c));
                add_pd(mine + c, sg);
                for (int i = 0; i < nb; i++) {
                    __m256 s = _mm256_setzero_ps();
                    const float* yi = ys[i];
                    for (int64_t p = p0; p < p1; p++)
                        s = _mm256_fmadd_ps(_mm256_loadu_ps(g + p * C + c), _mm256_loadu_ps(yi + p * C + c), s);
                    add_pd(mine + (int64_t)(i + 1) * C + c, s);
                }
            }
        }
    }
}

/* dst[n][h][w] = a * g + kk * y + cc per channel (dst: strided N x H x W x C window, g and y contiguous). */
void urlk_affine2(float* dst, int64_t dsn, int64_t dsh, const float* g, const float* y, const float* a,
                  const float* kk, const float* cc, int N, int H, int W, int C, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t t = 0; t < (int64_t)N * H; t++) {
        const int n = (int)(t / H), h = (int)(t % H);
        float* d = dst + n * dsn + (int64_t)h * dsh;
        const int64_t src = t * W * C;
        for (int w = 0; w < W; w++) {
            for (int c = 0; c < C; c += 8) {
                const int64_t o = src + (int64_t)w * C + c;
                __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(g + o), _mm256_loadu_ps(cc + c));
                v = _mm256_fmadd_ps(_mm256_loadu_ps(kk + c), _mm256_loadu_ps(y + o), v);
                _mm256_storeu_ps(d + (int64_t)w * C + c, v);
            }
        }
    }
}
/* ------------------------------------------------------------------------------------------- GELU */
/* exp(x) for x in [-88, 88] (Cephes' single-precision polynomial, ~1 ulp) */
AI __m256 exp_ps(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.0f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* GELU(h) = h * Phi(h) and its derivative Phi(h) + h * phi(h), with erf from Abramowitz & Stegun 7.1.26
   (|error| <= 1.5e-7, the approximation PyTorch's vectorised CPU erf uses) and one shared exp(-h^2/2). */
AI void gelu_grad8(__m256 x, __m256* a, __m256* d) {
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    const __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    const __m256 au = _mm256_andnot_ps(sign_mask, u);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(au, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    const __m256 e = exp_ps(_mm256_mul_ps(_mm256_mul_ps(u, u), _mm256_set1_ps(-1.0f)));  /* exp(-h^2/2) */
    const __m256 erf_abs = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
    const __m256 erf = _mm256_or_ps(erf_abs, _mm256_and_ps(u, sign_mask));
    const __m256 cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(erf, _mm256_set1_ps(1.0f)));
    *a = _mm256_mul_ps(x, cdf);
    *d = _mm256_fmadd_ps(_mm256_mul_ps(x, e), _mm256_set1_ps(0.39894228040143268f), cdf);
}

/* The GELU + GRN part of the MLP tail's backward pass, recomputing GELU(h) on the fly instead of storing it.
   h, go, out: N x P x D contiguous (P pixels, D channels, D % 8 == 0); f, scale: N x D; beta: D or NULL.
   Work is split over (sample, pixel chunk) units, whole contiguous pixel rows each. */
#define PCHUNK 32

/* out = GELU(h) * f[n] + beta: the GRN output (the second linear layer's input, for its weight gradient). */
void urlk_gelu_grn_out(const float* h, const float* f, const float* beta, float* out, int N, int64_t P, int D,
                       int nthreads) {
    const int64_t chunks = (P + PCHUNK - 1) / PCHUNK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t u = 0; u < (int64_t)N * chunks; u++) {
        const int n = (int)(u / chunks);
        const int64_t p0 = (u % chunks) * PCHUNK, p1 = p0 + PCHUNK < P ? p0 + PCHUNK : P;
        const float* fn = f + (int64_t)n * D;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t o = ((int64_t)n * P + p) * D;
            for (int c = 0; c < D; c += 8) {
                __m256 a, d;
                gelu_grad8(_mm256_loadu_ps(h + o + c), &a, &d);
                const __m256 b = beta ? _mm256_loadu_ps(beta + c) : _mm256_setzero_ps();
                _mm256_storeu_ps(out + o + c, _mm256_fmadd_ps(a, _mm256_loadu_ps(fn + c), b));
            }
        }
    }
}

/* dots[n][c] = sum_p go * GELU(h), sums[n][c] = sum_p go (float64, N x D each); go NULL: dots = sum_p GELU(h)^2
   (the GRN norm) and sums untouched. One unit per sample. */
void urlk_gelu_dots(const float* go, const float* h, double* dots, double* sums, int N, int64_t P, int D,
                    float* scratch, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int n = 0; n < N; n++) {
        float* acc = scratch + (int64_t)2 * D * omp_get_thread_num(); /* float partials per pixel chunk */
        double* dn = dots + (int64_t)n * D;
        double* sn = sums + (int64_t)n * D;
        memset(dn, 0, sizeof(double) * D);
        if (go) memset(sn, 0, sizeof(double) * D);
        for (int64_t p0 = 0; p0 < P; p0 += PCHUNK) {
            const int64_t p1 = p0 + PCHUNK < P ? p0 + PCHUNK : P;
            memset(acc, 0, sizeof(float) * 2 * D);
            for (int64_t p = p0; p < p1; p++) {
                const int64_t o = ((int64_t)n * P + p) * D;
                for (int c = 0; c < D; c += 8) {
                    __m256 a, d;
                    gelu_grad8(_mm256_loadu_ps(h + o + c), &a, &d);
                    const __m256 g = go ? _mm256_loadu_ps(go + o + c) : a;
                    _mm256_storeu_ps(acc + c, _mm256_fmadd_ps(g, a, _mm256_loadu_ps(acc + c)));
                    if (go) _mm256_storeu_ps(acc + D + c, _mm256_add_ps(g, _mm256_loadu_ps(acc + D + c)));
                }
            }
            for (int c = 0; c < D; c += 8) {
                add_pd(dn + c, _mm256_loadu_ps(acc + c));
                if (go) add_pd(sn + c, _mm256_loadu_ps(acc + D + c));
            }
        }
    }
}

/* gh = (go * f[n] + GELU(h) * scale[n]) * GELU'(h): the gradient through GRN and GELU. */
void urlk_gelu_grn_bwd(const float* go, const float* h, const float* f, const float* scale, float* gh,
                       int N, int64_t P, int D, int nthreads) {
    const int64_t chunks = (P + PCHUNK - 1) / PCHUNK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t u = 0; u < (int64_t)N * chunks; u++) {
        const int n = (int)(u / chunks);
        const int64_t p0 = (u % chunks) * PCHUNK, p1 = p0 + PCHUNK < P ? p0 + PCHUNK : P;
        const float* fn = f + (int64_t)n * D;
        const float* sn = scale + (int64_t)n * D;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t o = ((int64_t)n * P + p) * D;
            for (int c = 0; c < D; c += 8) {
                __m256 a, d;
                gelu_grad8(_mm256_loadu_ps(h + o + c), &a, &d);
                const __m256 ga = _mm256_fmadd_ps(_mm256_loadu_ps(go + o + c), _mm256_loadu_ps(fn + c),
                                                  _mm256_mul_ps(a, _mm256_loadu_ps(sn + c)));
                _mm256_storeu_ps(gh + o + c, _mm256_mul_ps(ga, d));
            }
        }
    }
}

/* --------------------------------------------------------------------------- BatchNorm backward parts */
/* Per (sample, channel) sums over the pixels of two N x P x C tensors: out = [sum g, sum g*x, sum x], each
   N x C float64. One unit per sample, float partials per pixel chunk. */
void urlk_nc_sums(const float* g, const float* x, double* out, int N, int64_t P, int C, float* scratch,
                  int nthreads) {
    const int64_t nc = (int64_t)N * C;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int n = 0; n < N; n++) {
        float* acc = scratch + (int64_t)3 * C * omp_get_thread_num();
        double* s0 = out + (int64_t)n * C;
        double* s1 = s0 + nc;
        double* s2 = s1 + nc;
        memset(s0, 0, sizeof(double) * C);
        memset(s1, 0, sizeof(double) * C);
        memset(s2, 0, sizeof(double) * C);
        for (int64_t p0 = 0; p0 < P; p0 += PCHUNK) {
            const int64_t p1 = p0 + PCHUNK < P ? p0 + PCHUNK : P;
            memset(acc, 0, sizeof(float) * 3 * C);
            for (int64_t p = p0; p < p1; p++) {
                const int64_t o = ((int64_t)n * P + p) * C;
                for (int c = 0; c < C; c += 8) {
                    const __m256 gv = _mm256_loadu_ps(g + o + c), xv = _mm256_loadu_ps(x + o + c);
                    _mm256_storeu_ps(acc + c, _mm256_add_ps(gv, _mm256_loadu_ps(acc + c)));
                    _mm256_storeu_ps(acc + C + c, _mm256_fmadd_ps(gv, xv, _mm256_loadu_ps(acc + C + c)));
                    _mm256_storeu_ps(acc + 2 * C + c, _mm256_add_ps(xv, _mm256_loadu_ps(acc + 2 * C + c)));
                }
            }
            for (int c = 0; c < C; c += 8) {
                add_pd(s0 + c, _mm256_loadu_ps(acc + c));
                add_pd(s1 + c, _mm256_loadu_ps(acc + C + c));
                add_pd(s2 + c, _mm256_loadu_ps(acc + 2 * C + c));
            }
        }
    }
}

/* out = kg[n] * g + kx * x + k0[n] per channel (kg, k0: N x C; kx: C; all tensors N x P x C contiguous). */
void urlk_affine_nc(const float* g, const float* x, const float* kg, const float* kx, const float* k0, float* out,
                    int N, int64_t P, int C, int nthreads) {
    const int64_t chunks = (P + PCHUNK - 1) / PCHUNK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t u = 0; u < (int64_t)N * chunks; u++) {
        const int n = (int)(u / chunks);
        const int64_t p0 = (u % chunks) * PCHUNK, p1 = p0 + PCHUNK < P ? p0 + PCHUNK : P;
        const float* kgn = kg + (int64_t)n * C;
        const float* k0n = k0 + (int64_t)n * C;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t o = ((int64_t)n * P + p) * C;
            for (int c = 0; c < C; c += 8) {
                __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(kgn + c), _mm256_loadu_ps(g + o + c), _mm256_loadu_ps(k0n + c));
                v = _mm256_fmadd_ps(_mm256_loadu_ps(kx + c), _mm256_loadu_ps(x + o + c), v);
                _mm256_storeu_ps(out + o + c, v);
            }
        }
    }
}
