# rwkv7c: RWKV-7 pre-training toolkit.  `make` builds every tool into build/bin.
# Honours PREFIX, DESTDIR, CC, NVCC, CUDA_ARCH, CFLAGS, LDFLAGS.
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DATADIR   ?= $(PREFIX)/share/rwkv7c
MANDIR    ?= $(PREFIX)/share/man
NVCC      ?= nvcc
CUDA_ARCH ?= sm_90
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
VOCAB    := $(B)/share/rwkv7c/rwkv_vocab_v20230424.txt

.PHONY: all check bench fuzz demo deps install uninstall clean cuda help

# Debian packages the build and the tests need; `make deps` installs the missing ones.
DEB_PKGS := build-essential clang libzstd-dev libxxhash-dev libopenblas-dev liblapacke-dev \
            python3-torch python3-numpy python3-pip zstd
all: $(TOOLS:%=$(B)/bin/%) $(UNIT) $(HELPERS) $(VOCAB)

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

# libFuzzer targets: clang, sanitizers, the library sources compiled in.
FUZZ_CC ?= clang
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=gnu11 -g -O1 -fopenmp -Ilib -fsanitize=fuzzer,address,undefined -Wno-pass-failed $< $(LIB_SRC) $(LDLIBS) -o $@

# CUDA objects compile and link wherever nvcc exists; nothing here runs them.
cuda: $(CUDA_SRC:%.cu=$(B)/obj/%.o)
$(B)/obj/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) -O3 -arch=$(CUDA_ARCH) -Ilib -c $< -o $@

check: all
	@sh tests/run.sh

fuzz: $(FUZZ)
	@sh tests/run-fuzz.sh $(FUZZ_SECONDS)

bench: all
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

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(TOOLS:%=$(B)/bin/%) $(DESTDIR)$(BINDIR)
	install -m 644 share/rwkv7c/rwkv_vocab_v20230424.txt share/rwkv7c/NOTICE $(DESTDIR)$(DATADIR)
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(BINDIR)/%) $(patsubst man/%,$(DESTDIR)$(MANDIR)/man1/%,$(wildcard man/*.1))
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
	@echo "targets: all check bench fuzz demo install uninstall clean cuda"
	@echo "tools:   $(TOOLS)"

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
.SECONDARY:
