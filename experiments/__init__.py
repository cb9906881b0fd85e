"""Experiments that reproduce the claims of the CS224n notes on neural networks; see README.md."""
