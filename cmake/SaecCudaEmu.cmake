# The emulated GPU (SAEC_CUDA=EMU): the CUDA backend compiled by the host C++ compiler and run
# on the CPU by tests/simt/, a test tier that proves correctness, never speed.
#
# - kernels/cuda/*.cu are rewritten mechanically by tests/simt/translate_cu.py (launches and
#   __shared__ declarations only; line numbers kept) and compiled as C++ against the REAL CUDA
#   headers (the runtime API, cuBLAS, cuBLASLt, NCCL declarations and types), with
#   tests/simt/include first on the path (the device intrinsics, CUB stand-ins).
# - libcudart, cuBLAS, cuBLASLt, CUB and NCCL are replaced by host stand-ins (saec_simt).
# - The translated kernels are compiled with -fsanitize=thread so that every memory access
#   reaches the shared-memory race check (tests/simt/simt_racecheck.cpp is that runtime),
#   except under SAEC_SANITIZE=address, which cannot be combined with it.
#
# Sets SAEC_HAVE_CUDA and SAEC_CUDA_EMULATED, the targets CUDA::cudart, CUDA::cublas,
# CUDA::cublasLt and saec_emu_nccl, and the function saec_emulated_cuda_sources(target files...).
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)

find_path(SAEC_CUDA_INCLUDE_DIR cuda_runtime.h cublasLt.h
  HINTS ENV CUDA_HOME ENV CUDA_PATH PATHS /usr/local/cuda PATH_SUFFIXES include)
find_path(SAEC_NCCL_INCLUDE_DIR nccl.h
  HINTS ENV NCCL_HOME ENV CUDA_HOME PATHS /usr/local/cuda ${SAEC_CUDA_INCLUDE_DIR}/..
  PATH_SUFFIXES include)
if(NOT SAEC_CUDA_INCLUDE_DIR OR NOT EXISTS "${SAEC_CUDA_INCLUDE_DIR}/cublasLt.h")
  message(FATAL_ERROR "saec: SAEC_CUDA=EMU compiles the CUDA backend against the CUDA Toolkit's "
                      "headers (cuda_runtime.h, cublasLt.h), which were not found. Install the "
                      "CUDA Toolkit or set CUDA_HOME.")
endif()
if(NOT SAEC_NCCL_INCLUDE_DIR)
  message(FATAL_ERROR "saec: SAEC_CUDA=EMU needs nccl.h (the CUDA Toolkit's or libnccl-dev); "
                      "set NCCL_HOME.")
endif()
# The translator needs only the standard library (tests/CMakeLists.txt picks the interpreter
# with numpy for the tests; this one must not decide that).
find_program(SAEC_TRANSLATE_PYTHON NAMES python3 REQUIRED)

set(SAEC_SIMT_DIR ${PROJECT_SOURCE_DIR}/tests/simt)
string(FIND "${SAEC_SANITIZE}" "address" _saec_asan)
if(_saec_asan GREATER -1)
  set(SAEC_SIMT_RACECHECK OFF)
else()
  set(SAEC_SIMT_RACECHECK ON)
endif()

# nvcc contracts a*b+c into one FMA by default (--fmad=true); g++ on x86-64 does not, unless
# told to. ON makes the emulated kernels round like that (the CUDA __*_rn intrinsics still never
# contract); OFF keeps every product rounded. CI runs one emulated build of each.
set(SAEC_SIMT_FMA "AUTO" CACHE STRING
    "Emulated GPU: contract a*b+c into FMA in the kernels as nvcc does: AUTO (when this CPU has FMA), ON, OFF")
string(TOUPPER "${SAEC_SIMT_FMA}" SAEC_SIMT_FMA)
if(SAEC_SIMT_FMA STREQUAL "AUTO")
  include(CheckCXXSourceRuns)
  check_cxx_source_runs("int main() { return __builtin_cpu_supports(\"fma\") ? 0 : 1; }"
                        SAEC_SIMT_CPU_HAS_FMA)
  if(SAEC_SIMT_CPU_HAS_FMA)
    set(SAEC_SIMT_FMA ON)
  else()
    set(SAEC_SIMT_FMA OFF)
  endif()
