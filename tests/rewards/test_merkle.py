"""The Python Merkle tree gives the same root and proofs as OpenZeppelin's npm library."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from rewards.errors import RewardsError
from rewards.merkle import MerkleTree, leaf_hash, process_proof

REPO = Path(__file__).resolve().parents[2]
OZ_TREE = REPO / "node_modules" / "@openzeppelin" / "merkle-tree"

_JS = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const values = JSON.parse(require("fs").readFileSync(0, "utf8"));
const tree = StandardMerkleTree.of(values, ["address", "uint256"]);
const proofs = {};
for (const [i, v] of tree.entries()) proofs[v[0].toLowerCase()] = tree.getProof(i);
console.log(JSON.stringify({ root: tree.root, proofs }));
"""


def _npm_tree(entries: list[tuple[str, int]]) -> dict[str, object]:
    if shutil.which("node") is None or not OZ_TREE.is_dir():
        pytest.skip("node and node_modules/@openzeppelin/merkle-tree are needed (npm ci)")
    values = [[account, str(amount)] for account, amount in entries]
    out = subprocess.run(
        ["node", "-e", _JS],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def _entries(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    accounts = {"0x" + rng.randbytes(20).hex() for _ in range(n)}
    return [(a, rng.choice([0, 1, rng.getrandbits(64), rng.getrandbits(255)])) for a in accounts]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 33])
def test_root_and_proofs_match_the_openzeppelin_npm_library(n: int) -> None:
    entries = _entries(n, seed=n)
    expected = _npm_tree(entries)
    tree = MerkleTree.of(entries)
    assert "0x" + tree.root.hex() == expected["root"]
    proofs = expected["proofs"]
    assert isinstance(proofs, dict)
    for account, amount in entries:
        proof = tree.proof(account)
        assert ["0x" + p.hex() for p in proof] == proofs[account.lower()]
        assert process_proof(leaf_hash(account, amount), proof) == tree.root


def test_a_proof_does_not_verify_another_amount_or_account() -> None:
    entries = _entries(6, seed=1)
    tree = MerkleTree.of(entries)
    (a, amount_a), (b, _amount_b) = entries[0], entries[1]
    proof = tree.proof(a)
    assert process_proof(leaf_hash(a, amount_a + 1), proof) != tree.root
    assert process_proof(leaf_hash(b, amount_a), proof) != tree.root


def test_a_hand_computed_two_leaf_root() -> None:
    from eth_hash.auto import keccak

    a, b = "0x" + "11" * 20, "0x" + "22" * 20
    la = keccak(keccak(bytes(12) + bytes.fromhex("11" * 20) + (5).to_bytes(32, "big")))
    lb = keccak(keccak(bytes(12) + bytes.fromhex("22" * 20) + (7).to_bytes(32, "big")))
    lo, hi = sorted([la, lb])
    assert MerkleTree.of([(a, 5), (b, 7)]).root == keccak(lo + hi)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "at least one leaf"),
        ([("0x" + "11" * 20, 1), ("0x" + "11" * 20, 2)], "twice"),
        ([("0x1234", 1)], "20-byte"),
        ([("0x" + "11" * 20, -1)], "uint256"),
    ],
)
def test_bad_leaves_are_refused(entries: list[tuple[str, int]], message: str) -> None:
    with pytest.raises(RewardsError, match=message):
        MerkleTree.of(entries)
