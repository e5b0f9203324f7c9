"""Index of replayed recordings: per clip its embeddings, caption and thumbnail; search by text or example."""
