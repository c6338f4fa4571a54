"""The chain client: deploy the contracts, fund and publish an epoch, claim, read.

One seam (`Chain`) over a `web3.Web3`: the same code runs against eth-tester's in-process EVM
(py-evm) in unit tests and against any JSON-RPC node (anvil in the demo and integration
tests, a real chain in production). Reverts come back as `ContractRevert` with the custom
error's name and arguments decoded from the committed ABIs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_hash.auto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from contracts.errors import ChainError, ContractRevert

logger = logging.getLogger(__name__)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CONTRACT_NAMES = ("RoadMeshToken", "CumulativeMerkleDistributor", "DeviceRegistry")
STATUS = ("none", "pending", "challenged", "active")


@cache
def artifact(name: str) -> dict[str, Any]:
    """The committed compiler output of one contract (abi, bytecode)."""
    path = ARTIFACTS / f"{name}.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ChainError(f"no artifact {path} (run `node contracts/compile.js`)") from None


@cache
def _error_selectors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, argument types), over every committed ABI."""
    out: dict[bytes, tuple[str, list[str]]] = {}
    for name in CONTRACT_NAMES:
        for item in artifact(name)["abi"]:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                signature = f"{item['name']}({','.join(types)})"
                out[keccak(signature.encode())[:4]] = (item["name"], types)
    return out


