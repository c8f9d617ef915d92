// The NCCL backend of lib/comm.h on one GPU (world size 1): every collective through
// comm_nccl_smoke (cuda/comm_nccl.cu).  Under the emulation there is no NCCL: the stub must
// refuse, saying a GPU build is needed.  The GPU bundle runs it as its NCCL smoke test
// (bundle/run.sh part g).
#include "emu.h"
#include <cstring>
#include "check.h"
extern "C" {
#include "util.h"
}
#include "comm_nccl.cuh"

int main() {
#if CUDA_EMU
    Error e;
    CHECK(comm_nccl_smoke(0, &e) != 0 && strstr(e.msg, "GPU"), "the emulated build's stub refuses: %s", e.msg);
    return check_finish("t_comm_nccl (emulation: the stub)");
#else
    check_device();
    Error e;
    if (comm_nccl_smoke(0, &e)) {
        printf("FAIL comm_nccl_smoke: %s\n", e.msg);
        return 1;
    }
    printf("t_comm_nccl: all ok\n");
    return 0;
#endif
}
