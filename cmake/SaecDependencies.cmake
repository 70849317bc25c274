# Host dependencies of saec, gathered into one interface target `saec::deps`.
# Debian package names are in cmake/install-deps.sh.

find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)
find_package(HDF5 REQUIRED COMPONENTS C)

# CBLAS from OpenBLAS. The OpenMP build comes first: it shares saec's OpenMP thread pool, where
# the pthread build keeps a second pool whose threads spin against OpenMP's (13x slower steps on
# 2 cores, measured). Debian keeps each build's header and library in a subfolder.
find_path(SAEC_CBLAS_INCLUDE_DIR cblas.h
  PATH_SUFFIXES x86_64-linux-gnu/openblas-openmp aarch64-linux-gnu/openblas-openmp openblas
                x86_64-linux-gnu/openblas-pthread aarch64-linux-gnu/openblas-pthread
  HINTS ENV OPENBLAS_HOME PATHS /usr/include /usr/local/include /opt/OpenBLAS/include)
find_library(SAEC_OPENBLAS_LIBRARY NAMES openblas
  PATH_SUFFIXES openblas-openmp openblas-pthread
  HINTS ENV OPENBLAS_HOME PATHS /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /opt/OpenBLAS/lib)
if(NOT SAEC_CBLAS_INCLUDE_DIR OR NOT SAEC_OPENBLAS_LIBRARY)
  message(FATAL_ERROR "saec: OpenBLAS (cblas.h and libopenblas) not found. "
                      "Install it with cmake/install-deps.sh (Debian: libopenblas-dev) "
                      "or set OPENBLAS_HOME.")
endif()

# cJSON ships a CMake package on Debian; fall back to a plain search elsewhere.
find_package(cJSON QUIET CONFIG)
find_path(SAEC_CJSON_INCLUDE_DIR cjson/cJSON.h)
find_library(SAEC_CJSON_LIBRARY NAMES cjson)
if(NOT SAEC_CJSON_INCLUDE_DIR OR NOT SAEC_CJSON_LIBRARY)
  message(FATAL_ERROR "saec: cJSON not found. Install it with cmake/install-deps.sh "
                      "(Debian: libcjson-dev).")
endif()

# GDAL reads the GeoTIFFs of `saec import geotiff` (issue 16); CMake's FindGDAL gives GDAL::GDAL.
find_package(GDAL)
if(NOT GDAL_FOUND)
  message(FATAL_ERROR "saec: GDAL not found. Install it with cmake/install-deps.sh "
                      "(Debian: libgdal-dev).")
endif()

# zlib deflates the PNGs saec draws (Debian's zlib1g-dev, which HDF5 needs anyway).
find_package(ZLIB REQUIRED)

# liblinear: the logistic regression of `saec probe` (Debian's liblinear-dev).
find_path(SAEC_LIBLINEAR_INCLUDE_DIR linear.h PATH_SUFFIXES liblinear)
find_library(SAEC_LIBLINEAR_LIBRARY NAMES linear)
if(NOT SAEC_LIBLINEAR_INCLUDE_DIR OR NOT SAEC_LIBLINEAR_LIBRARY)
  message(FATAL_ERROR "saec: liblinear not found. Install it with cmake/install-deps.sh "
                      "(Debian: liblinear-dev).")
endif()

add_library(saec_deps INTERFACE)
add_library(saec::deps ALIAS saec_deps)
target_include_directories(saec_deps INTERFACE
  ${SAEC_CBLAS_INCLUDE_DIR} ${SAEC_CJSON_INCLUDE_DIR} ${SAEC_LIBLINEAR_INCLUDE_DIR} ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_compile_definitions(saec_deps INTERFACE ${HDF5_C_DEFINITIONS} ${HDF5_DEFINITIONS})
target_link_libraries(saec_deps INTERFACE
  OpenMP::OpenMP_C ${SAEC_OPENBLAS_LIBRARY} ${SAEC_CJSON_LIBRARY} ${SAEC_LIBLINEAR_LIBRARY}
  ${HDF5_C_LIBRARIES} ${HDF5_LIBRARIES} GDAL::GDAL ZLIB::ZLIB Threads::Threads m)
if(SAEC_OPENBLAS_LIBRARY MATCHES "pthread")
  message(WARNING "saec: using the pthread build of OpenBLAS; its threads compete with OpenMP's. "
                  "Install the OpenMP build (Debian: libopenblas-openmp-dev) for full speed.")
endif()
message(STATUS "saec: CBLAS ${SAEC_OPENBLAS_LIBRARY}, cJSON ${SAEC_CJSON_LIBRARY}, "
               "liblinear ${SAEC_LIBLINEAR_LIBRARY}, HDF5 ${HDF5_VERSION}")
