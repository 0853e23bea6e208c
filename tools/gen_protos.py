"""Generate Python code, type stubs and gRPC stubs from protos/ into gen/.

Run by `make protos`. The output is never committed and never edited by hand: it is
rebuilt from scratch whenever a .proto changes, so it can never be stale.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen"


def main() -> int:
    """Regenerate gen/ from every .proto under protos/."""
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    staging = OUT.with_name("gen.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    well_known = str(resources.files("grpc_tools") / "_proto")
    plugin = Path(sys.executable).with_name("protoc-gen-mypy_grpc")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={staging}",
        f"--pyi_out={staging}",
        f"--grpc_python_out={staging}",
        f"--plugin=protoc-gen-mypy_grpc={plugin}",
        f"--mypy_grpc_out=quiet:{staging}",
        *files,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    # Regular packages (not namespace packages) so mypy and importers agree.
    for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
        if folder != staging:
            (folder / "__init__.py").touch()
    (staging / "furima" / "py.typed").touch()
    shutil.rmtree(OUT, ignore_errors=True)
    staging.rename(OUT)
    print(f"generated {len(files)} proto files into {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
