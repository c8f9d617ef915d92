/* lib/gpuplan.c's share of each rank (gpu_shard, gpu_params_carve, gpu_plan) under the
 * data-parallel strategies: the shards cover the parameters exactly once, aligned; the
 * sharded plan holds 1/W of the masters and moments; ddp and one rank hold everything. */
#include <stdint.h>
#include <string.h>
#include "check.h"
#include "gpuplan.h"

static void shards_cover(const ModelConfig *c, int world, int strategy)
{
    BackendConfig bc = { .B = 1, .T = 16, .grad_cp = 1, .bf16 = 1, .world = world, .strategy = strategy };
    GpuShard s0;
    gpu_shard(c, &bc, 0, &s0);
    size_t P = s0.P, next = 0, total = 0;
    for (int r = 0; r < world; r++) {
        GpuShard s;
        gpu_shard(c, &bc, r, &s);
        if (!s.sharded) { CHECK(s.lo == 0 && s.n == P && s.padded == P, "ddp: rank %d holds all", r); continue; }
        CHECK(s.shard % 128 == 0, "shard %zu a multiple of 128 elements", s.shard);
        CHECK(s.padded == s.shard * (size_t)world && s.padded >= P, "padded = world x shard >= P");
        CHECK(s.lo == next || s.n == 0, "rank %d starts where rank %d ended", r, r - 1);
        next = s.lo + s.n;
        total += s.n;
    }
    if (s0.sharded) CHECK(total == P && next == P, "world %d: the shards cover %zu of %zu parameters", world, total, P);
}

int main(void)
{
    Error e;
    ModelConfig small, big;
    CHECK(!config_default(&small, 2, 64, 97, 64, &e), "config");
    CHECK(!config_default(&big, 24, 2048, 65536, 64, &e), "config L24-D2048");
    for (int w = 1; w <= 5; w++)
        for (int s = DP_DDP; s <= DP_STAGE2; s++) {
            shards_cover(&small, w, s);
            shards_cover(&big, w, s);
        }
    /* the plan: one rank's fp32 masters and moments are a world-th of the whole (to alignment) */
    uint64_t P = config_param_count(&big);
    BackendConfig one = { .B = 1, .T = 4096, .grad_cp = 1, .bf16 = 1 };
    GpuPlan p1, pd, p4;
    gpu_plan(&big, &one, &p1);
    BackendConfig ddp = one, st1 = one;
    ddp.world = 4; ddp.strategy = DP_DDP;
    st1.world = 4; st1.strategy = DP_STAGE1;
    gpu_plan(&big, &ddp, &pd);
    gpu_plan(&big, &st1, &p4);
    CHECK(p1.masters == (P * 4 + 255) / 256 * 256 || p1.masters == P * 4, "one rank: all masters");
    CHECK(pd.total == p1.total, "ddp: each rank plans what one rank does");
    CHECK(p4.masters * 4 >= P * 4 && p4.masters * 4 < P * 4 + 4 * 4 * 128 * 4, "stage 1 on 4: a quarter of the masters");
    CHECK(p4.moments == 2 * p4.masters, "m and v as the masters");
    CHECK(p4.gradients >= P * 4 && p4.gradients < P * 4 + 4 * 128 * 4 + 256, "the whole gradient, padded");
    CHECK(p4.total < p1.total, "stage 1 plans less than ddp");
    /* the carve points inside the arena, in order, without overlap */
    GpuArenaSizes sz;
    gpu_arena_sizes(&big, &st1, &sz);
    GpuParams gp;
    char *base = (char *)(uintptr_t)4096;   /* never dereferenced */
    gpu_params_carve(&big, &st1, base, &gp);
    CHECK((char *)gp.w == base && (char *)gp.master > (char *)gp.w && (char *)gp.m > (char *)gp.master &&
          (char *)gp.v > (char *)gp.m && (char *)gp.grad > (char *)gp.v && (char *)gp.grad + p4.gradients <= base + sz.params,
          "the parameter arena carved in order, inside its size");
    for (int w = 1; w <= 4; w *= 2)
        for (int s = DP_DDP; s <= DP_STAGE2; s++) {
            BackendConfig bc = one;
            bc.world = w; bc.strategy = s;
            GpuPlan p;
            gpu_plan(&big, &bc, &p);
            printf("L24-D2048 ctx 4096 micro_bsz 1 grad_cp, %d GPU(s), %s: %.2f GB per GPU (+ context)\n", w,
                   s == DP_DDP ? "ddp" : s == DP_STAGE1 ? "deepspeed_stage_1" : "deepspeed_stage_2", p.total / 1e9);
            if (w == 1) break;
        }
    return check_done();
}
