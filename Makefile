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
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Isrc -DACH_DATADIR='"$(DATADIR)"' \
              -DACH_SHAREDIR='"$(SHAREDIR)/data"' $(CFLAGS)
LDLIBS  := -lcjson -lm -lpthread

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=address,undefined
endif

# The library is everything in src/ but the CLI's main. It is built twice:
# float32 (the engine) and float64 (-DACH_F64, for finite-difference tests).
LIB_SRC := $(filter-out src/achilles.c,$(wildcard src/*.c))
LIB32   := $(BUILD)/libachilles.a
LIB64   := $(BUILD)/libachilles_f64.a
OBJ32   := $(LIB_SRC:src/%.c=$(BUILD)/f32/%.o)
OBJ64   := $(LIB_SRC:src/%.c=$(BUILD)/f64/%.o)
BIN     := $(BUILD)/achilles

# Test programs: t/NAME.c links the float32 library, t/NAME_f64.c the float64
# one. Each is run by its wrapper t/NAME.t (or by a shell test that calls it).
TEST_SRC := $(wildcard t/*.c)
TEST_BIN := $(TEST_SRC:t/%.c=$(BUILD)/t/%)

.PHONY: all check clean install fixtures bench
all: $(BIN) $(TEST_BIN)

$(BUILD)/f32/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/f32
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
$(BUILD)/f64/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/f64
	$(CC) $(ALL_CFLAGS) -DACH_F64 -c -o $@ $<
$(LIB32): $(OBJ32)
	$(AR) rcs $@ $^
$(LIB64): $(OBJ64)
	$(AR) rcs $@ $^
$(BIN): src/achilles.c $(LIB32)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB32) $(LDLIBS)
$(BUILD)/t/%_f64: t/%_f64.c t/tap.h $(LIB64) | $(BUILD)/t
	$(CC) $(ALL_CFLAGS) -DACH_F64 $(LDFLAGS) -o $@ $< $(LIB64) $(LDLIBS)
$(BUILD)/t/%: t/%.c t/tap.h $(LIB32) | $(BUILD)/t
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB32) $(LDLIBS)
$(BUILD)/f32 $(BUILD)/f64 $(BUILD)/t:
	mkdir -p $@

check: all
	prove -j2 t/

# Regenerate the PyTorch reference fixtures (needs Debian's python3-torch).
fixtures: $(BIN)
	/usr/bin/python3 t/torch_ref.py make t/fixtures
	/usr/bin/python3 t/torch_optim.py make t/fixtures

# Training-step throughput against PyTorch (bench/RESULTS.md has a run).
bench: $(BIN)
	sh bench/run.sh

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/achilles
	install -m 644 man/achilles.1 $(DESTDIR)$(PREFIX)/share/man/man1/achilles.1
	install -d $(DESTDIR)$(SHAREDIR)/data
	install -m 644 data/*.json data/README.md $(DESTDIR)$(SHAREDIR)/data/

clean:
	rm -rf $(BUILD)
