# `make gpu-bundle`: build/gpu-bundle/ (and build/gpu-bundle.tar.gz), what a bare GPU machine
# with only the driver and the CUDA 13 runtime libraries needs to check the CUDA backend in one
# call (bundle/README.md): the CUDA trainer, rwkv-init, the kernel twin tests, t_backend,
# gemm_rates, a small dataset and bundle/run.sh.  At most BUNDLE_MAX_MIB.
#
# Every program is linked statically against all but glibc (zstd, xxhash, LAPACKE, BLAS, libgomp,
# libgfortran, libstdc++, libgcc; cudart from libcudart_static.a, as nvcc links it); cuBLASLt
# (and NCCL where the comm layer uses it) are found at run time by run.sh.  They are built in a
# tree of their own (GPU_BUNDLE_TREE) by a second make with these flags, for a generic x86-64
# (BUNDLE_ARCHFLAGS: the build machine's -march=native may not run on the GPU machine's CPU).
#
# BLAS: rwkv-init gets OpenBLAS (its orthogonal init of the 65536 x 768 head takes 5 s with it
# on 2 cores and 68 s with the reference BLAS).  The GPU programs compute on the GPU, so they get
# Debian's reference BLAS and LAPACK, about 1 MiB against OpenBLAS's 25 MiB per program (its
# kernels for every CPU), which would not fit 60 MiB; bundle/blas_single.c stands in for
# OpenBLAS's thread-count calls there.  Their CPU backend works, only slowly.

GPU_BUNDLE       := $(B)/gpu-bundle
GPU_BUNDLE_TREE  := $(B)/gpu-bundle-build
BUNDLE_ARCHFLAGS ?= -march=x86-64-v3
# The lent GPU machines are H200s (sm_90; the PTX of compute_90 lets newer GPUs JIT it): a quarter
# of the kernels' size and nvcc time of the four architectures, which would take the bundle to
# 57 MiB with the CUDA trainer and t_backend.  BUNDLE_CUDA_ARCH="$(CUDA_ARCH)" for an A100 or a 4090.
BUNDLE_CUDA_ARCH ?= sm_90
BUNDLE_MAX_MIB   ?= 60
BUNDLE_DATA      ?= examples/demo.jsonl

# Static archives, found where the compiler's linker would look (recursive variables: the shells
# run only when a bundle is built).
bundle_archive    = $(shell $(CC) -print-file-name=$(1))
BUNDLE_MULTIARCH  = $(shell $(CC) -print-multiarch)
BUNDLE_CORE_A     = $(foreach a,libzstd.a libxxhash.a liblapacke.a,$(call bundle_archive,$(a)))
BUNDLE_OPENBLAS_A ?= $(call bundle_archive,libopenblas.a)
BUNDLE_REFBLAS_A  ?= /usr/lib/$(BUNDLE_MULTIARCH)/lapack/liblapack.a /usr/lib/$(BUNDLE_MULTIARCH)/blas/libblas.a
BUNDLE_RUNTIME_A  = $(foreach a,libgfortran.a libquadmath.a libgomp.a,$(call bundle_archive,$(a)))
# --as-needed first: the static libgomp.a resolves what -fopenmp's own -lgomp would, so no
# libgomp.so is recorded; glibc's libraries stay dynamic.
BUNDLE_FAST_LIBS  = -Wl,--as-needed $(BUNDLE_CORE_A) $(BUNDLE_OPENBLAS_A) $(BUNDLE_RUNTIME_A) -static-libgcc -lm -lpthread -ldl
BUNDLE_SMALL_LIBS = -Wl,--as-needed $(BUNDLE_CORE_A) $(BUNDLE_REFBLAS_A) $(BUNDLE_RUNTIME_A) -static-libgcc -lm -lpthread -ldl
# The same for nvcc's links (its host linker is g++: libstdc++ static too).
BUNDLE_NVCC_LIBS  = -Xlinker --as-needed $(BUNDLE_CORE_A) $(BUNDLE_REFBLAS_A) $(BUNDLE_RUNTIME_A) -lm -lpthread -ldl \
                    -Xcompiler -static-libstdc++,-static-libgcc

