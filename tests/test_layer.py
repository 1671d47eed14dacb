"""The built layer is laid out as /opt and runs on its own vendored packages."""

import stat
import subprocess
import zipfile

from conftest import PATH
from local_lambda import layer


def test_layer_tree_and_zip(layer_dir):
    launcher = layer_dir / "extensions" / "cache-extension"
    assert launcher.stat().st_mode & stat.S_IXUSR
    assert b"\r\n" not in launcher.read_bytes() and launcher.read_bytes().startswith(b"#!/bin/sh\n")
    package = layer_dir / "cache-extension"
    for needed in ("__main__.py", "cache_extension/main.py", "botocore", "yaml", "starlette", "uvicorn"):
        assert (package / needed).exists(), needed
    # Only the client lands on the function's own sys.path: the extension's dependencies stay apart.
    assert sorted(p.name for p in (layer_dir / "python").iterdir()) == ["cache_extension_client"]
    assert (layer_dir / "nodejs" / "node_modules" / "cache-extension-client" / "package.json").exists()
    assert (layer_dir / "java" / "lib" / "cache-extension-client.jar").exists()
    assert not (layer_dir / "java" / "src").exists()
    assert list(package.glob("cache_extension/__pycache__/*.pyc"))  # bytecode shipped: /opt is read-only
    zip_path = layer_dir.parent / f"cache-extension-layer-{layer.machine_arch()}.zip"
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo("extensions/cache-extension")
        assert (info.external_attr >> 16) & 0o111
        assert "cache-extension/cache_extension/store.py" in archive.namelist()


def test_launcher_ignores_the_functions_python_path(start_extension, tmp_path):
    """A PYTHONPATH full of the function's packages must not change what the extension imports."""
    # Standard-library names too: PYTHONPATH comes before the standard library on sys.path.
    for module in ("yaml", "starlette", "botocore", "asyncio", "decimal"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(f"raise ImportError('{module} from PYTHONPATH')\n")
    ext = start_extension(env={"PYTHONPATH": str(tmp_path)})
    assert ext.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter"
    assert "from PYTHONPATH" not in ext.output


def test_launcher_without_the_extensions_api_fails_cleanly(layer_dir):
    result = subprocess.run([str(layer_dir / "extensions" / "cache-extension")], env={"PATH": PATH},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "could not register" in result.stderr and "Traceback" not in result.stderr
