#include "moe_mae_eval.h"
int moe_mae_evaluate(moe_mae_net *net, const moe_mae_cfg *mcfg, const saec_config *cfg,
                     const char *dir, cJSON *summary) { (void)net,(void)mcfg,(void)cfg,(void)dir,(void)summary; return 0; }
