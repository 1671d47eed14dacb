"""The built layer is laid out as /opt and runs on its own vendored packages."""

import json
import re
import stat
import subprocess
import sys
import zipfile

import pytest

from conftest import PATH, ROOT
from local_lambda import botocore_data, layer, vendor_patches


def test_layer_tree_and_zip(layer_dir):
    launcher = layer_dir / "extensions" / "cache-extension"
    assert launcher.stat().st_mode & stat.S_IXUSR
    assert b"\r\n" not in launcher.read_bytes() and launcher.read_bytes().startswith(b"#!/bin/sh\n")
    package = layer_dir / "cache-extension"
    for needed in ("__main__.py", "cache_extension/main.py", "botocore", "yaml", "uvloop", "httptools"):
        assert (package / needed).exists(), needed
    # The extension's own HTTP server: no web framework or ASGI server (nor what they pull in) is vendored.
    for unused in ("starlette", "uvicorn", "anyio", "click", "h11", "sniffio"):
        assert not (package / unused).exists(), unused
    # Only the client lands on the function's own sys.path: the extension's dependencies stay apart.
    assert sorted(p.name for p in (layer_dir / "python").iterdir()) == ["cache_extension_client"]
    assert (layer_dir / "nodejs" / "node_modules" / "cache-extension-client" / "package.json").exists()
    assert (layer_dir / "java" / "lib" / "cache-extension-client.jar").exists()
    assert not (layer_dir / "java" / "src").exists()
    assert list(package.glob("cache_extension/__pycache__/*.pyc"))  # bytecode shipped: /opt is read-only
    # Only what the extension loads: botocore's models for the services it calls, no boto3/s3transfer.
    assert sorted(p.name for p in (package / "botocore" / "data").iterdir() if p.is_dir()) == [
        "dynamodb", "secretsmanager", "ssm", "sts"]
    assert not (package / "boto3").exists() and not (package / "s3transfer").exists()
    zip_path = layer_dir.parent / f"cache-extension-layer-{layer.machine_arch()}.zip"
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo("extensions/cache-extension")
        assert (info.external_attr >> 16) & 0o111
        assert "cache-extension/cache_extension/store.py" in archive.namelist()


def test_layer_has_no_dist_info_of_a_package_it_does_not_carry(layer_dir):
    """A package removed from the layer (boto3, s3transfer) takes its *.dist-info with it: metadata of a package
    that is not there would tell importlib.metadata (and anyone auditing the layer) it is installed."""
    package = layer_dir / "cache-extension"
    dist_infos = sorted(package.glob("*.dist-info"))
    assert any(d.name.startswith("botocore-") for d in dist_infos), dist_infos  # the check sees real ones
    orphans = []
    for dist_info in dist_infos:
        # RECORD lists the package's files, paths relative to the install directory; its own metadata aside.
        files = [line.split(",")[0] for line in (dist_info / "RECORD").read_text().splitlines() if line.strip()]
        carried = [f for f in files if not f.startswith((dist_info.name + "/", "../", "bin/")) and (package / f).exists()]
        if not carried:
            orphans.append(dist_info.name)
    assert orphans == []
    assert not any(d.name.lower().startswith(("boto3-", "s3transfer-", "click-")) for d in dist_infos)


FETCHERS = ROOT / "extension" / "cache_extension" / "fetchers"
SERVICE_OF = {"ssm.py": "ssm", "secrets.py": "secretsmanager", "dynamodb.py": "dynamodb"}
CLIENT_CHECK = """
import json, sys
import botocore.session
calls = json.loads(sys.argv[1])
session = botocore.session.get_session()
for service, operations in calls.items():
    client = session.create_client(service, region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    for operation in operations:
        assert hasattr(client, operation), f"{service} has no {operation} in the layer's model"
    print(service, len(client.meta.service_model.operation_names))
"""


