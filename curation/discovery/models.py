# Discovery keeps no rows of its own: it reads embeddings and models from training.
