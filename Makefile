# Achilles: GNU Make build. `make` builds everything, `make check` runs the
# TAP suite under prove, `make install PREFIX=... DESTDIR=...` installs.
CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
# Where bare task preset names are looked up (ACHILLES_DATA overrides at run time).
DATADIR ?= $(abspath data)
SHAREDIR = $(PREFIX)/share/achilles
# src/ by layer, each folder on the include path (#include "model.h" from
# anywhere), in layer order: a folder's files use only the folders before it
# (README's Layout has the map).
SRC_DIRS := src/util src/kernels src/model src/task src/analysis src/train src/sweep src/cli
SRC_INC  := $(SRC_DIRS:%=-I%)
SRC_HDR  := $(wildcard $(SRC_DIRS:%=%/*.h))
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(SRC_INC) -DACH_DATADIR='"$(DATADIR)"' \
              -DACH_SHAREDIR='"$(SHAREDIR)/data"' $(CFLAGS)
LDLIBS  := -lcjson -lm -lpthread

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=address,undefined
endif

# The library is everything in src/ but the CLI's main. It is built twice:
# float32 (the engine) and float64 (-DACH_F64, for finite-difference tests),
# objects under $(BUILD)/f32 and $(BUILD)/f64 in src/'s folders. The
# archives list them by file name, whatever the folder (names are unique):
# the linker lays the code out as it did when src/ was flat, and moving a
# file between folders changes no byte of the programs' code.
MAIN_SRC := src/cli/achilles.c
# src/kernels/fast_*.c are parts of kernels_fast.c, which includes each once
# per instruction set: compiled with it, never on their own.
FAST_PARTS := $(wildcard src/kernels/fast_*.c)
LIB_ALL := $(filter-out $(MAIN_SRC) $(FAST_PARTS),$(wildcard $(SRC_DIRS:%=%/*.c)))
LIB_SRC := $(foreach f,$(sort $(notdir $(LIB_ALL))),$(filter %/$(f),$(LIB_ALL)))
LIB32   := $(BUILD)/libachilles.a
LIB64   := $(BUILD)/libachilles_f64.a
OBJ32   := $(LIB_SRC:src/%.c=$(BUILD)/f32/%.o)
OBJ64   := $(LIB_SRC:src/%.c=$(BUILD)/f64/%.o)
BIN     := $(BUILD)/achilles

# achilles-tui: ui/*.c on the float32 library, ncursesw and GNU readline.
UI_BIN   := $(BUILD)/achilles-tui
UI_SRC   := $(wildcard ui/*.c)
UI_OBJ   := $(UI_SRC:ui/%.c=$(BUILD)/ui/%.o)
UI_TOBJ  := $(filter-out $(BUILD)/ui/main.o,$(UI_OBJ))
# Without pkg-config (or before deps/install has put it there), the flags
# Debian's ncursesw.pc gives: the wide-character API needs the X/Open ones.
CURSES_CFLAGS := $(shell pkg-config --cflags ncursesw 2>/dev/null || echo -D_DEFAULT_SOURCE -D_XOPEN_SOURCE=600)
CURSES_LIBS   := $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw -ltinfo)
UI_CFLAGS := $(ALL_CFLAGS) $(CURSES_CFLAGS) -Iui
UI_LDLIBS := $(CURSES_LIBS) -lreadline $(LDLIBS)

# Test programs: t/NAME.c links the float32 library, t/NAME_f64.c the float64
# one. Each is run by its wrapper t/NAME.t (or by a shell test that calls it).
TEST_SRC := $(wildcard t/*.c)
TEST_BIN := $(TEST_SRC:t/%.c=$(BUILD)/t/%)

.PHONY: all check clean install fixtures bench run cuda valgrind deps-build deps-test
all: $(BIN) $(UI_BIN) $(TEST_BIN)

# The Debian packages the build (and make check) need, installed when
# missing (deps/install; deps/debian-packages is the one list, .ci/run's too).
# Every object waits for it through its build directory.
deps-build:
	@sh deps/install build
deps-test: deps-build
	@sh deps/install test

# task.c compiles in the install prefix: rebuild it when PREFIX changes.
PREFIX_STAMP := $(BUILD)/prefix$(subst /,_,$(PREFIX)).stamp
$(PREFIX_STAMP): | $(BUILD)/f32
	rm -f $(BUILD)/prefix*.stamp
	touch $@
$(BUILD)/f32/task/task.o $(BUILD)/f64/task/task.o: $(PREFIX_STAMP)
$(BUILD)/f32/%.o: src/%.c $(SRC_HDR) | $(BUILD)/f32
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
# The SIMD kernels at -O3: GCC unrolls and inlines their small fixed-size
# loops further (alternating runs: 1.038x on a 5-layer step, one thread).
# The same bits: their FMAs are explicit, and ISO C mode contracts nothing.
$(BUILD)/f32/kernels/kernels_fast.o: ALL_CFLAGS += -O3
$(BUILD)/f32/kernels/kernels_fast.o: $(FAST_PARTS)
$(BUILD)/f64/%.o: src/%.c $(SRC_HDR) | $(BUILD)/f64
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DACH_F64 -c -o $@ $<
$(LIB32): $(OBJ32)
	$(AR) rcs $@ $^
$(LIB64): $(OBJ64)
	$(AR) rcs $@ $^
$(BIN): $(MAIN_SRC) $(LIB32)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB32) $(LDLIBS)
$(BUILD)/ui/%.o: ui/%.c $(wildcard ui/*.h) $(SRC_HDR) | $(BUILD)/ui
	$(CC) $(UI_CFLAGS) -c -o $@ $<
$(UI_BIN): $(UI_OBJ) $(LIB32)
	$(CC) $(UI_CFLAGS) $(LDFLAGS) -o $@ $(UI_OBJ) $(LIB32) $(UI_LDLIBS)
# t/tui_NAME.c: the workbench's layers without a terminal (all of ui/ but main)
$(BUILD)/t/tui_%: t/tui_%.c t/tap.h $(UI_TOBJ) $(LIB32) | $(BUILD)/t
	$(CC) $(UI_CFLAGS) $(LDFLAGS) -o $@ $< $(UI_TOBJ) $(LIB32) $(UI_LDLIBS)
$(BUILD)/t/%_f64: t/%_f64.c t/tap.h $(LIB64) | $(BUILD)/t
	$(CC) $(ALL_CFLAGS) -DACH_F64 $(LDFLAGS) -o $@ $< $(LIB64) $(LDLIBS)
$(BUILD)/t/%: t/%.c t/tap.h $(LIB32) | $(BUILD)/t
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB32) $(LDLIBS)
$(BUILD)/f32 $(BUILD)/f64 $(BUILD)/t $(BUILD)/ui: | deps-build
	mkdir -p $@

# The CUDA backend (cuda/, cuda/README.md). Its kernels and host code also
# build as plain C++ on the host emulator (cuda/emu.h), with no toolkit:
# t/cuda_NAME.c links that, and runs in `make check` everywhere.
CXX      ?= g++
EMU_CXXFLAGS := -std=c++17 $(WARN) $(SRC_INC) -Icuda $(CFLAGS) $(filter -fsanitize=% -fno-omit-frame-pointer,$(ALL_CFLAGS))
CU_HDR   := $(wildcard cuda/*.h cuda/*.cuh cuda/kernels/*.cuh) $(SRC_HDR)
EMU_OBJ  := $(BUILD)/cuda-emu/emu.o $(BUILD)/cuda-emu/backend_emu.o
$(EMU_OBJ): $(BUILD)/cuda-emu/%.o: cuda/%.cc $(CU_HDR) | $(BUILD)/cuda-emu
	$(CXX) $(EMU_CXXFLAGS) -c -o $@ $<
$(BUILD)/t/cuda_%: t/cuda_%.c t/tap.h $(EMU_OBJ) $(LIB32) | $(BUILD)/t
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(EMU_OBJ) $(LIB32) $(LDLIBS) -lstdc++
# t/cuda_NAME.cc: kernels of the test's own on the emulator
EMU_TEST_BIN := $(patsubst t/%.cc,$(BUILD)/t/%,$(wildcard t/cuda_*.cc))
all: $(EMU_TEST_BIN)
$(EMU_TEST_BIN): $(BUILD)/t/%: t/%.cc t/tap.h $(EMU_OBJ) | $(BUILD)/t
	$(CXX) $(EMU_CXXFLAGS) -It $(LDFLAGS) -o $@ $< $(EMU_OBJ)

# `make cuda`: build/achilles-cuda (the CLI with --backend cuda), and for
# t/cuda_device.t build/cuda/devices and build/cuda/cuda_check (t/cuda_emu.c
# on the GPU). Needs nvcc and cuBLAS; without nvcc it says so and succeeds,
# so CI on a machine without the toolkit still passes.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(or $(wildcard $(CUDA_HOME)/bin/nvcc),$(shell command -v nvcc 2>/dev/null))
# A100 and H100 machine code, plus PTX that newer GPUs compile at load time.
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O2 -g
CUDART    := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart
CUDA_LIBS := -lcublas $(CUDART)
CUDA_OBJ  := $(BUILD)/cuda/backend_cuda.o
CUDA_BINS := $(BUILD)/achilles-cuda $(BUILD)/cuda/devices $(BUILD)/cuda/cuda_check
ifeq ($(NVCC),)
cuda:
	@echo "make cuda: skipped: nvcc not found (not in $(CUDA_HOME)/bin nor on PATH; set NVCC or CUDA_HOME)"
else
cuda: $(CUDA_BINS)
endif
$(CUDA_OBJ): $(BUILD)/cuda/%.o: cuda/%.cu $(CU_HDR) | $(BUILD)/cuda
	$(NVCC) -std=c++17 $(CUDA_ARCH) $(NVCCFLAGS) $(SRC_INC) -Icuda -Xcompiler -Wall,-Wextra,-Wno-unused-parameter \
	    -c -o $@ $<
$(BUILD)/achilles-cuda: $(MAIN_SRC) $(CUDA_OBJ) $(LIB32)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(CUDA_OBJ) $(LIB32) $(CUDA_LIBS) $(LDLIBS) -lstdc++
$(BUILD)/cuda/cuda_check: t/cuda_emu.c t/tap.h $(CUDA_OBJ) $(LIB32)
	$(CC) $(ALL_CFLAGS) -DACH_CUDA_DEVICE $(LDFLAGS) -o $@ $< $(CUDA_OBJ) $(LIB32) $(CUDA_LIBS) $(LDLIBS) -lstdc++
$(BUILD)/cuda/devices: cuda/devices.c | $(BUILD)/cuda
	$(CC) $(ALL_CFLAGS) -I$(CUDA_HOME)/include $(LDFLAGS) -o $@ $< $(CUDART)
$(BUILD)/cuda $(BUILD)/cuda-emu: | deps-build
	mkdir -p $@

# Fuzzing: each fuzz/NAME.c is a libFuzzer target for one parser of outside
# input. `make` also links each with fuzz/replay.c instead of libFuzzer, so
# `make check` replays the committed inputs without clang. `make fuzz
# FUZZ_SECONDS=N` rebuilds the library with clang, ASan and UBSan under
# $(BUILD)/fuzz (a recursive make) and runs the targets one after another
# for N seconds each on fuzz/corpus/NAME; new inputs and crashes stay there.
FUZZ_NAMES   := $(patsubst fuzz/%.c,%,$(filter-out fuzz/replay.c,$(wildcard fuzz/*.c)))
FUZZ_REPLAY  := $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay/%)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
.PHONY: fuzz fuzz-targets
all: $(FUZZ_REPLAY)
$(FUZZ_REPLAY): $(BUILD)/fuzz-replay/%: fuzz/%.c fuzz/replay.c fuzz/fuzz_text.h $(UI_TOBJ) $(LIB32)
	@mkdir -p $(@D)
	$(CC) $(UI_CFLAGS) $(LDFLAGS) -o $@ $< fuzz/replay.c $(UI_TOBJ) $(LIB32) $(UI_LDLIBS)
fuzz:
	$(MAKE) BUILD=$(BUILD)/fuzz CC=$(FUZZ_CC) SANITIZE= CFLAGS='$(FUZZ_CFLAGS)' FUZZING=1 fuzz-targets
	sh fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)
ifeq ($(FUZZING),1)
# kernels_fast.c needs GCC's target pragmas, and no target runs its kernels: gcc, uninstrumented.
$(BUILD)/f32/kernels/kernels_fast.o: override CC := gcc
$(BUILD)/f32/kernels/kernels_fast.o: override ALL_CFLAGS := $(filter-out $(FUZZ_CFLAGS),$(ALL_CFLAGS)) -O2
endif
fuzz-targets: $(FUZZ_NAMES:%=$(BUILD)/fuzz-%)
$(FUZZ_NAMES:%=$(BUILD)/fuzz-%): $(BUILD)/fuzz-%: fuzz/%.c fuzz/fuzz_text.h $(UI_TOBJ) $(LIB32)
	$(CC) $(UI_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(UI_TOBJ) $(LIB32) $(UI_LDLIBS)

# SANITIZE=1 builds into the same $(BUILD) as a plain build (the tests run
# build/): a stamp names the flavour, and switching rebuilds every object.
SAN_STAMP := $(BUILD)/sanitize$(SANITIZE).stamp
$(SAN_STAMP): | $(BUILD)/f32
	rm -f $(BUILD)/sanitize*.stamp
	touch $@
$(OBJ32) $(OBJ64) $(UI_OBJ) $(EMU_OBJ): $(SAN_STAMP)

check: deps-test all
	prove -j2 t/

# memcheck over the CLI paths the tests use and a long workbench session
# (t/valgrind.pl; minutes, so not in `make check`). Not with SANITIZE=1:
# ASan and valgrind do not mix.
valgrind: all
	@test "$(SANITIZE)" != 1 || { echo "make valgrind: build without SANITIZE=1"; exit 2; }
	prove -v t/valgrind.pl

# The workbench on its built-in default session (sessions/default).
run: $(UI_BIN)
	$(UI_BIN)

# Training-step throughput against PyTorch (bench/RESULTS.md has a run).
bench: $(BIN)
	sh bench/run.sh

# Regenerate the PyTorch reference fixtures (needs Debian's python3-torch):
# Mamba's and the optimizer's in t/fixtures, the Transformer family's in
# t/data/gpt.
fixtures: $(BIN)
	/usr/bin/python3 t/torch_ref.py make t/fixtures
	/usr/bin/python3 t/torch_optim.py make t/fixtures
	/usr/bin/python3 t/torch_ref_gpt.py make t/data/gpt

install: $(BIN) $(UI_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/achilles
	install -m 755 $(UI_BIN) $(DESTDIR)$(PREFIX)/bin/achilles-tui
	if [ -x $(BUILD)/achilles-cuda ]; then install -m 755 $(BUILD)/achilles-cuda $(DESTDIR)$(PREFIX)/bin/; fi
	install -m 644 man/achilles.1 $(DESTDIR)$(PREFIX)/share/man/man1/achilles.1
	printf '.so man1/achilles.1\n' > $(DESTDIR)$(PREFIX)/share/man/man1/achilles-tui.1   # man achilles-tui
	install -d $(DESTDIR)$(SHAREDIR)/data
	install -m 644 data/*.json data/README.md $(DESTDIR)$(SHAREDIR)/data/

clean:
	rm -rf $(BUILD)
