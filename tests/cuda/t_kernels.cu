// Kernels that must give the same, right answer in every thread and block order: a block
// reduction in static shared memory, warp shuffles and votes in divergent code, dynamic shared
// memory, atomics.  tests/t_cuda_emu.sh runs this in several orders (CUDA_EMU_ORDER).
#include "emu.h"
#include "check.h"

#include <cstring>
#include <vector>

// Tree reduction with a barrier after every level.
__global__ void block_sum(const float *x, float *out, int n) {
    SHARED(float, part, [256]);
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    part[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// One block per row: warp sums by shuffle, then warp 0 alone (a divergent branch) reduces the
// warp sums kept in dynamic shared memory.
__global__ void row_sum(const float *x, float *out, int cols) {
    DYN_SHARED(float, warp_sums);
    const float *row = x + (size_t)blockIdx.x * cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) v += row[c];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < nwarps ? warp_sums[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) out[blockIdx.x] = s;
    }
}

// Per lane: [0] inclusive prefix sum of lane+1 (shfl_up), [1] sum over the lower half-warp by a
// width-16 xor shuffle taken by lanes 0..15 only, [2] value broadcast from lane 5 (shfl idx),
// [3] ballot among even lanes, [4] any, [5] all.
__global__ void warp_ops(int *out) {
    int lane = threadIdx.x % 32;
    int *o = out + threadIdx.x * 6;
    int v = lane + 1;
    for (int d = 1; d < 32; d *= 2) {
        int t = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += t;
    }
    o[0] = v;
    o[1] = -1;
    if (lane < 16) {
        int s = lane;
        for (int m = 8; m > 0; m >>= 1) s += __shfl_xor_sync(0x0000ffffu, s, m, 16);
        o[1] = s;
    }
    o[2] = __shfl_sync(0xffffffffu, lane * 10, 5);
    o[3] = o[4] = o[5] = -1;
    if (lane % 2 == 0) {
        o[3] = (int)__ballot_sync(0x55555555u, lane % 4 == 0);
        o[4] = __any_sync(0x55555555u, lane == 6);
        o[5] = __all_sync(0x55555555u, lane < 31);
    }
    __syncwarp();
}

// Barrier votes: out = {count, and, or} of (threadIdx.x % 3 == 0), and the and/or of always-true.
__global__ void barrier_votes(int *out) {
    int third = threadIdx.x % 3 == 0;
    int count = __syncthreads_count(third);
    int all_third = __syncthreads_and(third), any_third = __syncthreads_or(third);
    int all_true = __syncthreads_and(1), any_false = __syncthreads_or(0);
    if (threadIdx.x == 5) {
        out[0] = count, out[1] = all_third, out[2] = any_third, out[3] = all_true, out[4] = any_false;
    }
}

