/* The engine against PyTorch: `achilles grad` on each committed fixture
 * (t/fixtures, made by t/torch_ref.py in float64) must match the loss, the
 * logits and every gradient. Tolerance per tensor, relative to its largest
 * value: float32 arithmetic against a float64 reference. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "tap.h"

static double value(const st_file *f, const st_tensor *t, size_t i)
{
    const unsigned char *p = (const unsigned char *)st_data(f, t);
    if (t->dtype == ST_F64) {
        double d;
        memcpy(&d, p + 8 * i, 8);
        return d;
    }
    float v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

#define RTOL 5e-5 /* measured worst: 3.9e-6 (m2_paper) */

static void check_case(const char *name, const char *dir)
{
    char cmd[2048], ckpt[256], batch[256], want_p[256], got_p[512], err[512];
    snprintf(ckpt, sizeof ckpt, "t/fixtures/%s.ckpt.safetensors", name);
    snprintf(batch, sizeof batch, "t/fixtures/%s.batch.safetensors", name);
    snprintf(want_p, sizeof want_p, "t/fixtures/%s.expected.safetensors", name);
    snprintf(got_p, sizeof got_p, "%s/%s.grad.safetensors", dir, name);
    snprintf(cmd, sizeof cmd, "./build/achilles grad %s %s %s >/dev/null", ckpt, batch, got_p);
    if (!ok(system(cmd) == 0, "%s: achilles grad runs", name)) return;
    st_file want, got;
    if (!ok(st_load(want_p, &want, err, sizeof err) == 0, "%s: expected loads", name)) {
        diag("%s", err);
        return;
    }
    if (!ok(st_load(got_p, &got, err, sizeof err) == 0, "%s: output loads", name)) {
        diag("%s", err);
        st_free(&want);
        return;
    }
    ok(got.n == want.n, "%s: %d tensors written, %d expected", name, got.n, want.n);
    double worst = 0;
    for (int i = 0; i < want.n; i++) {
        const st_tensor *w = &want.tensors[i], *g = st_find(&got, w->name);
        if (!ok(g && st_numel(g) == st_numel(w), "%s: %s present with %zu values", name, w->name, st_numel(w))) continue;
        double maxw = 0, maxe = 0;
        for (size_t j = 0; j < st_numel(w); j++) {
            double a = value(&want, w, j), b = value(&got, g, j);
            maxw = fabs(a) > maxw ? fabs(a) : maxw;
            maxe = fabs(a - b) > maxe ? fabs(a - b) : maxe;
        }
        double rel = maxe / (maxw > 1e-6 ? maxw : 1e-6);
        worst = rel > worst ? rel : worst;
        ok(rel < RTOL && maxw > 0, "%s: %s matches (rel %.2g, max |ref| %.3g)", name, w->name, rel, maxw);
    }
    diag("%s: worst relative error %.3g", name, worst);
    st_free(&want);
    st_free(&got);
}

int main(void)
{
    char dir[] = "/tmp/achilles-fixtures-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const char *names[] = {"m1_tiny", "m2_tiny", "m1_paper", "m2_paper"};
    for (int i = 0; i < 4; i++) check_case(names[i], dir);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) diag("could not remove %s", dir);
    return done_testing();
}
