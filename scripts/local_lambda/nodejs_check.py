"""Step 6 of scripts/sam-local-check: the Node.js example under `sam local invoke`, with the standalone
layer (the extension with its own interpreter: a Node.js image has no python3), on a stand-in of Lambda's Node.js
image built the same way as the Python one.

The stand-in `public.ecr.aws/lambda/nodejs:24-x86_64` (the name SAM asks for nodejs24.x) is the bookworm root with
this machine's `node` at /var/lang/bin (whatever its version: 20 here, the stand-in says so in its label), AWS's
aws-lambda-ric from npm (local_lambda.rie_runtimes: built here) in /var/runtime/node_modules, its bootstrap, RIE
behind /lambda-entrypoint.sh, Lambda's NODE_PATH, and no python3 anywhere on PATH.

The template's layer is the Python build (until the layer switches to the standalone build, docs/sam.md): after
`sam build NodejsExampleFunction` the built layer's directory is replaced by `scripts/build-layer --standalone`'s.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from local_lambda import layer, rie, rie_runtimes, standin_images

NODE_IMAGE = "public.ecr.aws/lambda/nodejs:24-x86_64"
FUNCTION = "NodejsExampleFunction"
NODE_PATH = "/opt/nodejs/node24/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"
BOOTSTRAP = """#!/bin/sh
exec /var/lang/bin/node /var/runtime/node_modules/aws-lambda-ric/index.mjs
"""


def node_image(engine, log=print) -> str:
    base = standin_images.base_image(engine, log=log)
    node = Path(shutil.which("node") or "/nonexistent").resolve()
    if not node.is_file():
        raise standin_images.StandInUnavailable("no `node` on PATH for the Node.js stand-in")
    ric = rie_runtimes.install_node_ric(log=log)
    binary = rie.install(log=log)
    version = rie_runtimes.node_version()
    env = {**standin_images.LAMBDA_ENV, "NODE_PATH": NODE_PATH}
    dockerfile = "\n".join([
        f"FROM {base}",
        "COPY node /var/lang/bin/node",
        "COPY node_modules/ /var/runtime/node_modules/",
        "COPY bootstrap /var/runtime/bootstrap",
        "COPY aws-lambda-rie /usr/local/bin/aws-lambda-rie",
        "COPY lambda-entrypoint.sh /lambda-entrypoint.sh",
        "ENV " + " ".join(f'{key}="{value}"' for key, value in env.items()),
        "RUN mkdir -p /var/task /opt && node --version && ! command -v python3",
        "WORKDIR /var/task",
        f"LABEL sam-local.node-version={version}",
        'ENTRYPOINT ["/lambda-entrypoint.sh"]',
        "",
    ])
    recipe = standin_images._digest(dockerfile, BOOTSTRAP, standin_images.ENTRYPOINT, str(node), version,
                                    rie_runtimes.NODE_RIC_VERSION, rie.RIE_VERSION)
    if standin_images.image_recipe(engine, NODE_IMAGE) == recipe:
        return NODE_IMAGE
    log(f"building the stand-in {NODE_IMAGE} (node {version}, aws-lambda-ric {rie_runtimes.NODE_RIC_VERSION})")
    with tempfile.TemporaryDirectory(prefix="sam-local-node-") as scratch:
        context = Path(scratch)
        shutil.copy2(node, context / "node")
        shutil.copytree(ric / "node_modules", context / "node_modules", symlinks=True)
        shutil.copy2(binary, context / "aws-lambda-rie")
        for name, text in (("bootstrap", BOOTSTRAP), ("lambda-entrypoint.sh", standin_images.ENTRYPOINT)):
            (context / name).write_text(text)
            (context / name).chmod(0o755)
        (context / "Dockerfile").write_text(dockerfile + f"LABEL {standin_images.LABEL}={recipe}\n")
        engine.docker_run(["build", "--network", "none", "--quiet", f"--tag={NODE_IMAGE}", str(context)], timeout=600)
    return NODE_IMAGE


def run(check, sam: Path) -> None:
    """sam build of the Node.js function, the standalone layer in place of the built one, sam local invoke."""
    from local_lambda import sam_local

    node_image(check.engine, check.log)
    out = check.work / "build-nodejs"
    result = sam_local.run_bounded([str(sam), "build", FUNCTION, "--template-file", str(sam_local.ROOT / "template.yaml"),
                                    "--build-dir", str(out), "--parameter-overrides", "Architecture=x86_64"],
                                   env=check.sam_env(), timeout=600, cwd=sam_local.ROOT)
    if result.returncode != 0:
        raise sam_local.CheckFailed(f"sam build {FUNCTION} exited {result.returncode}:\n{result.stderr[-4000:]}")
    started = time.monotonic()
    built_layer = out / "CacheExtensionLayer"
    shutil.rmtree(built_layer)
    layer.build_standalone(built_layer, log=lambda *_: None)
    check.report["standalone_build_seconds"] = round(time.monotonic() - started, 1)
    env_vars = check.work / "env-nodejs.json"
    env_vars.write_text(json.dumps({FUNCTION: {"AWS_ENDPOINT_URL": check.moto.endpoint, "CACHE_EXTENSION_LOG_LEVEL": "debug",
                                               "CACHE_EXTENSION_INIT_STARTUP": "true", "CACHE_EXTENSION_TTL": "30s"}}))
    command = [str(sam), "local", "invoke", FUNCTION, "--template", str(out / "template.yaml"),
               "--event", str(sam_local.ROOT / "events" / "invoke.json"), "--env-vars", str(env_vars),
               "--skip-pull-image", "--region", sam_local.REGION, "--shutdown"]
    label = f"sam local invoke {FUNCTION} --shutdown"
    started = time.monotonic()
    result = sam_local.run_bounded(command, env=check.sam_env(), timeout=180, cwd=check.work)
    seconds = round(time.monotonic() - started, 1)
    sam_local.check_no_secret(result.stdout, result.stderr)
    if result.returncode != 0:
        raise sam_local.CheckFailed(f"{label} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-6000:]}")
    body = sam_local.check_response(label, result.stdout, result.stderr)
    lines = sam_local.check_logs(label, result.stderr, shutdown=True)
    check.report["invokes"].append({"command": label, "endpoint": check.moto.endpoint, "seconds": seconds,
                                    "response": body, "extension_log": lines, "api_went_away_lines": [],
                                    "sam_stderr_tail": result.stderr.splitlines()[-12:]})
    check.log(f"{label}: {seconds} s, {json.dumps(body)}")
