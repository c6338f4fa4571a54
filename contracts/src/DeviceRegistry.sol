// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title RoadMesh device registry
/// @notice Maps a device's signing key (its Ed25519 public key, 32 bytes) to the wallet of the
/// device's owner. The operator registers devices as it provisions them; the device's owner
/// may hand it to another wallet; either may revoke it.
contract DeviceRegistry is Ownable2Step {
    mapping(bytes32 deviceKey => address) public ownerOf;

    event DeviceRegistered(bytes32 indexed deviceKey, address indexed owner);
    event DeviceTransferred(bytes32 indexed deviceKey, address indexed from, address indexed to);
    event DeviceRevoked(bytes32 indexed deviceKey, address indexed owner);

    error ZeroOwner();
    error AlreadyRegistered(bytes32 deviceKey);
    error NotRegistered(bytes32 deviceKey);
    error NotAllowed(address caller);

    constructor(address owner_) Ownable(owner_) {}

    function register(bytes32 deviceKey, address deviceOwner) external onlyOwner {
        if (deviceOwner == address(0)) revert ZeroOwner();
        if (ownerOf[deviceKey] != address(0)) revert AlreadyRegistered(deviceKey);
        ownerOf[deviceKey] = deviceOwner;
        emit DeviceRegistered(deviceKey, deviceOwner);
    }

    function transferDevice(bytes32 deviceKey, address to) external {
        address current = ownerOf[deviceKey];
        if (current == address(0)) revert NotRegistered(deviceKey);
        if (msg.sender != current) revert NotAllowed(msg.sender);
        if (to == address(0)) revert ZeroOwner();
        ownerOf[deviceKey] = to;
        emit DeviceTransferred(deviceKey, current, to);
    }

    function revoke(bytes32 deviceKey) external {
        address current = ownerOf[deviceKey];
        if (current == address(0)) revert NotRegistered(deviceKey);
        if (msg.sender != current && msg.sender != owner()) revert NotAllowed(msg.sender);
        delete ownerOf[deviceKey];
        emit DeviceRevoked(deviceKey, current);
    }
}
