/* The CPU backend of the kernel interface: the reference implementation.
 * Plain loops with a fixed summation order, so results are reproducible. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mathfn.h"

size_t mamba1_scan_work(int L, int N) { return (size_t)L * N + N + L; }
size_t mamba2_ssd_work(int L) { return 4 * (size_t)L * L + 3 * (size_t)L; }

static void *cpu_alloc(size_t bytes) { return calloc(1, bytes ? bytes : 1); }
static void cpu_release(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_zero(real *p, size_t n) { memset(p, 0, n * sizeof *p); }

static void embedding_forward(real *out, const int *tokens, const real *wte, int n, int D)
{
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * D, wte + (size_t)tokens[i] * D, D * sizeof *out);
}

static void embedding_backward(real *dwte, const real *dout, const int *tokens, int n, int D, int V)
{
    (void)V;
    for (int i = 0; i < n; i++) {
        real *dw = dwte + (size_t)tokens[i] * D;
        const real *g = dout + (size_t)i * D;
        for (int c = 0; c < D; c++) dw[c] += g[c];
    }
}

static void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int rows, int C, real eps)
{
    for (int r = 0; r < rows; r++) {
        const real *x = inp + (size_t)r * C;
        real *o = out + (size_t)r * C;
        real ss = 0;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        real s = (real)1 / r_sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * s * w[c];
        rstd[r] = s;
    }
}

/* y = x s w with s = (mean(x^2)+eps)^-1/2:
 * dx = s (w dy) - x s^3 / C * sum(w dy x) */
static void rmsnorm_backward(real *dinp, real *dw, const real *dout, const real *inp, const real *w,
                             const real *rstd, int rows, int C)
{
    for (int r = 0; r < rows; r++) {
        const real *x = inp + (size_t)r * C, *g = dout + (size_t)r * C;
        real *dx = dinp + (size_t)r * C;
        real s = rstd[r], dot = 0;
        for (int c = 0; c < C; c++) dot += g[c] * w[c] * x[c];
        real k = dot * s * s * s / C;
        for (int c = 0; c < C; c++) {
            dx[c] += s * w[c] * g[c] - k * x[c];
            dw[c] += g[c] * x[c] * s;
        }
    }
}

static void matmul_forward(real *out, const real *inp, int ldi, const real *w, const real *bias, int M, int K, int N)
{
    for (int m = 0; m < M; m++) {
        const real *x = inp + (size_t)m * ldi;
        real *o = out + (size_t)m * N;
        for (int n = 0; n < N; n++) {
            const real *wr = w + (size_t)n * K;
            real acc = bias ? bias[n] : 0;
            for (int k = 0; k < K; k++) acc += x[k] * wr[k];
            o[n] = acc;
        }
    }
}

static void matmul_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, int ldi,
                            const real *w, int M, int K, int N)
{
    for (int m = 0; m < M; m++) {
        const real *g = dout + (size_t)m * N, *x = inp + (size_t)m * ldi;
        real *dx = dinp + (size_t)m * ldi;
        for (int n = 0; n < N; n++) {
            real gn = g[n];
            if (gn == 0) continue;
            const real *wr = w + (size_t)n * K;
            real *dwr = dw + (size_t)n * K;
            for (int k = 0; k < K; k++) {
                dx[k] += gn * wr[k];
                dwr[k] += gn * x[k];
            }
            if (dbias) dbias[n] += gn;
        }
    }
}

static void conv1d_forward(real *out, const real *inp, int ldi, const real *w, const real *bias, int B, int L,
                           int C, int K)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            real *o = out + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++) o[c] = bias[c];
            for (int j = 0; j < K; j++) {
                int ts = t - K + 1 + j;
                if (ts < 0) continue;
                const real *x = inp + ((size_t)b * L + ts) * ldi;
                for (int c = 0; c < C; c++) o[c] += w[(size_t)c * K + j] * x[c];
            }
        }
}

static void conv1d_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, int ldi,
                            const real *w, int B, int L, int C, int K)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const real *g = dout + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++) dbias[c] += g[c];
            for (int j = 0; j < K; j++) {
                int ts = t - K + 1 + j;
                if (ts < 0) continue;
                const real *x = inp + ((size_t)b * L + ts) * ldi;
                real *dx = dinp + ((size_t)b * L + ts) * ldi;
                for (int c = 0; c < C; c++) {
                    dx[c] += w[(size_t)c * K + j] * g[c];
                    dw[(size_t)c * K + j] += x[c] * g[c];
                }
            }
        }
}

static void silu_forward(real *out, const real *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = silu_r(inp[i]);
}

static void silu_backward(real *dinp, const real *dout, const real *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * silu_grad_r(inp[i]);
}

