"""The pure domain of brokerflow: plain data and pure functions, no threads, sockets or database.

Catalog, rule validation, condition evaluation, trigger mapping, the reference-data replica,
KYC/notification decisions, webhook policy, flow validation and the process state machine.
"""
