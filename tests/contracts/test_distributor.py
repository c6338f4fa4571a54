"""The cumulative Merkle distributor on a real EVM (eth-tester on py-evm): claims, funding,
pause, root delay, challenges and ownership."""

from __future__ import annotations

import pytest

from contracts.chain import Chain
from contracts.errors import ContractRevert
from rewards.merkle import MerkleTree
from tests.contracts.evm import TOKEN, advance_time, evm_chain

INPUTS = bytes.fromhex("ab" * 32)


@pytest.fixture
def chain() -> Chain:
    return evm_chain()


def _accounts(chain: Chain) -> list[str]:
    return list(chain.w3.eth.accounts)


def _publish(chain: Chain, epoch: int, entries: list[tuple[str, int]], fund: int) -> MerkleTree:
    tree = MerkleTree.of(entries)
    chain.publish_epoch(epoch, tree.root, INPUTS, f"file:///epoch-{epoch}.zip", fund)
    return tree


def _revert(excinfo: pytest.ExceptionInfo[ContractRevert]) -> str:
    return excinfo.value.error


def test_an_account_claims_its_amount_once(chain: Chain) -> None:
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN)], 12 * TOKEN)
    claim = chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]))
    assert claim.paid == 5 * TOKEN and chain.balance_of(a[1]) == 5 * TOKEN
    with pytest.raises(ContractRevert) as excinfo:
        chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]))
    assert _revert(excinfo) == "NothingToClaim"
    assert chain.balance_of(a[1]) == 5 * TOKEN and chain.total_claimed() == 5 * TOKEN


def test_a_later_epoch_pays_only_the_difference(chain: Chain) -> None:
    a = _accounts(chain)
    first = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN)], 12 * TOKEN)
    chain.claim(a[1], 5 * TOKEN, first.proof(a[1]))
    second = _publish(chain, 2, [(a[1], 8 * TOKEN), (a[2], 7 * TOKEN)], 3 * TOKEN)
    assert chain.claim(a[1], 8 * TOKEN, second.proof(a[1])).paid == 3 * TOKEN
    assert chain.claim(a[2], 7 * TOKEN, second.proof(a[2])).paid == 7 * TOKEN
    assert chain.balance_of(a[1]) == 8 * TOKEN
    with pytest.raises(ContractRevert) as excinfo:  # the old root is no longer the active one
        chain.claim(a[1], 5 * TOKEN, first.proof(a[1]))
    assert _revert(excinfo) == "InvalidProof"


def test_a_wrong_proof_or_amount_is_refused(chain: Chain) -> None:
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN), (a[3], 1)], 12 * TOKEN + 1)
    with pytest.raises(ContractRevert) as excinfo:
        chain.claim(a[1], 5 * TOKEN, tree.proof(a[2]))
    assert _revert(excinfo) == "InvalidProof"
    with pytest.raises(ContractRevert) as excinfo:
        chain.claim(a[1], 6 * TOKEN, tree.proof(a[1]))
    assert _revert(excinfo) == "InvalidProof"
    assert chain.total_claimed() == 0


def test_a_proof_for_another_account_is_refused(chain: Chain) -> None:
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN)], 12 * TOKEN)
    with pytest.raises(ContractRevert) as excinfo:  # a[3] replays a[1]'s leaf for itself
        chain.claim(a[3], 5 * TOKEN, tree.proof(a[1]), sender=a[3])
    assert _revert(excinfo) == "InvalidProof"
    # anyone may send a[1]'s claim, but the tokens go to a[1]
    chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]), sender=a[3])
    assert (chain.balance_of(a[1]), chain.balance_of(a[3])) == (5 * TOKEN, 0)


def test_claims_cannot_exceed_what_was_funded(chain: Chain) -> None:
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN)], 6 * TOKEN)
    chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]))
    with pytest.raises(ContractRevert) as excinfo:
        chain.claim(a[2], 7 * TOKEN, tree.proof(a[2]))
    assert _revert(excinfo) == "ExceedsFunding"
    assert excinfo.value.error_args == (7 * TOKEN, 1 * TOKEN)
    chain.fund(6 * TOKEN)
    assert chain.claim(a[2], 7 * TOKEN, tree.proof(a[2])).paid == 7 * TOKEN
    assert chain.total_claimed() <= chain.total_funded()


def test_claims_wait_while_the_distributor_is_paused(chain: Chain) -> None:
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN)], 12 * TOKEN)
    chain.pause()
    with pytest.raises(ContractRevert) as excinfo:
        chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]))
    assert _revert(excinfo) == "EnforcedPause"
    chain.unpause()
    assert chain.claim(a[1], 5 * TOKEN, tree.proof(a[1])).paid == 5 * TOKEN


def test_a_root_takes_effect_only_after_the_delay() -> None:
    chain = evm_chain(root_delay_s=3600)
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN), (a[2], 7 * TOKEN)], 12 * TOKEN)
    assert chain.epoch_root(1).status == "pending" and chain.active_epoch() == 0
    with pytest.raises(ContractRevert) as excinfo:
        chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]))
    assert _revert(excinfo) == "NoActiveRoot"
    with pytest.raises(ContractRevert) as excinfo:
        chain.activate_root()
    assert _revert(excinfo) == "RootNotDue"
    assert chain.activate_if_due() is False
    advance_time(chain, 3601)
    assert chain.activate_if_due() is True
    assert chain.epoch_root(1).status == "active" and chain.merkle_root() == tree.root
    assert chain.claim(a[1], 5 * TOKEN, tree.proof(a[1])).paid == 5 * TOKEN


def test_a_waiting_root_can_be_replaced_or_challenged_but_not_after_its_delay() -> None:
    chain = evm_chain(root_delay_s=3600)
    a = _accounts(chain)
    chain.set_guardian(a[5])
    bad = MerkleTree.of([(a[1], 1000 * TOKEN)])
    good = MerkleTree.of([(a[1], 5 * TOKEN)])
    chain.propose_root(1, bad.root, INPUTS, "file:///bad")
    chain.propose_root(1, good.root, INPUTS, "file:///good")  # replaced: the delay restarts
    assert chain.epoch_root(1).root == good.root and chain.epoch_root(1).inputs_uri.endswith("good")
    chain.challenge_root(1, "inputs do not recompute", sender=a[5])
    assert chain.epoch_root(1).status == "challenged" and chain.pending_epoch() == 0
    with pytest.raises(ContractRevert) as excinfo:
        chain.challenge_root(1, "again", sender=a[5])
    assert _revert(excinfo) == "NoPendingRoot"
    with pytest.raises(ContractRevert) as excinfo:  # an outsider may not challenge
        chain.propose_root(1, good.root, INPUTS, "file:///good")
        chain.challenge_root(1, "spite", sender=a[6])
    assert _revert(excinfo) == "NotGuardian"
    advance_time(chain, 3601)
    with pytest.raises(ContractRevert) as excinfo:
        chain.challenge_root(1, "too late", sender=a[5])
    assert _revert(excinfo) == "ChallengeTooLate"
    chain.activate_root()
    with pytest.raises(ContractRevert) as excinfo:  # epochs go one by one
        chain.propose_root(3, good.root, INPUTS, "")
    assert _revert(excinfo) == "WrongEpoch"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.distributor.functions.proposeRoot(1, b"\x01" * 32, INPUTS, ""),
        lambda c: c.distributor.functions.pause(),
        lambda c: c.distributor.functions.setRootDelay(0),
        lambda c: c.distributor.functions.setGuardian(c.w3.eth.accounts[4], True),
        lambda c: c.registry.functions.register(b"\x02" * 32, c.w3.eth.accounts[4]),
    ],
    ids=["proposeRoot", "pause", "setRootDelay", "setGuardian", "register"],
)
def test_only_the_owner_administers(chain: Chain, call: object) -> None:
    outsider = _accounts(chain)[4]
    with pytest.raises(ContractRevert) as excinfo:
        chain._send(call(chain), outsider)  # type: ignore[operator]
    assert _revert(excinfo) == "OwnableUnauthorizedAccount"


def test_only_a_minter_mints_and_never_past_the_cap(chain: Chain) -> None:
    a = _accounts(chain)
    with pytest.raises(ContractRevert) as excinfo:
        chain._send(chain.token.functions.mint(a[4], 1), a[4])
    assert _revert(excinfo) == "AccessControlUnauthorizedAccount"
    cap = int(chain.token.functions.cap().call())
    with pytest.raises(ContractRevert) as excinfo:
        chain.mint(a[4], cap + 1)
    assert _revert(excinfo) == "ERC20ExceededCap"


def test_every_change_emits_an_event(chain: Chain) -> None:
    a = _accounts(chain)
    tree = _publish(chain, 1, [(a[1], 5 * TOKEN)], 5 * TOKEN)
    chain.claim(a[1], 5 * TOKEN, tree.proof(a[1]))
    chain.pause()
    d = chain.distributor
    for event in ("Funded", "RootProposed", "RootActivated", "Claimed", "Paused"):
        logs = getattr(d.events, event)().get_logs(from_block=0)
        assert len(logs) == 1, event
    claimed = d.events.Claimed().get_logs(from_block=0)[0]["args"]
    assert (claimed["account"], claimed["amount"]) == (a[1], 5 * TOKEN)


def test_the_device_registry_maps_a_key_to_its_owner(chain: Chain) -> None:
    a = _accounts(chain)
    key = bytes(range(32))
    chain.register_device(key, a[1])
    assert chain.device_owner(key) == a[1]
    with pytest.raises(ContractRevert) as excinfo:
        chain.register_device(key, a[2])
    assert _revert(excinfo) == "AlreadyRegistered"
    chain._send(chain.registry.functions.transferDevice(key, a[2]), a[1])
    assert chain.device_owner(key) == a[2]
    with pytest.raises(ContractRevert) as excinfo:
        chain._send(chain.registry.functions.revoke(key), a[1])
    assert _revert(excinfo) == "NotAllowed"
    chain._send(chain.registry.functions.revoke(key), a[2])
    assert int(chain.device_owner(key), 16) == 0
