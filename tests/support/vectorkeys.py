"""Reading the published throwaway keys of the test-vector files (tests/vectors/*.json)."""

from cryptography.hazmat.primitives.asymmetric import ed25519


def ed_private(keys: dict, name: str) -> ed25519.Ed25519PrivateKey:
    """`name` is "<who>.sign", e.g. "device.sign"."""
    who, _ = name.split(".")
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys[who]["sign"]["private_hex"]))


def ed_public(keys: dict, name: str) -> ed25519.Ed25519PublicKey:
    who, _ = name.split(".")
    return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys[who]["sign"]["public_hex"]))
