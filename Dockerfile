# The sluice agent's image: the `sluice` binary on a slim Debian base with what signature
# verification runs (gpg through gpgme, ssh-keygen), as a non-root user, for a read-only root
# filesystem (storage and temporary files live on volumes).
#
# Anywhere with access to Docker Hub, this builds from source:
#   docker build -t sluice:dev .
# Without it, name a base image (a Debian bookworm made locally, e.g. `scripts/image base`) and a
# binary built on a bookworm machine (it links glibc, gpgme and OpenSSL dynamically):
#   buildah build --build-arg BASE=localhost/sluice-base:bookworm --build-arg BINARY=context \
#     -f Dockerfile -t sluice:dev DIR-HOLDING-sluice
# `scripts/image agent` does exactly that and pushes the result.

# The runtime base: any Debian bookworm (the binary's libraries come from bookworm).
ARG BASE=docker.io/library/debian:bookworm-slim
# The builder for BINARY=source.
ARG BUILDER=docker.io/library/rust:1-slim-bookworm
# Where the binary comes from: `source` builds it from this repository in BUILDER; `context` takes
# the file `sluice` at the top of the build context.
ARG BINARY=source

FROM ${BUILDER} AS binary-source
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgpgme-dev libssl-dev libssh2-1-dev zlib1g-dev pkg-config cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice && cp target/release/sluice /sluice

FROM scratch AS binary-context
COPY sluice /sluice

FROM binary-${BINARY} AS binary

FROM ${BASE}
# gnupg: gpg and gpgconf for OpenPGP verification (through libgpgme); openssh-client: ssh-keygen
# for SSH signatures; the rest are the libraries `ldd sluice` lists.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gnupg openssh-client libgpgme11 libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --from=binary /sluice /usr/local/bin/sluice
# A fixed non-root user (no entry in /etc/passwd needed): 65532, like distroless' nonroot.
USER 65532:65532
ENV HOME=/tmp TMPDIR=/tmp SLUICE_STORAGE_DIR=/var/lib/sluice SLUICE_LOG_FORMAT=json
# Git caches and artifacts; mount a volume here (the install manifests use an emptyDir).
VOLUME ["/var/lib/sluice", "/tmp"]
EXPOSE 8080 9292
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["agent"]
