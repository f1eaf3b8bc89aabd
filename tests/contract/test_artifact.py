"""The ABI and bytecode packaged in colearn_chain equal a fresh compile of contracts/."""

from __future__ import annotations

import json

from brownie import project

from colearn_chain.chain.artifact import CONTRACT_NAME, load_artifact


def test_packaged_artifact_matches_contracts() -> None:
    # Prepare: brownie compiled contracts/ into build/ when it loaded the project
    root = project.get_loaded_projects()[0]._path
    fresh = json.loads((root / "build" / "contracts" / f"{CONTRACT_NAME}.json").read_text())
    packaged = load_artifact()
    # Assert (compared as canonical JSON so a failure names the field, not a 20 kB diff)
    assert json.dumps(packaged["abi"], sort_keys=True) == json.dumps(fresh["abi"], sort_keys=True), (
        "ABI drifted from contracts/: run `make artifact`"
    )
    assert packaged["bytecode"] == fresh["bytecode"], "bytecode drifted from contracts/: run `make artifact`"
    assert packaged["compiler"] == fresh["compiler"]
    source = root / fresh["sourcePath"]
    packaged_source = root / "colearn_chain" / "artifacts" / source.name
    assert packaged_source.read_text() == source.read_text(), "packaged source drifted: run `make artifact`"
