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
    int split;           /* 0: one library call per product on the caller, with the library's threads */
    long long parts;     /* shares of each product's rows */
    long long part_rows; /* rows of a share (the last the rest) */
    long long grain;     /* (product, part) items per thread, at least */
} mxs_split;

/* The split of `products` products [m x k] [k x n] over `threads` threads.
 * tasks (the group's tiles, which tuning sets) 0: the rule above; 1: not
 * split; t: t shares, of the products when there are as many, else of
 * their rows (f32 storage only; at most the pool's threads). */
static mxs_split mxs_split_plan(long long m, long long n, long long k, long long products, int all_f32, int threads,
                                int tasks) {
    int split = 1;
    long long parts = 1, grain = 1;
    if (tasks == 0) {
        int by_product = threads > 1 && products >= threads &&
                         (2.0 * (double)m * (double)n * (double)k < MXS_SPLIT_FLOPS || products % threads == 0);
        if (!by_product && threads > 1 && all_f32 && products < threads && m >= (long long)MXS_PART_ROWS * threads)
            parts = threads; /* by rows */
        else if (!by_product)
            split = 0;
    } else {
        int shares = tasks < threads ? tasks : threads;
        if (shares < 2)
            split = 0;
        else if (products >= shares)
            grain = (products + shares - 1) / shares;
        else if (all_f32) { /* rows are split in f32 only */
            parts = (shares + products - 1) / products;
            parts = parts < m ? parts : m;
        }
    }
    mxs_split plan = {split, parts, (m + parts - 1) / parts, split ? grain : products};
    return plan;
}

#endif
