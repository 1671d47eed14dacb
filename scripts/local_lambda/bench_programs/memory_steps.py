"""Where the extension's memory goes: in a fresh interpreter started as the layer's launcher starts the extension
(python3 -E -S, the layer's cache-extension directory first on sys.path), load what the extension loads, in its
order, and print after each step the process's RSS (VmRSS) and, with --tracemalloc, the bytes tracemalloc
traces (Python's own allocations; tracemalloc's bookkeeping inflates RSS, hence two runs).

Steps: the interpreter; the extension's entry module (what runs before it registers, named by __main__.py);
PyYAML (the config); a botocore session and its ssm, secretsmanager and dynamodb clients; uvloop and httptools
with the extension's HTTP server (app, http_server); the rest of the extension's own package; the values of the first config (fetched with the
clients above and kept, as the prefetch keeps them), then those of the large one.

Usage: python3 -E -S memory_steps.py PACKAGE_DIR CONFIG_JSON [--tracemalloc]
CONFIG_JSON: {"region": ..., "configs": [{"items": 3, "parameters": [...], "secrets": [...],
"dynamodb": {"table": ..., "key": ..., "values": [...]}}, ...]}; AWS_ENDPOINT_URL and credentials from the
environment.
"""

import sys

TRACE = "--tracemalloc" in sys.argv
if TRACE:
    import tracemalloc

    tracemalloc.start()

import ast  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402

steps = []


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def step(name: str) -> None:
    steps.append({"step": name, "rss_kib": rss_kib(),
                  "traced_bytes": tracemalloc.get_traced_memory()[0] if TRACE else None})


def entry_module(package_dir: str) -> str | None:
    """The module __main__.py imports its entry point from (`from cache_extension.main import main`)."""
    path = os.path.join(package_dir, "__main__.py")
    if not os.path.exists(path):
        return None
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            return node.module
    return None


def fetch(clients: dict, config: dict, values: dict) -> None:
    """The config's values, batched as the extension batches them, kept in `values`."""
    ssm, secrets, dynamodb = clients["ssm"], clients["secretsmanager"], clients["dynamodb"]
    names = config["parameters"]
    for start in range(0, len(names), 10):
        for parameter in ssm.get_parameters(Names=names[start:start + 10])["Parameters"]:
            values["parameters", parameter["Name"]] = parameter["Value"]
    ids = config["secrets"]
    for start in range(0, len(ids), 20):
        for secret in secrets.batch_get_secret_value(SecretIdList=ids[start:start + 20])["SecretValues"]:
            values["secrets", secret["Name"]] = secret["SecretString"]
    table = config["dynamodb"]
    keys = [{table["key"]: {"S": value}} for value in table["values"]]
    for start in range(0, len(keys), 100):
        answer = dynamodb.batch_get_item(RequestItems={table["table"]: {"Keys": keys[start:start + 100]}})
        for item in answer["Responses"][table["table"]]:
            values["dynamodb", item[table["key"]]["S"]] = item


def main() -> None:
    package_dir, config_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, package_dir)
    spec = json.loads(open(config_file).read())
    step("interpreter (python3 -E -S) and this program")
    entry = entry_module(package_dir)
    if entry:
        importlib.import_module(entry)
        step(f"the extension's entry module ({entry}: what runs before register)")
    import yaml  # noqa: F401

    step("PyYAML (the config)")
    import botocore.session

    session = botocore.session.get_session()
    clients = {service: session.create_client(service, region_name=spec["region"])
               for service in ("ssm", "secretsmanager", "dynamodb")}
    step("botocore: a session and its ssm, secretsmanager and dynamodb clients")
    import httptools  # noqa: F401
    import uvloop  # noqa: F401

    if entry:
        base = entry.split(".", 1)[0]
        importlib.import_module(base + ".app")
        importlib.import_module(base + ".http_server")

    step("uvloop, httptools and the extension's HTTP server")
    failed = []
    if entry:
        package = importlib.import_module(entry.split(".", 1)[0])
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            try:
                importlib.import_module(module.name)
            except Exception:  # noqa: BLE001: a module that cannot load alone is left out and counted
                failed.append(module.name)
        step(f"the rest of the extension's package ({package.__name__})")
    values: dict = {}
    done = 0
    for config in spec["configs"]:
        fetch(clients, config, values)
        step(f"values of {config['items']} items fetched and kept" + (" (in all)" if done else ""))
        done += 1
    print(json.dumps({"steps": steps, "values": len(values), "modules": len(sys.modules), "failed_imports": failed}))


if __name__ == "__main__":
    main()