def decode_revert(data: str) -> ContractRevert:
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    known = _error_selectors().get(raw[:4])
    if known is None:
        return ContractRevert("unknown", (), data)
    name, types = known
    return ContractRevert(name, tuple(abi_decode(types, raw[4:])), data)


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live; written to a JSON file by `deploy` and read by every command."""

    chain_id: int
    token: str
    distributor: str
    registry: str
    block: int  # the block the distributor was deployed in

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ChainError(
                f"no deployment file {path} (run `roadmesh rewards deploy` first)"
            ) from None
        except json.JSONDecodeError as exc:
            raise ChainError(f"{path} is not a deployment file: {exc}") from None
        return cls(
            **{k: data[k] for k in ("chain_id", "token", "distributor", "registry", "block")}
        )


@dataclass(frozen=True)
class EpochOnChain:
    epoch: int
    root: bytes
    inputs_hash: bytes
    activates_at: int
    status: str  # none | pending | challenged | active
    inputs_uri: str


@dataclass(frozen=True)
class Claim:
    account: str
    paid: int
    cumulative_amount: int
    tx: str


class Chain:
    """The RoadMesh contracts on one chain, sending transactions as `sender`."""

    def __init__(self, w3: Web3, sender: str, deployment: Deployment | None = None) -> None:
        self.w3 = w3
        self.sender = Web3.to_checksum_address(sender)
        self.deployment = deployment

    @classmethod
    def connect(
        cls, rpc_url: str, *, private_key: str = "", deployment: Deployment | None = None
    ) -> Chain:
        """A JSON-RPC node. With `private_key`, transactions are signed locally; without it,
        the node's first unlocked account sends them (anvil, a dev node)."""
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:  # connection refused, DNS, bad URL: all say the same
            raise ChainError(f"cannot reach the chain at {rpc_url}: {exc}") from None
        if private_key:
            from eth_account import Account
            from web3.middleware import SignAndSendRawMiddlewareBuilder

            account = Account.from_key(private_key)
            w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account, w3), layer=0)
            sender = account.address
        else:
            accounts = w3.eth.accounts
            if not accounts:
                raise ChainError(f"{rpc_url} has no unlocked account: set a private key")
            sender = accounts[0]
        if deployment is not None and deployment.chain_id != chain_id:
            raise ChainError(
                f"the deployment is for chain {deployment.chain_id}, {rpc_url} is chain {chain_id}"
            )
        return cls(w3, sender, deployment)

    # -- plumbing ------------------------------------------------------------------------
    def _contract(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=artifact(name)["abi"]
        )

    def _deployed(self) -> Deployment:
        if self.deployment is None:
            raise ChainError("no contracts deployed or loaded for this chain")
        return self.deployment

    @property
    def token(self) -> Any:
        return self._contract("RoadMeshToken", self._deployed().token)

    @property
    def distributor(self) -> Any:
        return self._contract("CumulativeMerkleDistributor", self._deployed().distributor)

    @property
    def registry(self) -> Any:
        return self._contract("DeviceRegistry", self._deployed().registry)

    def _send(self, call: Any, sender: str | None = None) -> dict[str, Any]:
        """Send one contract call as a transaction and wait for it to be mined."""
        try:
            tx = call.transact({"from": Web3.to_checksum_address(sender or self.sender)})
        except ContractCustomError as exc:
            raise decode_revert(str(exc.data)) from None
        except ContractPanicError as exc:
            raise ContractRevert("Panic", (), str(exc.data)) from None
        except ContractLogicError as exc:
            raise ContractRevert("revert", (str(exc.message),), str(exc.data)) from None
        receipt = dict(self.w3.eth.wait_for_transaction_receipt(tx, timeout=120))
        if receipt.get("status") != 1:
            raise ChainError(f"transaction {tx.hex()} failed (status {receipt.get('status')})")
        return receipt

    def _deploy(self, name: str, *args: Any) -> tuple[str, int]:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        receipt = self._send(factory.constructor(*args))
        return str(receipt["contractAddress"]), int(receipt["blockNumber"])

    # -- deploy and administer -----------------------------------------------------------
    def deploy(
        self,
        *,
        cap: int,
        root_delay_s: int,
        name: str = "RoadMesh",
        symbol: str = "RMSH",
    ) -> Deployment:
        """Deploy token, distributor and registry; `sender` owns them and may mint."""
        token, _ = self._deploy("RoadMeshToken", name, symbol, cap, self.sender)
        distributor, block = self._deploy(
            "CumulativeMerkleDistributor", token, self.sender, root_delay_s
        )
        registry, _ = self._deploy("DeviceRegistry", self.sender)
        self.deployment = Deployment(int(self.w3.eth.chain_id), token, distributor, registry, block)
        logger.info("deployed token %s, distributor %s, registry %s", token, distributor, registry)
        return self.deployment

    def mint(self, to: str, amount: int) -> None:
        self._send(self.token.functions.mint(Web3.to_checksum_address(to), amount))

    def fund(self, amount: int, *, mint: bool = True) -> None:
        """Add `amount` to the distributor's funding (minting it to the sender first)."""
        if mint:
            self.mint(self.sender, amount)
        self._send(self.token.functions.approve(self._deployed().distributor, amount))
        self._send(self.distributor.functions.fund(amount))

    def propose_root(self, epoch: int, root: bytes, inputs_hash: bytes, inputs_uri: str) -> str:
        receipt = self._send(
            self.distributor.functions.proposeRoot(epoch, root, inputs_hash, inputs_uri)
        )
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def activate_root(self) -> None:
        self._send(self.distributor.functions.activateRoot())

    def challenge_root(self, epoch: int, reason: str, *, sender: str | None = None) -> None:
        self._send(self.distributor.functions.challengeRoot(epoch, reason), sender)

    def set_guardian(self, guardian: str, enabled: bool = True) -> None:
        self._send(
            self.distributor.functions.setGuardian(Web3.to_checksum_address(guardian), enabled)
        )

    def set_root_delay(self, seconds: int) -> None:
        self._send(self.distributor.functions.setRootDelay(seconds))

    def pause(self) -> None:
        self._send(self.distributor.functions.pause())

    def unpause(self) -> None:
        self._send(self.distributor.functions.unpause())

    def publish_epoch(
        self, epoch: int, root: bytes, inputs_hash: bytes, inputs_uri: str, amount: int
    ) -> str:
        """Fund the epoch's new allocations and propose its root; activate it at once when the
        distributor has no delay. Returns the proposal's transaction hash."""
        if amount > 0:
            self.fund(amount)
        tx = self.propose_root(epoch, root, inputs_hash, inputs_uri)
        if self.root_delay() == 0:
            self.activate_root()
        return tx

    def activate_if_due(self) -> bool:
        """Activate the waiting root when its delay has passed; False when none is due."""
        pending = self.pending_epoch()
        if pending == 0:
            return False
        if self.epoch_root(pending).activates_at > self._now():
            return False
        self.activate_root()
        return True

    def register_device(self, device_key: bytes, owner: str) -> None:
        self._send(self.registry.functions.register(device_key, Web3.to_checksum_address(owner)))

    # -- claim ---------------------------------------------------------------------------
    def claim(
        self,
        account: str,
        cumulative_amount: int,
        proof: Sequence[bytes],
        *,
        sender: str | None = None,
    ) -> Claim:
        """Claim for `account` (anyone may send it; the tokens go to `account`)."""
        before = self.claimed(account)
        receipt = self._send(
            self.distributor.functions.claim(
                Web3.to_checksum_address(account), cumulative_amount, list(proof)
            ),
            sender,
        )
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        return Claim(
            Web3.to_checksum_address(account), cumulative_amount - before, cumulative_amount, tx
        )

    # -- read ----------------------------------------------------------------------------

    def claimed(self, account: str) -> int:
        return int(self.distributor.functions.claimed(Web3.to_checksum_address(account)).call())

    def balance_of(self, account: str) -> int:
        return int(self.token.functions.balanceOf(Web3.to_checksum_address(account)).call())

    def total_funded(self) -> int:
        return int(self.distributor.functions.totalFunded().call())

    def total_claimed(self) -> int:
        return int(self.distributor.functions.totalClaimed().call())

    def active_epoch(self) -> int:
        return int(self.distributor.functions.activeEpoch().call())

    def pending_epoch(self) -> int:
        return int(self.distributor.functions.pendingEpoch().call())

    def root_delay(self) -> int:
        return int(self.distributor.functions.rootDelay().call())

    def merkle_root(self) -> bytes:
        return bytes(self.distributor.functions.merkleRoot().call())

    def epoch_root(self, epoch: int) -> EpochOnChain:
        root, inputs_hash, activates_at, status, uri = self.distributor.functions.epochRoot(
            epoch
        ).call()
        return EpochOnChain(
            epoch, bytes(root), bytes(inputs_hash), int(activates_at), STATUS[status], str(uri)
        )

    def device_owner(self, device_key: bytes) -> str:
        return str(self.registry.functions.ownerOf(device_key).call())

    def _now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])
