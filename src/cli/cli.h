/* The achilles subcommands: each is `int cli_NAME(argc, argv)` with argv[0]
 * the command name, returning the exit status: 0 success, 1 failure,
 * 2 bad usage (CLI_EXIT_USAGE). Each has its --help text. */
#ifndef ACH_CLI_H
#define ACH_CLI_H

#define CLI_EXIT_USAGE 2

int cli_init(int argc, char **argv);
int cli_grad(int argc, char **argv);
int cli_train(int argc, char **argv);
extern const char *cli_init_help, *cli_grad_help, *cli_train_help;
int cli_data(int argc, char **argv);
extern const char *cli_data_help;
int cli_analyze(int argc, char **argv);
extern const char *cli_analyze_help;
int cli_bench(int argc, char **argv);
extern const char *cli_bench_help;
int cli_sweep(int argc, char **argv);
int cli_phase(int argc, char **argv);
int cli_report(int argc, char **argv);
extern const char *cli_sweep_help, *cli_phase_help, *cli_report_help;

/* Prints "achilles: " fmt(arg), then help, to stderr; returns 2. */
int cli_usage_error(const char *help, const char *fmt, const char *arg);
/* Strict number parsing: 0, or -1 if s is not entirely a number. */
int cli_parse_int(const char *s, int *out);
int cli_parse_double(const char *s, double *out);
#endif
