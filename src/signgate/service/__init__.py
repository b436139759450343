"""Use cases: each function authenticates the caller, decides, acts and records, in one
database transaction. Refusals are recorded in a transaction of their own and then raised.
"""
