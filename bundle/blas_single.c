/* bundle/blas_single.c: OpenBLAS's thread-count calls for the GPU bundle's programs, which link
 * the single-threaded reference BLAS instead of OpenBLAS (mk/gpu-bundle.mk says why). */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

int openblas_get_num_threads(void)
{
    return 1;
}

void openblas_set_num_threads(int n)
{
    (void)n;
}
