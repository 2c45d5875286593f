"""``pip install .`` puts one import package, ``brokerflow``, into site-packages, and it works there.

A fresh venv gets the project built from this checkout (no dependencies: the running test
environment's site-packages is appended to its path, for pykka & co.); then, from a folder
holding a ``storage.py`` and ``workflow.py`` of the user's own, every module of the installed
package imports, and none of the old top-level names exists any more.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import brokerflow

ROOT = Path(brokerflow.__file__).resolve().parent.parent

PROBE = r"""
import importlib, json, pkgutil, sys
import brokerflow
names = [m.name for m in pkgutil.walk_packages(brokerflow.__path__, "brokerflow.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
import importlib.util
old = {name: getattr(importlib.util.find_spec(name), "origin", None)
       for name in ("workflow", "actors", "bus", "storage", "api")}
print(json.dumps({"file": brokerflow.__file__, "modules": names, "old": old}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh venv's python, its site-packages) with the project installed, not editable."""
    home = tmp_path_factory.mktemp("fresh-venv")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # Built from a copy: pip builds in the tree it is given, and setuptools' build/ would otherwise
    # be left in (and reused from) the checkout.
    source = tmp_path_factory.mktemp("source") / "brokerflow"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.db*",
                                                                 "__pycache__", "*.egg-info", ".ruff_cache"))
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, text=True, timeout=240, cwd=wheels)
    [wheel] = wheels.glob("brokerflow-*.whl")
    subprocess.run([*pip, "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=240, cwd=wheels)
    (purelib / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python, purelib


@pytest.mark.timeout(300)
def test_site_packages_gains_one_import_package_and_its_metadata(installed):
    _, purelib = installed
    added = sorted(p.name for p in purelib.iterdir() if p.name not in ("zz_test_dependencies.pth", "_distutils_hack",
                                                                      "distutils-precedence.pth"))
    assert [name for name in added if not name.endswith(".dist-info")] == ["brokerflow"]
    assert len([name for name in added if name.endswith(".dist-info")]) == 1
    for part in ("workflow", "storage", "bus", "actors", "api", "app"):
        assert (purelib / "brokerflow" / part / "__init__.py").is_file()


@pytest.mark.timeout(300)
def test_every_installed_module_imports_beside_a_users_own_storage_and_workflow(installed, tmp_path):
    python, purelib = installed
    (tmp_path / "storage.py").write_text("raise SystemExit('the user\\'s storage.py was imported')\n")
    (tmp_path / "workflow.py").write_text("raise SystemExit('the user\\'s workflow.py was imported')\n")
    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(purelib))
    assert "brokerflow.workflow.rules.ruleset" in found["modules"] and "brokerflow.app.engine" in found["modules"]
    assert found["old"] == {"workflow": str(tmp_path / "workflow.py"), "storage": str(tmp_path / "storage.py"),
                            "actors": None, "bus": None, "api": None}


@pytest.mark.timeout(300)
def test_the_console_script_runs_from_the_installed_package(installed, tmp_path):
    python, _ = installed
    script = python.parent / "brokerflow"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
