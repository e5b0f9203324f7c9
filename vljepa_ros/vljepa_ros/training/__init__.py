"""Training and evaluation of the bundled tiny-world model (train_tiny uses torch; evaluate does not)."""
