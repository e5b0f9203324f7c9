"""Procedurally generated tiny world: scenes, actions, rendered clips and streams with exact ground truth.

numpy + OpenCV only (no torch), so evaluation and tests can generate held-out data anywhere.
"""