// The classic tiled transpose: a 2-D block (32 x 8), a 2-D shared tile padded against bank
// conflicts, staged through a __device__ helper that declares its own SHARED counter.
__device__ void count_block(int *blocks_seen) {
    SHARED(int, arrivals, );
    if (threadIdx.x == 0 && threadIdx.y == 0) arrivals = 0;
    __syncthreads();
    atomicAdd(&arrivals, 1);
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && arrivals == (int)(blockDim.x * blockDim.y)) atomicAdd(blocks_seen, 1);
}
__global__ void transpose(const float *in, float *out, int rows, int cols, int *blocks_seen) {
    SHARED(float, tile, [32][33]);
    int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += 8)
        if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(size_t)(y + j) * cols + x];
    __syncthreads();
    x = blockIdx.y * 32 + threadIdx.x, y = blockIdx.x * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += 8)
        if (x < rows && y + j < cols) out[(size_t)(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
    count_block(blocks_seen);
}

struct Totals {
    float f;
    int i;
    unsigned u;
    double d;
    int max;
    unsigned long long cas;
};

__global__ void atomics(Totals *t) {
    int id = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(&t->f, 0.5f);
    atomicAdd(&t->i, 2);
    atomicAdd(&t->u, 3u);
    atomicAdd(&t->d, 0.25);
    atomicMax(&t->max, id);
    unsigned long long old = t->cas, seen;
    while ((seen = atomicCAS(&t->cas, old, old + 1)) != old) old = seen;
}

int main() {
    check_device();
    unsigned seed = 12345;
    // Block reduction over a length that is not a multiple of the block.
    const int n = 1000, threads = 256, blocks = (n + threads - 1) / threads;
    std::vector<float> x(n), sums(blocks);
    for (float &f : x) f = check_random(&seed);
    float *dx, *dsums;
    CUDA_OK(cudaMalloc(&dx, n * sizeof(float)));
    CUDA_OK(cudaMalloc(&dsums, blocks * sizeof(float)));
    CUDA_OK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(block_sum, blocks, threads, 0, 0)(dx, dsums, n);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(sums.data(), dsums, blocks * sizeof(float), cudaMemcpyDeviceToHost));
    for (int b = 0; b < blocks; b++) {
        double want = 0;
        for (int i = b * threads; i < n && i < (b + 1) * threads; i++) want += x[i];
        CHECK(fabs(sums[b] - want) < 1e-4, "block_sum block %d: %g, want %g", b, sums[b], want);
    }

    // Row sums: 3 rows of 1000, 128 threads (4 warps), warp sums in dynamic shared memory.
    const int rows = 3, cols = 1000;
    std::vector<float> m(rows * cols), rs(rows);
    for (float &f : m) f = check_random(&seed);
    float *dm, *drs;
    CUDA_OK(cudaMalloc(&dm, m.size() * sizeof(float)));
    CUDA_OK(cudaMalloc(&drs, rows * sizeof(float)));
    CUDA_OK(cudaMemcpy(dm, m.data(), m.size() * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(row_sum, rows, 128, 4 * sizeof(float), 0)(dm, drs, cols);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(rs.data(), drs, rows * sizeof(float), cudaMemcpyDeviceToHost));
    for (int r = 0; r < rows; r++) {
        double want = 0;
        for (int c = 0; c < cols; c++) want += m[r * cols + c];
        CHECK(fabs(rs[r] - want) < 1e-3, "row_sum row %d: %g, want %g", r, rs[r], want);
    }

    // Warp operations in a block of 48 threads: the second warp is partial (16 lanes).
    const int wt = 48;
    std::vector<int> wo(wt * 6);
    int *dwo;
    CUDA_OK(cudaMalloc(&dwo, wo.size() * sizeof(int)));
    LAUNCH(warp_ops, 1, wt, 0, 0)(dwo);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(wo.data(), dwo, wo.size() * sizeof(int), cudaMemcpyDeviceToHost));
    for (int t = 0; t < wt; t++) {
        int lane = t % 32, width = t < 32 ? 32 : 16; // lanes of this thread's warp
        const int *o = &wo[t * 6];
        CHECK(o[0] == (lane + 1) * (lane + 2) / 2, "thread %d: prefix sum %d", t, o[0]);
        CHECK(o[1] == (lane < 16 ? 120 : -1), "thread %d: half-warp sum %d", t, o[1]);
        CHECK(o[2] == 50, "thread %d: broadcast %d", t, o[2]);
        if (lane % 2 == 0) {
            unsigned want = 0;
            for (int l = 0; l < width; l += 4) want |= 1u << l;
            CHECK(o[3] == (int)want, "thread %d: ballot 0x%x, want 0x%x", t, (unsigned)o[3], want);
            CHECK(o[4] == 1, "thread %d: any %d", t, o[4]);
            CHECK(o[5] == (width == 32 ? 1 : 1), "thread %d: all %d", t, o[5]);
        } else
            CHECK(o[3] == -1 && o[4] == -1 && o[5] == -1, "thread %d: odd lane voted", t);
    }

    // Barrier votes in a block of 100 threads: 34 of them are multiples of 3.
    int votes[5], *dvotes;
    CUDA_OK(cudaMalloc(&dvotes, sizeof votes));
    LAUNCH(barrier_votes, 1, 100, 0, 0)(dvotes);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(votes, dvotes, sizeof votes, cudaMemcpyDeviceToHost));
    CHECK(votes[0] == 34 && votes[1] == 0 && votes[2] == 1 && votes[3] == 1 && votes[4] == 0,
          "barrier votes: count %d and %d or %d, and(1) %d, or(0) %d", votes[0], votes[1], votes[2], votes[3], votes[4]);
    CUDA_OK(cudaFree(dvotes));

    // Transpose of a 70 x 45 matrix: partial tiles on both edges.
    const int tr = 70, tc = 45;
    std::vector<float> tin(tr * tc), tout(tr * tc);
    for (float &f : tin) f = check_random(&seed);
    float *dtin, *dtout;
    int seen = 0, *dseen;
    CUDA_OK(cudaMalloc(&dtin, tin.size() * sizeof(float)));
    CUDA_OK(cudaMalloc(&dtout, tout.size() * sizeof(float)));
    CUDA_OK(cudaMalloc(&dseen, sizeof(int)));
    CUDA_OK(cudaMemset(dseen, 0, sizeof(int)));
    CUDA_OK(cudaMemcpy(dtin, tin.data(), tin.size() * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH(transpose, dim3((tc + 31) / 32, (tr + 31) / 32), dim3(32, 8), 0, 0)(dtin, dtout, tr, tc, dseen);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(tout.data(), dtout, tout.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(&seen, dseen, sizeof(int), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int r = 0; r < tr; r++)
        for (int c = 0; c < tc; c++) wrong += tout[c * tr + r] != tin[r * tc + c];
    CHECK(wrong == 0, "transpose: %d of %d values wrong", wrong, tr * tc);
    CHECK(seen == 6, "transpose: %d blocks counted all their threads, want 6", seen);
    CUDA_OK(cudaFree(dtin));
    CUDA_OK(cudaFree(dtout));
    CUDA_OK(cudaFree(dseen));

    // Atomics from 4 blocks of 128 threads.
    Totals zero, got;
    memset(&zero, 0, sizeof zero);
    Totals *dt;
    CUDA_OK(cudaMalloc(&dt, sizeof(Totals)));
    CUDA_OK(cudaMemcpy(dt, &zero, sizeof zero, cudaMemcpyHostToDevice));
    LAUNCH(atomics, 4, 128, 0, 0)(dt);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(&got, dt, sizeof got, cudaMemcpyDeviceToHost));
    CHECK(got.f == 256.0f && got.i == 1024 && got.u == 1536u && got.d == 128.0 && got.max == 511 && got.cas == 512,
          "atomics: %g %d %u %g %d %llu", got.f, got.i, got.u, got.d, got.max, got.cas);

    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dsums));
    CUDA_OK(cudaFree(dm));
    CUDA_OK(cudaFree(drs));
    CUDA_OK(cudaFree(dwo));
    CUDA_OK(cudaFree(dt));
    CUDA_OK(cudaDeviceSynchronize());
    return check_finish("t_kernels");
}
