# rwkv7c: RWKV-7 pre-training toolkit.  `make` builds every tool into build/bin.
# Honours PREFIX, DESTDIR, CC, CUDA_HOME, NVCC, CUDA_ARCH, CFLAGS, LDFLAGS.
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DATADIR   ?= $(PREFIX)/share/rwkv7c
MANDIR    ?= $(PREFIX)/share/man
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= sm_80 sm_86 sm_89 sm_90
CFLAGS    ?= -O2 -g
ARCHFLAGS ?= -march=native
WARN      := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla
ALL_CFLAGS = -std=gnu11 $(WARN) $(ARCHFLAGS) -fopenmp -Ilib -MMD -MP $(CFLAGS) -DDATADIR=\"$(DATADIR)\"
LDLIBS    += -lzstd -lxxhash -llapacke -lopenblas -lm -lpthread -fopenmp

B := build
TOOLS    := $(patsubst bin/%.c,%,$(wildcard bin/*.c))
LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
UNIT     := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/*.c))
HELPERS  := $(patsubst tests/helpers/%.c,$(B)/helpers/%,$(wildcard tests/helpers/*.c))
FUZZ     := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/*.c))
CUDA_SRC := $(wildcard cuda/*.cu)
# the tools with a CUDA build, and the lib/ files compiled again for it (with RWKV7C_CUDA)
CUDA_TOOLS  := rwkv-train rwkv-generate
CUDA_SELECT := backend gpu_decode
VOCAB    := $(B)/share/rwkv7c/rwkv_vocab_v20230424.txt

.PHONY: all check bench fuzz demo deps install uninstall clean cuda help

# Debian packages the build and the tests need; `make deps` installs the missing ones.
DEB_PKGS := build-essential clang libzstd-dev libxxhash-dev libopenblas-dev liblapacke-dev \
            python3-torch python3-numpy python3-pip zstd \
            libblas-dev liblapack-dev libgfortran-12-dev libopenmpi-dev openmpi-bin
all: $(TOOLS:%=$(B)/bin/%) $(UNIT) $(HELPERS) $(VOCAB) $(B)/bin/rwkv-wandb-bridge

# rwkv-train --wandb runs this Python script from its own directory.
$(B)/bin/rwkv-wandb-bridge: bin/rwkv-wandb-bridge
	@mkdir -p $(@D)
	cp $< $@

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/librwkv7c.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/bin/%: $(B)/obj/bin/%.o $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Programs the shell tests call (not tests themselves).
$(B)/helpers/%: $(B)/obj/tests/helpers/%.o $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(VOCAB): share/rwkv7c/rwkv_vocab_v20230424.txt
	@mkdir -p $(@D)
	cp $< $@

# libFuzzer targets: clang, sanitizers, the library compiled once for all of
# them into build/fuzz/obj (fuzzer-no-link: instrumented, libFuzzer linked
# only into the targets).
FUZZ_CC    ?= clang
FUZZ_FLAGS := -std=gnu11 -g -O1 -fopenmp -Ilib -Wno-pass-failed
FUZZ_OBJ   := $(LIB_SRC:%.c=$(B)/fuzz/obj/%.o)
$(B)/fuzz/obj/%.o: %.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined $< $(FUZZ_OBJ) $(LDLIBS) -o $@

# CUDA (cuda/README.md).  `make cuda`: every cuda/*.cu and tests/cuda/*.cu through nvcc as one
# fat binary for all of CUDA_ARCH, warnings as errors, ptxas's register/spill report held to
# cuda/ptxas-budget.txt; the tests are linked too, to run where there is a GPU.  Nothing in
# `make check` needs nvcc or a GPU.
CUDA_TEST_SRC := $(wildcard tests/cuda/*.cu)
# SASS for each architecture, and PTX of the newest for GPUs newer than all of them.
GENCODE        = $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a:sm_%=%),code=$(a)) \
                 -gencode arch=compute_$(lastword $(CUDA_ARCH:sm_%=%)),code=compute_$(lastword $(CUDA_ARCH:sm_%=%))
NVCCFLAGS     ?= -O3
ALL_NVCCFLAGS  = -std=c++17 $(GENCODE) --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror \
                 -Xptxas -v -Icuda -Ilib -MMD -MP $(NVCCFLAGS)
CUDA_GPU_TESTS := $(patsubst tests/cuda/%.cu,$(B)/cuda/tests/%,$(CUDA_TEST_SRC))
cuda: $(CUDA_SRC:%.cu=$(B)/cuda/obj/%.o) $(CUDA_GPU_TESTS) $(CUDA_TOOLS:%=$(B)/cuda/bin/%) $(B)/cuda/$(VOCAB:$(B)/%=%)
# Rewritten only when the flags change (another CUDA_ARCH, say), so that the objects follow them.
$(B)/cuda/flags: cuda-flags-check
	@mkdir -p $(@D)
	@echo '$(NVCC) $(ALL_NVCCFLAGS)' | cmp -s - $@ || echo '$(NVCC) $(ALL_NVCCFLAGS)' >$@
.PHONY: cuda-flags-check cuda-emu
$(B)/cuda/obj/%.o: %.cu $(B)/cuda/flags cuda/ptxas-budget.sh cuda/ptxas-budget.txt
	@mkdir -p $(@D)
	$(NVCC) $(ALL_NVCCFLAGS) -c $< -o $@ 2>$@.ptxas || { cat $@.ptxas; exit 1; }
	@sh cuda/ptxas-budget.sh cuda/ptxas-budget.txt $@.ptxas
# Every test links every kernel object and, for the CPU twins, the library (with libgomp: the
# library is built by $(CC) -fopenmp, whichever compiler links).
CUDA_TEST_LIBS = $(filter-out -fopenmp,$(LDLIBS)) -lgomp
# cuda/gemm.cu calls cuBLASLt on the GPU (the emulated build computes with OpenBLAS instead).
CUDA_GPU_LIBS  = -lcublasLt
# The kernels as an archive: each program takes only the objects it calls (a test of one kernel
# family does not carry every kernel's device code: the GPU bundle's size limit).
CUDA_KERNELS_A = $(B)/cuda/libkernels.a
$(CUDA_KERNELS_A): $(CUDA_SRC:%.cu=$(B)/cuda/obj/%.o)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/cuda/tests/%: $(B)/cuda/obj/tests/cuda/%.o $(CUDA_KERNELS_A) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(NVCC) $(GENCODE) $^ $(CUDA_TEST_LIBS) $(CUDA_GPU_LIBS) -o $@

# The tools with the CUDA backend (rwkv-train, rwkv-generate --accelerator gpu): the dispatch
# files (CUDA_SELECT) again with RWKV7C_CUDA, which then call cuda/backend_cuda.cu, linked
# before the library so their copies win.
$(B)/cuda/obj/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DRWKV7C_CUDA -c $< -o $@
$(CUDA_TOOLS:%=$(B)/cuda/bin/%): $(B)/cuda/bin/%: $(B)/obj/bin/%.o $(CUDA_SELECT:%=$(B)/cuda/obj/lib/%.o) $(CUDA_KERNELS_A) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(NVCC) $(GENCODE) $^ $(CUDA_TEST_LIBS) $(CUDA_GPU_LIBS) -o $@

# `make cuda-emu`: the same sources through cuda/emu.h and a host C++ compiler (no nvcc, no GPU;
# the toolkit's headers only), plus an ASan/UBSan build; tests/t_cuda_emu.sh runs them in
# several thread orders.  The trainer with the CUDA backend under emulation is
# $(B)/cuda-emu/bin/rwkv-train, built from the same objects.
EMU_CXX      ?= g++
EMU_SAN_CXX  ?= clang++
EMU_CXXFLAGS ?= -O1 -g
EMU_FLAGS     = -std=c++17 -Wall -Wextra -Wshadow -Wno-unknown-pragmas -Icuda -Ilib -isystem $(CUDA_HOME)/include -MMD -MP
EMU_SAN       = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
EMU_TESTS    := $(patsubst tests/cuda/%.cu,$(B)/cuda-emu/tests/%,$(CUDA_TEST_SRC))
EMU_SAN_TESTS := $(patsubst tests/cuda/%.cu,$(B)/cuda-emu/asan/%,$(CUDA_TEST_SRC))
cuda-emu: $(EMU_TESTS) $(if $(shell command -v $(EMU_SAN_CXX)),$(EMU_SAN_TESTS)) $(CUDA_TOOLS:%=$(B)/cuda-emu/bin/%) \
          $(B)/cuda-emu/$(VOCAB:$(B)/%=%)
# the vocabulary beside the CUDA tools, where rwkv-generate looks first (bin/../share/rwkv7c)
$(B)/cuda/share/rwkv7c/%: share/rwkv7c/%
	@mkdir -p $(@D)
	cp $< $@
$(B)/cuda-emu/share/rwkv7c/%: share/rwkv7c/%
	@mkdir -p $(@D)
	cp $< $@
ifneq ($(wildcard $(CUDA_HOME)/include/cuda_bf16.h),)
all: cuda-emu
endif
$(B)/cuda-emu/obj/%.o: %.cu
	@mkdir -p $(@D)
	$(EMU_CXX) $(EMU_FLAGS) $(EMU_CXXFLAGS) -x c++ -c $< -o $@
$(B)/cuda-emu/obj/%.o: %.cpp
	@mkdir -p $(@D)
	$(EMU_CXX) $(EMU_FLAGS) $(EMU_CXXFLAGS) -c $< -o $@
$(B)/cuda-emu/tests/%: $(B)/cuda-emu/obj/tests/cuda/%.o $(B)/cuda-emu/obj/cuda/emu.o $(CUDA_SRC:%.cu=$(B)/cuda-emu/obj/%.o) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(EMU_CXX) $^ $(CUDA_TEST_LIBS) -o $@
# The emulated tools: `--accelerator gpu` runs cuda/backend_cuda.cu on the CPU
# (tests/t_train_cuda_emu.sh, t_generate_cuda_emu.sh).
$(B)/cuda-emu/obj/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DRWKV7C_CUDA -c $< -o $@
$(CUDA_TOOLS:%=$(B)/cuda-emu/bin/%): $(B)/cuda-emu/bin/%: $(B)/obj/bin/%.o $(CUDA_SELECT:%=$(B)/cuda-emu/obj/lib/%.o) $(B)/cuda-emu/obj/cuda/emu.o $(CUDA_SRC:%.cu=$(B)/cuda-emu/obj/%.o) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(EMU_CXX) $^ $(CUDA_TEST_LIBS) -o $@
$(B)/cuda-emu/asan-obj/%.o: %.cu
	@mkdir -p $(@D)
	$(EMU_SAN_CXX) $(EMU_FLAGS) $(EMU_SAN) -O1 -g -x c++ -c $< -o $@
$(B)/cuda-emu/asan-obj/%.o: %.cpp
	@mkdir -p $(@D)
	$(EMU_SAN_CXX) $(EMU_FLAGS) $(EMU_SAN) -O1 -g -c $< -o $@
$(B)/cuda-emu/asan/%: $(B)/cuda-emu/asan-obj/tests/cuda/%.o $(B)/cuda-emu/asan-obj/cuda/emu.o $(CUDA_SRC:%.cu=$(B)/cuda-emu/asan-obj/%.o) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(EMU_SAN_CXX) $(EMU_SAN) $^ $(CUDA_TEST_LIBS) -o $@

# Benchmark programs: bench/*.c -> build/bench/*, compiled and linked like the
# tools.  make check builds them too, so a library change that breaks one is seen.
BENCH := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
$(B)/bench/%: $(B)/obj/bench/%.o $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The normal suite, then the ASan/UBSan pass; each prints its "N passed, N
# failed" line, and either failing fails the make.  The sanitized tree is
# built first: tests/t_cli_leaks.sh uses its tools in the normal suite.
check: all $(BENCH) asan
	@rc=0; sh tests/run.sh || rc=1; $(ASAN_RUN) || rc=1; exit $$rc

# Everything rebuilt with clang's AddressSanitizer and UBSan in its own tree
# (build/asan); every unit test runs once at full size, and so do the shell
# tests of ASAN_TESTS (the parsers' and the tools' error paths, where leaks
# and UB were found), against the sanitized tools.  UB is fatal
# (-fno-sanitize-recover), leaks count, and a report fails the test even when
# the test swallows the tool's stderr (tests/run.sh --build).
# -Wno-pass-failed: at -O1 clang cannot honour every `omp simd`, and says so.
ASAN_CC    ?= clang
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_TESTS := _test t_tokenize t_shuf t_binidx t_magic_prime t_pth_bad t_safetensors \
              t_model_cli t_model_generate t_train_plot t_train_errors
ASAN_RUN   := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
              sh tests/run.sh --build $(B)/asan $(ASAN_TESTS)
.PHONY: check-asan asan programs
asan:
	@$(MAKE) --no-print-directory B=$(B)/asan CC=$(ASAN_CC) CFLAGS="-O1 -g $(ASAN_FLAGS) -Wno-pass-failed" programs
# The CPU programs the tests run (what `all` builds but the CUDA parts).
programs: $(TOOLS:%=$(B)/bin/%) $(UNIT) $(HELPERS) $(VOCAB)
# programs too: some shell tests call helpers by their path in build/tests.
check-asan: programs asan
	@$(ASAN_RUN)

fuzz: $(FUZZ)
	@sh tests/run-fuzz.sh $(FUZZ_SECONDS)

bench: all $(BENCH)
	@sh bench/run.sh

demo: all
	@sh pipelines/demo.sh

deps:
	@missing=; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# Test-only: the `rwkv` pip package (pure Python), unpacked, not installed, so
	@# tests/t_pth_rwkvpip.sh can run our .pth in it.  Optional: the test skips without it.
	@[ -d $(B)/pip/rwkv ] || { mkdir -p $(B)/pip && python3 -m pip download -q --no-deps \
	    --only-binary=:all: rwkv==0.8.32 -d $(B)/pip >/dev/null 2>&1 && \
	    python3 -m zipfile -e $(B)/pip/rwkv-0.8.32-*.whl $(B)/pip; } || echo "note: rwkv pip package not fetched; its test will skip"
	@# Test-only: tensorboard and wandb, each in its own directory (tests put it on
	@# PYTHONPATH), so tests/t_train_tensorboard.sh and t_train_wandb.sh read back what
	@# rwkv-train logged with the real packages (the versions tested).  Optional: those tests skip without them.
	@[ -d $(B)/pip-tb/tensorboard ] || /usr/bin/python3 -m pip install -q --disable-pip-version-check --no-warn-script-location \
	    --target $(B)/pip-tb tensorboard==2.21.0 >/dev/null 2>&1 || echo "note: tensorboard pip package not fetched; its test will skip"
	@[ -d $(B)/pip-wandb/wandb ] || /usr/bin/python3 -m pip install -q --disable-pip-version-check --no-warn-script-location \
	    --target $(B)/pip-wandb wandb==0.31.0 >/dev/null 2>&1 || echo "note: wandb pip package not fetched; its test will skip"

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(TOOLS:%=$(B)/bin/%) $(DESTDIR)$(BINDIR)
	install -m 755 bin/rwkv-wandb-bridge $(DESTDIR)$(BINDIR)
	install -m 644 share/rwkv7c/rwkv_vocab_v20230424.txt share/rwkv7c/NOTICE $(DESTDIR)$(DATADIR)
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1
	install -d $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(DATADIR)/pipelines
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(MANDIR)/man7
	install -m 644 pipelines/pretrain.mk $(DESTDIR)$(DATADIR)/pipelines
	install -m 755 pipelines/demo-training-prepare.sh pipelines/demo-training-run.sh $(DESTDIR)$(DATADIR)/pipelines

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(BINDIR)/rwkv-wandb-bridge $(patsubst man/%,$(DESTDIR)$(MANDIR)/man1/%,$(wildcard man/*.1)) \
	    $(patsubst man/%,$(DESTDIR)$(MANDIR)/man7/%,$(wildcard man/*.7))
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf $(B)

# examples/arithmetic: the arithmetic generator and evaluator (build/examples),
# and `make arith-demo`, a small model trained on them on the CPU.
EXAMPLES := $(patsubst examples/arithmetic/%.c,$(B)/examples/%,$(wildcard examples/arithmetic/*.c))
all: $(EXAMPLES)
$(B)/examples/%: $(B)/obj/examples/arithmetic/%.o $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@
.PHONY: arith-demo
arith-demo: all
	@sh examples/arithmetic/demo.sh

help:
	@echo "targets: all check check-asan bench fuzz demo arith-demo deps install uninstall clean cuda cuda-emu gpu-bundle"
	@echo "tools:   $(TOOLS)"

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(B)/cuda $(B)/cuda-emu -name '*.d' 2>/dev/null)
.SECONDARY:

# Parts kept in their own files (the GPU bundle, the communication layer): mk/*.mk.
include $(wildcard mk/*.mk)
