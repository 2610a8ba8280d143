/* Model checkpoints as safetensors with mamba_ssm's parameter names: every
 * tensor as F32, lm_head.weight written as a copy of the tied embedding, and
 * the model config as JSON in __metadata__["config"]. Files without it (a
 * mamba_ssm state_dict saved with safetensors) load too. */
#ifndef ACH_CHECKPOINT_H
#define ACH_CHECKPOINT_H
#include <stddef.h>

#include "model.h"
#include "safetensors.h"

/* Tensors whose names start with this belong to a training run's state
 * (optimizer moments), not to the model: loaders skip them. To load a run
 * checkpoint in PyTorch, drop these keys. */
#define ACH_OPTIM_PREFIX "optimizer."

/* Writes the model, then `extra` tensors and metadata, atomically (temp +
 * rename). 0 or -1 with a message. */
int ach_ckpt_save(const ach_model *m, const char *path, const st_entry *extra, int nextra,
                  const char *const *meta_keys, const char *const *meta_vals, int nmeta, char *err, size_t errlen);

/* Reads PATH, checks every tensor against its config and creates the model
 * (*m is created on success only). The config is the one in the metadata;
 * failing that (a plain mamba_ssm state_dict), mamba_ssm's config.json in
 * PATH's directory; failing that, the one the tensor shapes determine. The
 * last two print a note on stderr. Messages name the file, the tensor or
 * field, and the problem. */
int ach_ckpt_load(ach_model *m, const ach_kernels *k, const char *path, char *err, size_t errlen);
/* The same from a file already read from path. */
int ach_ckpt_load_st(ach_model *m, const ach_kernels *k, const st_file *f, const char *path, char *err,
                     size_t errlen);

/* An F32 file tensor into n = st_numel(t) reals (unaligned-safe). */
void ach_tensor_to_real(const st_file *f, const st_tensor *t, real *out);

/* Host copy of a model tensor as float32 (n values). */
void ach_param_to_f32(const ach_model *m, const ach_param *p, float *out);
#endif
