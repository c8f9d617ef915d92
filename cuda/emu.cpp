// cuda/emu.cpp: the runtime of the CPU SIMT emulation declared in cuda/emu.h.
//
// A launch runs its blocks one after another on the calling OS thread.  A block is one fiber
// per CUDA thread plus a scheduler (the caller's context).  A fiber runs until it parks at
// __syncthreads, parks at a warp operation or returns; the scheduler resumes runnable fibers in
// the configured order and, once none is runnable, releases a barrier that every live thread
// waits at, or reports why the block cannot go on.  A warp operation completes as soon as every
// lane named in its mask has arrived, so shuffles and votes work in divergent code.
#ifdef __CUDACC__
#error "cuda/emu.cpp is the host emulation's runtime; nvcc uses the real CUDA runtime"
#endif
#include "emu.h"

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <csignal>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// The toolkit's handle types are opaque; the emulation gives them a body.
struct CUstream_st { int unused; };
struct CUevent_st {
    unsigned flags;
    bool recorded;
    double ms;
};

// Fiber switch.  glibc's swapcontext makes a sigprocmask system call every time (about 0.4 us);
// on x86-64 a switch saves the callee-saved registers and the FP control words on the old stack
// and swaps stack pointers, about ten times faster.  Other machines use ucontext.
#if defined(__x86_64__) && !defined(CUDA_EMU_UCONTEXT)
extern "C" void emu_switch_stack(void **save_sp, void *load_sp);
asm(".text\n"
    ".globl emu_switch_stack\n"
    ".type emu_switch_stack, @function\n"
    "emu_switch_stack:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size emu_switch_stack, .-emu_switch_stack\n");
