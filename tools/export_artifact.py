"""Copy the compiled contract from brownie's build into the Python package.

Agents deploy and call the contract with web3.py alone, with no compiler at run time; this writes what
they need (ABI, bytecode, compiler settings) and the source, for verification on public explorers.
tests/contract/test_artifact.py fails when it drifts.
Run through `make artifact` (which compiles first).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "CollectiveLearning"
KEYS = ("contractName", "abi", "bytecode", "deployedBytecode", "compiler", "sourcePath")


def main() -> int:
    build = json.loads((ROOT / "build" / "contracts" / f"{NAME}.json").read_text())
    artifact = {key: build[key] for key in KEYS}
    out = ROOT / "colearn_chain" / "artifacts" / f"{NAME}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
    # The source travels with the package (a link: one copy in the repo; wheels copy its content) so
    # `colearn-chain verify-input` works outside a checkout.
    source = ROOT / build["sourcePath"]
    link = out.parent / source.name
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(source, link.parent))
    print(f"wrote {out.relative_to(ROOT)} ({len(build['bytecode']) // 2} bytes of init code)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
