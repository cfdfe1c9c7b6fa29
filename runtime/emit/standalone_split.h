/* standalone_split.h: how a matmul group's products are split over the
 * CPU's pool of threads, in C11. One copy serves two users: mixc's cpu
 * device (runtime/cpu.c) and the projects `mixc emit --target cpu` writes
 * (standalone_cpu.h includes it, and the file is shipped beside it), so
 * that an emitted model splits its products as `mixc run` does, the splits
 * tuning chose included. */
#ifndef MXS_STANDALONE_SPLIT_H
#define MXS_STANDALONE_SPLIT_H

/* Products of fewer flops than MXS_SPLIT_FLOPS are split over the pool,
 * one single-threaded sgemm each: OpenBLAS's own threads sleep right after
 * a call (OPENBLAS_THREAD_TIMEOUT), and waking them costs more than such a
 * product. TSM2-ETTh1's token mixers run 224 products [128 x 64] [64 x 64]
 * each (1 MFLOP): 5 to 10 GFLOP/s threaded by OpenBLAS, 190 GFLOP/s split
 * over 2 threads (AMD EPYC VM). Larger products are split too when the
 * shares come out even; fewer products than threads, each of
 * MXS_PART_ROWS rows or more per thread, by rows. */
enum { MXS_SPLIT_FLOPS = 1 << 24, MXS_PART_ROWS = 256 };

typedef struct {
    int split;       /* 0: one library call per product on the caller, with the library's threads */
    long long parts; /* shares of each product's rows */
    long long grain; /* (product, part) items per thread, at least */
} mxs_split;

/* The split of `products` products [m x k] [k x n] over `threads` threads.
 * tasks (the group's tiles, which tuning sets) 0: the rule above; 1: not
 * split; t: t shares, of the products when there are as many, else of
 * their rows (f32 storage only; at most the pool's threads). */
static mxs_split mxs_split_plan(long long m, long long n, long long k, long long products, int all_f32, int threads,
                                int tasks) {
    mxs_split whole = {0, 1, products};
    if (tasks == 0) {
        if (threads > 1 && products >= threads &&
            (2.0 * (double)m * (double)n * (double)k < MXS_SPLIT_FLOPS || products % threads == 0)) {
            mxs_split by_product = {1, 1, 1};
            return by_product;
        }
        if (threads > 1 && all_f32 && products < threads && m >= (long long)MXS_PART_ROWS * threads) {
            mxs_split by_rows = {1, threads, 1};
            return by_rows;
        }
        return whole;
    }
    int shares = tasks < threads ? tasks : threads;
    if (shares < 2)
        return whole;
    if (products >= shares) {
        mxs_split by_product = {1, 1, (products + shares - 1) / shares};
        return by_product;
    }
    long long parts = all_f32 ? (shares + products - 1) / products : 1;
    mxs_split by_rows = {1, parts < m ? parts : m, 1};
    return by_rows;
}

#endif
