"""Camera frames to embeddings: image conversion, clip buffering, the perception pipeline and its worker
(no rclpy, no torch).
"""
