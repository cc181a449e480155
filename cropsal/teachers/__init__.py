"""Readers for third-party saliency networks used as teachers and reference peers."""
