/* Depthwise convolution kernels for training the Dilated Reparam Block on x86-64 CPUs with AVX2 + FMA.
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
   weight row and the output row in L1. */
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
