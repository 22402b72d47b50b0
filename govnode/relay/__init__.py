"""Store-and-forward relay: routing table, delivery worker, federation client, backoff.

Arrives with letters (local delivery) and federation (delivery to other nodes).
"""
