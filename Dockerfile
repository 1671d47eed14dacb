# A container-image Lambda function (the Python example, Python 3.12) with the cache extension baked in
# under /opt, as the layer would put it there.
#
#   docker build -t cache-extension-example .                            (add --platform linux/arm64 for Graviton)
#   docker run --rm -p 9000:8080 -e AWS_REGION=us-west-2 -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#     -e AWS_SESSION_TOKEN cache-extension-example
#   curl -d '{}' http://localhost:9000/2015-03-31/functions/function/invocations
#
# Credentials only ever at run time (docker run -e, or the function's role on Lambda): no build argument or
# layer of this image holds a secret.
#
# Stage "build" runs on Amazon Linux 2023, the OS of Lambda's current runtimes, the same script the tests run:
#   scripts/build-layer --python 3.12 --out /build/layer
#       the Python layer (what this image uses): the extension's package with the manylinux wheels of its
#       dependencies for this image's architecture, bytecode compiled by python3.12
#   scripts/build-layer --standalone --out /build/standalone
#       the extension frozen by PyInstaller with its own interpreter, for images without python3 (Node.js, Java,
#       provided.al2023). It carries the build machine's dynamic loader and C library and runs on them, so it
#       starts on any glibc; built here only because this stage builds everything (any machine's build would do).
#
# A Node.js, Java or OS-only image takes the standalone tree instead of the Python one, with the same build stage:
#
#   FROM public.ecr.aws/lambda/nodejs:22.<dated tag>        (or java:21.<dated tag>, provided:al2023.<dated tag>)
#   COPY --from=build /build/standalone/ /opt/
#
# which gives /opt/extensions/cache-extension (a /bin/sh launcher needing nothing on PATH), /opt/cache-extension/
# (binary + _internal), and the clients at /opt/nodejs/node_modules (on NODE_PATH) and /opt/java/lib (on the Java
# runtime's classpath). See docs/layers.md.

# The build stage's base: Amazon Linux 2023, pinned. An argument only so that a machine that cannot pull it can give a
# local stand-in (scripts/sam-local-check does: --build-arg BUILD_IMAGE=...); the image built is the same.
ARG BUILD_IMAGE=public.ecr.aws/amazonlinux/amazonlinux:2023.7.20250331.0

FROM ${BUILD_IMAGE} AS build

# python3.11 runs build-layer and PyInstaller; python3.12 compiles the Python 3.12 layer's bytecode;
# binutils (objdump, strip) is what PyInstaller inspects and strips binaries with; a JDK builds the Java client.
# Package versions are fixed by the pinned image tag: Amazon Linux 2023 locks dnf to that release's repository
# (deterministic upgrades), so the versions hadolint asks to spell out (DL3041) cannot drift.
# hadolint ignore=DL3041
RUN dnf install -y python3.11 python3.11-pip python3.12 binutils findutils java-17-amazon-corretto-devel \
    && dnf clean all

# PyInstaller in a virtualenv, first on PATH, so that build-layer (#!/usr/bin/env python3) runs in it.
# --system-site-packages: the venv uses the system's pip (python3.11-pip) rather than one fetched by ensurepip.
# The versions are the ones the test suite builds and checks the standalone layer with.
RUN python3.11 -m venv --system-site-packages --without-pip /opt/build-venv \
    && /opt/build-venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9
ENV PATH="/opt/build-venv/bin:${PATH}"

# Only what build-layer reads (.dockerignore keeps the rest out of the context).
WORKDIR /src
COPY pyproject.toml ./
COPY extension/ extension/
COPY layer/ layer/
COPY scripts/ scripts/

RUN scripts/build-layer --python 3.12 --out /build/layer \
    && scripts/build-layer --standalone --out /build/standalone


FROM public.ecr.aws/lambda/python:3.12.2025.04.01.18

# The Python layer's tree, where the layer would put it: Lambda starts every executable in /opt/extensions,
# whose launcher runs python3 -E -S /opt/cache-extension/__main__.py; /opt/python (the client) is on the function's sys.path.
# Root-owned and world-readable: the function runs as Lambda's own non-root user, which reads it all and writes
# nothing here (/opt and /var/task are read-only on Lambda). To use the standalone build in this image instead,
# copy /build/standalone/extensions/ and /build/standalone/cache-extension/ in place of the two lines below.
COPY --from=build /build/layer/extensions/ /opt/extensions/
COPY --from=build /build/layer/cache-extension/ /opt/cache-extension/
COPY --from=build /build/layer/python/ /opt/python/

# The example function and its cache configuration (/var/task/config.yaml, $LAMBDA_TASK_ROOT, is where the extension looks).
COPY function-example/python/app.py config.yaml ${LAMBDA_TASK_ROOT}/

# No USER: Lambda runs container images as its own least-privileged (non-root) user whatever the image says,
# and the base image's runtime interface emulator used by `docker run` needs none either.
CMD ["app.handler"]
