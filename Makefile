# olive-ext: `make test` and `make demo` work on a fresh machine (Python 3.10+ with venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On the reference machine pip finds this CPU build locally; elsewhere override it,
# e.g. `make test TORCH_SPEC=torch` to keep the index's default build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# `make test` runs in two phases. First the tests on tiny in-code models, on pytest-xdist workers: one per core,
# 4 at most, each test file on one worker (a module's shared fixture is built once), each computing with one
# passive thread (tests/conftest.py). Then the SmolLM2/MiniLM integration tests in one process with every core:
# they share session fixtures (the fine-tunes, the builds) that workers would each wait for, a core idle, and
# a worker's one thread made each SmolLM2 job about 2x slower. TEST_WORKERS=0 runs the first phase in one
# process too. Both phases run; either failing fails the target (one that collects nothing too: to run one file,
# call `.venv/bin/python -m pytest FILE`).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST := -n $(TEST_WORKERS) --dist loadfile
# llama-cpp-python (the llamacpp extra) builds llama.cpp from source for this CPU (minutes). On a CPU
# with AMX its native build segfaults in the first llama_decode of a Q4_0 model (the AMX weight
# buffer; see benchmarks/_envs.py), so there we build for AVX-512 without AMX. A CMAKE_ARGS in the
# environment wins.
LLAMA_CMAKE_ARGS ?= $(shell grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && echo "-DGGML_NATIVE=OFF \
	-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
	-DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON")

.PHONY: install chromium test test-unit demo bench lint clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	CMAKE_ARGS="$${CMAKE_ARGS:-$(LLAMA_CMAKE_ARGS)}" \
		$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,qlora,sign,tracking,serve,llamacpp,ray,olive,lmeval,mteb,openvino]"
	@# tests/test_network.py traces a run's syscalls with strace; as root on Debian/Ubuntu, install it
	@command -v strace >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -q strace >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
		apt-get install -y -q strace >/dev/null 2>&1; }; } || \
		echo "strace not installed: tests/test_network.py checks the telemetry store only"; }
	@touch $@

# headless Chromium renders report.html in tests/test_report.py (skipped without it); Debian's package, as root
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq install chromium) \
		|| echo "chromium not installed (needs root on Debian/Ubuntu): the report screenshot test will be skipped"

install: $(BIN)/.installed chromium

## test: set up and run every test (unit and the SmolLM2/MiniLM integration tests)
test: install
	s=0; \
	$(BIN)/python -m pytest -m "not integration" $(XDIST) $(PYTEST_ARGS) || s=1; \
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS) || s=1; \
	exit $$s

## demo: set up and run the whole job on SmolLM2-135M (finetune -> auto-opt -> package -> verify)
demo: install
	$(BIN)/olive-ext demo -o demo-out --overwrite

## test-unit: only the fast tests on tiny in-code models
test-unit: install
	$(BIN)/python -m pytest -m "not integration and not slow" $(XDIST) $(PYTEST_ARGS)

## bench: every benchmark side by side (startup, finetune, convert, auto-opt); rewrites benchmarks/RESULTS.md
bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

## lint: ruff, mypy, and the import contract (layers; pyproject.toml [tool.importlinter])
lint: install
	$(BIN)/ruff check olive_ext tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
