"""Solidity sources, compiled artifacts and the Python chain client (deploy, publish root, claim)."""
