"""The contracts package's exceptions."""

from __future__ import annotations


class ChainError(Exception):
    """The chain could not be used: unreachable, no deployment, a transaction that failed."""


class ContractRevert(ChainError):
    """A contract call reverted; `error` is the Solidity custom error's name."""

    def __init__(self, error: str, args: tuple[object, ...], data: str) -> None:
        shown = ", ".join(a.hex() if isinstance(a, bytes) else str(a) for a in args)
        super().__init__(f"reverted with {error}({shown})")
        self.error = error
        self.error_args = args
        self.data = data
