"""Pure epoch scoring: coverage, freshness, quality, reviewers; the Merkle tree of allocations."""
