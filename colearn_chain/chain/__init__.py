"""The chain layer: everything that talks to the CollectiveLearning contract goes through here.

- :mod:`.connection`: the one way to make a Web3 over HTTP, and the one retry policy for transient RPC errors.
- :mod:`.views`: typed reads of the contract (parameters, epoch state, current model, votes).
- :mod:`.transactions`: the signed-transaction pipeline (nonces, EIP-1559 fees, replacement, failures explained).
- :mod:`.client`: :class:`~.client.ChainClient`, one signer's typed client joining the three.
- :mod:`.records`: what views and transactions return; :mod:`.revert`: revert data to ContractRevert;
  :mod:`.events`: decoded events and the log cursor; :mod:`.artifact`: the packaged contract;
  :mod:`.deployment`: the deployment record.

The protocol's own rules (phases, score scale, proposer rotation, model record) are in
:mod:`colearn_chain.protocol`.
"""