static void gate_forward(real *out, const real *y, const real *z, int ldz, int rows, int C)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++)
            out[(size_t)r * C + c] = y[(size_t)r * C + c] * silu_r(z[(size_t)r * ldz + c]);
}

static void gate_backward(real *dy, real *dz, const real *dout, const real *y, const real *z, int ldz, int rows,
                          int C)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)r * C + c, iz = (size_t)r * ldz + c;
            dy[i] += dout[i] * silu_r(z[iz]);
            dz[iz] += dout[i] * y[i] * silu_grad_r(z[iz]);
        }
}

static void add_inplace(real *x, const real *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void mamba1_scan_forward(real *y, const real *u, const real *dt, const real *A_log, const real *Bm,
                                const real *Cm, int ldbc, const real *D, const unsigned char *block, int B,
                                int L, int Di, int N, real *work)
{
    real *h = work;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < Di; d++) {
            const real *al = A_log + (size_t)d * N;
            for (int n = 0; n < N; n++) h[n] = 0;
            for (int t = 0; t < L; t++) {
                size_t row = (size_t)b * L + t, i = row * Di + d;
                real delta = softplus_r(dt[i]), ut = u[i], acc = 0;
                const real *Bt = Bm + row * ldbc, *Ct = Cm + row * ldbc;
                int blocked = block && block[row];
                for (int n = 0; n < N; n++) {
                    real carried = mamba1_decay_r(delta, al[n]) * h[n];
                    real full = carried + delta * Bt[n] * ut;
                    acc += Ct[n] * full;
                    h[n] = blocked ? carried : full; /* blocked: the input term stops here */
                }
                y[i] = acc + D[d] * ut;
            }
        }
}

/* Recomputes the states of one (b, d) forward, then walks back in time with
 * gh = dL/dh_t. Memory stays O(L N) instead of storing every state. */
static void mamba1_scan_backward(real *du, real *ddt, real *dA_log, real *dBm, real *dCm, real *dD,
                                 const real *dy, const real *u, const real *dt, const real *A_log,
                                 const real *Bm, const real *Cm, int ldbc, const real *D,
                                 const unsigned char *block, int B, int L, int Di, int N, real *work)
{
    real *hs = work, *gh = work + (size_t)L * N, *delta = gh + N;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < Di; d++) {
            const real *al = A_log + (size_t)d * N;
            real *gal = dA_log + (size_t)d * N;
            for (int t = 0; t < L; t++) {
                size_t row = (size_t)b * L + t, i = row * Di + d;
                const real *Bt = Bm + row * ldbc;
                real *h = hs + (size_t)t * N;
                delta[t] = softplus_r(dt[i]);
                int blocked = block && block[row];
                for (int n = 0; n < N; n++) { /* the carried state */
                    real prev = t ? h[n - N] : 0;
                    h[n] = mamba1_decay_r(delta[t], al[n]) * prev + (blocked ? 0 : delta[t] * Bt[n] * u[i]);
                }
            }
            for (int n = 0; n < N; n++) gh[n] = 0;
            for (int t = L - 1; t >= 0; t--) {
                size_t row = (size_t)b * L + t, i = row * Di + d;
                const real *Bt = Bm + row * ldbc, *Ct = Cm + row * ldbc, *h = hs + (size_t)t * N;
                real *dBt = dBm + row * ldbc, *dCt = dCm + row * ldbc;
                real g = dy[i], ut = u[i], dl = delta[t];
                real gu = g * D[d], gdelta = 0;
                int blocked = block && block[row];
                dD[d] += g * ut;
                for (int n = 0; n < N; n++) {
                    real A = -r_exp(al[n]), dA = mamba1_decay_r(dl, al[n]), prev = t ? h[n - N] : 0;
                    real full = dA * prev + dl * Bt[n] * ut; /* the state y_t reads */
                    dCt[n] += g * full;
                    real ghn = gh[n] + g * Ct[n];        /* dL/d full */
                    real gin = blocked ? g * Ct[n] : ghn; /* dL/d input term: blocked, only y_t */
                    gdelta += ghn * prev * dA * A + gin * Bt[n] * ut;
                    gal[n] += ghn * prev * dA * dl * A; /* dA/dA_log = A */
                    dBt[n] += gin * dl * ut;
                    gu += gin * dl * Bt[n];
                    gh[n] = ghn * dA;
                }
                du[i] += gu;
                ddt[i] += gdelta * softplus_grad_r(dt[i]);
            }
        }
}

/* Shared by SSD forward and backward for one (b, h): delta, the decay
 * matrix Lm[t,s] = exp(sum_{k=s+1..t} delta_k A) (s <= t), and
 * M[t,s] = G[t,s] Lm[t,s] delta_s. */
