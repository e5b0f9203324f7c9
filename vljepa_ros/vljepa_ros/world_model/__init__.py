"""V-JEPA 2-AC world model behind a numpy API: rollouts, surprise and CEM planning (no torch, no rclpy)."""
