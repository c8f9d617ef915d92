/* matvec.h: the matrix-vector products of the recurrent (decode) mode, one
 * token at a time.  Decode reads every weight once per token, so it is bound
 * by memory bandwidth: bf16 weights halve the bytes; every product
 * accumulates in fp32.
 *
 *   y[r] = beta * y[r] + sum_c W[r][c] x[c]      (W row-major, rows x cols)
 *
 * Variants for AVX-512, AVX2 and plain C are compiled with target
 * attributes (no -march flag needed) and one is chosen at run time; all of
 * them compute the same sums in the same order (32 lanes, lane j adding the
 * columns c with c % 32 == j by fused multiply-add, then lane pairs and a
 * fixed tree), so results are bitwise the same on every machine and thread
 * count.  Rows are split across the OpenMP threads (omp_get_max_threads())
 * unless called inside a parallel region. */
#ifndef RWKV7C_MATVEC_H
#define RWKV7C_MATVEC_H
#include <stddef.h>
#include <stdint.h>
#include "tensors.h"

typedef enum { MATVEC_AUTO, MATVEC_SCALAR, MATVEC_AVX2, MATVEC_AVX512 } MatvecIsa;

void matvec_f32(float *y, const float *W, const float *x, size_t rows, size_t cols, float beta);
void matvec_bf16(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols, float beta);

/* The variant a call uses: MATVEC_AUTO picks the best the CPU supports (the
 * default); another value forces it (tests), falling back to scalar when the
 * CPU lacks it.  Returns the variant in use. */
MatvecIsa matvec_set_isa(MatvecIsa isa);
const char *matvec_isa_name(MatvecIsa isa);

/* A buffer for weights that decode streams: 2 MiB-aligned, with transparent
 * huge pages advised (madvise MADV_HUGEPAGE) before any page is touched, so
 * the stream crosses a TLB entry every 2 MiB instead of every 4 KiB and the
 * hardware prefetcher is not stopped by page walks (one-thread read of 290 MB
 * +20-30% measured; /sys/kernel/mm/transparent_hugepage/enabled must not be
 * "never", else these are ordinary pages).  Free with free(); NULL when out
 * of memory. */
void *matvec_weights_alloc(size_t bytes);

/* bf16 <-> fp32: tensors.h's f32_to_bf16 / bf16_to_f32 */
#endif
