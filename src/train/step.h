/* One training step: forward, backward, clipping and AdamW, with the
 * device left alone between its kernels (no host copy in between), so a
 * backend with graphs (kernels.h graph_run) records it once per shape and
 * replays it. */
#ifndef ACH_STEP_H
#define ACH_STEP_H
#include "model.h"
#include "optim.h"

/* A step on host tokens [B, L] and labels [B] at learning rate lr, with the
 * model's current blocking. Returns the mean loss before the update; *gnorm
 * gets the gradient norm before clipping (NaN/Inf pass through). */
double ach_train_step(ach_model *m, ach_optim *o, const int *tokens, const int *labels, int B, int L, double lr,
                      double *gnorm);
/* The same on any batch (model.h); a batch without what the model takes
 * gives NaN and no update. */
double ach_train_step_batch(ach_model *m, ach_optim *o, const ach_batch *b, double lr, double *gnorm);
#endif
