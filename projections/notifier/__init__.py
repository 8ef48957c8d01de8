"""FHIR Subscriptions driven by the log: `carelog notifier`.

A consumer of carelog.fhir.changes like the FHIR store: Subscriptions arrive on the log as
changes, criteria are FHIR searches run by the store's search (matcher.py), each
subscription's events are numbered in the notifier's SQLite state with the log offsets
(state.py) and delivered in order, at least once, by rest-hook or websocket (delivery.py,
server.py), as bundles shaped by the R4 subscriptions backport IG (bundles.py).
"""
