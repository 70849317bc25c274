/* CPU per-row top-k: one size-k min-heap per row, rows in parallel.
 *
 * Columns are scanned in increasing order, so a candidate equal to the heap's minimum always
 * has a higher index than it and loses the tie: a column enters the heap only when it is
 * strictly greater than the current minimum. For the typical SAE case (m = 16k..64k, k = 64)
 * almost every column is rejected by that one comparison, so the op runs at memory speed.
 * NaN never compares greater, so NaN entries are never selected (treated as ineligible).
 */
#include <omp.h>

#include "cpu_internal.h"

typedef struct {
    float v;   /* value */
    int32_t i; /* column */
} topk_entry;

/* Columns per block of the scan's skip test (a few vectors). */
#define SCAN_BLOCK 16

/* a ranks below b: smaller value, or the same value at a larger column. Written without
   short-circuits so the compiler emits conditional moves: which child a sifted entry follows
   is unpredictable, and mispredictions dominated the heap's cost. */
static inline int ranks_below(topk_entry a, topk_entry b) {
    return (a.v < b.v) | ((a.v == b.v) & (a.i > b.i));
}

/* Restore the heap property below pos; the root h[0] is the lowest-ranked entry. h [size]. */
static void sift_down(topk_entry *h, int size, int pos) {
    const topk_entry e = h[pos];
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= size) break;
        const int r = c + 1 < size ? c + 1 : c; /* the right child, or c itself */
        c += ranks_below(h[r], h[c]);           /* the lower-ranked child, branch-free */
        if (!ranks_below(h[c], e)) break;
        h[pos] = h[c];
        pos = c;
    }
    h[pos] = e;
}

static void heapify(topk_entry *h, int size) {
    for (int p = size / 2 - 1; p >= 0; p--)
        sift_down(h, size, p);
}

/* Top-k of one row x [m] (mask [m] or NULL) into idx [k], val [k], using heap h [k]. */
static void topk_row(const float *x, int64_t m, int k, const uint8_t *mask, topk_entry *h,
                     int32_t *idx, float *val) {
    int cnt = 0;
    int64_t j = 0;
    /* Fill: the first k eligible columns. */
    for (; j < m && cnt < k; j++) {
        if ((mask && !mask[j]) || x[j] != x[j]) continue; /* ineligible or NaN */
        h[cnt].v = x[j];
        h[cnt].i = (int32_t)j;
        cnt++;
    }
    heapify(h, cnt);
    if (cnt == k) {
        /* Scan: a column replaces the minimum only when strictly greater (see the top). Blocks
           whose maximum does not beat the minimum are skipped with one vector reduction; the
           mask only needs checking inside a block that could contribute. */
        float thr = h[0].v;
        while (j < m) {
            const int64_t end = j + SCAN_BLOCK < m ? j + SCAN_BLOCK : m;
            float mx = thr;
#pragma omp simd reduction(max : mx)
            for (int64_t q = j; q < end; q++)
                mx = x[q] > mx ? x[q] : mx; /* NaN keeps mx */
            if (mx > thr) {
                for (int64_t q = j; q < end; q++) {
                    if (x[q] > thr && (!mask || mask[q])) {
                        h[0].v = x[q];
                        h[0].i = (int32_t)q;
                        sift_down(h, k, 0);
                        thr = h[0].v;
                    }
                }
            }
            j = end;
        }
    }
    /* Heap sort: moving the minimum to the back each time leaves h[0 .. cnt) best-first. */
    for (int s = cnt; s > 1; s--) {
        const topk_entry t = h[0];
        h[0] = h[s - 1];
        h[s - 1] = t;
        sift_down(h, s - 1, 0);
    }
    for (int s = 0; s < cnt; s++) {
        idx[s] = h[s].i;
        val[s] = h[s].v;
    }
    for (int s = cnt; s < k; s++) { /* fewer than k eligible columns: empty slots */
        idx[s] = -1;
        val[s] = 0.0f;
    }
}

/* x [n, m] (mask [m] or NULL) -> idx [n, k], val [n, k].
   Floor: reads n*m*4 (+ m mask) bytes, writes n*k*8. */
int saec_cpu_topk_rows(saec_dev *dev, const float *x, int64_t n, int64_t m, int k,
                       const uint8_t *mask, int32_t *idx, float *val) {
    SAEC_CPU_REQUIRE("topk_rows", n >= 0 && m >= 1 && m <= INT32_MAX);
    SAEC_CPU_REQUIRE("topk_rows", k >= 1 && k <= m);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("topk_rows", x != NULL && idx != NULL && val != NULL);

    /* One heap [k] per thread, from the device scratch (no allocation in steady state). */
    const int n_threads = omp_get_max_threads();
    topk_entry *heaps;
    SAEC_TRY(
        saec_cpu_scratch(dev, (size_t)n_threads * (size_t)k * sizeof(topk_entry), (void **)&heaps));

#pragma omp parallel for schedule(static) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        topk_entry *h = heaps + (size_t)omp_get_thread_num() * (size_t)k; /* [k] */
        topk_row(x + r * m, m, k, mask, h, idx + r * k, val + r * k);
    }
    return SAEC_OK;
}