# gemm_rates (bench/gpu/gemm_rates.cu): cuBLASLt's rates at the model's shapes on a GPU; built by
# `make cuda` with nvcc and by `make cuda-emu` through the emulation, where
# tests/t_gpu_bundle.sh runs it on tiny shapes.
cuda: $(B)/cuda/bench/gemm_rates
cuda-emu: $(B)/cuda-emu/bench/gemm_rates
$(B)/cuda/bench/%: $(B)/cuda/obj/bench/gpu/%.o $(CUDA_KERNELS_A) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(NVCC) $(GENCODE) $^ $(CUDA_TEST_LIBS) $(CUDA_GPU_LIBS) -o $@
$(B)/cuda-emu/bench/%: $(B)/cuda-emu/obj/bench/gpu/%.o $(B)/cuda-emu/obj/cuda/emu.o $(CUDA_SRC:%.cu=$(B)/cuda-emu/obj/%.o) $(B)/librwkv7c.a
	@mkdir -p $(@D)
	$(EMU_CXX) $^ $(CUDA_TEST_LIBS) -o $@

.PHONY: gpu-bundle gpu-bundle-assemble
gpu-bundle:
	@missing=; for a in $(BUNDLE_CORE_A) $(BUNDLE_OPENBLAS_A) $(BUNDLE_REFBLAS_A) $(BUNDLE_RUNTIME_A) \
	    $(call bundle_archive,libstdc++.a); do [ -f "$$a" ] || missing="$$missing $$a"; done; \
	[ -z "$$missing" ] || { echo "gpu-bundle: static libraries missing:$$missing" \
	    "(Debian: libzstd-dev libxxhash-dev liblapacke-dev libopenblas-dev libblas-dev liblapack-dev" \
	    "libgfortran-12-dev libstdc++-12-dev)" >&2; exit 1; }
	@[ -x "$(NVCC)" ] || { echo "gpu-bundle: $(NVCC) not found (set CUDA_HOME or NVCC)" >&2; exit 1; }
	@# make does not track flags: the tree is built afresh when they change.  MPICC=none: the
	@# trainer's MPI communicator is a stub there (one GPU machine needs none, and has no libmpi).
	@flags="$(BUNDLE_ARCHFLAGS) $(CFLAGS) | $(BUNDLE_CUDA_ARCH) | $(BUNDLE_FAST_LIBS) | $(BUNDLE_NVCC_LIBS) | $(CUDA_GPU_LIBS)"; \
	if [ -d $(GPU_BUNDLE_TREE) ] && [ "$$(cat $(GPU_BUNDLE_TREE)/flags 2>/dev/null)" != "$$flags" ]; then \
	    echo "gpu-bundle: flags changed, rebuilding $(GPU_BUNDLE_TREE)"; rm -rf $(GPU_BUNDLE_TREE); fi; \
	mkdir -p $(GPU_BUNDLE_TREE) && echo "$$flags" >$(GPU_BUNDLE_TREE)/flags
	+$(MAKE) --no-print-directory B=$(GPU_BUNDLE_TREE) GPU_BUNDLE_BUILD=1 GPU_BUNDLE_OUT=$(GPU_BUNDLE) \
	    ARCHFLAGS='$(BUNDLE_ARCHFLAGS)' CUDA_ARCH='$(BUNDLE_CUDA_ARCH)' \
	    LDLIBS='$(BUNDLE_FAST_LIBS)' CUDA_TEST_LIBS='$(BUNDLE_NVCC_LIBS)' MPICC=none gpu-bundle-assemble

# What follows runs in the second make only (B is GPU_BUNDLE_TREE there).
ifdef GPU_BUNDLE_BUILD
# The trainer with the CUDA backend (the top Makefile's rule); until cuda/backend_cuda.cu exists,
# the CPU trainer stands in, so the bundle and its checks can be built and tried.
ifneq ($(wildcard cuda/backend_cuda.cu),)
BUNDLE_TRAINER ?= $(B)/cuda/bin/rwkv-train
else
BUNDLE_TRAINER ?= $(B)/bin/rwkv-train
endif
BUNDLE_SHIM     := $(B)/obj/bundle/blas_single.o
# rwkv-generate with the GPU decoder (part h of run.sh), when the CUDA backend exists
BUNDLE_GENERATE := $(if $(wildcard cuda/backend_cuda.cu),$(B)/cuda/bin/rwkv-generate)
BUNDLE_GPU_PROGS := $(BUNDLE_TRAINER) $(BUNDLE_GENERATE) $(CUDA_GPU_TESTS) $(B)/cuda/bench/gemm_rates
BUNDLE_TOOLS    := $(addprefix $(B)/bin/,jsonl-shuf rwkv-tokenize binidx-write)
$(BUNDLE_GPU_PROGS): $(BUNDLE_SHIM)
# override: LDLIBS came on the command line.
$(BUNDLE_TRAINER) $(BUNDLE_GENERATE): override LDLIBS = $(BUNDLE_SMALL_LIBS)

