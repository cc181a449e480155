"""Training pipeline (needs the ``train`` extra: torch and the ImageNet weights package)."""
