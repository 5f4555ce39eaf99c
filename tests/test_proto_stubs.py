"""The committed stubs are exactly what grpcio-tools generates from the .proto files."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_committed_stubs_match_regenerated(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    env_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    subprocess.run(["bash", str(ROOT / "scripts" / "genproto"), str(out)], check=True, cwd=ROOT,
                   env={"PATH": env_path})
    committed = ROOT / "proto" / "warden" / "v1"
    generated = out / "warden" / "v1"
    names = sorted(p.name for p in generated.iterdir() if p.suffix in (".py", ".pyi"))
    assert names, "protoc generated nothing"
    _, mismatch, missing = filecmp.cmpfiles(committed, generated, names, shallow=False)
    assert not missing, f"stubs not committed: {missing}"
    assert not mismatch, f"stubs out of date, run scripts/genproto: {mismatch}"
    shutil.rmtree(out)


def test_stubs_import_as_warden_v1() -> None:
    from warden.v1 import collector_pb2, collector_pb2_grpc, records_pb2

    assert collector_pb2.DESCRIPTOR.package == "warden.v1"
    assert records_pb2.DESCRIPTOR.name == "warden/v1/records.proto"
    assert hasattr(collector_pb2_grpc, "CollectorStub")
