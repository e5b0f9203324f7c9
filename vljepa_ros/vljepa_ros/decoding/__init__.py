"""Selective decoding: change detection on the embedding stream, segmentation and text decoders (no rclpy, no torch)."""
