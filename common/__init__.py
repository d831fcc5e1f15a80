"""Shared plumbing every stage may import: errors, atomic file writes, devices, images, progress.

Stages (alignment, inversion, factorization, ...) never import each other; what they share lives here
or in `generators/`.
"""
