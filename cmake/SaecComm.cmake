# Data-parallel communication (host/comm/). Sets SAEC_HAVE_MPI and SAEC_HAVE_NCCL.
#   SAEC_MPI  = AUTO | ON | OFF: MPI carries CPU data parallelism, and NCCL's rendezvous under
#               mpirun/srun. Debian: libopenmpi-dev openmpi-bin (cmake/install-deps.sh).
#   SAEC_NCCL = AUTO | ON | OFF: NCCL carries multi-GPU data parallelism (needs the CUDA backend).
# Without either, saec still builds and runs single-process; comm.c explains what is missing
# when a multi-rank launch needs it.
set(SAEC_MPI "AUTO" CACHE STRING "MPI for CPU data parallelism: AUTO (when found), ON, OFF")
set_property(CACHE SAEC_MPI PROPERTY STRINGS AUTO ON OFF)
set(SAEC_NCCL "AUTO" CACHE STRING "NCCL for multi-GPU data parallelism: AUTO (when found), ON, OFF")
set_property(CACHE SAEC_NCCL PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${SAEC_MPI}" SAEC_MPI)
string(TOUPPER "${SAEC_NCCL}" SAEC_NCCL)

set(SAEC_HAVE_MPI OFF)
if(NOT SAEC_MPI STREQUAL "OFF")
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(SAEC_HAVE_MPI ON)
    message(STATUS "saec: MPI ON (${MPI_C_LIBRARIES}, MPI ${MPI_C_VERSION}): data parallelism "
                   "on the CPU available under mpirun/srun")
  elseif(SAEC_MPI STREQUAL "ON")
    message(FATAL_ERROR "saec: SAEC_MPI=ON but no MPI was found. Install it with "
                        "cmake/install-deps.sh (Debian: libopenmpi-dev openmpi-bin), or "
                        "configure with -DSAEC_MPI=OFF.")
  else()
    message(STATUS "saec: MPI not found: data parallelism on the CPU is off "
                   "(install libopenmpi-dev for it)")
  endif()
else()
  message(STATUS "saec: MPI OFF (SAEC_MPI=OFF): data parallelism on the CPU is off")
endif()

set(SAEC_HAVE_NCCL OFF)
if(SAEC_CUDA_EMULATED AND NOT SAEC_NCCL STREQUAL "OFF")
  # The emulated GPU brings its own NCCL stand-in (tests/simt/nccl_emu.c, collectives over TCP).
  set(SAEC_HAVE_NCCL ON)
  add_library(NCCL::NCCL ALIAS saec_emu_nccl)
  message(STATUS "saec: NCCL EMULATED (tests/simt/nccl_emu.c): the NCCL path runs on the CPU")
elseif(SAEC_HAVE_CUDA AND NOT SAEC_NCCL STREQUAL "OFF")
  find_package(NCCL 2.14 QUIET) # 2.14: ncclCommFinalize, ncclGetLastError
  if(NCCL_FOUND)
    set(SAEC_HAVE_NCCL ON)
    message(STATUS "saec: NCCL ON (${NCCL_LIBRARY}, NCCL ${NCCL_VERSION}): multi-GPU data "
                   "parallelism available")
  elseif(SAEC_NCCL STREQUAL "ON")
    message(FATAL_ERROR "saec: SAEC_NCCL=ON but NCCL >= 2.14 (nccl.h, libnccl) was not found. "
                        "Set NCCL_HOME, install libnccl-dev, or configure with -DSAEC_NCCL=OFF.")
  else()
    message(STATUS "saec: NCCL not found: multi-GPU data parallelism is off (set NCCL_HOME)")
  endif()
elseif(SAEC_HAVE_CUDA)
  message(STATUS "saec: NCCL OFF (SAEC_NCCL=OFF): multi-GPU data parallelism is off")
endif()
