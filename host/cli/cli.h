/* Shared pieces of the `saec` subcommands. */
#ifndef SAEC_CLI_H
#define SAEC_CLI_H

#include "saec/config.h"

#define CLI_MAX_ARGS 128

/* Command-line `--KEY VALUE` / `--KEY=VALUE` pairs, with the flags --config and --resume. */
typedef struct {
    const char *key[CLI_MAX_ARGS];
    const char *value[CLI_MAX_ARGS];
    char buf[CLI_MAX_ARGS][128]; /* key text of `--KEY=VALUE` forms */
    int n;
    const char *config_file; /* NULL when absent */
    const char *resume_dir;  /* NULL when absent */
    const char *positional;  /* first non-flag argument, NULL when absent */
} cli_args;

/* Print the recorded error as "saec: error: ..." plus its hint; returns the error code. */
int cli_report(int rc);

int cli_collect(int argc, char **argv, int first, cli_args *args);
/* Apply the collected pairs to cfg (unknown keys and bad values fail with SAEC_ERR_USAGE). */
int cli_apply(const cli_args *args, saec_config *cfg);

/* handler for SIGINT and SIGTERM, once: a second signal terminates at once (commands that write
   a file stop between pieces and remove their temporary). */
void cli_on_stop_signals(void (*handler)(int));

/* The key table as help text. */
void cli_print_keys(void);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_probe(int argc, char **argv);

#endif
