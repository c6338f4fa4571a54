// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title Cumulative Merkle distributor of RoadMesh epoch rewards
/// @notice Each epoch publishes one Merkle root over (account, cumulative amount) leaves, in
/// OpenZeppelin StandardMerkleTree form, and the SHA-256 of the epoch's published input file.
/// A claim pays the difference between the cumulative amount in the active root and what the
/// account has already claimed. A root is proposed by the owner and becomes active only after
/// `rootDelay` seconds, during which the owner may replace it and a guardian may challenge
/// (cancel) it. Claims can never exceed what was funded.
contract CumulativeMerkleDistributor is Ownable2Step, Pausable {
    using SafeERC20 for IERC20;

    enum Status {
        None,
        Pending,
        Challenged,
        Active
    }

    struct EpochRoot {
        bytes32 root;
        bytes32 inputsHash; // SHA-256 of the epoch's published inputs file
        uint64 activatesAt;
        Status status;
        string inputsUri;
    }

    IERC20 public immutable token;
    uint64 public rootDelay;
    bytes32 public merkleRoot; // the active root
    uint256 public activeEpoch; // 0 until the first root is active
    uint256 public pendingEpoch; // 0 when no root waits
    uint256 public totalFunded;
    uint256 public totalClaimed;
    mapping(uint256 epoch => EpochRoot) private _epochs;
    mapping(address account => uint256) public claimed;
    mapping(address account => bool) public guardians;

    event RootDelayChanged(uint64 previousDelay, uint64 newDelay);
    event GuardianSet(address indexed guardian, bool enabled);
    event RootProposed(
        uint256 indexed epoch, bytes32 root, bytes32 inputsHash, uint64 activatesAt, string inputsUri
    );
    event RootReplaced(uint256 indexed epoch, bytes32 previousRoot, bytes32 newRoot);
    event RootChallenged(uint256 indexed epoch, bytes32 root, address indexed by, string reason);
    event RootActivated(uint256 indexed epoch, bytes32 root, bytes32 inputsHash);
    event Funded(address indexed from, uint256 amount, uint256 totalFunded);
    event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount);

    error WrongEpoch(uint256 expected, uint256 given);
    error EmptyRoot();
    error NoPendingRoot(uint256 epoch);
    error RootNotDue(uint64 activatesAt);
    error ChallengeTooLate(uint64 activatesAt);
    error NotGuardian(address caller);
    error NoActiveRoot();
    error InvalidProof();
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);
    error ExceedsFunding(uint256 amount, uint256 available);
    error ZeroAmount();

    constructor(IERC20 token_, address owner_, uint64 rootDelay_) Ownable(owner_) {
        token = token_;
        rootDelay = rootDelay_;
        emit RootDelayChanged(0, rootDelay_);
    }

    // --- owner ---------------------------------------------------------------------------
    function setRootDelay(uint64 newDelay) external onlyOwner {
        emit RootDelayChanged(rootDelay, newDelay);
        rootDelay = newDelay;
    }

    function setGuardian(address guardian, bool enabled) external onlyOwner {
        guardians[guardian] = enabled;
        emit GuardianSet(guardian, enabled);
    }

    /// @notice Propose the root of epoch `activeEpoch + 1`, or replace the one waiting for it
    /// (which restarts the delay).
    function proposeRoot(uint256 epoch, bytes32 root, bytes32 inputsHash, string calldata inputsUri)
        external
        onlyOwner
    {
        if (epoch != activeEpoch + 1) revert WrongEpoch(activeEpoch + 1, epoch);
        if (root == bytes32(0)) revert EmptyRoot();
        EpochRoot storage e = _epochs[epoch];
        bytes32 previous = e.status == Status.Pending ? e.root : bytes32(0);
        uint64 activatesAt = uint64(block.timestamp) + rootDelay;
        e.root = root;
        e.inputsHash = inputsHash;
        e.activatesAt = activatesAt;
        e.status = Status.Pending;
        e.inputsUri = inputsUri;
        pendingEpoch = epoch;
        if (previous != bytes32(0)) emit RootReplaced(epoch, previous, root);
        emit RootProposed(epoch, root, inputsHash, activatesAt, inputsUri);
    }

    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    // --- guardians -----------------------------------------------------------------------
    /// @notice Cancel the waiting root of `epoch` before it takes effect.
    function challengeRoot(uint256 epoch, string calldata reason) external {
        if (!guardians[msg.sender] && msg.sender != owner()) revert NotGuardian(msg.sender);
        EpochRoot storage e = _epochs[epoch];
        if (pendingEpoch != epoch || e.status != Status.Pending) revert NoPendingRoot(epoch);
        if (block.timestamp >= e.activatesAt) revert ChallengeTooLate(e.activatesAt);
        e.status = Status.Challenged;
        pendingEpoch = 0;
        emit RootChallenged(epoch, e.root, msg.sender, reason);
    }

    // --- anyone --------------------------------------------------------------------------
    /// @notice Make the waiting root active once its delay has passed.
    function activateRoot() external {
        uint256 epoch = pendingEpoch;
        if (epoch == 0) revert NoPendingRoot(0);
        EpochRoot storage e = _epochs[epoch];
        if (block.timestamp < e.activatesAt) revert RootNotDue(e.activatesAt);
        e.status = Status.Active;
        merkleRoot = e.root;
        activeEpoch = epoch;
        pendingEpoch = 0;
        emit RootActivated(epoch, e.root, e.inputsHash);
    }

    /// @notice Add `amount` tokens (approved beforehand) to what claims may pay out.
    function fund(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        totalFunded += amount;
        emit Funded(msg.sender, amount, totalFunded);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Pay `account` the part of `cumulativeAmount` it has not claimed yet.
    function claim(address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        whenNotPaused
    {
        bytes32 root = merkleRoot;
        if (root == bytes32(0)) revert NoActiveRoot();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 already = claimed[account];
        if (cumulativeAmount <= already) revert NothingToClaim(cumulativeAmount, already);
        uint256 amount = cumulativeAmount - already;
        uint256 available = totalFunded - totalClaimed;
        if (amount > available) revert ExceedsFunding(amount, available);

        claimed[account] = cumulativeAmount;
        totalClaimed += amount;
        emit Claimed(account, amount, cumulativeAmount);

        token.safeTransfer(account, amount);
    }

    // --- views ---------------------------------------------------------------------------
    function epochRoot(uint256 epoch) external view returns (EpochRoot memory) {
        return _epochs[epoch];
    }
}