struct Context {
    void *sp;
};
static void context_make(Context &c, char *stack, size_t size, void (*entry)()) {
    // The first switch to it pops the frame below and "returns" into entry, with the stack
    // aligned as after a call (rsp = 8 mod 16).
    uint64_t *top = (uint64_t *)((uintptr_t)(stack + size) & ~(uintptr_t)15);
    top[-1] = 0;                 // entry's return address: it never returns
    top[-2] = (uint64_t)entry;   // popped by ret
    for (int i = 3; i <= 8; i++) top[-i] = 0; // rbp rbx r12 r13 r14 r15
    top[-9] = 0x1F80 | (uint64_t)0x037F << 32; // default MXCSR; x87 control word
    c.sp = &top[-9];
}
static inline void context_switch(Context &from, Context &to) { emu_switch_stack(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc;
};
static void context_make(Context &c, char *stack, size_t size, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
static inline void context_switch(Context &from, Context &to) { swapcontext(&from.uc, &to.uc); }
#endif

namespace emu {

thread_local const ThreadView *cur;

namespace {

enum FiberState { RUNNABLE, AT_BARRIER, AT_WARP, EXITED };

struct Fiber {
    Context ctx;
    ThreadView view;
    int linear;
    FiberState state;
    const char *file; // where it is parked
    int line;
    WarpOpKind op; // the warp operation it waits in
    unsigned mask;
    uint64_t value, result; // a warp operation's operand and result; a barrier's predicate
    int param, width;
    void *fake_stack; // ASan's record of this fiber's stack while it is switched out
    char *stack;
    size_t stack_size;
};

struct Block {
    const char *kernel;
    const std::function<void()> *body;
    std::vector<Fiber> fibers;
    Context sched;
    Fiber *running;
    std::vector<std::pair<const void *, void *>> statics;
    size_t static_bytes, dyn_bytes, shared_limit;
    int barrier_count; // of the barrier last released: threads with a nonzero predicate
    void *dyn;
    bool failed;
    void *sched_fake_stack;
    const void *sched_stack_bottom;
    size_t sched_stack_size;
};

enum OrderMode { FORWARD, REVERSE, SHUFFLE };
OrderMode order_mode = FORWARD;
uint64_t rng_state = 1;
bool order_bad, initialised;

cudaError_t last_error = cudaSuccess, sticky_error = cudaSuccess;
std::string last_fault;
std::map<uintptr_t, size_t> allocations; // device pointer -> bytes
std::set<const void *> streams, events;
std::map<const void *, int> dyn_shared_optin; // kernel -> cudaFuncAttributeMaxDynamicSharedMemorySize
std::vector<char *> stack_pool;
size_t stack_bytes;
Block *blk; // the block being run

const char *const op_names[] = {"__syncwarp", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                "__shfl_xor_sync", "__ballot_sync", "__any_sync", "__all_sync"};

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

uint64_t next_random() { // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

void order_indices(std::vector<int> &idx, int n) {
    idx.resize(n);
    for (int i = 0; i < n; i++) idx[i] = order_mode == REVERSE ? n - 1 - i : i;
    if (order_mode == SHUFFLE)
        for (int i = n - 1; i > 0; i--) std::swap(idx[i], idx[next_random() % (uint64_t)(i + 1)]);
}

// A fiber that overflows its stack faults on the guard page below it: say so before the
// process dies, since a bare "Segmentation fault" in a kernel does not suggest the stack size.
// (ASan reports stack overflows itself.)
#ifndef EMU_ASAN
struct sigaction previous_segv;

void on_segv(int sig, siginfo_t *info, void *) {
    uintptr_t addr = (uintptr_t)info->si_addr, page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (char *stack : stack_pool)
        if (addr >= (uintptr_t)stack - page && addr < (uintptr_t)stack) {
            char msg[256];
            const ThreadView *v = cur;
            int n = snprintf(msg, sizeof msg,
                             "cuda-emu: kernel '%s' block (%u,%u,%u) thread (%u,%u,%u) overflowed its %zu KiB fiber stack "
                             "(set CUDA_EMU_STACK_KIB)\n",
                             blk ? blk->kernel : "?", v ? v->block_idx.x : 0, v ? v->block_idx.y : 0, v ? v->block_idx.z : 0,
                             v ? v->thread_idx.x : 0, v ? v->thread_idx.y : 0, v ? v->thread_idx.z : 0, stack_bytes / 1024);
            ssize_t ignored = write(2, msg, (size_t)n);
            (void)ignored;
            break;
        }
    // Back to the previous handler; returning retries the access, which faults again.
    sigaction(sig, &previous_segv, nullptr);
}

void watch_stack_overflow() {
    static char alt[64 * 1024]; // the handler cannot run on the stack that overflowed
    stack_t ss = {};
    ss.ss_sp = alt;
    ss.ss_size = sizeof alt;
    struct sigaction sa = {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaltstack(&ss, nullptr) == 0) sigaction(SIGSEGV, &sa, &previous_segv);
}
#else
void watch_stack_overflow() {}
#endif

void init() {
    if (initialised) return;
    initialised = true;
    const char *order = getenv("CUDA_EMU_ORDER");
    if (order && *order && cudaEmuSetOrder(order) != cudaSuccess) {
        fprintf(stderr, "cuda-emu: CUDA_EMU_ORDER=%s: want forward, reverse or shuffle:SEED\n", order);
        order_bad = true;
    }
#ifdef EMU_ASAN
    size_t kib = 256; // ASan's redzones make frames larger
#else
    size_t kib = 64;
#endif
    const char *s = getenv("CUDA_EMU_STACK_KIB");
    if (s && atoi(s) >= 16) kib = (size_t)atoi(s);
    stack_bytes = kib * 1024;
    watch_stack_overflow();
}

// Fiber stacks are mmap'd with a PROT_NONE page below them, so an overflow faults at once
// instead of overwriting a neighbour; they are kept for later launches.
char *pool_stack(size_t i) {
    while (stack_pool.size() <= i) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        void *m = mmap(nullptr, stack_bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return nullptr;
        mprotect(m, page, PROT_NONE);
        stack_pool.push_back((char *)m + page);
    }
    return stack_pool[i];
}

std::string where(const Fiber &f) {
    char buf[96];
    snprintf(buf, sizeof buf, "thread (%u,%u,%u)", f.view.thread_idx.x, f.view.thread_idx.y, f.view.thread_idx.z);
    return buf;
}

// Ends the block: records the message; the caller returns to (or is) the scheduler.
void record_fault(Block &b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void record_fault(Block &b, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const ThreadView &v = b.fibers[0].view;
    char head[256];
    snprintf(head, sizeof head, "kernel '%s' block (%u,%u,%u): ", b.kernel, v.block_idx.x, v.block_idx.y, v.block_idx.z);
    last_fault = std::string(head) + msg;
    b.failed = true;
}

void switch_to_scheduler(Block &b, Fiber &f, bool for_good) {
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(for_good ? nullptr : &f.fake_stack, b.sched_stack_bottom, b.sched_stack_size);
#else
    (void)for_good;
#endif
    context_switch(f.ctx, b.sched);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

// Called from a fiber: the block cannot go on, and this fiber never resumes.
[[noreturn]] void fault_here(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fault_here(const char *fmt, ...) {
    Block &b = *blk;
    Fiber &f = *b.running;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    record_fault(b, "%s %s", where(f).c_str(), msg);
    f.state = EXITED;
    switch_to_scheduler(b, f, true);
    abort(); // not reached: the scheduler never resumes a failed block
}

void fiber_main() {
    Block &b = *blk;
    Fiber &f = *b.running;
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &b.sched_stack_bottom, &b.sched_stack_size);
#endif
    (*b.body)();
    f.state = EXITED;
    switch_to_scheduler(b, f, true);
    abort(); // not reached
}

void resume(Block &b, Fiber &f) {
    b.running = &f;
    cur = &f.view;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&b.sched_fake_stack, f.stack, f.stack_size);
#endif
    context_switch(b.sched, f.ctx);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(b.sched_fake_stack, nullptr, nullptr);
#endif
    cur = nullptr;
    b.running = nullptr;
}

void park(Block &b, Fiber &f) {
    switch_to_scheduler(b, f, false);
    cur = &f.view;
}

// Completes the warp operation of the lanes in `lanes` (warp starting at thread `base`) when
// all of them have arrived.  Returns false while some lane is still on its way.
bool try_release_warp(Block &b, int base, unsigned lanes, const Fiber &caller) {
    for (int l = 0; l < 32; l++) {
        if (!(lanes >> l & 1)) continue;
        Fiber &g = b.fibers[base + l];
        if (g.state == EXITED)
            fault_here("waits at %s %s:%d for a lane that has exited", op_names[caller.op], caller.file, caller.line);
        if (g.state != AT_WARP) return false;
    }
    for (int l = 0; l < 32; l++) {
        if (!(lanes >> l & 1)) continue;
        const Fiber &g = b.fibers[base + l];
        if (g.mask != caller.mask || g.op != caller.op)
            fault_here("at %s %s:%d meets a lane of its mask at a different warp operation or mask", op_names[caller.op],
                       caller.file, caller.line);
    }
    uint64_t votes = 0;
    for (int l = 0; l < 32; l++)
        if ((lanes >> l & 1) && b.fibers[base + l].value) votes |= 1ull << l;
    for (int l = 0; l < 32; l++) {
        if (!(lanes >> l & 1)) continue;
        Fiber &g = b.fibers[base + l];
        int w = g.width, group = l & ~(w - 1), src = l;
        switch (g.op) {
        case SHFL_IDX: src = group + (((g.param % w) + w) % w); break;
        case SHFL_UP: src = l - g.param >= group ? l - g.param : l; break;
        case SHFL_DOWN: src = l + g.param < group + w ? l + g.param : l; break;
        case SHFL_XOR: src = (l ^ g.param) >= group && (l ^ g.param) < group + w ? l ^ g.param : l; break;
        default: break;
        }
        switch (g.op) {
        case WARP_SYNC: g.result = 0; break;
        case VOTE_BALLOT: g.result = votes; break;
        case VOTE_ANY: g.result = votes != 0; break;
        case VOTE_ALL: g.result = votes == lanes; break;
        default:
            if (!(lanes >> src & 1)) {
                fault_here("at %s %s:%d: lane %d reads lane %d, which is not taking part", op_names[g.op], g.file, g.line, l, src);
            }
            g.result = b.fibers[base + src].value;
        }
    }
    for (int l = 0; l < 32; l++)
        if (lanes >> l & 1) b.fibers[base + l].state = RUNNABLE;
    return true;
}

unsigned warp_lanes(const Block &b, int base) { // lanes of the warp that have a thread
    int n = (int)b.fibers.size() - base;
    return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

// Why the block is stuck, for a fiber parked at a warp operation.
void diagnose_warp(Block &b, const Fiber &f) {
    int base = f.linear & ~31;
    unsigned lanes = f.mask & warp_lanes(b, base);
    for (int l = 0; l < 32; l++) {
        if (!(lanes >> l & 1)) continue;
        const Fiber &g = b.fibers[base + l];
        if (g.state == AT_WARP) continue;
        char why[256];
        if (g.state == EXITED) snprintf(why, sizeof why, "which exited");
        else snprintf(why, sizeof why, "which waits at __syncthreads %s:%d", g.file, g.line);
        record_fault(b, "%s waits at %s %s:%d (mask 0x%08x) for lane %d, %s", where(f).c_str(), op_names[f.op], f.file,
                     f.line, f.mask, l, why);
        return;
    }
    record_fault(b, "%s waits at %s %s:%d (mask 0x%08x), never completed", where(f).c_str(), op_names[f.op], f.file, f.line,
                 f.mask);
}

// Runs one block to the end; false after a fault (the message is in last_fault).
bool run_block(Block &b) {
    int n = (int)b.fibers.size();
    for (int i = 0; i < n; i++) {
        Fiber &f = b.fibers[i];
        f.state = RUNNABLE;
        f.fake_stack = nullptr;
        f.stack = pool_stack((size_t)i);
        f.stack_size = stack_bytes;
        if (!f.stack) {
            record_fault(b, "cannot map fiber stacks for %d threads", n);
            return false;
        }
#ifdef EMU_ASAN
        __asan_unpoison_memory_region(f.stack, f.stack_size); // frames a faulted block left behind
#endif
        context_make(f.ctx, f.stack, f.stack_size, fiber_main);
    }
    b.dyn = malloc(b.dyn_bytes ? b.dyn_bytes : 1);
    memset(b.dyn, CUDA_EMU_POISON, b.dyn_bytes);
    b.statics.clear();
    b.static_bytes = 0;
    b.failed = false;
    std::vector<int> idx;
    bool ok = true;
    for (;;) {
        bool ran;
        do {
            ran = false;
            order_indices(idx, n);
            for (int i : idx) {
                if (b.fibers[i].state != RUNNABLE) continue;
                resume(b, b.fibers[i]);
                ran = true;
                if (b.failed) goto out;
            }
        } while (ran);
        // Nothing can run: every live thread waits at a barrier or a warp operation.
        const Fiber *waiting = nullptr, *exited = nullptr;
        for (const Fiber &f : b.fibers) {
            if (f.state == AT_WARP) {
                diagnose_warp(b, f);
                goto out;
            }
            if (f.state == EXITED && !exited) exited = &f;
            if (f.state == AT_BARRIER && !waiting) waiting = &f;
        }
        if (!waiting) break; // all done
        if (exited) {
            record_fault(b, "%s waits at __syncthreads %s:%d, but %s exited without reaching it", where(*waiting).c_str(),
                         waiting->file, waiting->line, where(*exited).c_str());
            goto out;
        }
        for (const Fiber &f : b.fibers)
            if (f.line != waiting->line || strcmp(f.file, waiting->file) != 0) {
                record_fault(b, "divergent __syncthreads: %s waits at %s:%d, %s at %s:%d", where(*waiting).c_str(),
                             waiting->file, waiting->line, where(f).c_str(), f.file, f.line);
                goto out;
            }
        b.barrier_count = 0;
        for (Fiber &f : b.fibers) {
            b.barrier_count += f.value != 0;
            f.state = RUNNABLE;
        }
    }
out:
    ok = !b.failed;
    for (auto &s : b.statics) free(s.second);
    b.statics.clear();
    free(b.dyn);
    b.dyn = nullptr;
    return ok;
}

bool valid_stream(cudaStream_t s) { return s == nullptr || streams.count(s); }

} // namespace

int syncthreads(const char *file, int line, int predicate) {
    Block &b = *blk;
    Fiber &f = *b.running;
    f.state = AT_BARRIER;
    f.file = file;
    f.line = line;
    f.value = predicate != 0;
    park(b, f);
    return b.barrier_count; // read before any other barrier can be released: that needs this thread
}

uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int param, int width, const char *file, int line) {
    Block &b = *blk;
    Fiber &f = *b.running;
    f.op = kind;
    f.file = file;
    f.line = line;
    int lane = f.linear & 31, base = f.linear & ~31;
    if (width < 1 || width > 32 || (width & (width - 1)))
        fault_here("calls %s at %s:%d with a width that is not a power of two up to 32", op_names[kind], file, line);
    if (!(mask >> lane & 1)) fault_here("calls %s at %s:%d with a mask that leaves out its own lane", op_names[kind], file, line);
    f.state = AT_WARP;
    f.mask = mask;
    f.value = value;
    f.param = param;
    f.width = width;
    // Lanes past the end of a partial last warp do not exist: a full mask names only the others.
    if (!try_release_warp(b, base, mask & warp_lanes(b, base), f)) park(b, f);
    return f.result;
}

void *shared_static(const void *site, size_t bytes, const char *file, int line) {
    Block &b = *blk;
    for (auto &s : b.statics)
        if (s.first == site) return s.second;
    if (b.static_bytes + bytes > CUDA_EMU_SHARED_DEFAULT || b.static_bytes + bytes + b.dyn_bytes > b.shared_limit)
        fault_here("declares SHARED at %s:%d beyond the block's shared memory limit", file, line);
    void *p = malloc(bytes ? bytes : 1);
    memset(p, CUDA_EMU_POISON, bytes);
    b.statics.push_back({site, p});
    b.static_bytes += bytes;
    return p;
}

void *shared_dynamic() { return blk->dyn; }

cudaError_t launch(const char *name, const void *func, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                   const std::function<void()> &body) {
    init();
    if (sticky_error) return set_error(sticky_error);
    if (order_bad || blk) return set_error(cudaErrorInvalidValue); // bad CUDA_EMU_ORDER; or a launch inside a kernel
    if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
    uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (!block.x || !block.y || !block.z || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > CUDA_EMU_MAX_THREADS ||
        !grid.x || !grid.y || !grid.z || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return set_error(cudaErrorInvalidConfiguration);
    auto optin = dyn_shared_optin.find(func);
    size_t limit = optin == dyn_shared_optin.end() ? CUDA_EMU_SHARED_DEFAULT : (size_t)optin->second;
    if (shmem > limit) return set_error(cudaErrorInvalidValue);

    Block b{};
    b.kernel = name;
    b.body = &body;
    b.fibers.resize(threads);
    b.dyn_bytes = shmem;
    b.shared_limit = optin == dyn_shared_optin.end() ? CUDA_EMU_SHARED_DEFAULT : CUDA_EMU_SHARED_OPTIN;
    uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
    std::vector<uint64_t> order(nblocks);
    for (uint64_t i = 0; i < nblocks; i++) order[i] = order_mode == REVERSE ? nblocks - 1 - i : i;
    if (order_mode == SHUFFLE)
        for (uint64_t i = nblocks - 1; i > 0; i--) std::swap(order[i], order[next_random() % (i + 1)]);
    blk = &b;
    bool ok = true;
    for (uint64_t id : order) {
        uint3 bi = {(unsigned)(id % grid.x), (unsigned)(id / grid.x % grid.y), (unsigned)(id / ((uint64_t)grid.x * grid.y))};
        for (uint64_t t = 0; t < threads; t++) {
            Fiber &f = b.fibers[t];
            f.linear = (int)t;
            f.view.thread_idx = {(unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / ((uint64_t)block.x * block.y))};
            f.view.block_idx = bi;
            f.view.block_dim = block;
            f.view.grid_dim = grid;
        }
        if (!(ok = run_block(b))) break;
    }
    blk = nullptr;
    if (!ok) {
        fprintf(stderr, "cuda-emu: %s\n", last_fault.c_str());
        sticky_error = cudaErrorLaunchFailure; // as a device fault: every later call reports it
        return set_error(sticky_error);
    }
    return cudaSuccess;
}

bool is_device_range(const void *p, size_t bytes) {
    auto it = allocations.upper_bound((uintptr_t)p);
    if (it == allocations.begin()) return false;
    --it;
    uintptr_t start = it->first, q = (uintptr_t)p;
    return q >= start && q - start <= it->second && bytes <= it->second - (q - start);
}

} // namespace emu

using namespace emu;

extern "C" {

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (sticky_error) return set_error(sticky_error);
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > CUDA_EMU_SHARED_OPTIN)
        return set_error(cudaErrorInvalidValue);
    dyn_shared_optin[func] = value;
    return cudaSuccess;
}


cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    if (!ptr) return set_error(cudaErrorInvalidValue);
    *ptr = nullptr;
    if (sticky_error) return set_error(sticky_error);
    if (bytes == 0) return cudaSuccess;
    void *p = nullptr;
    if (posix_memalign(&p, 256, bytes) != 0) return set_error(cudaErrorMemoryAllocation);
    memset(p, CUDA_EMU_POISON, bytes); // fresh device memory is garbage on a GPU: make it NaN here
    allocations[(uintptr_t)p] = bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (sticky_error) return set_error(sticky_error);
    if (!ptr) return cudaSuccess;
    auto it = allocations.find((uintptr_t)ptr);
    if (it == allocations.end()) return set_error(cudaErrorInvalidValue);
    allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes) {
    if (!ptr) return set_error(cudaErrorInvalidValue);
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *ptr) {
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (sticky_error) return set_error(sticky_error);
    if (bytes == 0) return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (!dst || !src || kind > cudaMemcpyDefault || (dst_dev && !is_device_range(dst, bytes)) ||
        (src_dev && !is_device_range(src, bytes)))
        return set_error(cudaErrorInvalidValue);
    memcpy(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    if (sticky_error) return set_error(sticky_error);
    if (bytes == 0) return cudaSuccess;
    if (!is_device_range(dst, bytes)) return set_error(cudaErrorInvalidValue);
    memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
    return cudaMemset(dst, value, bytes);
}

// The host's memory, or a device of CUDA_EMU_DEVICE_MIB MiB (all free) to test what a backend
// does on a smaller GPU.
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t avail = (size_t)sysconf(_SC_AVPHYS_PAGES) * page, total = (size_t)sysconf(_SC_PHYS_PAGES) * page;
    const char *mib = getenv("CUDA_EMU_DEVICE_MIB");
    if (mib && *mib) avail = total = (size_t)strtoull(mib, nullptr, 10) << 20;
    if (free_bytes) *free_bytes = avail;
    if (total_bytes) *total_bytes = total;
    return sticky_error ? set_error(sticky_error) : cudaSuccess;
}

// Streams and events: every operation has finished when its call returns, so a stream is only
// a handle to validate and an event a time stamp.
cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    if (!stream || flags > cudaStreamNonBlocking) return set_error(cudaErrorInvalidValue);
    *stream = new CUstream_st();
    streams.insert(*stream);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream || !streams.erase(stream)) return set_error(cudaErrorInvalidResourceHandle);
    delete stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
    return sticky_error ? set_error(sticky_error) : cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t stream) { return cudaStreamSynchronize(stream); }
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
    if (!valid_stream(stream) || !events.count(event)) return set_error(cudaErrorInvalidResourceHandle);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
    if (!event) return set_error(cudaErrorInvalidValue);
    *event = new CUevent_st{flags, false, 0.0};
    events.insert(*event);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!events.erase(event)) return set_error(cudaErrorInvalidResourceHandle);
    delete event;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!events.count(event) || !valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
    event->recorded = true;
    event->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return sticky_error ? set_error(sticky_error) : cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!events.count(event)) return set_error(cudaErrorInvalidResourceHandle);
    return sticky_error ? set_error(sticky_error) : cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms) return set_error(cudaErrorInvalidValue);
    if (!events.count(start) || !events.count(end) || ((start->flags | end->flags) & cudaEventDisableTiming))
        return set_error(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return set_error(cudaErrorInvalidResourceHandle);
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error != cudaSuccess ? last_error : sticky_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error != cudaSuccess ? last_error : sticky_error; }

