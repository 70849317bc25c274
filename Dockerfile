# saec on a CUDA devel image: builds the CPU and CUDA backends and runs the tests
# (GPU tests run when the container is started with --gpus; without one they report skipped).
#   docker build -t saec .
#   docker run --rm --gpus all saec                      # the test suite
#   docker run --rm --gpus all saec build/saec train     # the default job on the GPU
# Not yet built by CI or by a session (no Docker engine there); the base image tag is CUDA 13.0.
FROM nvidia/cuda:13.0.0-cudnn-devel-ubuntu24.04
WORKDIR /opt/saec
COPY cmake/install-deps.sh cmake/install-deps.sh
RUN cmake/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -G Ninja -DSAEC_WERROR=ON -DSAEC_CUDA=ON && cmake --build build
CMD ["ctest", "--test-dir", "build", "--output-on-failure"]