def test_botocore_models_keep_every_operation_the_fetchers_call(layer_dir):
    """The layer's models are cut to botocore_data.OPERATIONS: every client call in the fetchers must be in them."""
    calls = {service: sorted(set(re.findall(r"client\.([a-z_]+)\(", (FETCHERS / name).read_text())))
             for name, service in SERVICE_OF.items()}
    assert all(calls.values()) and "get_parameters" in calls["ssm"], calls
    calls["sts"] = ["assume_role", "assume_role_with_web_identity"]  # botocore's credential providers
    result = subprocess.run([sys.executable, "-E", "-S", "-c", CLIENT_CHECK, json.dumps(calls)],
                            cwd=layer_dir / "cache-extension", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    kept = dict(line.split() for line in result.stdout.splitlines())
    assert kept == {service: str(len(ops)) for service, ops in botocore_data.OPERATIONS.items()}
    data = layer_dir / "cache-extension" / "botocore" / "data"
    for service in botocore_data.OPERATIONS:
        (version,) = (data / service).iterdir()  # the latest API version only
        assert sorted(p.name for p in version.iterdir()) <= ["endpoint-rule-set-1.json.gz", "service-2.json",
                                                             "service-2.sdk-extras.json"]
        assert "documentation" not in (version / "service-2.json").read_text()
    endpoints = json.loads((data / "endpoints.json").read_text())
    assert {name for partition in endpoints["partitions"] for name in partition["services"]} <= set(botocore_data.OPERATIONS)


def test_trim_model_keeps_reachable_shapes_and_names():
    model = {"metadata": {"serviceId": "X"}, "documentation": "service docs", "operations": {
        "Get": {"input": {"shape": "GetIn"}, "output": {"shape": "GetOut"}, "errors": [{"shape": "Bad"}],
                "documentation": "op docs"},
        "Put": {"input": {"shape": "PutIn"}}},
        "shapes": {
            "GetIn": {"type": "structure", "members": {"documentation": {"shape": "S", "documentation": "m"}}},
            "GetOut": {"type": "structure", "members": {"Items": {"shape": "List"}, "Tags": {"shape": "Map"}}},
            "List": {"type": "list", "member": {"shape": "S"}},
            "Map": {"type": "map", "key": {"shape": "S"}, "value": {"shape": "N"}},
            "Bad": {"type": "structure", "members": {}, "exception": True},
            "PutIn": {"type": "structure", "members": {"Only": {"shape": "PutOnly"}}},
            "PutOnly": {"type": "string"}, "S": {"type": "string", "documentation": "s"}, "N": {"type": "integer"}}}
    trimmed = botocore_data.trim_model(model, ("Get",))
    assert list(trimmed["operations"]) == ["Get"]
    assert sorted(trimmed["shapes"]) == ["Bad", "GetIn", "GetOut", "List", "Map", "N", "S"]
    assert "documentation" in trimmed["shapes"]["GetIn"]["members"]  # a member named so is kept
    assert "documentation" not in json.dumps({k: v for k, v in trimmed.items() if k != "shapes"})
    assert trimmed["shapes"]["S"] == {"type": "string"}
    with pytest.raises(botocore_data.DataError, match="X's model has no Delete"):
        botocore_data.trim_model(model, ("Get", "Delete"))


def test_launcher_ignores_the_functions_python_path(start_extension, tmp_path):
    """A PYTHONPATH full of the function's packages must not change what the extension imports."""
    # Standard-library names too: PYTHONPATH comes before the standard library on sys.path.
    for module in ("yaml", "httptools", "uvloop", "botocore", "asyncio", "decimal"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(f"raise ImportError('{module} from PYTHONPATH')\n")
    ext = start_extension(env={"PYTHONPATH": str(tmp_path)})
    assert ext.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter"
    assert "from PYTHONPATH" not in ext.output


def test_registration_imports_little(layer_dir):
    """Everything main.py imports runs before registration, which Lambda's INIT waits for: none of the modules
    that cost milliseconds at a cold start (socket and json bring enum and re; a directory run brings runpy)."""
    costly = ("socket", "json", "enum", "re", "runpy", "logging", "threading")
    code = (f"import sys; sys.path.insert(0, {str(layer_dir / 'cache-extension')!r}); import cache_extension.main; "
            f"print(sorted(m for m in {costly!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-E", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert "__main__.py" in (layer_dir / "extensions" / "cache-extension").read_text()  # a file: no runpy


DEFERRED_CHECK = """
import sys
import botocore.session
import urllib3.http2
for deferred in ("importlib.metadata", "botocore.docs.service", "botocore.docs.method", "botocore.docs.bcdoc.restdoc"):
    assert deferred not in sys.modules, deferred + " imported with botocore"
client = botocore.session.get_session().create_client("ssm", region_name="eu-west-1", aws_access_key_id="a",
                                                      aws_secret_access_key="b")
assert "botocore.docs.method" not in sys.modules, "imported by making a client"
assert "GetParameters" in str(client.get_parameters.__doc__)  # a docstring read still renders it
try:
    urllib3.http2.inject_into_urllib3()  # the opt-in feature still finds its import (and then no h2 here)
except Exception as exc:
    print(type(exc).__name__)
"""


def test_vendor_patches_defer_imports_and_keep_the_feature(layer_dir):
    """Every deferred import applied to the layer (none skipped: a new package version needs the edit redone)
    and the feature that needs it still works."""
    for edit in vendor_patches.DEFERRED:
        text = (layer_dir / "cache-extension" / edit.path).read_text()
        assert edit.into + edit.moved in text and text.count(edit.line) == 1, edit.path
    result = subprocess.run([sys.executable, "-E", "-S", "-c", DEFERRED_CHECK], cwd=layer_dir / "cache-extension",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PackageNotFoundError"  # importlib.metadata.version("h2"): not NameError


def test_vendor_patch_moves_one_line_once_or_says_it_cannot(tmp_path, monkeypatch):
    module = tmp_path / "pkg" / "mod.py"
    module.parent.mkdir()
    original = "from __future__ import annotations\n\nimport costly\n\n\ndef feature() -> None:\n    costly.go()\n"
    module.write_text(original)
    edit = vendor_patches.DeferredImport("pkg/mod.py", "import costly\n", "def feature() -> None:\n", "test")
    monkeypatch.setattr(vendor_patches, "DEFERRED", (edit,))
    said = []
    assert vendor_patches.apply(tmp_path, log=said.append) == [] and not said
    moved = module.read_text()
    assert moved == ("from __future__ import annotations\n\n\n\ndef feature() -> None:\n    import costly\n"
                     "    costly.go()\n")
    assert vendor_patches.apply(tmp_path, log=said.append) == [] and module.read_text() == moved  # once only
    module.write_text("import other\n")
    assert vendor_patches.apply(tmp_path, log=said.append) == [edit] and "skipped" in said[0]
    assert module.read_text() == "import other\n"


def test_launcher_without_the_extensions_api_fails_cleanly(layer_dir):
    result = subprocess.run([str(layer_dir / "extensions" / "cache-extension")], env={"PATH": PATH},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "could not register" in result.stderr and "Traceback" not in result.stderr


# --- builds for another architecture and Python version -------------------------------------------

# importlib.util.MAGIC_NUMBER of each Python version: the first bytes of every .pyc it writes and reads.
PYC_MAGIC = {"3.12": (3531).to_bytes(2, "little") + b"\r\n", "3.13": (3571).to_bytes(2, "little") + b"\r\n"}


def test_zip_names():
    assert layer.zip_name("arm64") == "cache-extension-layer-arm64.zip"
    assert layer.zip_name("arm64", "3.12") == "cache-extension-layer-arm64-python3.12.zip"
    assert layer.zip_name("x86_64", standalone=True) == "cache-extension-layer-x86_64-standalone.zip"


def test_docs_name_the_zips_as_the_build_does():
    """README and docs/layers.md write every zip name in full, each one zip_name gives, and agree on when the
    name carries -python<X.Y> (only with --python: scripts/build-layer passes args.python to zip_name)."""
    forms = {layer.zip_name(arch, python, standalone=standalone)
             for arch in ("<arch>", *layer.TARGET_ARCHES) for python in (None, "<X.Y>", *layer.TARGET_PYTHONS)
             for standalone in (False, True)}
    for doc in ("README.md", "docs/layers.md"):
        text = (ROOT / doc).read_text()
        named = re.findall(r"[\w.<>/-]*-python<X\.Y>\.zip|[\w.<>/-]*layer-[\w.<>-]*\.zip", text)
        assert named, doc
        for name in named:
            assert name.rsplit("/", 1)[-1] in forms, (doc, name)
        assert "`-python<X.Y>` only when you pass `--python`" in " ".join(text.split()), doc


def test_readme_examples_match_the_layer(layer_dir):
    """The README's client snippets read names the example config.yaml has, its clients table gives the Node.js
    client's option form, and it names the cache headers every value response carries."""
    import yaml

    readme = (ROOT / "README.md").read_text()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    configured = {name for group in config["parameters"] + config["secrets"] for name in group["names"]}
    python = readme.split("```python\nfrom cache_extension_client import", 1)[1].split("```", 1)[0]
    read = re.findall(r'cache\.get_(?:parameter|secret)\("([^"]+)"', python)
    assert read and set(read) <= configured, read
    typings = (layer_dir / "nodejs" / "node_modules" / "cache-extension-client" / "index.d.ts").read_text()
    for method in ("getParameter", "getSecret"):
        assert f"{method}(name: string, options: {{ transform: 'json' }})" in typings.replace("<T = unknown>", "")
        assert f"`{method}(name[, {{transform}}])`" in readme, method
    body = (ROOT / "extension" / "cache_extension" / "app.py").read_text().split("def cache_headers", 1)[1]
    sent = re.findall(r'\(b"([a-z-]+)"', body.split("\ndef ", 1)[0])
    assert sent == ["x-cache", "age", "cache-control"]
    sentence = " ".join(readme.split("Headers on every value response", 1)[1].split("\n\n", 1)[0].split())
    for header in ("X-Cache", "Age", "Cache-Control"):
        assert f"`{header}" in sentence, header


def test_cross_build_for_arm64_and_python_3_12(tmp_path):
    """The target's manylinux wheels (PyYAML's C extension for aarch64, cp312) and 3.12 bytecode."""
    out = tmp_path / "layer"
    result = subprocess.run([sys.executable, str(layer.ROOT / "scripts" / "build-layer"), "--arch", "arm64",
                             "--python", "3.12", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    zip_path = tmp_path / "cache-extension-layer-arm64-python3.12.zip"
    assert f"built {zip_path}" in result.stdout and "MiB" in result.stdout  # the size is reported
    package = out / "cache-extension"
    extensions = sorted(package.rglob("*.so"))
    assert any(path.name.startswith("_yaml.cpython-312-aarch64-linux-gnu") for path in extensions), extensions
    for path in extensions:
        assert "cpython-312-aarch64-linux-gnu" in path.name or "abi3" in path.name, path.name
        kind = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True, check=True).stdout
        assert kind.startswith("ELF 64-bit") and "ARM aarch64" in kind, (path.name, kind)
    if layer.find_python("3.12") is not None:  # bytecode needs a 3.12 interpreter here (pyenv has one)
        pycs = sorted(out.rglob("*.pyc"))
        assert any(p.parent.parent.name == "cache_extension" for p in pycs)
        assert any(p.parent.parent.name == "cache_extension_client" for p in pycs)  # /opt/python too
        for pyc in pycs:
            assert pyc.name.endswith(".cpython-312.pyc"), pyc
            assert pyc.read_bytes()[:4] == PYC_MAGIC["3.12"], pyc
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        launcher = archive.getinfo("extensions/cache-extension")
        assert (launcher.external_attr >> 16) & 0o111
        assert archive.read("extensions/cache-extension").startswith(b"#!/bin/sh\n")
    for needed in ("cache-extension/__main__.py", "cache-extension/cache_extension/main.py",
                   "cache-extension/yaml/__init__.py", "cache-extension/botocore/__init__.py",
                   "cache-extension/uvloop/__init__.py", "cache-extension/httptools/__init__.py",
                   "python/cache_extension_client/__init__.py",
                   "nodejs/node_modules/cache-extension-client/package.json"):
        assert needed in names, needed
    assert not any(name.startswith(("cache-extension/bin/", "python/yaml", "python/botocore")) for name in names)
    assert not any(".cpython-311" in name or "x86_64-linux-gnu" in name for name in names)


def test_all_refuses_a_single_target(tmp_path):
    result = subprocess.run([sys.executable, str(layer.ROOT / "scripts" / "build-layer"), "--all", "--arch", "arm64",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--all" in result.stderr
    assert list(tmp_path.iterdir()) == []