const char *cudaGetErrorName(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: break; // the emulation never returns the others
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: break;
    }
    return "unknown error";
}

cudaError_t cudaDeviceSynchronize(void) { return sticky_error ? set_error(sticky_error) : cudaSuccess; }

// As on a GPU, a reset clears a fault and frees every allocation.
cudaError_t cudaDeviceReset(void) {
    for (auto &a : allocations) free((void *)a.first);
    allocations.clear();
    dyn_shared_optin.clear();
    sticky_error = last_error = cudaSuccess;
    last_fault.clear();
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return set_error(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
    if (!device) return set_error(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    if (!p) return set_error(cudaErrorInvalidValue);
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuda-emu (CPU emulation of an sm_90 device)");
    cudaMemGetInfo(nullptr, &p->totalGlobalMem);
    p->sharedMemPerBlock = CUDA_EMU_SHARED_DEFAULT;
    p->sharedMemPerBlockOptin = CUDA_EMU_SHARED_OPTIN;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = CUDA_EMU_MAX_THREADS;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->major = 9, p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->l2CacheSize = 50u << 20;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    if (!value) return set_error(cudaErrorInvalidValue);
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = CUDA_EMU_MAX_THREADS; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = CUDA_EMU_SHARED_DEFAULT; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = CUDA_EMU_SHARED_OPTIN; break;
    default: return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaEmuSetOrder(const char *order) {
    init(); // so that CUDA_EMU_ORDER does not override this call later
    if (!order) return cudaErrorInvalidValue;
    if (!strcmp(order, "forward")) order_mode = FORWARD;
    else if (!strcmp(order, "reverse")) order_mode = REVERSE;
    else if (!strncmp(order, "shuffle:", 8) && order[8]) {
        char *end;
        unsigned long long seed = strtoull(order + 8, &end, 10);
        if (*end) return cudaErrorInvalidValue;
        order_mode = SHUFFLE;
        rng_state = seed * 0x9E3779B97F4A7C15ull + 1; // xorshift must not start at 0
    } else
        return cudaErrorInvalidValue;
    return cudaSuccess;
}

const char *cudaEmuLastFault(void) { return last_fault.c_str(); }

} // extern "C"
