/* The achilles command: dispatches to the subcommands (cli_*.c).
 * Exit status: 0 success, 1 failure, 2 bad usage (reason on stderr). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name, *args, *summary;
    int (*run)(int, char **);
    const char **help;
} commands[] = {
    {"init", "[options] OUT.safetensors", "write a freshly initialised model checkpoint", cli_init, &cli_init_help},
    {"grad", "CKPT BATCH OUT", "loss, logits and every parameter gradient of a batch", cli_grad, &cli_grad_help},
    {"train", "[options] [key=value ...]", "train one run with the paper's recipe", cli_train, &cli_train_help},
    {"data", "[options]", "show a task preset's sequences, labels and per-pair counts", cli_data, &cli_data_help},
    {"analyze", "SOURCE ANALYSIS [options]", "conv cosine, hidden attention, blocking or substitution of a model",
     cli_analyze, &cli_analyze_help},
    {"bench", "[options]", "time training steps: sequences/s, GFLOP/s, peak memory", cli_bench, &cli_bench_help},
    {"sweep", "SPEC|key=v1,v2,...|DIR [opts]", "a grid of runs: local workers, Slurm array, status",
     cli_sweep, &cli_sweep_help},
    {"phase", "DIR [options]", "pair-43 phase diagrams (layers x gamma) beside the paper's Fig. 3", cli_phase,
     &cli_phase_help},
    {"report", "DIR... [--out FILE]", "REPORT.md: our numbers beside the paper's, with figures", cli_report,
     &cli_report_help},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: achilles COMMAND [options]\n\nCommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-34s %s\n", left, commands[i].summary);
    }
    fprintf(f, "  %-34s %s\n", "help [COMMAND]", "this text, or a command's options");
    fprintf(f, "\nRun 'achilles help COMMAND' or 'achilles COMMAND --help' for details; 'man achilles' for all.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        for (int i = 0; argc > 2 && i < NCOMMANDS; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                fputs(*commands[i].help, stdout);
                return 0;
            }
        if (argc > 2) {
            fprintf(stderr, "achilles: help: unknown command '%s'\n\n", argv[2]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "achilles: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
