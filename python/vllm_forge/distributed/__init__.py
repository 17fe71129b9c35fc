"""Collectives: the shared-memory group (shm.py) and our vLLM communicators."""