static void ssd_head_setup(real *delta, real *Lm, real *M, const real *G, const real *dt, int ldt,
                           real dt_bias, real A, const unsigned char *block, int L)
{
    for (int t = 0; t < L; t++) delta[t] = softplus_r(dt[(size_t)t * ldt] + dt_bias);
    for (int t = 0; t < L; t++) {
        real seg = 0;
        for (int s = t; s >= 0; s--) {
            Lm[t * L + s] = r_exp(seg);
            seg += delta[s] * A;
        }
        for (int s = 0; s <= t; s++)
            M[t * L + s] = s < t && block && block[s] ? 0 : G[t * L + s] * Lm[t * L + s] * delta[s];
    }
}

/* G[t,s] = C_t . B_s for s <= t */
static void ssd_gram(real *G, const real *Bm, const real *Cm, int ldx, int L, int N)
{
    for (int t = 0; t < L; t++)
        for (int s = 0; s <= t; s++) {
            real acc = 0;
            for (int n = 0; n < N; n++) acc += Cm[(size_t)t * ldx + n] * Bm[(size_t)s * ldx + n];
            G[t * L + s] = acc;
        }
}

static void mamba2_ssd_forward(real *y, const real *x, const real *Bm, const real *Cm, int ldx, const real *dt,
                               int ldt, const real *dt_bias, const real *A_log, const real *D,
                               const unsigned char *block, int B, int L, int H, int P, int N, real *work)
{
    real *G = work, *Lm = G + L * L, *M = Lm + L * L, *delta = M + L * L;
    int Di = H * P;
    for (int b = 0; b < B; b++) {
        size_t r0 = (size_t)b * L;
        ssd_gram(G, Bm + r0 * ldx, Cm + r0 * ldx, ldx, L, N);
        for (int h = 0; h < H; h++) {
            ssd_head_setup(delta, Lm, M, G, dt + r0 * ldt + h, ldt, dt_bias[h], -r_exp(A_log[h]),
                           block ? block + r0 : NULL, L);
            for (int t = 0; t < L; t++) {
                real *yt = y + (r0 + t) * Di + h * P;
                const real *xt = x + (r0 + t) * ldx + h * P;
                for (int p = 0; p < P; p++) yt[p] = D[h] * xt[p];
                for (int s = 0; s <= t; s++) {
                    const real *xs = x + (r0 + s) * ldx + h * P;
                    real m = M[t * L + s];
                    for (int p = 0; p < P; p++) yt[p] += m * xs[p];
                }
            }
        }
    }
}

static void mamba2_ssd_backward(real *dx, real *dBm, real *dCm, real *ddt, real *ddt_bias, real *dA_log,
                                real *dD, const real *dy, const real *x, const real *Bm, const real *Cm, int ldx,
                                const real *dt, int ldt, const real *dt_bias, const real *A_log, const real *D,
                                const unsigned char *block, int B, int L, int H, int P, int N, real *work)
{
    real *G = work, *Lm = G + L * L, *M = Lm + L * L, *gG = M + L * L;
    real *delta = gG + L * L, *gdelta = delta + L, *ga = gdelta + L;
    int Di = H * P;
    for (int b = 0; b < B; b++) {
        size_t r0 = (size_t)b * L;
        ssd_gram(G, Bm + r0 * ldx, Cm + r0 * ldx, ldx, L, N);
        for (int i = 0; i < L * L; i++) gG[i] = 0;
        for (int h = 0; h < H; h++) {
            real A = -r_exp(A_log[h]), gA = 0;
            const unsigned char *blk = block ? block + r0 : NULL;
            ssd_head_setup(delta, Lm, M, G, dt + r0 * ldt + h, ldt, dt_bias[h], A, blk, L);
            for (int t = 0; t < L; t++) gdelta[t] = ga[t] = 0;
            for (int t = 0; t < L; t++) {
                const real *gyt = dy + (r0 + t) * Di + h * P, *xt = x + (r0 + t) * ldx + h * P;
                real *dxt = dx + (r0 + t) * ldx + h * P;
                real gd = 0, run = 0;
                for (int p = 0; p < P; p++) {
                    gd += gyt[p] * xt[p];
                    dxt[p] += D[h] * gyt[p];
                }
                dD[h] += gd;
                for (int s = 0; s <= t; s++) {
                    const real *xs = x + (r0 + s) * ldx + h * P;
                    real *dxs = dx + (r0 + s) * ldx + h * P;
                    real m = M[t * L + s], gM = 0;
                    for (int p = 0; p < P; p++) {
                        gM += gyt[p] * xs[p];
                        dxs[p] += m * gyt[p];
                    }
                    real lm = Lm[t * L + s];
                    if (s < t && blk && blk[s]) gM = 0; /* a blocked entry is a constant 0 */
                    gG[t * L + s] += gM * lm * delta[s];
                    gdelta[s] += gM * G[t * L + s] * lm;
                    /* d/d(segment sum) of Lm is Lm; it reaches a_k for s < k <= t:
                     * add the running sum over s' < k to ga[k]. */
                    real q = gM * G[t * L + s] * delta[s] * lm;
                    if (s > 0) ga[s] += run;
                    run += q;
                }
            }
            for (int k = 0; k < L; k++) {
                gdelta[k] += ga[k] * A;
                gA += ga[k] * delta[k];
                real g = gdelta[k] * softplus_grad_r(dt[(r0 + k) * ldt + h] + dt_bias[h]);
                ddt[(r0 + k) * ldt + h] += g;
                ddt_bias[h] += g;
            }
            dA_log[h] += gA * A;
        }
        for (int t = 0; t < L; t++)
            for (int s = 0; s <= t; s++) {
                real g = gG[t * L + s];
                const real *Bs = Bm + (r0 + s) * ldx, *Ct = Cm + (r0 + t) * ldx;
                real *dBs = dBm + (r0 + s) * ldx, *dCt = dCm + (r0 + t) * ldx;
                for (int n = 0; n < N; n++) {
                    dCt[n] += g * Bs[n];
                    dBs[n] += g * Ct[n];
                }
            }
    }
}

