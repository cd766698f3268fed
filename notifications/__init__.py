"""Digests: grouping, templates and delivery by email, outbox and webhook."""
