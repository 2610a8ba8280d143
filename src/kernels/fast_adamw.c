/* AdamW's update (part of kernels_fast.c, once per instruction set). */

#ifdef ISA /* nothing shared: the instances only */
/* The reference's operations in the same order (no FMA): bit-identical. */
static void F(adamw_update)(real *w, real *m, real *v, const real *g, size_t n, real gscale, real lr, real wd,
                            real b1, real b2, real eps, real step_size, real bc2_sqrt)
{
    float decay = 1 - lr * wd;
    V gs = F(bc)(gscale), dc = F(bc)(decay), vb1 = F(bc)(b1), vb2 = F(bc)(b2), c1 = F(bc)(1 - b1),
      c2 = F(bc)(1 - b2), ss = F(bc)(step_size), bc2 = F(bc)(bc2_sqrt), ve = F(bc)(eps);
    for (size_t i = 0; i < n; i += VL) {
        int nl = n - i < VL ? (int)(n - i) : VL;
        V gi = F(ldk)(g + i, nl) * gs;
        V wi = F(ldk)(w + i, nl) * dc;
        V mi = vb1 * F(ldk)(m + i, nl) + c1 * gi;
        V vi = vb2 * F(ldk)(v + i, nl) + c2 * gi * gi;
        V sq;
#if VL == 16
        sq = _mm512_sqrt_ps(vi);
#elif VL == 8
        sq = _mm256_sqrt_ps(vi);
#else
        for (int k = 0; k < VL; k++) sq[k] = sqrtf(vi[k]);
#endif
        wi -= ss * mi / (sq / bc2 + ve);
        F(stk)(w + i, wi, nl);
        F(stk)(m + i, mi, nl);
        F(stk)(v + i, vi, nl);
    }
}
#endif
