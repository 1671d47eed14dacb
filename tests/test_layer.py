"""The built layer is laid out as /opt and runs on its own vendored packages."""

import importlib.machinery
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

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
        assert json.loads(archive.read(layer.MANIFEST)) == layer.read_manifest(layer_dir)  # shipped
    assert layer.read_manifest(layer_dir) == {"layer": "python", "arch": layer.machine_arch(),
                                              "python": layer.this_python(), "extension": VERSION}
    assert layer.unfit_here(layer_dir) is None


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


VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
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
    """README and docs/layers.md write every zip name in full, each one zip_name gives, agree on when the
    name carries -python<X.Y> (only with --python: scripts/build-layer passes args.python to zip_name), name
    the trees variant_tree gives and the manifest."""
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
        # ... and on the trees: dist/layer for this machine, dist/layers/<arch>-python<X.Y>/ for another target.
        for tree in (layer.variant_tree(Path("dist"), layer.machine_arch(), layer.this_python()),
                     layer.variant_tree(Path("dist"), "<arch>", "<X.Y>")):
            assert f"`{tree}/`" in text, (doc, tree)
        assert layer.MANIFEST in text, doc


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
    """The target's manylinux wheels (PyYAML's C extension for aarch64, cp312) and 3.12 bytecode, a manifest
    saying so, and no pip resolver ERROR about a package installed in the Python running build-layer (as a
    system Python's awscli pinning another botocore): pip checks --target installs against that environment."""
    out = tmp_path / "layer"
    unrelated = tmp_path / "site" / "unrelated_tool-1.0.dist-info"
    unrelated.mkdir(parents=True)
    (unrelated / "METADATA").write_text("Metadata-Version: 2.1\nName: unrelated-tool\nVersion: 1.0\n"
                                        "Requires-Dist: botocore==1.0.0\n")
    result = subprocess.run([sys.executable, str(layer.ROOT / "scripts" / "build-layer"), "--arch", "arm64",
                             "--python", "3.12", "--out", str(out)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(unrelated.parent)})
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr and "unrelated-tool" not in result.stderr, result.stderr
    assert "WARNING: Running pip as the 'root' user" not in result.stderr
    assert layer.read_manifest(out) == {"layer": "python", "arch": "arm64", "python": "3.12", "extension": VERSION}
    assert layer.unfit_here(out).endswith(f"was built for arm64 / Python 3.12; this machine runs "
                                          f"{layer.machine_arch()} / Python {layer.this_python()}")
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
    for needed in (layer.MANIFEST, "cache-extension/__main__.py", "cache-extension/cache_extension/main.py",
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


def test_vendor_still_fails_on_requirements_that_cannot_be_met(tmp_path, monkeypatch, capfd):
    """--no-warn-conflicts silences pip's check against the build interpreter's packages, not the resolver."""
    monkeypatch.setattr(layer, "dependencies", lambda: ["PyYAML==6.0.1", "PyYAML==6.0.2"])
    with pytest.raises(subprocess.CalledProcessError):
        layer.vendor(tmp_path / "site", layer.machine_arch(), layer.this_python(), native=True)
    assert "conflicting dependencies" in capfd.readouterr().err


def load_build_layer():
    spec = importlib.util.spec_from_loader("build_layer", importlib.machinery.SourceFileLoader(
        "build_layer", str(ROOT / "scripts" / "build-layer")))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_layer_puts_each_target_in_its_own_tree(tmp_path, monkeypatch):
    """Another architecture or Python never lands in dist/layer (what run-local launches): it gets
    dist/layers/<arch>-python<X.Y>/ as --all gives it; --out still decides. The builds themselves are recorded."""
    build_layer = load_build_layer()
    built = []
    monkeypatch.setattr(layer, "ROOT", tmp_path)
    monkeypatch.setattr(layer, "build", lambda arch, python, out, zip_path: built.append((arch, python, out, zip_path)))
    native, this = layer.machine_arch(), layer.this_python()
    other = {"x86_64": "arm64", "arm64": "x86_64"}[native]
    other_python = "3.13" if this != "3.13" else "3.12"
    dist = tmp_path / "dist"
    cases = {
        (): (native, this, dist / "layer", dist / f"cache-extension-layer-{native}.zip"),
        ("--arch", native): (native, this, dist / "layer", dist / f"cache-extension-layer-{native}.zip"),
        ("--arch", other): (other, this, dist / "layers" / f"{other}-python{this}",
                            dist / f"cache-extension-layer-{other}.zip"),
        ("--python", other_python): (native, other_python, dist / "layers" / f"{native}-python{other_python}",
                                     dist / f"cache-extension-layer-{native}-python{other_python}.zip"),
        ("--arch", other, "--python", "3.12"): (other, "3.12", dist / "layers" / f"{other}-python3.12",
                                                 dist / f"cache-extension-layer-{other}-python3.12.zip"),
        ("--arch", other, "--out", str(tmp_path / "mine" / "tree")): (
            other, this, tmp_path / "mine" / "tree", tmp_path / "mine" / f"cache-extension-layer-{other}.zip"),
    }
    for argv, expected in cases.items():
        built.clear()
        monkeypatch.setattr(sys, "argv", ["build-layer", *argv])
        assert build_layer.main() == 0
        assert built == [expected], argv


def fake_tree(tree: Path, built_for: dict | None) -> Path:
    """Enough of a layer tree for run-local's checks: the launcher and, unless None, the manifest."""
    (tree / "extensions").mkdir(parents=True)
    (tree / "extensions" / "cache-extension").write_text("#!/bin/sh\nexit 1\n")
    (tree / "cache-extension").mkdir()
    if built_for is not None:
        (tree / layer.MANIFEST).write_text(json.dumps(built_for))
    return tree


def test_run_local_refuses_a_layer_built_for_another_machine(tmp_path, monkeypatch, capsys):
    """run-local --no-build / --layer DIR with a tree for another architecture or Python, or with no manifest
    (an older build), says which and stops before starting anything (the launched extension would fail only
    at import: ModuleNotFoundError: No module named 'httptools.parser.parser')."""
    from local_lambda import run_local

    def started(*_args, **_kwargs):
        raise AssertionError("run-local started moto for a layer it should refuse")

    monkeypatch.setattr(run_local, "MotoServer", started)
    monkeypatch.setattr(layer, "build", started)  # --no-build: never rebuilt
    native, this = layer.machine_arch(), layer.this_python()
    other = {"x86_64": "arm64", "arm64": "x86_64"}[native]
    here = f"this machine runs {native} / Python {this}"
    monkeypatch.setattr(layer, "ROOT", tmp_path)  # dist/layer is tmp_path/dist/layer
    fake_tree(tmp_path / "dist" / "layer", {"layer": "python", "arch": other, "python": "3.12"})
    assert run_local.main(["--no-build", "--once", "--port", "0"]) == 1
    assert capsys.readouterr().err == (f"run-local: dist/layer was built for {other} / Python 3.12; {here}: "
                                       "rebuild without --no-build, or scripts/build-layer\n")
    monkeypatch.setattr(layer, "ROOT", ROOT)  # trees outside the project are shown by their full path
    cases = {
        "python": ({"layer": "python", "arch": native, "python": "2.7"}, f"was built for {native} / Python 2.7; {here}"),
        "standalone": ({"layer": "standalone", "arch": other, "python": this},
                       f"was built for {other} (standalone); this machine runs {native}"),
        "old": (None, f"does not say what it was built for (no {layer.MANIFEST}): an older scripts/build-layer"),
    }
    for name, (built_for, said) in cases.items():
        tree = fake_tree(tmp_path / "elsewhere" / name, built_for)
        assert run_local.main(["--layer", str(tree), "--once", "--port", "0"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"run-local: {tree} ") and said in err, err
        assert "scripts/build-layer" in err
    # What fits runs: the same architecture and Python, or a standalone tree of this architecture (any Python).
    assert layer.unfit_here(fake_tree(tmp_path / "fits", {"layer": "python", "arch": native, "python": this})) is None
    assert layer.unfit_here(fake_tree(tmp_path / "frozen", {"layer": "standalone", "arch": native,
                                                             "python": "3.13"})) is None
