/* The optimizer against PyTorch: replays t/fixtures/NAME.optim.safetensors
 * (made by t/torch_optim.py with torch.optim.AdamW, clip_grad_norm_ and the
 * warmup + cosine schedule, in float64) with the engine built in double:
 * learning rate, loss and gradient norm at every step, and the final
 * weights, must agree to 1e-9. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "optim.h"
#include "tap.h"

static double f64_at(const st_file *f, const char *name, size_t i)
{
    const st_tensor *t = st_find(f, name);
    double v;
    memcpy(&v, (const char *)st_data(f, t) + 8 * i, 8);
    return v;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

static void replay(const char *name)
{
    char path[256], err[512];
    ach_model m;
    st_file fx;
    snprintf(path, sizeof path, "t/fixtures/%s.ckpt.safetensors", name);
    if (!ok(ach_ckpt_load(&m, &ach_cpu_kernels, path, err, sizeof err) == 0, "%s: checkpoint loads", name)) {
        diag("%s", err);
        return;
    }
    snprintf(path, sizeof path, "t/fixtures/%s.optim.safetensors", name);
    if (!ok(st_load(path, &fx, err, sizeof err) == 0, "%s: optimizer fixture loads", name)) {
        diag("%s", err);
        ach_model_free(&m);
        return;
    }
    cJSON *s = cJSON_Parse(st_meta(&fx, "settings"));
    ach_optim_cfg oc;
    ach_optim o;
    ach_optim_defaults(&oc);
    oc.lr_min = num(s, "lr_min"), oc.lr_max = num(s, "lr_max");
    oc.warmup_epochs = num(s, "warmup_epochs"), oc.total_epochs = num(s, "total_epochs");
    oc.beta1 = num(s, "beta1"), oc.beta2 = num(s, "beta2"), oc.eps = num(s, "eps");
    oc.weight_decay = num(s, "weight_decay"), oc.clip = num(s, "clip");
    cJSON_Delete(s);
    ach_optim_create(&o, &m, &oc);
    const st_tensor *tt = st_find(&fx, "tokens");
    int S = (int)tt->shape[0], B = (int)tt->shape[1], L = (int)tt->shape[2];
    ach_model_reserve(&m, B, L, err, sizeof err);
    const int *tok = st_data(&fx, tt), *lab = st_data(&fx, st_find(&fx, "labels"));
    double worst_loss = 0, worst_norm = 0, worst_lr = 0;
    for (int step = 0; step < S; step++) {
        double lr = ach_lr_at(&oc, step);
        double loss = ach_model_forward(&m, tok + step * B * L, lab + step * B, B, L);
        ach_model_backward(&m);
        double norm = ach_optim_step(&o, &m, lr);
        worst_lr = fmax(worst_lr, fabs(lr - f64_at(&fx, "lr", step)) / f64_at(&fx, "lr", step));
        worst_loss = fmax(worst_loss, fabs(loss - f64_at(&fx, "loss", step)) / f64_at(&fx, "loss", step));
        worst_norm = fmax(worst_norm, fabs(norm - f64_at(&fx, "gnorm", step)) / f64_at(&fx, "gnorm", step));
    }
    ok(worst_lr < 1e-12, "%s: learning rate schedule matches (rel %.2g)", name, worst_lr);
    ok(worst_loss < 1e-9, "%s: loss before each of %d steps matches (rel %.2g)", name, S, worst_loss);
    ok(worst_norm < 1e-9, "%s: gradient norm of each step matches (rel %.2g)", name, worst_norm);
    double worst_w = 0, maxw = 0;
    for (int i = 0; i < m.nparams; i++) {
        char key[ACH_NAME_MAX + 4];
        snprintf(key, sizeof key, "w.%s", m.params[i].name);
        for (size_t j = 0; j < m.params[i].numel; j++) {
            double want = f64_at(&fx, key, j);
            worst_w = fmax(worst_w, fabs(m.w[m.params[i].offset + j] - want));
            maxw = fmax(maxw, fabs(want));
        }
    }
    ok(worst_w / maxw < 1e-9, "%s: weights after %d steps match (max abs err %.2g)", name, S, worst_w);
    ach_optim_free(&o, &m);
    st_free(&fx);
    ach_model_free(&m);
}

int main(void)
{
    replay("m1_tiny");
    replay("m2_tiny");
    return done_testing();
}
