# The CUDA backend switch: SAEC_CUDA = AUTO | ON | OFF | EMU. Sets SAEC_HAVE_CUDA, and
# SAEC_CUDA_EMULATED for EMU (the backend compiled for the emulated GPU: cmake/SaecCudaEmu.cmake).
string(TOUPPER "${SAEC_CUDA}" SAEC_CUDA)
set(SAEC_HAVE_CUDA OFF)
set(SAEC_CUDA_EMULATED OFF)
if(SAEC_CUDA STREQUAL "EMU")
  include(SaecCudaEmu)
elseif(NOT SAEC_CUDA STREQUAL "OFF")
  # nvcc often lives outside PATH; look in the usual prefix before giving up.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # sm_80 machine code runs on every Ampere/Ada card; sm_90 for Hopper, with PTX for newer.
      set(CMAKE_CUDA_ARCHITECTURES "80-real;90")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    find_package(CUDAToolkit REQUIRED)
    set(SAEC_HAVE_CUDA ON)
    message(STATUS "saec: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                   "architectures ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(SAEC_CUDA STREQUAL "ON")
    message(FATAL_ERROR "saec: SAEC_CUDA=ON but no CUDA compiler (nvcc) was found. "
                        "Install the CUDA Toolkit, set CUDACXX, or configure with -DSAEC_CUDA=OFF.")
  else()
    message(STATUS "saec: CUDA backend OFF (no nvcc found; SAEC_CUDA=AUTO)")
  endif()
else()
  message(STATUS "saec: CUDA backend OFF (SAEC_CUDA=OFF)")
endif()