gpu-bundle-assemble: $(GPU_BUNDLE_OUT).tar.gz
# The folder is assembled beside its place and renamed into it, so a failed build leaves none
# (or the previous one); the data set is made here with this project's own tools: BUNDLE_DATA
# three times over, shuffled (200499 tokens, 392 KiB; the 20-step runs repeat it).
$(GPU_BUNDLE_OUT).tar.gz: $(B)/bin/rwkv-init $(BUNDLE_GPU_PROGS) $(BUNDLE_TOOLS) $(VOCAB) $(BUNDLE_DATA) \
                          $(wildcard bundle/*) mk/gpu-bundle.mk
	@rm -rf $(GPU_BUNDLE_OUT).new $@.new && mkdir -p $(GPU_BUNDLE_OUT).new/bin $(GPU_BUNDLE_OUT).new/tests $(GPU_BUNDLE_OUT).new/data
	strip -o $(GPU_BUNDLE_OUT).new/bin/rwkv-train $(BUNDLE_TRAINER)
	strip -o $(GPU_BUNDLE_OUT).new/bin/rwkv-init $(B)/bin/rwkv-init
	$(if $(BUNDLE_GENERATE),strip -o $(GPU_BUNDLE_OUT).new/bin/rwkv-generate $(BUNDLE_GENERATE))
	mkdir -p $(GPU_BUNDLE_OUT).new/share/rwkv7c && cp $(VOCAB) $(GPU_BUNDLE_OUT).new/share/rwkv7c/
	strip -o $(GPU_BUNDLE_OUT).new/bin/gemm_rates $(B)/cuda/bench/gemm_rates
	for t in $(CUDA_GPU_TESTS); do strip -o $(GPU_BUNDLE_OUT).new/tests/$${t##*/} $$t || exit 1; done
	cp bundle/run.sh bundle/check.sh bundle/README.md $(GPU_BUNDLE_OUT).new/
	$(B)/bin/jsonl-shuf -n 3 -s 42 $(BUNDLE_DATA) >$(GPU_BUNDLE_OUT).new/data.jsonl
	$(B)/bin/rwkv-tokenize $(GPU_BUNDLE_OUT).new/data.jsonl | $(B)/bin/binidx-write -f $(GPU_BUNDLE_OUT).new/data/demo
	rm $(GPU_BUNDLE_OUT).new/data.jsonl
	@{ echo "built $$(date -u '+%Y-%m-%d %H:%M UTC') on $$(hostname)"; \
	   echo "source $$(git describe --always --dirty 2>/dev/null || echo unknown)"; \
	   echo "nvcc $$($(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"; \
	   echo "cuda_arch $(CUDA_ARCH)"; echo "cpu_arch $(ARCHFLAGS)"; \
	   echo "trainer $(if $(findstring cuda/bin,$(BUNDLE_TRAINER)),cuda,cpu-standin)"; } >$(GPU_BUNDLE_OUT).new/BUILD-INFO
	@size=$$(find $(GPU_BUNDLE_OUT).new -type f -exec cat {} + | wc -c); \
	if [ $$size -gt $$(($(BUNDLE_MAX_MIB) * 1048576)) ]; then \
	    echo "gpu-bundle: $$size bytes, over $(BUNDLE_MAX_MIB) MiB" >&2; rm -rf $(GPU_BUNDLE_OUT).new; exit 1; fi; \
	echo "gpu-bundle: $(GPU_BUNDLE_OUT) $$((size / 1048576)) MiB"
	rm -rf $(GPU_BUNDLE_OUT) && mv $(GPU_BUNDLE_OUT).new $(GPU_BUNDLE_OUT)
	tar -czf $@.new -C $(dir $(GPU_BUNDLE_OUT)) $(notdir $(GPU_BUNDLE_OUT)) && mv $@.new $@
endif
