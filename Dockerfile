# The release binaries and the experiment presets in a slim runtime image, for the Kubernetes
# Indexed Job in experiments/cluster/maze-indexed-job.yaml (which runs from /fbrl):
#
#   docker build -t fbrl:latest .
#   docker run --rm fbrl:latest target/release/fbrl train --env cartpole --total-steps 20000
#
# Stage 1 builds every binary of the workspace with the default features (CPU backend `flex`,
# gymnasium-rs's CartPole, which links libpython at build time). Stage 2 holds the binaries,
# the presets and the shared libraries they load: libpython3.11 for `fbrl`, and Open MPI for
# multi-process launches (`mpirun`).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && cp target/release/fbrl target/release/maze target/release/memory_length \
          target/release/tune target/release/benchmarks target/release/throughput \
          target/release/decode /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpython3.11 openmpi-bin ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /fbrl
COPY --from=build /out/ target/release/
COPY experiments/configs experiments/configs
ENV PATH="/fbrl/target/release:${PATH}"
CMD ["fbrl", "--help"]
