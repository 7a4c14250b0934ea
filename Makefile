# rd_vla_ros: set-up, tests and demo. The README's two commands are `make demo` and `make test`;
# both set up what is missing first (idempotent: a second run installs nothing).
#
#   make setup            virtual environment (.venv) + Debian build tools + pinned Python deps
#                         + messages generated from msg/ and installed into .venv + editable sources
#   make test             setup, then the whole test suite (lint included)
#   make demo             setup, then the demo
#   make colcon           build the package as a ROS 2 user would (colcon) in build/colcon_ws
#
# ROS 2 distribution: Kilted by default. `make setup ROS_DISTRO=jazzy` / `make test ROS_DISTRO=jazzy`
# use a second environment (.venv-jazzy, requirements/jazzy.txt, messages built in build/cmake-jazzy,
# make colcon in build/colcon_ws-jazzy) and run the ROS-facing subset (TESTS: messages, node, replay,
# lifecycle, colcon). Only the command line selects it: a ROS_DISTRO exported by a sourced ROS 2
# set-up is ignored.
#
# GPU machines: make setup GPU=1 TORCH_PIP_ARGS="--index-url <PyTorch CUDA wheel index>"
# (the CUDA build of torch and onnxruntime-gpu instead of onnxruntime; see README, "GPU machines").

SHELL := /bin/bash
PYTHON ?= python3

ifneq ($(origin ROS_DISTRO),command line)
override ROS_DISTRO := kilted
endif
ifeq ($(ROS_DISTRO),kilted)
VENV ?= .venv
DEPS_REQ := requirements/main.txt
NO_DEPS_REQ := requirements/no-deps.txt
CMAKE_BUILD := build/cmake
COLCON_WS := build/colcon_ws
TESTS :=
else ifeq ($(ROS_DISTRO),jazzy)
VENV ?= .venv-jazzy
DEPS_REQ := requirements/jazzy.txt
NO_DEPS_REQ :=
CMAKE_BUILD := build/cmake-jazzy
COLCON_WS := build/colcon_ws-jazzy
# The ROS-facing subset: message generation and CDR, the node in-process and across processes
# (lifecycle, parameters, services, timing), bags and replay (offline and live), the colcon build.
TESTS := test/ros test/multiprocess/test_chunk_across_processes.py test/multiprocess/test_node_managed.py \
  test/multiprocess/test_node_process.py test/multiprocess/test_live_replay.py test/test_colcon.py
ifneq ($(filter demo lint,$(MAKECMDGOALS)),)
$(error make $(filter demo lint,$(MAKECMDGOALS)): Kilted only (the Jazzy environment has no simulation and no linters))
endif
else
$(error ROS_DISTRO=$(ROS_DISTRO): kilted (the default) or jazzy)
endif

PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := $(VENV)/.rd_vla_stamps
BUILD := build
PREFIX := $(abspath $(VENV))

GPU ?= 0
ifeq ($(GPU),1)
TORCH_REQ ?= requirements/torch-cuda.txt
ORT_REQ ?= requirements/onnxruntime-gpu.txt
endif
TORCH_REQ ?= requirements/torch-cpu.txt
TORCH_PIP_ARGS ?=
ORT_REQ ?=

# ROS traffic of tests and demos stays on this machine, in a domain of its own, logs in build/.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 90) + 10 )))
export ROS_LOG_DIR ?= $(abspath $(BUILD))/ros_log
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND ?= Agg
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_TOOLS := cmake ninja g++

.PHONY: setup test demo colcon lint clean distclean

setup: $(STAMPS)/msgs $(STAMPS)/editable $(if $(ORT_REQ),$(STAMPS)/ort)

$(PY):
	@# Debian's python3 needs python3-venv for `-m venv`: installed when missing
	$(PYTHON) -m venv $(VENV) || { echo "setup: installing Debian python3-venv"; rm -rf $(VENV); \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }

$(STAMPS)/system: | $(PY)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian build tools (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq cmake ninja-build g++; \
	fi
	@# MuJoCo renders offscreen through OSMesa on machines with no display or GPU
	@if ! ldconfig -p | grep -q libOSMesa; then \
	  echo "setup: installing Debian libosmesa6 (offscreen rendering for the ALOHA simulation)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libosmesa6; \
	fi
	@mkdir -p $(STAMPS) && touch $@

# one stamp per torch build, so switching a venv to GPU=1 (or back) reinstalls torch
TORCH_STAMP := $(STAMPS)/torch$(if $(filter 1,$(GPU)),-cuda)
$(TORCH_STAMP): $(TORCH_REQ) | $(PY)
	$(PIP) install -q $(TORCH_PIP_ARGS) -r $(TORCH_REQ)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/deps: $(DEPS_REQ) $(NO_DEPS_REQ) $(TORCH_STAMP)
	$(PIP) install -q -r $(DEPS_REQ)
	$(if $(NO_DEPS_REQ),$(PIP) install -q --no-deps -r $(NO_DEPS_REQ))
	@mkdir -p $(STAMPS) && touch $@

# GPU: onnxruntime-gpu replaces the CPU onnxruntime (both install the same `onnxruntime` module)
$(STAMPS)/ort: $(ORT_REQ) $(STAMPS)/deps
	$(PIP) uninstall -q -y onnxruntime
	$(PIP) install -q -r $(ORT_REQ)
	@mkdir -p $(STAMPS) && touch $@

# Messages: generated from msg/ by rosidl (CMake) and installed into the venv prefix. The wheels'
# CMake exports name the wheel builder's Python include dirs; tools/patch_wheel_cmake.py fixes them.
$(STAMPS)/msgs: $(STAMPS)/deps $(STAMPS)/system CMakeLists.txt package.xml $(wildcard msg/*.msg)
	@mkdir -p $(BUILD)
	$(PY) tools/patch_wheel_cmake.py $(PREFIX)
	AMENT_PREFIX_PATH=$(PREFIX) CMAKE_PREFIX_PATH=$(PREFIX) cmake -S . -B $(CMAKE_BUILD) -G Ninja \
	  -DPython3_EXECUTABLE=$(PREFIX)/bin/python -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	  -DRD_VLA_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF > $(CMAKE_BUILD)-configure.log
	cmake --build $(CMAKE_BUILD) > $(CMAKE_BUILD)-build.log
	cmake --install $(CMAKE_BUILD) > $(CMAKE_BUILD)-install.log
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/editable: setup.py $(STAMPS)/msgs
	$(PIP) install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@mkdir -p $(STAMPS) && touch $@

test: setup
	@mkdir -p $(ROS_LOG_DIR)
	@echo "tests: ROS 2 $(ROS_DISTRO) ROS_DOMAIN_ID=$(ROS_DOMAIN_ID) ROS_AUTOMATIC_DISCOVERY_RANGE=$(ROS_AUTOMATIC_DISCOVERY_RANGE)"
	$(PY) -m pytest $(TESTS) $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) -m rd_vla_ros.demos.run_demo

colcon: setup
	$(PY) tools/colcon_build.py $(COLCON_WS)

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf .venv .venv-jazzy
