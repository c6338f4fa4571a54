"""An in-process EVM (eth-tester on py-evm) with the RoadMesh contracts deployed."""

from __future__ import annotations

import ast
from typing import Any

from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3

from contracts.chain import Chain

TOKEN = 10**18
CAP = 1_000_000_000 * TOKEN
_PREFIX = "execution reverted: "


class RevertingTesterProvider(EthereumTesterProvider):
    """eth-tester that answers a revert the way a JSON-RPC node does (error code 3 with the
    revert data), so web3 raises the same `ContractCustomError` as against anvil."""

    def make_request(self, method: Any, params: Any) -> Any:
        try:
            return super().make_request(method, params)
        except TransactionFailed as exc:
            text = str(exc.args[0])
            data = text[len(_PREFIX) :] if text.startswith(_PREFIX) else text
            try:
                raw = ast.literal_eval(data)
            except (ValueError, SyntaxError):
                raw = None
            if not isinstance(raw, bytes):  # a plain reason string: Error(string) was decoded
                raise
            return {
                "id": self._current_request_id,
                "jsonrpc": "2.0",
                "error": {"code": 3, "message": "execution reverted", "data": "0x" + raw.hex()},
            }


def evm_chain(root_delay_s: int = 0) -> Chain:
    w3 = Web3(RevertingTesterProvider())
    chain = Chain(w3, w3.eth.accounts[0])
    chain.deploy(cap=CAP, root_delay_s=root_delay_s)
    return chain


def advance_time(chain: Chain, seconds: int) -> None:
    """Mine a block `seconds` later than the latest one."""
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    latest = chain.w3.eth.get_block("latest")["timestamp"]
    tester.time_travel(int(latest) + seconds)
