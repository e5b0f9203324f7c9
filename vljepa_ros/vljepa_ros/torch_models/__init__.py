"""PyTorch reference modules for export and training only; the runtime path never imports this package."""
