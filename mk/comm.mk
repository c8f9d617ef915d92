# mk/comm.mk: the communication layer's build (lib/comm*.c, cuda/comm_nccl.cu; doc/comm.md).
#
# MPI: when $(MPICC) runs (OpenMPI's or MPICH's wrapper; Debian: libopenmpi-dev openmpi-bin),
# lib/comm_mpi.c is compiled with its include flags and RWKV7C_MPI, and the programs $(CC)
# links get its libraries (MPI_LIBS), behind --as-needed: only those that pull comm_mpi.o
# out of the library depend on libmpi at run time.  Not LDLIBS itself: nvcc links the CUDA
# tests with it and refuses -Wl,... (a CUDA program that opens an MPI communicator adds
# $(MPI_LIBS) to its own link).  Otherwise comm_mpi.c is a stub that says "built without
# MPI"; `make MPICC=none` builds the stub on a machine that has MPI.
MPICC ?= mpicc
MPI_SHOW := $(if $(shell command -v $(MPICC) 2>/dev/null),$(shell $(MPICC) -show 2>/dev/null))
ifneq ($(MPI_SHOW),)
MPI_CFLAGS := $(filter -I% -D%,$(MPI_SHOW)) -DRWKV7C_MPI
MPI_LIBS   := $(filter -L% -l%,$(MPI_SHOW))
$(B)/obj/lib/comm_mpi.o: ALL_CFLAGS += $(MPI_CFLAGS)
$(B)/bin/% $(B)/tests/% $(B)/helpers/% $(B)/bench/% $(B)/examples/%: \
    LDLIBS += -Wl,--as-needed $(MPI_LIBS) -Wl,--no-as-needed
# The CUDA programs (nvcc or the emulation's g++ links them with CUDA_TEST_LIBS): the trainer
# opens its communicator through lib/launch.c.  The GPU bundle builds with MPICC=none.
$(B)/cuda/bin/% $(B)/cuda/tests/% $(B)/cuda/bench/% $(B)/cuda-emu/bin/% $(B)/cuda-emu/tests/% \
    $(B)/cuda-emu/bench/% $(B)/cuda-emu/asan/%: CUDA_TEST_LIBS += $(MPI_LIBS)
endif
# A flag change (MPI appearing or going) must rebuild comm_mpi.o.
$(B)/obj/lib/comm_mpi.o: $(B)/comm-mpi-flags
$(B)/comm-mpi-flags: comm-mpi-flags-check
	@mkdir -p $(@D)
	@echo '$(MPI_CFLAGS)' | cmp -s - $@ || echo '$(MPI_CFLAGS)' >$@
.PHONY: comm-mpi-flags-check

# NCCL: cuda/comm_nccl.cu is linked into the GPU programs (the emulated build compiles it to
# a stub: NCCL needs a GPU).
CUDA_GPU_LIBS += -lnccl
