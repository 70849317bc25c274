/* The MoE-MAE parameter layout (host/model/moe_mae_layout.c) against SPEC §7's reference counts:
 * 2,537,562 parameters in all, 2,366,798 in the encoder. Also: every tensor named once, the
 * encoder before the decoder, SPEC's hidden widths int(144 − 72·i/14) and expert counts, 105
 * tokens of 100 patches, and the components' subtotals printed (what `saec inspect` will show
 * for a MoE-MAE run).
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "moe_mae_layout.h"

enum { MAX_TENSORS = 1024, MAX_COMPONENTS = 64 };

typedef struct {
    moe_mae_tensor t[MAX_TENSORS];
    int n;
} tensor_list;

static void collect(const moe_mae_tensor *t, void *arg) {
    tensor_list *l = arg;
    if (l->n < MAX_TENSORS) l->t[l->n] = *t;
    l->n++;
}

int main(void) {
    const moe_mae_hparams h = moe_mae_hparams_default();
    set_ctx("SPEC §7 shapes");
    static const int64_t hidden[15] = {144, 138, 133, 128, 123, 118, 113, 108,
                                       102, 97,  92,  87,  82,  77,  72};
    for (int i = 0; i < 15; i++) {
        CHECK(h.enc.hidden[i] == hidden[i], "encoder block %d hidden %lld, SPEC %lld", i,
              (long long)h.enc.hidden[i], (long long)hidden[i]);
        CHECK(h.enc.experts[i] == 3 + i / 5, "encoder block %d: %d experts", i, h.enc.experts[i]);
    }
    CHECK(moe_mae_patches(&h) == 100 && moe_mae_tokens(&h) == 105, "patches %lld, tokens %lld",
          (long long)moe_mae_patches(&h), (long long)moe_mae_tokens(&h));

    set_ctx("the reference's counts");
    int64_t encoder = 0;
    const int64_t all = moe_mae_param_count(&h, &encoder);
    CHECK(all == 2537562, "%lld parameters, the reference has 2,537,562", (long long)all);
    CHECK(encoder == 2366798, "%lld in the encoder, the reference has 2,366,798",
          (long long)encoder);

    set_ctx("the layout");
    static tensor_list l;
    const int n = moe_mae_layout(&h, collect, &l);
    REQUIRE(n == l.n && n <= MAX_TENSORS, "%d tensors", n);
    int seen_decoder = 0, dup = 0;
    for (int i = 0; i < n; i++) {
        CHECK(!(l.t[i].encoder && seen_decoder), "%s: an encoder tensor after the decoder's",
              l.t[i].name);
        seen_decoder |= !l.t[i].encoder;
        CHECK(l.t[i].rows >= 1 && l.t[i].cols >= 1, "%s is empty", l.t[i].name);
        for (int j = 0; j < i; j++)
            dup += strcmp(l.t[i].name, l.t[j].name) == 0;
    }
    CHECK(dup == 0, "%d tensor names repeat", dup);

    /* the components' subtotals, in layout order */
    char names[MAX_COMPONENTS][64];
    int64_t totals[MAX_COMPONENTS] = {0};
    int nc = 0;
    for (int i = 0; i < n; i++) {
        int c = 0;
        while (c < nc && strcmp(names[c], l.t[i].component) != 0)
            c++;
        if (c == nc && nc < MAX_COMPONENTS)
            snprintf(names[nc++], sizeof names[0], "%s", l.t[i].component);
        if (c < MAX_COMPONENTS) totals[c] += l.t[i].rows * l.t[i].cols;
    }
    printf("%d tensors in %d components:\n", n, nc);
    for (int c = 0; c < nc; c++)
        printf("  %-16s %9lld\n", names[c], (long long)totals[c]);
    printf("  %-16s %9lld (encoder %lld)\n", "total", (long long)all, (long long)encoder);
    CHECK(totals[0] == 112 * 144 + 144, "patch embedding %lld", (long long)totals[0]);
    return check_summary("test_moe_mae_layout");
}
