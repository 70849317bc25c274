/* Command-line parsing and error reporting shared by the subcommands. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "saec/saec.h"

int cli_report(int rc) {
    if (rc == SAEC_OK) return rc;
    fprintf(stderr, "saec: error: %s\n", saec_error_message()[0] ? saec_error_message() : "failed");
    if (saec_error_hint()[0]) fprintf(stderr, "  hint: %s\n", saec_error_hint());
    return rc;
}

int cli_collect(int argc, char **argv, int first, cli_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            if (a->positional)
                return saec_fail(SAEC_ERR_USAGE, "options are written --KEY VALUE",
                                 "unexpected argument '%s'", arg);
            a->positional = arg;
            continue;
        }
        const char *key = arg + 2, *value = NULL;
        const char *eq = strchr(key, '=');
        if (a->n >= CLI_MAX_ARGS)
            return saec_fail(SAEC_ERR_USAGE, "use --config FILE.json", "too many arguments");
        if (eq) {
            size_t len = (size_t)(eq - key);
            if (len >= sizeof a->buf[0]) len = sizeof a->buf[0] - 1;
            memcpy(a->buf[a->n], key, len);
            a->buf[a->n][len] = '\0';
            key = a->buf[a->n];
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return saec_fail(SAEC_ERR_USAGE, "every option takes a value: --KEY VALUE",
                                 "option '--%s' lacks a value", key);
            value = argv[++i];
        }
        if (!strcmp(key, "config"))
            a->config_file = value;
        else if (!strcmp(key, "resume"))
            a->resume_dir = value;
        else {
            a->key[a->n] = key;
            a->value[a->n] = value;
            a->n++;
        }
    }
    return SAEC_OK;
}

int cli_apply(const cli_args *a, saec_config *cfg) {
    for (int i = 0; i < a->n; i++)
        SAEC_TRY(saec_config_set(cfg, a->key[i], a->value[i], "command line"));
    return SAEC_OK;
}

void cli_print_keys(void) {
    int n;
    const saec_config_key *keys = saec_config_keys(&n);
    printf("configuration keys (config.json name; on the command line --name or "
           "--name-with-dashes):\n");
    for (int i = 0; i < n; i++) {
        char opt[64];
        snprintf(opt, sizeof opt, "%s", keys[i].name);
        for (char *p = opt; *p; p++)
            if (*p == '_') *p = '-';
        const char *def = keys[i].def[0] ? keys[i].def : "\"\"";
        printf("  --%-18s %s (default %s", opt, keys[i].help, def);
        if (keys[i].choices) printf("; %s", keys[i].choices);
        printf(")\n");
    }
}

void cli_on_stop_signals(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
