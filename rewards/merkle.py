"""A Merkle tree of cumulative allocations, compatible with OpenZeppelin's `StandardMerkleTree`.

Leaf: ``keccak256(bytes.concat(keccak256(abi.encode(address account, uint256 cumulative))))``.
Leaves are sorted by hash, placed at the end of one array in reverse order, and every inner
node is ``keccak256`` of its two children sorted as unsigned integers, exactly as
`@openzeppelin/merkle-tree` 1.x builds it (`StandardMerkleTree.of(values, ["address",
"uint256"])`): the same values give the same root and the same proofs, and the proofs verify
with OpenZeppelin's `MerkleProof.verify` on chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from rewards.errors import RewardsError

UINT256_MAX = 2**256 - 1


def _address_bytes(account: str) -> bytes:
    text = account[2:] if account[:2] in ("0x", "0X") else ""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise RewardsError(f"{account!r} is not a 0x-prefixed 20-byte hex address")
    return raw


def leaf_hash(account: str, cumulative_amount: int) -> bytes:
    """The double-hashed leaf of `abi.encode(account, cumulative_amount)`."""
    if not 0 <= cumulative_amount <= UINT256_MAX:
        raise RewardsError(f"amount {cumulative_amount} does not fit a uint256")
    encoded = bytes(12) + _address_bytes(account) + cumulative_amount.to_bytes(32, "big")
    return keccak(keccak(encoded))


def node_hash(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a <= b else keccak(b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf` (what `MerkleProof.processProof` computes)."""
    node = leaf
    for sibling in proof:
        node = node_hash(node, sibling)
    return node


@dataclass(frozen=True)
class MerkleTree:
    """The tree over (account, cumulative amount) pairs; one leaf per account."""

    nodes: tuple[bytes, ...]  # the OpenZeppelin array layout: root first, leaves last
    index_of: dict[str, int]  # lower-case account -> its leaf's position in `nodes`

    @classmethod
    def of(cls, entries: Sequence[tuple[str, int]]) -> MerkleTree:
        if not entries:
            raise RewardsError("a Merkle tree needs at least one leaf")
        hashed = [(leaf_hash(account, amount), account.lower()) for account, amount in entries]
        if len({account for _h, account in hashed}) != len(hashed):
            raise RewardsError("an account appears twice among the leaves")
        hashed.sort(key=lambda item: item[0])  # big-endian bytes order == uint256 order
        size = 2 * len(hashed) - 1
        nodes: list[bytes] = [b""] * size
        index_of: dict[str, int] = {}
        for i, (leaf, account) in enumerate(hashed):
            nodes[size - 1 - i] = leaf
            index_of[account] = size - 1 - i
        for i in range(size - 1 - len(hashed), -1, -1):
            nodes[i] = node_hash(nodes[2 * i + 1], nodes[2 * i + 2])
        return cls(tuple(nodes), index_of)

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def proof(self, account: str) -> list[bytes]:
        try:
            i = self.index_of[account.lower()]
        except KeyError:
            raise RewardsError(f"{account} has no leaf in this tree") from None
        proof = []
        while i > 0:
            proof.append(self.nodes[i + 1 if i % 2 == 1 else i - 1])
            i = (i - 1) // 2
        return proof
