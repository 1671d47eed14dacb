"""The README's client snippets, in every language, read only what the example config.yaml serves: a user
who pastes one into the example function gets a value, not NotConfigured."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# A call of any client's getter with a literal name: get_parameter("..."), getSecret('...'), GetItem(ctx, "...").
GETTER = re.compile(r"""\b(?:get_|get|Get)(parameter|secret|item|Parameter|Secret|Item)[A-Za-z]*\(\s*(?:ctx,\s*)?["']([^"']+)["']""")


def _snippets(language: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", readme, flags=re.S | re.M)


def _served() -> dict[str, set[str]]:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    items = {f"{t['table']}-{t['hashkeyvalue']}-{t['sortkeyvalue']}" for t in config["dynamodb"]}
    return {"parameter": {n for g in config["parameters"] for n in g["names"]},
            "secret": {n for g in config["secrets"] for n in g["names"]}, "item": items}


def test_every_client_snippet_reads_names_the_example_config_serves():
    served = _served()
    seen = {}
    for language in ("python", "js", "java", "go"):
        calls = [(kind.lower(), name) for text in _snippets(language) for kind, name in GETTER.findall(text)
                 if "CacheClient" in text or "cacheclient" in text or "cache_extension_client" in text]
        seen[language] = calls
        for kind, name in calls:
            assert name in served[kind], f"README's {language} snippet reads {kind} {name!r}, not in config.yaml"
    assert all(seen.values()), seen  # each language has a client snippet the pattern found


def _mib(path: Path) -> float:
    return path.stat().st_size / 2**20


def test_the_readmes_layer_sizes_are_the_built_ones(python_layer_dir, standalone_dir, tmp_path):
    """The sizes the README gives (the Python layer zipped and unzipped, the standalone zipped) within 10% of
    what the build makes now: a smaller or larger layer updates the README."""
    from local_lambda import layer

    readme = " ".join((ROOT / "README.md").read_text().split())
    zipped, unzipped = map(float, re.search(r"Each is about ([\d.]+) MiB zipped, ([\d.]+) MiB unzipped", readme).groups())
    standalone = float(re.search(r"C library beside it \(([\d.]+) MiB zipped\)", readme).group(1))
    built = {}
    for name, tree in (("layer", python_layer_dir), ("standalone", standalone_dir)):
        layer.write_zip(tree, tmp_path / f"{name}.zip")
        built[name] = _mib(tmp_path / f"{name}.zip")
    measured = {"zipped": built["layer"], "unzipped": layer.tree_size(python_layer_dir) / 2**20,
                "standalone zipped": built["standalone"]}
    claimed = {"zipped": zipped, "unzipped": unzipped, "standalone zipped": standalone}
    for what, size in measured.items():
        assert abs(size - claimed[what]) <= 0.1 * size, f"README says {claimed[what]} MiB {what}, the build makes {size:.1f}"
