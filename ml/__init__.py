"""ml: the deep-learning core (PyTorch, torchvision, FAISS, NumPy). Never imports Django.

Modules: config (backbone settings), backbone (ResNet-50 embeddings), category (category and
attribute heads, out-of-fold predictions, layer4 fine-tuning), siamese (pair model), outfit
(outfit scorer and completion), augment (neighbour pairs, image transforms), index (FAISS),
artifacts (checksummed save/load), metrics.
"""