static void posenc_forward(real *x, const real *pe, int B, int L, int D)
{
    for (int b = 0; b < B; b++) add_inplace(x + (size_t)b * L * D, pe, (size_t)L * D);
}

static void posenc_backward(real *dpe, const real *dx, int B, int L, int D)
{
    for (int b = 0; b < B; b++) add_inplace(dpe, dx + (size_t)b * L * D, (size_t)L * D);
}

static void rows_replace(real *dst, const real *src, const unsigned char *mask, int rows, int C)
{
    for (int r = 0; r < rows; r++)
        if (mask[r]) memcpy(dst + (size_t)r * C, src + (size_t)r * C, C * sizeof *dst);
}

static void last_forward(real *out, const real *inp, int B, int L, int C)
{
    for (int b = 0; b < B; b++) memcpy(out + (size_t)b * C, inp + ((size_t)b * L + L - 1) * C, C * sizeof *out);
}

static void last_backward(real *dinp, const real *dout, int B, int L, int C)
{
    for (int b = 0; b < B; b++) add_inplace(dinp + ((size_t)b * L + L - 1) * C, dout + (size_t)b * C, C);
}

static void crossentropy_forward(real *losses, real *probs, const real *logits, const int *labels, int B, int V)
{
    for (int b = 0; b < B; b++) {
        const real *z = logits + (size_t)b * V;
        real *p = probs + (size_t)b * V;
        real mx = z[0], sum = 0;
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) sum += (p[v] = r_exp(z[v] - mx));
        for (int v = 0; v < V; v++) p[v] /= sum;
        losses[b] = log(sum) + mx - z[labels[b]];
    }
}

static void crossentropy_backward(real *dlogits, const real *probs, const int *labels, int B, int V, real scale)
{
    for (int b = 0; b < B; b++) {
        for (int v = 0; v < V; v++) dlogits[(size_t)b * V + v] += scale * probs[(size_t)b * V + v];
        dlogits[(size_t)b * V + labels[b]] -= scale;
    }
}

static double sumsq(const real *x, size_t n)
{
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
    return acc;
}

static void adamw_update(real *w, real *m, real *v, const real *g, size_t n, real gscale, real lr, real wd, real b1,
                         real b2, real eps, real step_size, real bc2_sqrt)
{
    real decay = 1 - lr * wd;
    for (size_t i = 0; i < n; i++) adamw_elem_r(&w[i], &m[i], &v[i], g[i] * gscale, decay, b1, b2, eps, step_size, bc2_sqrt);
}

const ach_kernels ach_cpu_kernels = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .zero = cpu_zero,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .conv1d_forward = conv1d_forward,
    .conv1d_backward = conv1d_backward,
    .silu_forward = silu_forward,
    .silu_backward = silu_backward,
    .gate_forward = gate_forward,
    .gate_backward = gate_backward,
    .add_inplace = add_inplace,
    .mamba1_scan_forward = mamba1_scan_forward,
    .mamba1_scan_backward = mamba1_scan_backward,
    .mamba2_ssd_forward = mamba2_ssd_forward,
    .mamba2_ssd_backward = mamba2_ssd_backward,
    .posenc_forward = posenc_forward,
    .posenc_backward = posenc_backward,
    .rows_replace = rows_replace,
    .last_forward = last_forward,
    .last_backward = last_backward,
    .crossentropy_forward = crossentropy_forward,
    .crossentropy_backward = crossentropy_backward,
    .sumsq = sumsq,
    .adamw_update = adamw_update,
};
