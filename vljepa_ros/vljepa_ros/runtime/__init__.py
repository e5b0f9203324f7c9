"""ONNX Runtime sessions, manifests, tokenizers and preprocessing: numpy, onnxruntime, tokenizers, OpenCV and
PyYAML only (no rclpy, no torch).
"""