endif()
set(SAEC_SIMT_KERNEL_FLAGS "")
if(SAEC_SIMT_FMA)
  set(SAEC_SIMT_KERNEL_FLAGS -mfma -ffp-contract=fast)
endif()

set(SAEC_SIMT_CXX_WARNINGS -Wall -Wextra -Wshadow -Wno-unused-parameter)
if(SAEC_WERROR)
  list(APPEND SAEC_SIMT_CXX_WARNINGS -Werror)
endif()

# The emulation runtime and the library stand-ins.
add_library(saec_simt STATIC
  ${SAEC_SIMT_DIR}/simt_core.cpp
  ${SAEC_SIMT_DIR}/simt_fiber.cpp
  ${SAEC_SIMT_DIR}/cuda_runtime_emu.cpp
  ${SAEC_SIMT_DIR}/cublas_emu.cpp
  ${SAEC_SIMT_DIR}/nccl_emu.c)
if(SAEC_SIMT_RACECHECK)
  target_sources(saec_simt PRIVATE ${SAEC_SIMT_DIR}/simt_racecheck.cpp)
endif()
target_include_directories(saec_simt PUBLIC ${SAEC_SIMT_DIR}/include ${SAEC_CUDA_INCLUDE_DIR}
                                            ${SAEC_NCCL_INCLUDE_DIR}
                                     PRIVATE ${SAEC_SIMT_DIR})
target_compile_options(saec_simt PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${SAEC_SIMT_CXX_WARNINGS}>
                                         $<$<COMPILE_LANGUAGE:C>:${SAEC_WARNINGS}>)
target_link_libraries(saec_simt PUBLIC saec::deps Threads::Threads ${CMAKE_DL_LIBS})

# The names the rest of the build links against.
foreach(_lib cudart cublas cublasLt)
  if(NOT TARGET CUDA::${_lib})
    add_library(CUDA::${_lib} INTERFACE IMPORTED)
    set_target_properties(CUDA::${_lib} PROPERTIES INTERFACE_LINK_LIBRARIES saec_simt)
  endif()
endforeach()
add_library(saec_emu_nccl INTERFACE)
target_link_libraries(saec_emu_nccl INTERFACE saec_simt)

set(SAEC_HAVE_CUDA ON)
set(SAEC_CUDA_EMULATED ON)
message(STATUS "saec: CUDA backend EMULATED on the CPU (tests/simt; race check "
               "${SAEC_SIMT_RACECHECK}, FMA contraction ${SAEC_SIMT_FMA}): a correctness tier, "
               "never a performance one")

# saec_emulated_cuda_sources(target a.cu b.cu ...): translate each .cu and add it to target.
function(saec_emulated_cuda_sources target)
  set(_out_dir ${CMAKE_BINARY_DIR}/simt_translated)
  foreach(_cu ${ARGN})
    get_filename_component(_abs ${_cu} ABSOLUTE BASE_DIR ${PROJECT_SOURCE_DIR})
    get_filename_component(_name ${_cu} NAME_WE)
    set(_cpp ${_out_dir}/${_name}.cpp)
    add_custom_command(OUTPUT ${_cpp}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${_out_dir}
      COMMAND ${SAEC_TRANSLATE_PYTHON} ${SAEC_SIMT_DIR}/translate_cu.py ${_abs} ${_cpp}
      DEPENDS ${_abs} ${SAEC_SIMT_DIR}/translate_cu.py
      COMMENT "Translating ${_cu} for the emulated GPU" VERBATIM)
    target_sources(${target} PRIVATE ${_cpp})
    # nvcc's #pragma unroll means nothing to g++.
    # DWARF 4: binutils 2.40's addr2line names the translated file, not the #line one, in DWARF 5.
    set(_opts -include saec_simt/cuda_emu.h ${SAEC_SIMT_CXX_WARNINGS} -Wno-unknown-pragmas -gdwarf-4
              ${SAEC_SIMT_KERNEL_FLAGS})
    if(SAEC_SIMT_RACECHECK)
      list(APPEND _opts -fsanitize=thread)
    endif()
    set_source_files_properties(${_cpp} PROPERTIES COMPILE_OPTIONS "${_opts}")
  endforeach()
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/kernels/cuda)
  target_link_libraries(${target} PUBLIC saec_simt)
endfunction()
