"""Only the holder of the device key can produce a payload that verifies."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    Frame,
    ProtocolError,
    RejectReason,
    SignedMessage,
    Status,
    decode,
    encode,
    public_key_bytes,
    verify,
)


def test_it_verifies_with_the_raw_32_byte_public_key(
    frame_wire: bytes, key: Ed25519PrivateKey
) -> None:
    verify(decode(frame_wire), public_key_bytes(key))


def test_it_rejects_a_frame_signed_by_another_device(
    frame: Frame, key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    signed = decode(encode(frame, other_key))
    with pytest.raises(ProtocolError) as info:
        verify(signed, key.public_key())
    assert info.value.reason is RejectReason.BAD_SIGNATURE


def test_a_bit_flip_anywhere_in_the_payload_fails(
    frame_wire: bytes, key: Ed25519PrivateKey
) -> None:
    public = key.public_key()
    for index in range(len(frame_wire)):
        for bit in range(8):
            mutated = bytearray(frame_wire)
            mutated[index] ^= 1 << bit
            with pytest.raises(ProtocolError):
                verify(decode(bytes(mutated)), public)


def test_a_bit_flip_in_the_signed_bytes_fails_verify_even_if_it_decodes(
    status: Status, key: Ed25519PrivateKey
) -> None:
    signed = decode(encode(status, key))
    for index in range(len(signed.signed_bytes)):
        mutated = bytearray(signed.signed_bytes)
        mutated[index] ^= 0x01
        forged = SignedMessage(signed.message, bytes(mutated), signed.signature)
        with pytest.raises(ProtocolError) as info:
            verify(forged, key.public_key())
        assert info.value.reason is RejectReason.BAD_SIGNATURE


def test_a_signature_from_the_same_key_over_other_bytes_fails(
    frame_wire: bytes, key: Ed25519PrivateKey
) -> None:
    # The domain tag: a signature over the bare envelope is not a RoadMesh signature.
    body = frame_wire[:-64]
    with pytest.raises(ProtocolError) as info:
        verify(decode(body + key.sign(body)), key.public_key())
    assert info.value.reason is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33), "00" * 32])
def test_it_rejects_a_public_key_that_is_not_32_bytes(frame_wire: bytes, raw: object) -> None:
    with pytest.raises(ProtocolError) as info:
        verify(decode(frame_wire), raw)  # type: ignore[arg-type]
    assert info.value.reason is RejectReason.BAD_FIELD
