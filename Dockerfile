# The devenv-gw gateway image, built offline: it packages a devenv-gw binary that was built
# on the host with the Swift runtime linked in statically, so the image needs no Swift
# toolchain image, only Debian's C libraries the binary links (libssh, libcurl, SQLite;
# libstdc++ is in the base image).
#
#   scripts/build-gateway-image.sh          # swift build -c release --static-swift-stdlib,
#                                           # then docker build -t devenv-gw:latest
#
# iptables: `serve` installs the egress rules (egress-deny) in the host's firewall; it picks
# the backend (nft or legacy) that holds Docker's own rules.
#
# The build context is a directory holding just the binary, named devenv-gw. On a machine
# that can pull the official Swift image, Dockerfile.source builds from source instead.
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libssh-4 libcurl4 libsqlite3-0 ca-certificates iptables \
    && rm -rf /var/lib/apt/lists/*

COPY devenv-gw /usr/local/bin/devenv-gw

# The registry and state, and the gateway's own host keys (made on first start, never
# replaced): keep both on volumes. The Docker socket is mounted by the run command.
VOLUME ["/var/lib/devenv-gw", "/var/lib/devenv-gw/hostkeys"]
EXPOSE 22
ENTRYPOINT ["devenv-gw"]
CMD ["serve"]
