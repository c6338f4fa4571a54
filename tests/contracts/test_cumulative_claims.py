"""Property: over several epochs of random cumulative allocations, every account can claim
exactly its cumulative amount, and the distributor never pays out more than it was funded."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.errors import ContractRevert
from rewards.merkle import MerkleTree
from tests.contracts.evm import TOKEN, evm_chain

N_ACCOUNTS = 5

# per epoch: the new amount of each account (0 = nothing new) and which accounts claim now
_epoch = st.tuples(
    st.lists(st.integers(0, 50 * TOKEN), min_size=N_ACCOUNTS, max_size=N_ACCOUNTS),
    st.lists(st.booleans(), min_size=N_ACCOUNTS, max_size=N_ACCOUNTS),
)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(epochs=st.lists(_epoch, min_size=1, max_size=4), underfund=st.integers(0, 3 * TOKEN))
def test_every_account_claims_exactly_its_cumulative_amount(
    epochs: list[tuple[list[int], list[bool]]], underfund: int
) -> None:
    chain = evm_chain()
    accounts = list(chain.w3.eth.accounts[1 : 1 + N_ACCOUNTS])
    cumulative = dict.fromkeys(accounts, 0)
    funded = 0
    for number, (amounts, claims_now) in enumerate(epochs, start=1):
        for account, amount in zip(accounts, amounts, strict=True):
            cumulative[account] += amount
        new = sum(amounts)
        # the last epoch is funded short by `underfund`: some claims must then fail
        fund = max(0, new - underfund) if number == len(epochs) else new
        tree = MerkleTree.of(list(cumulative.items()))
        chain.publish_epoch(number, tree.root, b"\x00" * 32, "", fund)
        funded += fund
        for account, claim_now in zip(accounts, claims_now, strict=True):
            owed = cumulative[account] - chain.claimed(account)
            if claim_now and owed > 0 and owed <= funded - chain.total_claimed():
                chain.claim(account, cumulative[account], tree.proof(account))
            assert chain.total_claimed() <= chain.total_funded() == funded
    # everyone still owed claims at the end: paid in full, or refused for lack of funding
    short = set()
    for account in accounts:
        owed = cumulative[account] - chain.claimed(account)
        if owed == 0:
            continue
        if owed <= funded - chain.total_claimed():
            assert chain.claim(account, cumulative[account], tree.proof(account)).paid == owed
        else:
            with pytest.raises(ContractRevert) as excinfo:
                chain.claim(account, cumulative[account], tree.proof(account))
            assert excinfo.value.error == "ExceedsFunding"
            short.add(account)
    for account in accounts:
        assert chain.balance_of(account) == chain.claimed(account)
        if account not in short:
            assert chain.claimed(account) == cumulative[account]
    assert chain.total_claimed() <= funded
    assert chain.balance_of(chain.deployment.distributor) == funded - chain.total_claimed()
    if underfund == 0:
        assert not short
