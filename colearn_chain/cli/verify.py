"""`colearn-chain verify-input`: what an Etherscan-style explorer needs to verify the deployed contract.

Why: a verified contract shows its calls and events decoded on the public explorer, so anyone can read
the epochs there too. Verification recompiles the source with the exact compiler and settings and
compares the bytecode; this writes the Solidity standard-JSON input and the exact compiler version from
the packaged artifact's settings (the ones the deployed bytecode was built with), and, given a
deployment record, the ABI-encoded constructor arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode

from ..chain.artifact import CONTRACT_NAME, load_artifact
from ..chain.deployment import Deployment
from ..exceptions import ColearnChainError

__all__ = [
    "compile_standard_json",
    "constructor_arguments",
    "find_source",
    "register",
    "standard_input",
    "write_inputs",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
#: Output the explorers' verifiers ask for; it does not change the bytecode.
OUTPUT_SELECTION = {
    "*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers", "metadata"], "": ["ast"]}
}


def find_source() -> tuple[str, str]:
    """(source path as compiled, its text): packaged next to the artifact if shipped, else the repo's contracts/."""
    source_path = str(load_artifact().get("sourcePath") or f"contracts/{CONTRACT_NAME}.sol")
    packaged = resources.files("colearn_chain.artifacts").joinpath(Path(source_path).name)
    if packaged.is_file():
        return source_path, packaged.read_text()
    in_repo = ROOT / source_path
    if in_repo.is_file():
        return source_path, in_repo.read_text()
    raise ColearnChainError(
        f"cannot find {source_path}: neither packaged in colearn_chain/artifacts nor at {in_repo}; "
        "run from a checkout of the repository"
    )


def standard_input() -> dict[str, Any]:
    """The standard-JSON input that reproduces the packaged bytecode (same source key, same settings)."""
    compiler = load_artifact()["compiler"]
    source_path, text = find_source()
    optimizer = compiler.get("optimizer", {"enabled": False, "runs": 200})
    return {
        "language": "Solidity",
        "sources": {source_path: {"content": text}},
        "settings": {
            "optimizer": {"enabled": bool(optimizer["enabled"]), "runs": int(optimizer["runs"])},
            "evmVersion": compiler["evm_version"],
            "remappings": [],
            "outputSelection": OUTPUT_SELECTION,
        },
    }


def compiler_version() -> str:
    """The compiler as explorers name it, e.g. ``v0.8.28+commit.7893614a``."""
    return "v" + str(load_artifact()["compiler"]["version"])


def constructor_arguments(deployment: Deployment) -> str:
    """The ABI-encoded constructor arguments of a deployment, hex without 0x (Etherscan's format)."""
    types = ["address[]", "uint256", "uint256", "uint256", "bool", "bytes32", "string"]
    values = [
        deployment.learners,
        deployment.vote_threshold_bps,
        deployment.proposal_timeout,
        deployment.voting_timeout,
        deployment.proposer_votes,
        bytes.fromhex(deployment.initial_digest.removeprefix("0x")),
        deployment.initial_cid,
    ]
    return abi_encode(types, values).hex()


def _license(text: str) -> str | None:
    found = re.search(r"SPDX-License-Identifier:\s*([^\s*]+)", text)
    return found.group(1) if found else None


def write_inputs(out: Path, deployment: Deployment | None = None) -> dict[str, Path]:
    """Write ``<name>.standard-input.json`` and ``<name>.verify.json`` (version, settings, arguments) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data = standard_input()
    source_path, text = find_source()
    compiler = load_artifact()["compiler"]
    info: dict[str, Any] = {
        "contract_name": f"{source_path}:{CONTRACT_NAME}",
        "compiler_version": compiler_version(),
        "optimizer": data["settings"]["optimizer"],
        "evm_version": compiler["evm_version"],
        "license": _license(text),
        "standard_input": f"{CONTRACT_NAME}.standard-input.json",
    }
    if deployment is not None:
        info.update(
            chain_id=deployment.chain_id,
            address=deployment.address,
            constructor_arguments=constructor_arguments(deployment),
        )
    paths = {
        "standard_input": out / f"{CONTRACT_NAME}.standard-input.json",
        "verify": out / f"{CONTRACT_NAME}.verify.json",
    }
    paths["standard_input"].write_text(json.dumps(data, indent=1) + "\n")
    paths["verify"].write_text(json.dumps(info, indent=1) + "\n")
    return paths


def compile_standard_json(data: dict[str, Any], solc: list[str]) -> dict[str, Any]:
    """Run a ``solc --standard-json`` command on ``data``; return the parsed output (errors raise)."""
    proc = subprocess.run(
        [*solc, "--standard-json"], input=json.dumps(data), capture_output=True, text=True, timeout=300
    )
    text = proc.stdout
    start = text.find("{")  # solcjs may print a line such as ">>> Cannot retry compilation with SMT" first
    if proc.returncode != 0 or start < 0:
        raise ColearnChainError(f"{' '.join(solc)} failed ({proc.returncode}): {proc.stderr.strip() or text[:500]}")
    output: dict[str, Any] = json.loads(text[start:])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        messages = (e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise ColearnChainError("compilation failed: " + "; ".join(messages))
    return output


def check(data: dict[str, Any], solc: list[str]) -> None:
    """Compile ``data`` and require the packaged bytecode exactly; ColearnChainError naming the difference."""
    source_path = next(iter(data["sources"]))
    compiled = compile_standard_json(data, solc)["contracts"][source_path][CONTRACT_NAME]["evm"]
    artifact = load_artifact()
    for key, ours in (
        ("bytecode", compiled["bytecode"]["object"]),
        ("deployedBytecode", compiled["deployedBytecode"]["object"]),
    ):
        packaged = str(artifact[key]).removeprefix("0x")
        if ours != packaged:
            raise ColearnChainError(
                f"the source does not reproduce the packaged {key} ({len(ours) // 2} vs {len(packaged) // 2} bytes): "
                "the contract changed since the artifact was exported (run `make artifact`)"
            )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify-input",
        help="write the standard-JSON input and compiler version to verify the contract on a public explorer",
        description="Write what an Etherscan-style explorer needs to verify CollectiveLearning.",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write into")
    parser.add_argument(
        "--deployment", type=Path, metavar="FILE", help="also write this deployment's constructor arguments"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile the input with the project's solc (node tools/solc.js) and require the packaged bytecode",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    deployment = None
    if args.deployment:
        try:
            deployment = Deployment.load(args.deployment)
        except ValueError as exc:
            raise ColearnChainError(str(exc)) from exc
    try:
        paths = write_inputs(args.out, deployment)
    except OSError as exc:  # --out is a file, or a folder that cannot be made or written
        raise ColearnChainError(f"cannot write into --out {args.out}: {exc}; name a folder you can write") from exc
    if args.check:
        solc_js = ROOT / "tools" / "solc.js"
        if not solc_js.is_file():
            raise ColearnChainError(f"--check needs the repository's {solc_js}")
        check(json.loads(paths["standard_input"].read_text()), ["node", str(solc_js)])
        log.info("the standard-JSON input reproduces the packaged bytecode exactly")
    info = json.loads(paths["verify"].read_text())
    log.info(
        "wrote %s and %s: compiler %s, optimizer %s, evm %s, contract %s",
        paths["standard_input"], paths["verify"],
        info["compiler_version"], info["optimizer"], info["evm_version"], info["contract_name"],
    )
    return 0
