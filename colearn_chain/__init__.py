"""colearn-chain: collective learning driven by a smart contract."""
