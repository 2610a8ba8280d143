/* The list of task kinds, the choice of one by a preset's "kind" field, and
 * the generic operations that go through a task's kind. */
#include "kind.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const ach_task_kind *const task_kinds[] = {&task_kind_composite, &task_kind_dense_ar, NULL};

const ach_task_kind *task_kind_find(const char *name)
{
    for (int i = 0; task_kinds[i]; i++)
        if (!strcmp(task_kinds[i]->name, name)) return task_kinds[i];
    return NULL;
}

const ach_task_kind *task_kind_of(const cJSON *preset, const char *where, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(preset, "kind");
    if (!v) return &task_kind_composite;
    const ach_task_kind *k = cJSON_IsString(v) ? task_kind_find(v->valuestring) : NULL;
    if (k) return k;
    char list[200] = "";
    for (int i = 0; task_kinds[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? ", " : "", task_kinds[i]->name);
    if (!cJSON_IsString(v)) snprintf(err, errlen, "%s: field 'kind': expected a string, one of %s", where, list);
    else snprintf(err, errlen, "%s: field 'kind': '%s' is not a task kind (%s)", where, v->valuestring, list);
    return NULL;
}

int task_metric_index(const ach_task_kind *k, const char *name)
{
    for (int i = 0; k && i < k->nmetrics; i++)
        if (!strcmp(k->metrics[i].name, name)) return i;
    return -1;
}

void task_metric_names(const ach_task_kind *k, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < k->nmetrics && len < n; i++)
        len += snprintf(buf + len, n - len, "%s%s", i ? "|" : "", k->metrics[i].name);
}

uint64_t task_nexamples(const ach_task *t, int split) { return t->kind->split_size(t, split); }

const char *task_split_name(const ach_task *t, int split) { return t->kind->split_names[split]; }

void task_example(const ach_task *t, uint64_t seed, int split, uint64_t i, int32_t *tokens, int32_t *label,
                  ach_seq_info *info)
{
    t->kind->example(t, seed, split, i, tokens, label, info);
}

void task_vectors(const ach_task *t, uint64_t seed, int split, uint64_t i, float *x)
{
    t->kind->vectors(t, seed, split, i, x);
}

int task_trainable(const ach_task *t, char *err, size_t errlen)
{
    if (t->kind->shape == EXAMPLE_TOKENS) return 0;
    snprintf(err, errlen, "%s: task kind %s needs a model family that takes vectors; none is built yet", t->path,
             t->kind->name);
    return -1;
}

double task_metric(const ach_named_metrics *m, const char *name)
{
    int i = task_metric_index(m->kind, name);
    return i < 0 ? NAN : m->value[i];
}
