/* The SAE's data-parallel pieces (as llm.c keeps zero.cuh apart): the communicator, ZeRO-1
   sharding of the Adam moments, gathering them for a checkpoint, and the cross-rank statistics
   and gradient sums of the step. Every collective of the SAE's step is here (separate mode's
   per-bucket ones are in sae_separate.c); without a distributed communicator each is a no-op. */
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "sae_internal.h"

int sae_set_comm(saec_sae *sae, saec_comm *comm) {
    sae->comm = comm;
    sae->world = saec_comm_size(comm);
    sae->distributed = strcmp(saec_comm_backend_name(comm), "single") != 0;
    const int W = sae->hp.optimizer_shards > 1 ? sae->hp.optimizer_shards : 1;
    if (W > 1 && W != sae->world)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "the SAE's optimizer state is cut into %d shards for %d ranks", W,
                         sae->world);
    if (W > 1) {
        const int64_t lo = (int64_t)saec_comm_rank(comm) * sae->shard;
        const int64_t left = sae->n_params - lo;
        sae->shard_lo = lo;
        sae->shard_count = left < 0 ? 0 : left < sae->shard ? left : sae->shard;
    }
    return SAEC_OK;
}

int sae_gather_optimizer(saec_sae *sae, float **adam_m, float **adam_v) {
    *adam_m = *adam_v = NULL;
    if (!sae_sharded(sae)) return SAEC_OK;
    saec_dev *dev = sae->dev;
    const int root = saec_comm_rank(sae->comm) == 0;
    const size_t whole = sizeof(float) * (size_t)sae->n_params;
    float *all = NULL, *host[2] = {NULL, NULL};
    int rc = sae_dev_alloc(sae, (void **)&all, sizeof(float) * (size_t)sae->arena_len);
    const float *moment[2] = {sae->adam_m, sae->adam_v};
    for (int i = 0; i < 2 && rc == SAEC_OK; i++) {
        rc =
            dev->ops->copy(dev, all + sae->shard_lo, moment[i], sizeof(float) * (size_t)sae->shard);
        if (rc == SAEC_OK) rc = saec_comm_allgather(sae->comm, all, sae->shard, SAEC_DT_F32);
        if (rc == SAEC_OK && root) {
            host[i] = malloc(whole);
            rc = host[i] ? dev->ops->download(dev, host[i], all, whole)
                         : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory gathering Adam state");
        }
    }
    if (all) dev->ops->free(dev, all);
    if (rc != SAEC_OK) {
        free(host[0]), free(host[1]);
        return rc;
    }
    *adam_m = host[0], *adam_v = host[1];
    return SAEC_OK;
}

int sae_upload_optimizer(saec_sae *sae, const float *adam_m, const float *adam_v) {
    saec_dev *dev = sae->dev;
    const size_t bytes = sizeof(float) * (size_t)sae->shard_count;
    SAEC_TRY(dev->ops->upload(dev, sae->adam_m, adam_m + sae->shard_lo, bytes));
    return dev->ops->upload(dev, sae->adam_v, adam_v + sae->shard_lo, bytes);
}

int sae_recon(saec_sae *sae, const float *x, const float *xhat, const float *mu, int64_t n,
              float grad_scale, double *stats, float *grad) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d;
    if (!sae->distributed || !grad)
        return SAEC_OP(dev, recon_loss_grad, x, xhat, mu, n, d, grad_scale, stats, grad);
    SAEC_TRY(SAEC_OP(dev, recon_loss_grad, x, xhat, mu, n, d, grad_scale, stats, NULL));
    SAEC_TRY(saec_comm_allreduce(sae->comm, stats, SAEC_STAT_COUNT, SAEC_DT_F64, SAEC_RED_SUM));
    return SAEC_OP(dev, recon_grad, x, xhat, n, d, grad_scale, stats, grad);
}

/* (state every rank must hold alike, updated from its batch) */
int sae_mean_over_ranks(saec_sae *sae, float *buf, int64_t count) {
    if (!sae->distributed) return SAEC_OK;
    SAEC_TRY(saec_comm_allreduce(sae->comm, buf, count, SAEC_DT_F32, SAEC_RED_SUM));
    return SAEC_OP(sae->dev, axpby, count, 1.0f / (float)sae->world, buf, 0.0f, buf, buf);
}

int sae_grads_ready(saec_sae *sae, int first, int last) {
    if (!sae->distributed) return SAEC_OK;
    if (last >= sae->n_tensors) last = sae->n_tensors - 1;
    if (first > last) return SAEC_OK;
    const int64_t begin = sae->layout[first].offset;
    const int64_t end = last + 1 < sae->n_tensors ? sae->layout[last + 1].offset : sae->n_params;
    return saec_comm_grad_start(sae->comm, sae->grad_arena + begin, end - begin);
}

int sae_grads_wait(saec_sae *sae) {
    return sae->distributed ? saec_comm_grad_wait(sae->comm) : SAEC_OK;
}

int sae_residual_mean(saec_sae *sae, const float *e, int64_t n, float *e_mean) {
    SAEC_TRY(
        SAEC_OP(sae->dev, col_sum, e, n, sae->d, 1.0f / (float)(n * sae->world), 0.0f, e_mean));
    if (!sae->distributed) return SAEC_OK;
    return saec_comm_allreduce(sae->comm, e_mean, sae->d, SAEC_DT_F32, SAEC_RED_SUM);
}

int sae_fired_over_ranks(saec_sae *sae, int64_t n) {
    if (!sae->distributed) return SAEC_OK;
    /* 0 wins the minimum; the others have counted their own n tokens and add the other ranks' */
    SAEC_TRY(saec_comm_allreduce(sae->comm, sae->since_fired, sae->m, SAEC_DT_I64, SAEC_RED_MIN));
    return SAEC_OP(sae->dev, dead_latents_update, sae->since_fired, sae->m, (sae->world - 1) * n,
                   sae->dead_after, sae->dead_mask, sae->dead_count);
}

int sae_gather_params(saec_sae *sae) {
    if (!sae_sharded(sae)) return SAEC_OK;
    return saec_comm_allgather(sae->comm, sae->param_arena, sae->shard, SAEC_DT_F32);
}

int sae_stats_over_ranks(saec_sae *sae) {
    SAEC_TRY(saec_comm_allreduce(sae->comm, sae->l0_count, 1, SAEC_DT_F64, SAEC_RED_SUM));
    if (sae->arch == SAE_RELU || sae->arch == SAE_ATM) /* separate: one value per bucket */
        SAEC_TRY(saec_comm_allreduce(
            sae->comm, sae->group_penalty ? sae->group_penalty : sae->penalty,
            sae->group_penalty ? sae->hp.timestep_buckets : 1, SAEC_DT_F64, SAEC_RED_SUM));
    return SAEC_OK;
}
