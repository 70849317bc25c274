/* `saec inspect FILE_OR_DIR`. */
#include <stdio.h>

#include "cli.h"
#include "inspect.h"
#include "saec/saec.h"

int cmd_inspect(int argc, char **argv) {
    if (argc != 3) {
        saec_fail(SAEC_ERR_USAGE, "usage: saec inspect FILE.h5 | FILE.safetensors | RUN_DIR",
                  "inspect takes exactly one path");
        return cli_report(SAEC_ERR_USAGE);
    }
    return cli_report(saec_inspect(argv[2], stdout));
}
