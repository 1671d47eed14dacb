"""For developing a client: serve the contract config until Ctrl-C and print the environment to test with.

    .venv/bin/python tests/contract/serve.py [--no-build]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.resources import CASES, CONFIG, REGION, create_contract_resources, fail_denied  # noqa: E402
from contract.trap import Trap  # noqa: E402
from local_lambda import layer  # noqa: E402
from local_lambda.aws import MotoServer, free_port, lambda_environment  # noqa: E402
from local_lambda.extensions_api import ExtensionsApiEmulator  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="reuse dist/layer")
    args = parser.parse_args()
    tree = layer.ROOT / "dist" / "layer"
    if not args.no_build:
        layer.build(layer.machine_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", tree)
    elif (unfit := layer.unfit_here(tree)) is not None:  # e.g. left by scripts/build-layer --out dist/layer --arch ...
        parser.error(f"{unfit}: drop --no-build to rebuild it")
    port, token = free_port(), "contract-token"
    with MotoServer() as moto, ExtensionsApiEmulator(region=REGION, echo=True) as emulator, Trap() as trap:
        create_contract_resources(moto)
        fail_denied(moto)
        env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token, config=str(CONFIG), extra={
            "PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin",
            "CACHE_EXTENSION_PORT": str(port)})
        emulator.launch(str(tree / "extensions" / "cache-extension"), env)
        emulator.wait_init(timeout=20)
        print(f"\nexport CACHE_EXTENSION_PORT={port} AWS_SESSION_TOKEN={token} "
              f"CONTRACT_CASES={CASES} CONTRACT_DOWN_PORT={free_port()} CONTRACT_TRAP_PORT={trap.port}", flush=True)
        try:
            emulator.extensions[0].wait_exit(3600)
        except KeyboardInterrupt:
            pass
        emulator.shutdown()
    if trap.count():
        print(f"{trap.count()} connection(s) reached CONTRACT_TRAP_PORT: a client sent without a token", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
