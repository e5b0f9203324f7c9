"""ONNX Runtime sessions, manifests, tokenizers and preprocessing: numpy, onnxruntime and tokenizers only
(no rclpy, no torch).
"""
