"""Wheels for ``benchmarks/gpu_check.sh`` on a GPU machine that cannot download (Python 3.12
there): randhet's pinned pure-Python dependencies that such an image lacks, and numpy 1.26.

Run here, from the repository root (``make gpu-wheels``); writes ``.whl/`` (ignored by git).
lava-dl's wheel carries trained detection models, notebooks and test data (68 MB) that randhet
never reads: they are dropped from the copy written here, so that the wheels travel in the
64 MiB a device call carries.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

OUT = Path(".whl")
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
IGNORES_PYTHON = ["lava-nc==0.10.0", "lava-dl==0.6.0"]  # they declare Python < 3.11
PLAIN = ["nir==1.0.8", "numpy==1.26.4", "asteval==0.9.33", "torchattacks==3.5.1"]
DROP = (".pt", ".ipynb", ".npy", ".npz", ".net", ".h5", ".png", ".gif", ".mp4")


def download(names: list[str], *extra: str) -> None:
    args = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.12", "--implementation", "cp", "-d", str(OUT), *extra]
    for p in PLATFORMS:
        args += ["--platform", p]
    subprocess.run(args + names, check=True)


def slim(wheel: Path) -> None:
    """Rewrite ``wheel`` without its tests and data files (the RECORD keeps listing them;
    pip installs what the archive holds)."""
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith("tests/") or item.filename.endswith(DROP):
                continue
            dst.writestr(item, src.read(item))
    tmp.replace(wheel)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    OUT.mkdir(exist_ok=True)
    download(IGNORES_PYTHON, "--ignore-requires-python")
    download(PLAIN)
    for wheel in OUT.glob("lava_dl-*.whl"):
        slim(wheel)
    total = sum(p.stat().st_size for p in OUT.glob("*.whl"))
    print(f"{OUT}: {len(list(OUT.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
