/* One instance's vectors (part of kernels_fast.c, which includes the fast_*.c
 * files once per instruction set, ISA and VL defined): the vector types V
 * (VL floats), VI (VL ints) and VU (V unaligned; kernels_fast.c undefines
 * the three after the instance), the per-ISA primitives (loads and stores
 * of whole or partial vectors, FMA, lane sums) and the vector math built on
 * them (exp, softplus, sigmoid, silu). */

#ifdef ISA /* nothing shared: the instances only */
typedef float F(vf) __attribute__((vector_size(VL * 4)));
typedef int F(vi) __attribute__((vector_size(VL * 4)));
typedef float F(vfu) __attribute__((vector_size(VL * 4), aligned(4), __may_alias__));
#define V F(vf)
#define VI F(vi)
#define VU F(vfu)

/* ---- per-ISA primitives ---- */
AI V F(ld)(const float *p) { return *(const VU *)p; }
AI void F(st)(float *p, V v) { *(VU *)p = v; }
AI V F(sel)(VI m, V a, V b) { return (V)((m & (VI)a) | (~m & (VI)b)); } /* m ? a : b */

#if VL == 16
AI V F(bc)(float x) { return _mm512_set1_ps(x); }
AI __mmask16 F(mask)(int n) { return (__mmask16)((1u << n) - 1); }
AI V F(ldn)(const float *p, int n) { return _mm512_maskz_loadu_ps(F(mask)(n), p); }
AI void F(stn)(float *p, V v, int n) { _mm512_mask_storeu_ps(p, F(mask)(n), v); }
AI V F(fma)(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
AI float F(hsum)(V v) { return _mm512_reduce_add_ps(v); }
AI float F(hmax)(V v) { return _mm512_reduce_max_ps(v); }
AI V F(vmax)(V a, V b) { return _mm512_max_ps(a, b); }
AI V F(vmin)(V a, V b) { return _mm512_min_ps(a, b); }
#elif VL == 8
AI V F(bc)(float x) { return _mm256_set1_ps(x); }
AI __m256i F(mask)(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
AI V F(ldn)(const float *p, int n) { return _mm256_maskload_ps(p, F(mask)(n)); }
AI void F(stn)(float *p, V v, int n) { _mm256_maskstore_ps(p, F(mask)(n), v); }
AI V F(fma)(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
AI float F(hsum)(V v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
AI float F(hmax)(V v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
AI V F(vmax)(V a, V b) { return _mm256_max_ps(a, b); }
AI V F(vmin)(V a, V b) { return _mm256_min_ps(a, b); }
#else
AI V F(bc)(float x) { return (V){x, x, x, x}; }
AI V F(ldn)(const float *p, int n)
{
    V r = {0};
    memcpy(&r, p, (size_t)n * sizeof(float));
    return r;
}
AI void F(stn)(float *p, V v, int n) { memcpy(p, &v, (size_t)n * sizeof(float)); }
AI V F(fma)(V a, V b, V c) { return a * b + c; }
AI float F(hsum)(V v)
{
    float s = v[0];
    for (int i = 1; i < VL; i++) s += v[i];
    return s;
}
AI float F(hmax)(V v)
{
    float s = v[0];
    for (int i = 1; i < VL; i++) s = v[i] > s ? v[i] : s;
    return s;
}
AI V F(vmax)(V a, V b) { return F(sel)(a > b, a, b); }
AI V F(vmin)(V a, V b) { return F(sel)(a < b, a, b); }
#endif

/* Load or store the first n (1..VL) lanes. */
AI V F(ldk)(const float *p, int n) { return n == VL ? F(ld)(p) : F(ldn)(p, n); }
AI void F(stk)(float *p, V v, int n)
{
    if (n == VL) F(st)(p, v);
    else F(stn)(p, v, n);
}
/* d[0, n) += g[0, n) */
AI void F(add_to)(float *d, const float *g, size_t n)
{
    for (size_t i = 0; i < n; i += VL) {
        int nl = n - i < VL ? (int)(n - i) : VL;
        F(stk)(d + i, F(ldk)(d + i, nl) + F(ldk)(g + i, nl), nl);
    }
}

/* exp(x): Cephes' expf (range reduction by ln 2 in two parts, degree-6
 * polynomial), about 2 ulp on [-86, 88]; 0 below -86 (no denormals: they
 * cost a microcode assist each), exp(88) above 88, NaN in -> NaN out.
 * AVX-512 scales by 2^n with vscalefps, the others build 2^n in the
 * exponent bits. */
AI V F(vexp)(V x)
{
#if VL == 16
    /* max/min return their second operand when one is NaN: x stays NaN */
    V xc = _mm512_min_ps(F(bc)(88.0f), _mm512_max_ps(F(bc)(-86.0f), x));
    V n = _mm512_roundscale_ps(xc * F(bc)(1.44269504088896341f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    const V magic = F(bc)(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    V xc = F(vmin)(F(vmax)(x, F(bc)(-86.0f)), F(bc)(88.0f));
    V t = F(fma)(xc, F(bc)(1.44269504088896341f), magic);
    V n = t - magic;
#endif
    V r = F(fma)(n, F(bc)(-0.693359375f), xc);
    r = F(fma)(n, F(bc)(2.12194440e-4f), r);
    /* the polynomial by Estrin's scheme: a shorter dependency chain than
     * Horner's lets more vectors be in flight */
    V r2 = r * r;
    V q0 = F(fma)(F(bc)(1.6666665459e-1f), r, F(bc)(5.0000001201e-1f));
    V q1 = F(fma)(F(bc)(8.3334519073e-3f), r, F(bc)(4.1665795894e-2f));
    V q2 = F(fma)(F(bc)(1.9875691500e-4f), r, F(bc)(1.3981999507e-3f));
    V p = F(fma)(F(fma)(q2, r2, q1), r2, q0);
    V y = F(fma)(p, r2, r) + F(bc)(1.0f);
#if VL == 16
    return _mm512_mask_mov_ps(_mm512_scalef_ps(y, n), _mm512_cmp_ps_mask(x, F(bc)(-86.0f), _CMP_LT_OQ), (V){0});
#else
    y = (V)((VI)y + (((VI)t - (VI)magic) << 23));
    y = F(sel)(x < F(bc)(-86.0f), (V){0}, y);
    return F(sel)(x != x, x, y);
#endif
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, by its
 * series to s^15 (relative error below 1e-8). */
AI V F(vlog1p01)(V e)
{
    V s = e / (F(bc)(2.0f) + e), s2 = s * s;
    V p = F(bc)(1.0f / 15);
    p = F(fma)(p, s2, F(bc)(1.0f / 13));
    p = F(fma)(p, s2, F(bc)(1.0f / 11));
    p = F(fma)(p, s2, F(bc)(1.0f / 9));
    p = F(fma)(p, s2, F(bc)(1.0f / 7));
    p = F(fma)(p, s2, F(bc)(1.0f / 5));
    p = F(fma)(p, s2, F(bc)(1.0f / 3));
    p = F(fma)(p, s2, F(bc)(1.0f));
    return (s + s) * p;
}

/* softplus with mamba_ssm's threshold (identity above 20), as
 * max(x, 0) + log1p(exp(-|x|)). */
AI V F(vsoftplus)(V x)
{
    V ax = (V)((VI)x & ((VI){0} + 0x7fffffff));
    V r = F(vmax)(x, (V){0}) + F(vlog1p01)(F(vexp)(-ax));
    return F(sel)(x > F(bc)(20.0f), x, r);
}
/* 1/d: the hardware estimate refined by Newton steps to about 1 ulp (a
 * vector division costs several times more) */
AI V F(vrcp)(V d)
{
#if VL == 16
    V r = _mm512_rcp14_ps(d);
#elif VL == 8
    V r = _mm256_rcp_ps(d); /* 12 bits: two steps */
    r = F(fma)(r, F(fma)(-d, r, F(bc)(1.0f)), r);
#else
    return F(bc)(1.0f) / d;
#endif
#if VL > 4
    return F(fma)(r, F(fma)(-d, r, F(bc)(1.0f)), r);
#endif
}
/* sigmoid(x) = 1/(1 + exp(-x)), exp as in vexp but with a degree-5
 * polynomial, 1 + r + r^2 P3(r), near-minimax on |r| <= ln 2 / 2 (1.05e-7
 * relative; bench/exp_poly_fit.py derives it): vexp's degree 7 is finer
 * than the final reciprocal needs. The sigmoid is within 3.1 ulp (2.3e-7
 * relative) over [-80, 80], against 2.5 with degree 7, and two FMAs
 * cheaper where the conv and the gate are bound by it. And a cheaper
 * reduction of -x: x clamped to [-86, 86] first (exp(-x) then stays a
 * normal number: no underflow mask, and 1 + exp(-x) is 1 beyond 86),
 * n = round(-x log2 e) by the 1.5 * 2^23 trick (an FMA and a subtraction
 * instead of a multiply and a two-uop round), and s = x + n ln 2 = -r
 * used directly, with the odd coefficients' signs flipped. AVX-512 clamps
 * in one vrangeps (the smaller magnitude of x and 86, with x's sign),
 * which takes a NaN to +-86: a NaN in x still reaches every caller's
 * result (silu, silu' and the gate multiply by x; softplus' sits beside
 * softplus(x), NaN itself). The others keep it NaN (max and min return
 * their second operand then). */
AI V F(vsigmoid)(V x)
{
    const V magic = F(bc)(12582912.0f);
#if VL == 16
    V xc = _mm512_range_ps(x, F(bc)(86.0f), 2); /* imm 2: the smaller |.|, sign of x */
#else
    V xc = F(vmin)(F(bc)(86.0f), F(vmax)(F(bc)(-86.0f), x));
#endif
    V t = F(fma)(xc, F(bc)(-1.44269504088896341f), magic);
    V n = t - magic;
    V s = F(fma)(n, F(bc)(0.693359375f), xc);
    s = F(fma)(n, F(bc)(-2.12194440e-4f), s);
    V s2 = s * s;
    V q0 = F(fma)(F(bc)(-0.16667114198207855f), s, F(bc)(0.499992311000824f));
    V q1 = F(fma)(F(bc)(-0.008312520571053028f), s, F(bc)(0.041890159249305725f));
    V p = F(fma)(q1, s2, q0);
    V y = F(fma)(p, s2, -s) + F(bc)(1.0f); /* exp(-s) / 2^n */
#if VL == 16
    y = _mm512_scalef_ps(y, n);
#else
    y = (V)((VI)y + (((VI)t - (VI)magic) << 23));
#endif
    return F(vrcp)(F(bc)(1.0f) + y);
}
AI V F(vsilu)(V x) { return x * F(vsigmoid)(x); }
/* silu'(x) = s (1 + x (1 - s)) = s + silu(x) (1 - s), from s = sigmoid(x)
 * and silu(x) = x s when the caller has both: one FMA and a subtraction */
AI V F(silu_grad_of)(V s, V silu) { return F(fma)(silu, F(bc)(1.0f) - s, s); }
AI V F(vsilu_grad)(V x)
{
    V s = F(vsigmoid)(x);
    return F(silu_grad_of)(s, x * s);
}
#endif
