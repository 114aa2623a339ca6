"""Supervised learning on the shared networks: MNIST-format datasets and the classifiers trained on them."""
