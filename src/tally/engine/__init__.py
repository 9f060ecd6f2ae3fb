"""The engine: the work behind every API, independent of HTTP and of the store's backend.

``directory`` keeps the directory and its history, ``ingest`` validates and stores events,
``access`` authenticates tokens; the statistics questions live one module each.
"""
