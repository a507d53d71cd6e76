"""Policies wrapped around every model call, each a small object with one job.

``retry`` (one retry budget per provider); rate limits and fallback join it.
"""
